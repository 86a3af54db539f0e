"""The build driver: plan, resume, run an executor, commit and compact rows, report.

:func:`run_build` is what ``nasbench build`` calls. Rerunning it with the
same settings and ``out`` continues where the last run stopped: rows already
on disk (in part files or row files) are skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nasbench_harness.build.defaults import MAX_ATTEMPTS, ROWS_PER_PART
from nasbench_harness.build.executors import (
    LocalExecutor,
    RayExecutor,
    default_workers,
    local_gpus,
    resolve_device,
    usable_cpus,
    write_outcome_row,
)
from nasbench_harness.build.plan import (
    ROWS_DIR,
    SHARDS_DIR,
    BuildSettings,
    Shard,
    Task,
    dispatch_order,
    init_build_dir,
    plan_tasks,
)
from nasbench_harness.build.store import (
    RowIndex,
    clean_tmp_files,
    compact,
    row_path,
)
from nasbench_harness.build.worker import WorkerSpec, code_version
from nasbench_harness.errors import BuildError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Failure:
    """A task that failed every attempt."""

    task: Task
    attempts: int
    reason: str


@dataclass(frozen=True)
class BuildResult:
    """What a build run did. Counts are over the tasks of this run's shard."""

    out: Path
    n_tasks: int
    n_resumed: int
    n_trained: int
    failures: tuple[Failure, ...]
    interrupted: bool
    elapsed_s: float

    @property
    def n_done(self) -> int:
        return self.n_resumed + self.n_trained

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_tasks


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a cluster pre-empting the job) like Ctrl-C while the build runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _task_of_row_file(path: Path) -> Task | None:
    try:
        arch, seed = path.stem.split("-")
        return Task(int(arch), int(seed))
    except ValueError:
        return None


class _Committer:
    """Collects this run's new row files and compacts them into part files."""

    def __init__(self, out: Path, settings: BuildSettings, shard: Shard | None, index: RowIndex):
        self.out, self.settings, self.shard = out, settings, shard
        self.in_parts = {t for t, path in index.sources.items() if path.parent.name == SHARDS_DIR}
        self.new_rows: list[Path] = []

    def add(self, path: Path) -> None:
        self.new_rows.append(path)

    def compact(self, paths: list[Path]) -> None:
        paths = [p for p in paths if p.exists()]
        if not paths:
            return
        tasks = [_task_of_row_file(p) for p in paths]
        compact(self.out, paths, self.settings, self.shard, self.in_parts)
        self.in_parts.update(t for t in tasks if t is not None)

    def compact_new(self) -> None:
        self.compact(self.new_rows)
        self.new_rows = []

    def compact_all(self, mine: set[Task]) -> None:
        """Compact every row file of this run's tasks (also those a killed driver left)."""
        paths = sorted(
            p for p in (self.out / ROWS_DIR).glob("*.h5") if _task_of_row_file(p) in mine
        )
        self.compact(paths)
        self.new_rows = []


def run_build(
    settings: BuildSettings,
    out: str | os.PathLike,
    *,
    executor: str = "local",
    workers: int | None = None,
    shard: Shard | None = None,
    device: str = "cpu",
    data_root: str | os.PathLike | None = None,
    trainer: Callable[..., Any] | None = None,
    ray_address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    rows_per_part: int = ROWS_PER_PART,
    max_attempts: int = MAX_ATTEMPTS,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Train every task of the build (or of ``shard``) not yet on disk under ``out``.

    Parameters
    ----------
    settings : BuildSettings
        What to build; saved as ``out/build.json`` by the first run and checked by later ones.
    out : path
        Build directory (row files, part files, ``build.json``).
    executor : {"local", "ray"}
        Local worker processes, or Ray tasks (``ray_address`` or a local Ray instance).
    workers : int, optional
        Local worker processes (default: one per core, or one per GPU with CUDA); with Ray,
        the CPUs of a new local instance.
    shard : Shard, optional
        Only the tasks of this shard (SLURM array jobs).
    device : {"cpu", "cuda", "auto"}
        Where to train; local CUDA workers get one visible GPU each, round robin.
    data_root : path, optional
        Directory of local data sets (CIFAR).
    trainer : callable, optional
        Replaces the trainer ``settings.trainer`` names (fault drills and tests).
    cpus_per_task, gpus_per_task : float
        Ray resources per task (``gpus_per_task`` defaults to 1 with CUDA, else 0).
    threads : int, optional
        torch threads per local worker (default: cores // workers, at least 1).
    progress : bool
        Show a progress bar (rate and ETA) on stderr.
    rows_per_part : int
        Compact row files into a part file after this many new rows.
    max_attempts : int
        Tries per task before it is reported failed.
    log : callable, optional
        Receives one-line messages (default: stderr, above the progress bar).

    Returns
    -------
    BuildResult
        ``interrupted`` is True after Ctrl-C or SIGTERM; every finished row is then on disk
        and a rerun continues.
    """
    if executor not in EXECUTORS:
        raise BuildError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if log is None:
        log = lambda message: tqdm.write(message, file=sys.stderr)  # noqa: E731
    # before anything is written: a refused device leaves no build folder behind. On a
    # Ray cluster the GPUs are the workers', not this machine's: cuda is not checked here.
    if executor == "local" or device not in ("cpu", "cuda"):
        device = resolve_device(device)
    started = time.perf_counter()
    out = init_build_dir(out, settings)
    clean_tmp_files(out)
    tasks = plan_tasks(settings, shard)
    mine = set(tasks)
    index = RowIndex(settings=settings, first_source=str(out / "build.json"))
    index.add_directory(out)
    committer = _Committer(out, settings, shard, index)
    committer.compact_all(mine)  # rows a killed run left behind
    pending = [t for t in tasks if t not in index.rows]
    n_resumed = len(tasks) - len(pending)
    spec = WorkerSpec(
        settings=settings,
        data_root=None if data_root is None else str(data_root),
        trainer=trainer,
        code_version=code_version(),
    )
    if executor == "local":
        gpus = local_gpus() if device == "cuda" else []
        workers = workers or default_workers(device)
        threads = threads or max(1, usable_cpus() // workers)
        runner: Any = LocalExecutor(
            replace(spec, device=device, threads=threads),
            out,
            workers=workers,
            gpus=gpus,
            max_attempts=max_attempts,
        )
        slots = workers
    else:
        if gpus_per_task is None:
            gpus_per_task = 1.0 if device == "cuda" else 0.0
        runner = RayExecutor(
            spec,
            address=ray_address,
            workers=workers,
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            max_attempts=max_attempts,
        )
        slots = workers or usable_cpus()  # a guess for a cluster: only the tail length
    pending = dispatch_order(pending, settings.space, slots)
    failures: list[Failure] = []
    n_trained = 0
    interrupted = False
    bar = tqdm(
        total=len(tasks),
        initial=n_resumed,
        desc=f"build {shard}" if shard else "build",
        unit="row",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )
    try:
        with _sigterm_as_interrupt():
            try:
                if pending:
                    with runner:
                        for outcome in runner.run(pending):
                            if not outcome.ok:
                                failures.append(
                                    Failure(outcome.task, outcome.attempts, outcome.error or "")
                                )
                                log(
                                    f"failed: arch {outcome.task.arch} seed {outcome.task.seed} "
                                    f"after {outcome.attempts} attempts: {outcome.error}"
                                )
                                continue
                            if outcome.row is not None:  # returned to the driver (Ray)
                                committer.add(write_outcome_row(out, outcome, spec))
                            else:
                                committer.add(row_path(out, outcome.task))
                            n_trained += 1
                            bar.update(1)
                            if len(committer.new_rows) >= rows_per_part:
                                committer.compact_new()
            except KeyboardInterrupt:
                interrupted = True
            committer.compact_all(mine)
    except KeyboardInterrupt:  # a second Ctrl-C during compaction: rows stay as row files
        interrupted = True
    finally:
        bar.close()
    return BuildResult(
        out=out,
        n_tasks=len(tasks),
        n_resumed=n_resumed,
        n_trained=n_trained,
        failures=tuple(failures),
        interrupted=interrupted,
        elapsed_s=time.perf_counter() - started,
    )
