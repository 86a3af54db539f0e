"""Score every distinct architecture of a table with training-free proxies.

One *proxy seed* ``k`` fixes both the minibatch (``batch_size`` examples
drawn without replacement from the table's training split) and the
initialisation; within a seed every architecture sees the same batch and the
same initialisation seed, so scores are comparable across architectures, and
the spread over seeds measures the proxy's own noise. One model is built per
(arch, seed) and shared by the proxies, and so is one forward and backward of
the loss (:func:`~nasbench_harness.proxies.zero_cost.shared_state`): no proxy
leaves the weights changed (synflow and zen put them back), the others only
set ``.grad``, which each one resets, and batch-norm running statistics, which
train-mode forwards do not read, so the scores do not depend on which proxies
run or in which order (tested, bit for bit).

Only representatives (``/archs/canonical``) are scored; isomorphic archs get
their representative's row when stored (:func:`~nasbench_harness.table.store_proxy`).

Finished scores are appended, one JSON line each, to a side file
``<table>.proxies.jsonl`` next to the table, so an interrupted run resumes
where it stopped; lines from a run with other settings (recipe, batch size,
table provenance, code version) are ignored. Scores already stored in the
table under the same settings (its ``config`` attribute) count as done too,
so a later run adds to them even when the side file is gone. A proxy that raises
(out-of-memory included: batches are never split) or returns a non-finite
value is recorded as NaN, with its error, and counted in ``n_failures``.
``params`` and ``flops`` do not depend on the seed; they are stored per seed
like the others (identical columns).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasbench_harness.errors import NasbenchError
from nasbench_harness.proxies.zero_cost import compute_proxy, get_proxy, shared_state

__all__ = [
    "ScoreConfig",
    "SideAppender",
    "proxy_seed_generators",
    "score_arch",
    "score_table",
    "side_file",
]


def side_file(table_path: str | os.PathLike) -> Path:
    """The resume file of ``table_path``: ``<table>.proxies.jsonl`` in the same folder."""
    p = Path(table_path)
    return p.with_name(p.name + ".proxies.jsonl")


class SideAppender:
    """Appends whole lines to a side file, beside other writers.

    Lines are kept in memory until :meth:`flush`, which writes them in one
    ``write`` on an ``O_APPEND`` descriptor while holding an exclusive ``flock``
    on the file (where ``fcntl`` exists), so that two runs scoring into one side
    file (zero-cost and one-shot proxies side by side, say) cannot interleave
    within a line, also where appends are not atomic (network file systems).
    A file that ends in a line cut by an interruption (a full disk, a crash)
    gets a newline first: appended as before, the first new line would be
    glued to the cut one, and both would be lost.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._pending: list[str] = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._first = True

    def write(self, line: str) -> None:
        self._pending.append(line)

    def flush(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode()
        with _file_lock(self._fd):
            if self._first:  # under the lock: another writer may be mid-line
                self._first = False
                if _ends_mid_line(self.path):
                    data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        self._pending.clear()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self._fd)

    def __enter__(self) -> SideAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _file_lock(fd: int):
    try:
        import fcntl
    except ImportError:  # not POSIX: whole-line writes on O_APPEND only
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _seed_states(seed: int) -> list[int]:
    states = np.random.SeedSequence([0x5EED, int(seed)]).generate_state(3, dtype=np.uint64)
    return [int(s) for s in states]


def proxy_seed_generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent CPU generators (init, batch, proxy-internal draws) of proxy seed ``seed``."""
    return tuple(torch.Generator().manual_seed(s) for s in _seed_states(seed))  # type: ignore[return-value]


#: (init, batch) draws per training-free proxy: a score depends on both, so one draw
#: says little; the mean and spread over 5 are the least to report.
DEFAULT_SEEDS = 5


class ScoreConfig:
    """Everything a worker needs to score an arch: recipe skeleton, data and batch size."""

    def __init__(
        self, recipe: Any, batch_size: int, dataset: Any = None, data_root: Any = None
    ) -> None:
        self.recipe = recipe
        self.batch_size = int(batch_size)
        self.dataset = dataset
        self.data_root = None if data_root is None else str(data_root)

    def fingerprint(self) -> str:
        """Hash of what the scores depend on: recipe, batch size, the table's data set
        (its provenance ``dataset``) and the code version. Not the table's training
        results: scores of a partly built table stay valid for the finished one. Not
        ``data_root`` either: where the files lie does not change them."""
        from nasbench_harness import __version__
        from nasbench_harness.build.store import data_identity

        dataset = self.dataset
        if isinstance(dataset, dict):  # where the data lay on one machine is not what it is
            dataset = data_identity(dataset)
        text = json.dumps(
            {
                "recipe": self.recipe.to_dict(),
                "batch_size": self.batch_size,
                "dataset": dataset,
                "code_version": __version__,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_WORKER: dict[str, Any] = {}


def _load(config: ScoreConfig) -> Any:
    key = (config.fingerprint(), config.data_root)
    if _WORKER.get("key") != key:
        _WORKER["key"] = key
        _WORKER["splits"] = config.recipe.load_splits(root=config.data_root)
    return _WORKER["splits"]


def _batch(splits: Any, batch_size: int, generator: torch.Generator):
    n = splits.train_x.shape[0]
    if batch_size > n:
        raise NasbenchError(
            f"batch size {batch_size} exceeds the training split ({n} examples); "
            "give a smaller --batch-size"
        )
    idx = torch.randperm(n, generator=generator)[:batch_size]
    return splits.train_x[idx], splits.train_y[idx]


def score_arch(
    arch: int, seed: int, proxies: Sequence[str], config: ScoreConfig, splits: Any = None
) -> list[dict[str, Any]]:
    """Score one arch at one proxy seed with every proxy; one record per proxy.

    Records: ``{"arch", "seed", "proxy", "score" (None for NaN), "error", "revision"}``.
    """
    from nasbench_harness.models import build_model

    splits = splits if splits is not None else _load(config)
    recipe = config.recipe
    _, batch_gen, _ = proxy_seed_generators(seed)
    batch = _batch(splits, config.batch_size, batch_gen)
    n_classes = int(splits.info.get("n_classes", int(splits.train_y.max()) + 1))
    records = []
    model, build_error = None, None
    init_gen, _, draw_gen = proxy_seed_generators(seed)
    try:
        model = build_model(
            int(arch),
            input_shape=tuple(splits.train_x.shape[1:]),
            n_classes=n_classes,
            channels=recipe.channels,
            cells_per_stage=recipe.cells_per_stage,
            reduction=recipe.reduction,
            generator=init_gen,
        )
    except (RuntimeError, ValueError, NasbenchError) as exc:
        build_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    shared = shared_state(proxies)  # work the proxies share on this model (one loss gradient)
    for name in proxies:
        # every proxy gets the same draw generator state, whatever ran before it
        draw_gen.manual_seed(_seed_states(seed)[2])
        error = build_error
        value = math.nan
        if model is not None:
            try:
                value = compute_proxy(name, model, batch, {"generator": draw_gen, "shared": shared})
                if math.isnan(value):
                    error = "non-finite value"
            except (RuntimeError, ValueError, ArithmeticError, NasbenchError) as exc:
                value = math.nan
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        records.append(
            {
                "arch": int(arch),
                "seed": int(seed),
                "proxy": name,
                "score": None if math.isnan(value) else value,
                "error": error,
                "revision": get_proxy(name).revision,
            }
        )
    return records


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_task(args) -> list[dict[str, Any]]:
    return score_arch(*args)


def _read_side(path: Path, fingerprint: str) -> dict[tuple[str, int, int], dict]:
    done: dict[tuple[str, int, int], dict] = {}
    if not path.exists():
        return done
    with path.open() as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
            if rec.get("config") == fingerprint:
                done[(rec["proxy"], int(rec["seed"]), int(rec["arch"]))] = rec
    return done


def stored_records(
    table, name: str, fingerprint: str, revision: int = 1
) -> dict[tuple[str, int, int], dict]:
    """Finished scores of proxy ``name`` already stored in ``table``, as side-file records.

    Only those stored by a run with the same settings (attribute ``config``,
    the fingerprint of the side file's lines) and proxy revision count, and
    only finite ones (a stored NaN may be a failure or an arch not scored
    yet). A run then adds to them instead of rebuilding the stored proxy
    from the side file alone, which may be gone (deleted after storing, or
    not copied with the table).
    """
    attrs = getattr(table, "proxy_attrs", {}).get(name)
    if not attrs or attrs.get("config") != fingerprint:
        return {}
    if int(attrs.get("revision", 1)) != int(revision):
        return {}
    values = np.asarray(table.array(f"proxy/{name}"), dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    out = {}
    for arch in np.unique(np.asarray(table.canonical)):
        for k, seed in enumerate(attrs.get("seeds") or []):
            value = values[int(arch), k]
            if np.isfinite(value):
                out[(name, int(seed), int(arch))] = {
                    "arch": int(arch),
                    "seed": int(seed),
                    "proxy": name,
                    "score": float(value),
                    "error": None,
                    "revision": int(revision),
                    "config": fingerprint,
                    "from_table": True,
                }
    return out


def check_replace(
    table, table_path: Any, name: str, fingerprint: str, revision: int, replace: bool
) -> None:
    """Refuse to overwrite stored scores of ``name`` made with other settings.

    Scores of other settings (recipe, batch size, schedule, device, code
    version: another ``config``) are other numbers; this run would replace
    them, so it needs ``replace`` (``--replace``). Scores of an older proxy
    revision are replaced without asking: their definition is gone.
    """
    attrs = getattr(table, "proxy_attrs", {}).get(name)
    if replace or not attrs or attrs.get("config") == fingerprint:
        return
    if int(attrs.get("revision", 1)) != int(revision):
        return
    raise NasbenchError(
        f"{table_path} holds proxy {name!r} scored with other settings (config "
        f"{attrs.get('config') or 'not recorded'}, this run {fingerprint}); scoring would "
        "replace those scores: pass --replace to do so, or score into a copy of the table"
    )


def stored_seeds(done: dict, name: str, seeds: Sequence[int]) -> list[int]:
    """The proxy seeds to store for ``name``: this run's and any other already scored."""
    return sorted(set(seeds) | {s for (n, s, _) in done if n == name})


def check_scorable(table, table_path: Any) -> None:
    """Refuse a table whose cells the proxies' models cannot build (they build nb201 cells)."""
    from nasbench_harness.build.plan import TRAINABLE_SPACES

    name = getattr(table.space, "name", None)
    if name not in TRAINABLE_SPACES:
        raise NasbenchError(
            f"{table_path}: a {name} table; the proxies score networks of the "
            f"{', '.join(TRAINABLE_SPACES)} cells only"
        )


def check_table_data(table, table_path: Any, splits: Any) -> None:
    """Refuse data that is not a built table's own (the proxies' batches come from it)."""
    from nasbench_harness.build.store import same_data

    provenance = table.provenance
    dataset = provenance.get("dataset")
    if "build" not in provenance or provenance.get("synthetic") or not isinstance(dataset, dict):
        return  # an import or a synthetic table: its data is the recipe's, given by the user
    if not same_data(dict(splits.info), dataset):
        raise NasbenchError(
            f"{table_path}: the recipe's data ({dict(splits.info)}) is not the data the table "
            f"was trained on ({dataset}); the proxies' batches must come from the table's own "
            "training split: leave --recipe-json out, or give the table's recipe"
        )


def archs_to_score(table, *, all_archs: bool = False, limit: int | None = None) -> np.ndarray:
    """Representatives (canonical ids) to score, in index order.

    By default only those with a training result (a finite train, validation
    or test accuracy at some seed and epoch; a table may lack a validation
    split): on a table still being built the others have no truth to
    correlate with. ``all_archs`` scores every distinct arch
    (e.g. ahead of a build: proxies do not depend on training). ``limit``
    then keeps the first ``limit``.
    """
    reps = np.unique(np.asarray(table.canonical))
    if not all_archs:
        trained = np.zeros(len(table.canonical), dtype=bool)
        for metric in ("train_acc", "valid_acc", "test_acc"):
            trained |= np.isfinite(np.asarray(table.array(metric))).any(axis=(1, 2))
        reps = reps[trained[reps]]
    return reps if limit is None else reps[: max(0, int(limit))]


def score_table(
    table_path: str | os.PathLike,
    proxies: Sequence[str],
    *,
    seeds: int = DEFAULT_SEEDS,
    workers: int = 1,
    limit: int | None = None,
    all_archs: bool = False,
    recipe: Any = None,
    batch_size: int | None = None,
    data_root: str | os.PathLike | None = None,
    progress: bool = True,
    store: bool = True,
    replace: bool = False,
) -> dict[str, Any]:
    """Score the table's distinct archs with ``proxies`` at proxy seeds ``0..seeds-1`` and store them.

    Parameters
    ----------
    table_path
        A v1 table; its provenance recipe gives the data and the skeleton
        unless ``recipe`` is given.
    proxies
        Registered proxy names.
    seeds
        Proxy seeds K (one column each in the table).
    workers
        Worker processes (1: in this process).
    limit
        Score only the first ``limit`` representatives in index order (a
        trial run; they are mostly disconnected cells). Scores already in the
        side file are stored too; the rest stay NaN and are counted as
        ``n_unscored`` (not failures).
    all_archs
        Also score the archs without a training result (by default they are
        left out: see :func:`archs_to_score`).
    recipe
        A :class:`~nasbench_harness.train.Recipe` overriding the table's.
    batch_size
        Examples per batch (default: the recipe's training batch size).
    data_root
        Directory of local-disk data sets (CIFAR).
    store
        Write the scores into the table with ``store_proxy``. Seeds scored
        before under the same settings (more than ``seeds``) are stored too.
    replace
        Replace a stored proxy scored with other settings (refused otherwise,
        before any scoring: :func:`check_replace`).

    Returns
    -------
    dict
        Per proxy: ``n_scored``, ``n_failures``, ``n_unscored``, ``errors`` (a few).
    """
    from nasbench_harness.table import open_table, store_proxy
    from nasbench_harness.train import Recipe

    names = list(dict.fromkeys(proxies))
    if not names:
        raise NasbenchError("no proxies given: pass --proxies NAME[,NAME...]")
    specs = {n: get_proxy(n) for n in names}
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise NasbenchError(f"seeds={seeds!r}: give the number of proxy seeds, >= 1")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise NasbenchError(f"--batch-size {batch_size!r}: give a whole number >= 1")
    table = open_table(table_path)
    check_scorable(table, table_path)
    if recipe is None:
        raw = table.provenance.get("recipe")
        try:
            recipe = Recipe.from_dict(raw)
        except (NasbenchError, TypeError) as exc:
            raise NasbenchError(
                f"{table_path}: the provenance recipe is not a training recipe ({exc}); "
                "pass --recipe-json with one (e.g. a synthetic table has none)"
            ) from exc
    config = ScoreConfig(
        recipe, batch_size or recipe.batch_size, table.provenance.get("dataset"), data_root
    )
    reps = np.unique(np.asarray(table.canonical))
    todo_reps = archs_to_score(table, all_archs=all_archs, limit=limit)
    seed_list = list(range(seeds))
    side = side_file(table_path)
    fp = config.fingerprint()
    done = {}
    for name in names:  # what the table already holds for these settings
        check_replace(table, table_path, name, fp, specs[name].revision, replace)
        done.update(stored_records(table, name, fp, specs[name].revision))
    done.update(_read_side(side, fp))
    done = {  # scores of an older definition of a proxy are scored again
        key: rec
        for key, rec in done.items()
        if key[0] not in specs or rec.get("revision", 1) == specs[key[0]].revision
    }
    # a seed-independent proxy (params, flops) is computed at seed 0 only and copied
    once = {n for n in names if specs[n].seed_independent}
    tasks = []
    for arch in todo_reps:
        for s in seed_list:
            missing = [
                n for n in names if (n, s, int(arch)) not in done and (s == 0 or n not in once)
            ]
            if missing:
                tasks.append((int(arch), s, missing, config))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="proxies", unit="arch-seed")
    with SideAppender(side) as out:

        def write(rec: dict) -> None:
            rec["config"] = fp
            done[(rec["proxy"], rec["seed"], rec["arch"])] = rec
            out.write(json.dumps(rec) + "\n")

        def copy_to_other_seeds(rec: dict) -> None:
            for s in seed_list[1:]:
                if (rec["proxy"], s, rec["arch"]) not in done:
                    write({**rec, "seed": s, "from_seed": 0})

        def record(recs: list[dict]) -> None:
            for rec in recs:
                write(rec)
                if rec["proxy"] in once and rec["seed"] == 0:
                    copy_to_other_seeds(rec)
            out.flush()
            if bar is not None:
                bar.update(1)

        for arch in reps:  # seed 0 scored by an earlier run (e.g. with fewer --seeds)
            for name in once:
                rec = done.get((name, 0, int(arch)))
                if rec is not None:
                    copy_to_other_seeds(rec)
        out.flush()

        if workers <= 1 or len(tasks) <= 1:
            # one torch thread, as in the worker processes: scores do not depend on
            # --workers, and a busy machine is not oversubscribed by spinning threads
            from nasbench_harness.train import torch_threads

            with torch_threads(1):
                splits = _load(config)
                check_table_data(table, table_path, splits)
                for arch, s, missing, cfg in tasks:
                    record(score_arch(arch, s, missing, cfg, splits))
        else:
            check_table_data(table, table_path, _load(config))
            pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
            futures = {pool.submit(_worker_task, t): t for t in tasks}
            try:
                for fut in cf.as_completed(futures):
                    record(fut.result())
            except Exception as exc:  # a proxy's unexpected error, a worker killed (memory)
                arch, s = futures[fut][:2] if fut in futures else ("?", "?")
                pool.shutdown(wait=True, cancel_futures=True)
                out.flush()
                raise NasbenchError(
                    f"scoring arch {arch} at proxy seed {s} failed in a worker process "
                    f"({type(exc).__name__}: {exc}); the scores finished so far are kept in "
                    f"{side}: rerun the same command to continue"
                ) from exc
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    if bar is not None:
        bar.close()

    summary: dict[str, Any] = {}
    for name in names:
        columns = stored_seeds(done, name, seed_list)  # a smaller --seeds drops none
        scores = np.full((table.n_archs, len(columns)), np.nan)
        n_fail, n_unscored, errors = 0, 0, []
        for arch in reps:  # every finished score, also from earlier runs with a larger --limit
            for k, s in enumerate(columns):
                rec = done.get((name, s, int(arch)))
                if rec is None:
                    n_unscored += 1
                elif rec["score"] is not None:
                    scores[int(arch), k] = rec["score"]
                else:
                    n_fail += 1
                    if rec.get("error") and len(errors) < 5:
                        errors.append(f"arch {int(arch)} seed {s}: {rec['error']}")
        attrs = {
            "definition": specs[name].definition,
            "seeds": columns,
            "seed_independent": specs[name].seed_independent,
            "revision": specs[name].revision,
            "n_failures": n_fail,
            "n_unscored": n_unscored,
            "batch_size": config.batch_size,
            "batch_source": "training split of the recipe, drawn without replacement per seed",
            "recipe": recipe.to_dict(),
            "config": fp,  # the settings' fingerprint: a later run adds to these scores
        }
        if store:
            store_proxy(table_path, name, scores, attrs)
        summary[name] = {
            "n_scored": int(reps.size * len(columns) - n_fail - n_unscored),
            "n_failures": n_fail,
            "n_unscored": n_unscored,
            "errors": errors,
        }
    return summary
