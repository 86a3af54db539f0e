"""Latency of every architecture measured in one sweep, so that the latencies compare.

A build measures each row's latency right after training it, in whichever
worker trained it, while the other workers train: on a shared machine the
figures then carry the load of the moment and the speed of the day (rows of
one build trained on two days differed by 4x in median latency). For a table
whose latency is a search objective, :func:`sweep_latency` measures every
architecture again in one process, in one stretch of time:

- every arch is built from a fresh initialisation (the weights do not change
  the work of a forward pass) and measured at batch size 1, in eval mode,
  without gradients, like :func:`nasbench_harness.models.measure_latency_ms`;
- the archs are measured in ``rounds`` passes over all of them, each pass in
  a new random order, ``repeats`` timed forward passes per arch and round,
  so that a slow spell of the machine lands on different archs in each round
  instead of on a block of them;
- an arch's latency is the fastest of its ``rounds * repeats`` timed passes
  (the rule of ``timeit``: on a shared machine noise only adds time). On a
  2-core VM, idle or with two build workers busy, two sweeps of 150 archs agreed at Spearman 0.73-0.79 this
  way, against 0.67-0.75 for the median over rounds of each round's fastest
  and 0.57-0.71 for medians;
- archs are taken in chunks of ``chunk`` models held in memory at once, all
  rounds of a chunk before the next chunk, which bounds memory (a C=8, N=2
  model holds about 0.5 MB). The chunks are a random partition of the archs,
  not runs of neighbouring indices (which share their first edges' ops): a
  slow spell longer than a chunk's rounds still lands on one chunk in every
  round, but on a random subset of archs, never on a block of similar ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasbench_harness.errors import BuildError

__all__ = ["sweep_latency"]


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BuildError(
            f"latency sweep {name}={value!r} is not valid: give an integer >= {minimum}"
        )
    return int(value)


def sweep_latency(
    archs: Sequence[int],
    *,
    space: str,
    recipe: Mapping[str, Any],
    input_shape: Sequence[int],
    n_classes: int,
    device: str = "cpu",
    threads: int = 1,
    rounds: int = 5,
    repeats: int = 10,
    warmup: int = 2,
    chunk: int = 1024,
    seed: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Measure the batch-1 forward latency (ms) of ``archs`` in one sweep.

    Parameters
    ----------
    archs
        Arch indices of ``space`` (canonical ones: isomorphic archs compute the same).
    recipe
        The build's recipe (``channels``, ``cells_per_stage``, ``reduction``
        shape the network).
    input_shape, n_classes
        Of the data set, as the table's provenance records them.
    device, threads
        Where to measure; ``threads`` torch threads on the CPU (a build's
        workers use 1).
    rounds, repeats, warmup, chunk
        See the module docstring.
    seed
        Seeds the initialisations and the orders of the rounds.

    Returns
    -------
    latency_ms, info
        The fastest timed pass of each arch, in milliseconds, in the order of
        ``archs``; ``info`` says how they were measured (for the table's
        provenance).
    """
    import torch
    from tqdm import tqdm

    from nasbench_harness import models
    from nasbench_harness.space import get_space
    from nasbench_harness.table.schema import now_iso
    from nasbench_harness.train import describe_device, torch_threads

    rounds = _check_count("rounds", rounds, 1)
    repeats = _check_count("repeats", repeats, 1)
    warmup = _check_count("warmup", warmup, 0)
    chunk = _check_count("chunk", chunk, 1)
    threads = _check_count("threads", threads, 1)
    archs = np.asarray(archs, dtype=np.int64).reshape(-1)
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        target = None
    if target is None or target.type not in ("cpu", "cuda"):
        raise BuildError(
            f"latency device {device!r} is not known: use cpu, cuda or cuda:N "
            "(--latency-device of nasbench merge)"
        )
    if target.type == "cuda" and not torch.cuda.is_available():
        raise BuildError(f"latency device {device!r} asked for but CUDA is not available: use cpu")
    nb_space = get_space(space)
    shape = tuple(int(v) for v in input_shape)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(archs))  # the chunks: a random partition
    per_round = np.full((rounds, len(archs)), np.nan)
    started, clock = now_iso(), time.perf_counter()

    bar = tqdm(
        total=len(archs) * rounds,
        desc="latency",
        unit="arch",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )
    with torch_threads(threads), torch.no_grad(), bar:
        x = torch.zeros((1, *shape), device=target)
        for begin in range(0, len(archs), chunk):
            members = order[begin : begin + chunk]
            built = {}
            for i in members:
                model = models.build_model(
                    nb_space.to_string(int(archs[i])),
                    input_shape=shape,
                    n_classes=int(n_classes),
                    channels=int(recipe["channels"]),
                    cells_per_stage=int(recipe["cells_per_stage"]),
                    reduction=str(recipe["reduction"]),
                    generator=torch.Generator().manual_seed(seed),
                )
                built[int(i)] = model.to(target).eval()
            for r in range(rounds):
                for i in rng.permutation(members):
                    model = built[int(i)]
                    for _ in range(warmup):
                        model(x)
                    sync()
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        model(x)
                        sync()
                        times.append(time.perf_counter() - start)
                    per_round[r, i] = 1000.0 * min(times)
                    bar.update(1)
            del built
        describe = describe_device(target)
    latency = per_round.min(axis=0)
    info = {
        "source": "sweep",
        "how": (
            "every arch measured again after the build, in one process: fresh initialisation, "
            "batch size 1, eval mode; the fastest of its timed forward passes over all rounds "
            "(each round over all archs in a new random order)"
        ),
        "device": describe,
        "threads": threads,
        "rounds": rounds,
        "repeats": repeats,
        "warmup": warmup,
        "chunk": chunk,
        "seed": seed,
        "n_archs": len(archs),
        "started": started,
        "finished": now_iso(),
        "wall_time_s": time.perf_counter() - clock,
        "round_agreement_spearman": _round_agreement(per_round),
    }
    return latency, info


def _round_agreement(per_round: np.ndarray) -> float | None:
    """Mean Spearman rho between the rounds' fastest passes: how repeatable one round is."""
    if per_round.shape[0] < 2 or per_round.shape[1] < 3:
        return None
    from scipy.stats import spearmanr

    rhos = []
    for a in range(per_round.shape[0]):
        for b in range(a + 1, per_round.shape[0]):
            rho = spearmanr(per_round[a], per_round[b]).statistic
            if np.isfinite(rho):
                rhos.append(float(rho))
    return float(np.mean(rhos)) if rhos else None
