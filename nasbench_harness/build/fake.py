"""A fast deterministic stand-in for :func:`nasbench_harness.train.train_arch`, and a fault injector.

:class:`FakeTrainer` returns synthetic curves that depend only on (arch,
seed): it exercises plans, shards, executors, resume and merge in seconds,
without torch (``nasbench build --dry-run``; tables built with it are marked
synthetic). :class:`KillWorker` wraps any trainer and SIGKILLs its own worker
process, for fault drills and tests. Both are picklable (plain classes
of this module) so they travel to spawned workers and Ray tasks.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np


def _epochs(recipe: Any) -> int:
    return int(recipe["epochs"] if isinstance(recipe, Mapping) else recipe.epochs)


@dataclass(frozen=True)
class FakeTrainer:
    """Synthetic learning curves, a pure function of (arch, seed) and the epoch count.

    Parameters
    ----------
    sleep_s : float
        Seconds to sleep per epoch, to stand in for training time.
    """

    sleep_s: float = 0.0

    def __call__(self, arch, seed, recipe, splits, *, device="cpu") -> SimpleNamespace:
        index = _index(arch)
        epochs = _epochs(recipe)
        rng = np.random.default_rng([index, seed])
        quality = (index % 97) / 97.0  # the arch's own level, shared by its seeds
        final = 40.0 + 55.0 * quality + rng.normal(0.0, 1.0)
        steps = 1.0 - np.exp(-np.arange(1, epochs + 1) / 2.0)
        times = np.empty(epochs)
        for epoch in range(epochs):
            start = time.perf_counter()
            time.sleep(self.sleep_s)
            times[epoch] = time.perf_counter() - start
        valid_acc = final * steps + rng.normal(0.0, 0.5, epochs)
        return SimpleNamespace(  # the fields of train.TrainResult that a build reads
            train_acc=np.minimum(valid_acc + 3.0, 100.0),
            train_loss=2.3 * (1.0 - steps) + 0.05,
            valid_acc=valid_acc,
            valid_loss=2.3 * (1.0 - steps) + 0.1 + rng.uniform(0.0, 0.1, epochs),
            test_acc=valid_acc + rng.normal(0.0, 0.5, epochs),
            test_loss=2.3 * (1.0 - steps) + 0.1 + rng.uniform(0.0, 0.1, epochs),
            train_time_s=times,
            eval_time_s=np.full(epochs, 1e-4),
            params=1000 + 37 * index,
            flops=20000 + 911 * index,
            latency_ms=float(0.1 + rng.uniform(0.0, 0.01)),
            device=str(device),
        )


@dataclass(frozen=True)
class KillWorker:
    """Wrap a trainer so that it SIGKILLs its own worker process, ``times`` times in all.

    Each kill first creates a marker file ``kill-<k>`` in ``marker_dir``
    exclusively, so across all workers (and their restarts) exactly ``times``
    processes die, mid-task, like workers lost to the OOM killer or a failed
    node.

    Parameters
    ----------
    trainer : callable
        The trainer to wrap (train_arch's signature).
    marker_dir : str
        Existing directory for the marker files; empty it to arm the injector again.
    times : int
        Kills in all.
    arch : int, optional
        Kill only while training this arch index (default: any arch).
    after_calls : int
        Calls a process completes before it may die (lets some rows finish first).
    """

    trainer: Callable[..., Any]
    marker_dir: str
    times: int = 1
    arch: int | None = None
    after_calls: int = 0

    def __call__(self, arch, seed, recipe, splits, *, device="cpu"):
        calls = _CALLS.get(self.marker_dir, 0)
        _CALLS[self.marker_dir] = calls + 1
        if calls >= self.after_calls and self.arch in (None, _index(arch)):
            for k in range(self.times):
                try:
                    fd = os.open(
                        Path(self.marker_dir) / f"kill-{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY
                    )
                except FileExistsError:
                    continue
                os.write(fd, f"pid {os.getpid()} arch {arch} seed {seed}\n".encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return self.trainer(arch, seed, recipe, splits, device=device)


def _index(arch: Any) -> int:
    from nasbench_harness.space import get_space

    return get_space("nb201").index(arch)


#: Calls per injector in this process (injectors are frozen and travel by pickle).
_CALLS: dict[str, int] = {}
