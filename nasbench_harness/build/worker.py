"""What runs inside a build worker: load the data once, train one (arch, seed), make a Row.

Shared by the local executor (spawned processes) and the Ray executor (Ray
tasks), so both compute the same rows from the same :class:`WorkerSpec`.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.build.fake import FakeTrainer
from nasbench_harness.build.plan import BuildSettings, Task
from nasbench_harness.build.store import CURVES, Row
from nasbench_harness.errors import BuildError


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to train tasks of one build (picklable).

    Parameters
    ----------
    settings : BuildSettings
        The build's settings.
    data_root : str or None
        Directory of local data sets (CIFAR); not a setting, it may differ per machine.
    device : str
        ``"cpu"`` or ``"cuda"`` (the worker's visible GPU).
    threads : int or None
        torch intra-op threads of the worker; None keeps torch's default.
    trainer : callable or None
        Overrides the trainer that ``settings.trainer`` names (fault drills, tests); it must
        compute what that trainer computes.
    code_version : str
        Recorded in every row.
    """

    settings: BuildSettings
    data_root: str | None = None
    device: str = "cpu"
    threads: int | None = None
    trainer: Callable[..., Any] | None = None
    code_version: str = ""


def code_version() -> str:
    """``nasbench_harness.__version__``, plus ``git describe`` of the source tree if there is one."""
    from nasbench_harness import __version__

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed copy, not a checkout of this project
        return __version__
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"{__version__}+git.{described}" if described else __version__


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed activation buffers instead of unmapping them.

    A minibatch's activations (hundreds of KB each) are above glibc's default
    mmap threshold, so every step maps and unmaps them and the kernel zeroes
    fresh pages; raising the thresholds once per worker removes that system
    time (~5% of a CPU training). Results are unchanged. A no-op off glibc.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: keep its defaults
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 256 << 20)


class TrainingContext:
    """The data, recipe and trainer of one worker process, loaded once and reused per task."""

    def __init__(self, spec: WorkerSpec) -> None:
        settings = spec.settings
        self.spec = spec
        self.hostname = socket.gethostname()
        self.torch_version = _torch_version()
        if settings.trainer == "fake":  # no torch, no data: a dry run of the machinery
            from nasbench_harness.data import dataset_info

            self.splits = None
            self.recipe: Any = dict(settings.recipe)
            self.trainer = spec.trainer or FakeTrainer()
            known = dataset_info(settings.dataset)  # the shape the data would have
            self.dataset_info: dict[str, Any] = {
                "name": settings.dataset,
                "splits": {
                    split: settings.recipe.get(f"{split}_size") or known["default_splits"][split]
                    for split in ("train", "valid", "test")
                },
                "split_seed": settings.recipe.get("split_seed"),
                "input_shape": known["input_shape"],
                "n_classes": known["n_classes"],
                "synthetic": True,
            }
        else:
            import torch

            from nasbench_harness.train import Recipe, train_arch

            if spec.threads is not None:
                torch.set_num_threads(int(spec.threads))
            _keep_freed_memory()
            self.recipe = Recipe.from_dict(dict(settings.recipe))
            splits = self.recipe.load_splits(root=spec.data_root)
            self.dataset_info = dict(splits.info)
            self.splits = splits.to(spec.device)  # once per worker, not once per task
            self.trainer = spec.trainer or train_arch
        from nasbench_harness.space import get_space

        self.space = get_space(settings.space)

    def train(self, task: Task) -> Row:
        """Train one task and return its row (raises whatever the trainer raises)."""
        arch = self.space.to_string(task.arch)
        start = time.time()
        result = self.trainer(arch, task.seed, self.recipe, self.splits, device=self.spec.device)
        end = time.time()
        epochs = self.spec.settings.epochs
        curves = {}
        for name in CURVES:
            values = np.asarray(getattr(result, name), dtype=np.float64).reshape(-1)
            if values.shape != (epochs,):
                raise BuildError(
                    f"trainer returned {name} of shape {values.shape} for arch {task.arch} seed "
                    f"{task.seed}; expected one value per epoch ({epochs})"
                )
            curves[name] = values
        return Row(
            arch=task.arch,
            seed=task.seed,
            curves=curves,
            params=float(result.params),
            flops=float(result.flops),
            latency_ms=float(result.latency_ms),
            device=str(result.device),
            hostname=self.hostname,
            pid=os.getpid(),
            start_time=start,
            end_time=end,
            torch_version=self.torch_version,
            code_version=self.spec.code_version,
        )


_CONTEXTS: dict[tuple, TrainingContext] = {}


def context_for(spec: WorkerSpec) -> TrainingContext:
    """The process's context for ``spec``, created on first use (Ray reuses worker processes)."""
    key = (spec.settings.fingerprint, spec.data_root, spec.device, spec.threads, spec.trainer)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()  # one build per process at a time: free the previous data
        _CONTEXTS[key] = TrainingContext(spec)
    return _CONTEXTS[key]
