"""The one-shot proxy: each distinct arch's validation accuracy with a trained supernet's weights.

For proxy seed ``k`` a supernet is trained with RSPS' uniform single-path
sampling (:func:`~nasbench_harness.oneshot.rsps.train_uniform_supernet`,
seed ``k``) on the table's training split, in the table's skeleton; then
every distinct arch of the table (the representatives in
``/archs/canonical``) is evaluated on the table's validation split with the
inherited weights (its path only, BN on batch statistics; see
:func:`~nasbench_harness.oneshot._common.evaluate_path`), on the first
``eval_examples`` (default 512) examples of that split, the same for every
arch. The score is that accuracy in percent; isomorphic archs get their representative's score when
stored. The supernet is not invariant under the table's isomorphism rule (a conv on another
edge has other weights), so for 5,520 of NB201's 15,625 archs that is not their own
inherited-weight accuracy; ``nasbench correlate`` uses the representatives only. Stored as proxy ``oneshot`` (metric ``proxy/oneshot``), shape
``(n_archs, K)``, one column per proxy seed.

Finished scores are appended to the table's side file
``<table>.proxies.jsonl`` (the format of :mod:`nasbench_harness.proxies.score`,
under a fingerprint of the recipe, schedule, code version and, off the CPU,
the device type), so an interrupted run resumes: a seed with archs left
retrains its supernet (deterministic on one device type: the same weights)
and scores only those. Scores already stored in the table under the same
fingerprint (attribute ``config``) count as done too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch

from nasbench_harness.errors import NasbenchError

__all__ = [
    "DEFAULT_EVAL_EXAMPLES",
    "DEFAULT_SCHEDULE",
    "DEFAULT_SEEDS",
    "DEFINITION",
    "PROXY_NAME",
    "score_oneshot",
]

PROXY_NAME = "oneshot"
DEFINITION = (
    "One-shot (weight-sharing) proxy: validation accuracy (percent) of the arch with weights "
    "inherited from a supernet over the NB201 cell (every op on every edge, the table's "
    "skeleton and data set, candidate-op BN without affine parameters or running statistics) "
    "trained by uniform single-path sampling (random search with weight sharing, Li & "
    "Talwalkar, UAI 2019; as a ranking proxy: Bender et al., ICML 2018; NAS-Bench-201, "
    "Dong & Yang, ICLR 2020), one supernet per proxy seed; evaluated on the table's "
    "validation split (its first eval_examples examples, the same for every arch) with the "
    "arch's path only and every BN on batch statistics."
)
#: Supernet schedule of the proxy: RSPS' reference length (250 epochs, batch 64; docs/oneshot.md).
DEFAULT_SCHEDULE = {"epochs": 250, "batch_size": 64}
#: Validation examples per arch (the first ones of the split; None: all of it).
DEFAULT_EVAL_EXAMPLES = 512
#: Supernets trained for the proxy, one per proxy seed (minutes each on a CPU).
DEFAULT_SEEDS = 3


def _schedule_keys() -> set[str]:
    """The RSPS hyperparameters a proxy schedule may set."""
    from nasbench_harness.oneshot.rsps import RSPS

    return set(RSPS._param_names()) - {"seed", "n_candidates", "derive_every", "eval_examples"}


def _same_setting(value: Any, default: Any) -> bool:
    """Whether a schedule value is its default (5 and 5.0 are; True and 1 are not)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool) and value == default
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return float(value) == float(default)
    return value == default


def check_options(
    schedule: dict | None, eval_examples: Any, device: Any
) -> tuple[dict, torch.device]:
    """The full schedule and the device of a one-shot proxy run, or a clear error.

    Cheap: callers check before long work (``nasbench proxies`` before its
    training-free scoring).
    """
    from nasbench_harness.oneshot.rsps import RSPS

    schedule = {**DEFAULT_SCHEDULE, **(schedule or {})}
    accepted = _schedule_keys()
    unknown = sorted(set(schedule) - accepted)
    if unknown:
        raise NasbenchError(
            f"one-shot proxy: unknown schedule parameter(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(accepted))}"
        )
    # an RSPS default given explicitly is the same schedule (and fingerprint) as leaving it out
    defaults = RSPS().get_params()
    schedule = {
        key: value
        for key, value in schedule.items()
        if key in DEFAULT_SCHEDULE or not _same_setting(value, defaults[key])
    }
    if eval_examples is not None and (
        isinstance(eval_examples, bool) or not isinstance(eval_examples, int) or eval_examples < 1
    ):
        raise NasbenchError(f"eval_examples={eval_examples!r}: give a positive integer or None")
    return schedule, check_device(device)


def check_device(device: Any) -> torch.device:
    """``device`` as a torch device, or a clear error naming it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise NasbenchError(
            f"--device {device!r} is not a torch device ({str(exc).splitlines()[0]}); "
            "give cpu, cuda or cuda:N"
        ) from None


def _fingerprint(recipe, schedule: dict, eval_examples: int | None, device: Any = "cpu") -> str:
    from nasbench_harness import __version__

    payload = {
        "proxy": PROXY_NAME,
        "recipe": recipe.to_dict(),
        "schedule": schedule,
        "eval_examples": eval_examples,
        "code_version": __version__,
    }
    if getattr(recipe, "augmentation", "none") != "none":
        # supernets once trained on raw images under such recipes: those scores are not these
        payload["supernet_augmentation"] = recipe.augmentation
    kind = torch.device(device).type
    if kind != "cpu":  # another device trains another supernet (not bit-identical)
        payload["device"] = kind
    text = json.dumps(
        payload,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def score_oneshot(
    table_path: str | os.PathLike,
    *,
    seeds: int = DEFAULT_SEEDS,
    recipe: Any = None,
    schedule: dict | None = None,
    eval_examples: int | None = DEFAULT_EVAL_EXAMPLES,
    device: str | torch.device = "cpu",
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    all_archs: bool = False,
    progress: bool = True,
    store: bool = True,
    replace: bool = False,
) -> dict[str, Any]:
    """Score every distinct arch of the table with the one-shot proxy and store it.

    Parameters
    ----------
    table_path
        An nb201 v1 table; its provenance recipe gives data and skeleton
        unless ``recipe`` is given.
    seeds
        Proxy seeds K (one supernet and one column each).
    recipe
        A :class:`~nasbench_harness.train.Recipe` (or dict) overriding the table's.
    schedule
        RSPS hyperparameters of the supernet training (default
        :data:`DEFAULT_SCHEDULE`, the rest RSPS' defaults).
    eval_examples
        The first ``eval_examples`` validation examples score every arch
        (default 512, the methods' default; None: the whole validation split).
    device
        Where the supernet trains and evaluates.
    data_root
        Directory of local-disk data sets (CIFAR).
    limit
        Score only the first ``limit`` representatives (a trial run; the
        rest stay NaN, counted as ``n_unscored``).
    all_archs
        Also score the archs without a training result (by default they are
        left out, see :func:`nasbench_harness.proxies.score.archs_to_score`).
    store
        Write ``proxy/oneshot`` into the table.

    Returns
    -------
    dict
        ``n_scored``, ``n_failures``, ``n_unscored``, ``seconds`` (per seed:
        training and scoring wall seconds of this call).
    """
    from nasbench_harness.oneshot.rsps import RSPS, train_uniform_supernet
    from nasbench_harness.oneshot.search import table_recipe
    from nasbench_harness.proxies.score import (
        SideAppender,
        _read_side,
        archs_to_score,
        check_replace,
        check_table_data,
        side_file,
        stored_records,
        stored_seeds,
    )
    from nasbench_harness.table import open_table, store_proxy
    from nasbench_harness.train import _deterministic, torch_threads

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise NasbenchError(f"seeds={seeds!r}: give the number of proxy seeds, >= 1")
    schedule, device = check_options(schedule, eval_examples, device)
    accepted = _schedule_keys()
    table = open_table(table_path)
    recipe = table_recipe(table, recipe)
    reps = np.unique(np.asarray(table.canonical))
    todo = archs_to_score(table, all_archs=all_archs, limit=limit)
    fp = _fingerprint(recipe, schedule, eval_examples, device)
    side = side_file(table_path)
    check_replace(table, table_path, PROXY_NAME, fp, 1, replace)
    done = stored_records(table, PROXY_NAME, fp)  # what the table holds for these settings
    done.update(_read_side(side, fp))
    splits = None
    seconds: dict[int, dict[str, float]] = {}
    with torch_threads(1):  # scores do not depend on the machine's thread count
        bar = None
        try:
            missing_by_seed = {
                s: [int(a) for a in todo if (PROXY_NAME, s, int(a)) not in done]
                for s in range(seeds)
            }
            if progress:
                from tqdm.auto import tqdm

                total = sum(len(v) for v in missing_by_seed.values())
                bar = tqdm(total=total, desc="oneshot", unit="arch")
            with SideAppender(side) as out:
                for s, missing in missing_by_seed.items():
                    if not missing:
                        continue
                    if splits is None:
                        splits = recipe.load_splits(root=data_root)
                        check_table_data(table, table_path, splits)
                    supernet, info = train_uniform_supernet(
                        recipe,
                        splits,
                        seed=s,
                        device=device,
                        eval_examples=eval_examples,
                        **schedule,
                    )
                    dev = torch.device(device)
                    n_eval = len(splits.valid_y) if eval_examples is None else eval_examples
                    x = splits.valid_x[:n_eval].to(dev)
                    y = splits.valid_y[:n_eval].to(dev)
                    start = time.perf_counter()
                    with _deterministic(dev):
                        _score_archs(supernet, missing, s, x, y, recipe, fp, done, out, bar)
                    out.flush()
                    seconds[s] = {
                        "train_wall_s": info["train_wall_s"],
                        "score_wall_s": time.perf_counter() - start,
                    }
        finally:
            if bar is not None:
                bar.close()

    columns = stored_seeds(done, PROXY_NAME, range(seeds))  # a smaller --seeds drops none
    scores = np.full((table.n_archs, len(columns)), np.nan)
    n_fail = n_unscored = 0
    errors: list[str] = []
    for arch in reps:
        for k, s in enumerate(columns):
            rec = done.get((PROXY_NAME, s, int(arch)))
            if rec is None:
                n_unscored += 1
            elif rec["score"] is None:
                n_fail += 1
                if rec.get("error") and len(errors) < 5:
                    errors.append(f"arch {int(arch)} seed {s}: {rec['error']}")
            else:
                scores[int(arch), k] = rec["score"]
    attrs = {
        "definition": DEFINITION,
        "kind": "one-shot (weight-sharing)",
        "seeds": columns,
        "n_failures": n_fail,
        "n_unscored": n_unscored,
        "schedule": {k: v for k, v in RSPS(**schedule).get_params().items() if k in accepted},
        "supernet_seed": "the proxy seed (column k: supernet trained with seed k)",
        "eval_split": "valid",
        "eval_examples": "all" if eval_examples is None else int(eval_examples),
        "recipe": recipe.to_dict(),
        "config": fp,  # the settings' fingerprint: a later run adds to these scores
        "clock": "real wall-clock seconds (supernet training and scoring), not simulated",
        "seconds_this_call": {str(k): v for k, v in seconds.items()},
    }
    if store:
        store_proxy(table_path, PROXY_NAME, scores, attrs)
    return {
        "n_scored": int(reps.size * len(columns) - n_fail - n_unscored),
        "n_failures": n_fail,
        "n_unscored": n_unscored,
        "errors": errors,
        "seconds": seconds,
    }


def _score_archs(supernet, archs, seed, x, y, recipe, fingerprint, done, out, bar) -> None:
    """Score ``archs`` with ``supernet`` (proxy seed ``seed``); record each in ``done`` and ``out``."""
    from nasbench_harness.oneshot._common import evaluate_path
    from nasbench_harness.oneshot.supernet import arch_to_choice

    for n, arch in enumerate(archs, 1):
        error = None
        try:
            value = evaluate_path(
                supernet, arch_to_choice(arch), x, y, batch_size=recipe.eval_batch_size
            )
        except (RuntimeError, ValueError) as exc:  # out of memory included
            value = math.nan
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rec = {
            "arch": arch,
            "seed": seed,
            "proxy": PROXY_NAME,
            "score": None if math.isnan(value) else value,
            "error": error,
            "config": fingerprint,
        }
        done[(PROXY_NAME, seed, arch)] = rec
        out.write(json.dumps(rec) + "\n")
        if n % 256 == 0:
            out.flush()
        if bar is not None:
            bar.update(1)
