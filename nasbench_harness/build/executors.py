"""Executors: run build tasks on local worker processes or on Ray, surviving dead workers.

An executor is a context manager whose :meth:`run` yields one
:class:`Outcome` per task: a finished row, or a failure after
``max_attempts`` tries. ``local`` runs one spawned process per worker, each
writing its own row files (a dead driver loses nothing finished); a worker
that dies is restarted and its task retried. ``ray`` runs Ray tasks with
retries and returns rows to the driver, which writes them (no shared file
system needed).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from nasbench_harness.build.defaults import MAX_ATTEMPTS
from nasbench_harness.build.plan import Task
from nasbench_harness.build.store import Row, row_path, write_rows
from nasbench_harness.build.worker import WorkerSpec, context_for
from nasbench_harness.errors import BuildError

RAY_MISSING = (
    "the ray executor needs Ray: pip install 'nasbench-harness[ray]' (or use --executor local)"
)


@dataclass(frozen=True)
class Outcome:
    """What became of one task.

    ``row`` is set when the driver must write the row (Ray); with the local
    executor the worker has already written it. ``error`` is set when the task
    failed ``attempts`` times.
    """

    task: Task
    attempts: int
    row: Row | None = None
    dataset_info: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- local processes --------------------------------------------------------


def _exit_now() -> None:
    """End a worker without the interpreter's teardown.

    Tearing down torch and the loaded data takes a second or more per process,
    and the driver waits for it at the end of every build; a worker has
    nothing left to save when the driver stops it, so it flushes its output
    and leaves.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def _local_worker(conn, spec: WorkerSpec, out: str) -> None:
    """Worker process: train the tasks the driver sends, write each row file, report back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        context = context_for(spec)
    except BaseException as exc:  # noqa: BLE001 - report any start-up failure to the driver
        conn.send(("fatal", None, _describe(exc)))
        return
    message = ("ready", None, None)
    while True:
        try:
            conn.send(message)
            task = conn.recv()
        except (EOFError, OSError):  # the driver is gone; finished rows are on disk
            return
        if task is None:  # the driver's stop: every row is on disk, fsynced before "done"
            _exit_now()
        try:
            row = context.train(task)
            write_rows(row_path(out, task), [row], spec.settings, context.dataset_info)
        except Exception as exc:  # noqa: BLE001 - the driver decides on retries
            message = ("error", task, _describe(exc))
        else:
            message = ("done", task, None)


@dataclass
class _Slot:
    """One worker process and the task it is running."""

    number: int
    env: dict[str, str]
    process: Any = None
    conn: Any = None
    task: Task | None = None
    ready: bool = False


class LocalExecutor:
    """Worker processes on this machine (spawned; one per core or per GPU).

    Parameters
    ----------
    spec : WorkerSpec
        What each worker trains with (its ``threads`` and ``device`` apply to every worker).
    out : path
        Build directory; workers write their row files there.
    workers : int
        Number of worker processes.
    gpus : sequence of str, optional
        GPU ids; worker k sees only ``gpus[k % len(gpus)]`` (CUDA_VISIBLE_DEVICES).
    max_attempts : int
        Tries per task before it is reported failed.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        out: str | os.PathLike,
        *,
        workers: int,
        gpus: Sequence[str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if workers < 1:
            raise BuildError(f"--workers {workers}: give at least 1 worker")
        self.spec = spec
        self.out = str(out)
        self.workers = workers
        self.gpus = list(gpus or [])
        self.max_attempts = max_attempts
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[_Slot] = []

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown(graceful=exc_info[0] is None)

    def _env(self, number: int) -> dict[str, str]:
        threads = str(self.spec.threads or 1)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[number % len(self.gpus)]
        return env

    def _start(self, slot: _Slot) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_local_worker,
            args=(child, self.spec, self.out),
            name=f"nasbench-build-worker-{slot.number}",
            daemon=True,
        )
        saved = {key: os.environ.get(key) for key in slot.env}
        os.environ.update(slot.env)  # a spawned child inherits the environment at start
        try:
            process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        child.close()
        slot.process, slot.conn, slot.task, slot.ready = process, parent, None, False

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        """Train ``tasks``; yield an :class:`Outcome` per task as it finishes or fails."""
        pending = deque(tasks)
        attempts: Counter[Task] = Counter()
        if not pending:
            return
        self._slots = [
            _Slot(number, self._env(number)) for number in range(min(self.workers, len(pending)))
        ]
        for slot in self._slots:
            self._start(slot)
        start_failures = 0
        while pending or any(slot.task is not None for slot in self._slots):
            for slot in self._slots:
                if slot.task is None and pending and slot.process is not None:
                    task = pending.popleft()
                    try:
                        slot.conn.send(task)
                    except OSError:  # died before it could take it; handled below
                        pending.appendleft(task)
                        continue
                    slot.task = task
                    attempts[task] += 1
            live = [s for s in self._slots if s.process is not None]
            wait([s.conn for s in live] + [s.process.sentinel for s in live], timeout=5.0)
            for slot in live:
                for kind, task, detail in self._drain(slot):
                    if kind == "fatal":
                        raise BuildError(f"a build worker could not start: {detail}")
                    if kind == "ready":
                        slot.ready, start_failures = True, 0
                        continue
                    slot.task = None
                    if kind == "done":
                        yield Outcome(task, attempts[task])
                    elif attempts[task] >= self.max_attempts:
                        yield Outcome(task, attempts[task], error=detail)
                    else:
                        pending.append(task)
                if slot.process.is_alive():
                    continue
                task, slot.task = slot.task, None
                if not slot.ready:
                    start_failures += 1
                    if start_failures > 3 * self.workers:
                        raise BuildError(
                            f"build workers keep dying while they start (exit code "
                            f"{slot.process.exitcode}; their tracebacks are above); check "
                            "memory and the data set, and, when run_build is called from "
                            "a script, that the script guards its top level with `if "
                            "__name__ == '__main__':` (spawned workers import it again); "
                            "then rerun: finished rows are kept"
                        )
                if task is not None:
                    reason = f"worker process died (exit code {slot.process.exitcode})"
                    if attempts[task] >= self.max_attempts:
                        yield Outcome(task, attempts[task], error=reason)
                    else:
                        pending.appendleft(task)
                if pending:
                    self._start(slot)
                else:  # retire it: a dead process's sentinel would wake every wait()
                    slot.conn.close()
                    slot.process = None

    @staticmethod
    def _drain(slot: _Slot) -> list[tuple[str, Any, Any]]:
        """Messages a worker has sent: ``(kind, task, detail)`` tuples."""
        messages = []
        try:
            while slot.conn.poll():
                messages.append(slot.conn.recv())
        except (EOFError, OSError):
            pass
        return messages

    def shutdown(self, *, graceful: bool = True) -> None:
        """Stop the workers: ask them to exit, or terminate them at once (Ctrl-C, errors)."""
        for slot in self._slots:
            if slot.process is None or not slot.process.is_alive():
                continue
            if graceful:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
            else:
                slot.process.terminate()
        for slot in self._slots:
            if slot.process is None:
                continue
            slot.process.join(timeout=10.0 if graceful else 5.0)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots = []


# --- Ray --------------------------------------------------------------------


def _ray_train(spec: WorkerSpec, task: Task) -> tuple[Row, dict[str, Any]]:
    """Ray task body: the row and the data set's info, returned to the driver."""
    context = context_for(spec)
    return context.train(task), dict(context.dataset_info)


def import_ray():
    """Import Ray, or raise a :class:`BuildError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise BuildError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Ray tasks on an existing cluster (``address``) or on a local Ray instance.

    Parameters
    ----------
    spec : WorkerSpec
        What each task trains with; ``spec.device`` is set from ``gpus_per_task``.
    address : str, optional
        Address of a running cluster (``ray.init(address=...)``); None starts a local instance.
    workers : int, optional
        CPUs of a local instance (default: all); ignored with ``address``.
    cpus_per_task, gpus_per_task : float
        Ray resources per task; ``gpus_per_task > 0`` trains on CUDA (fractions share a GPU).
    max_attempts : int
        Tries per task (Ray's ``max_retries`` is one less); worker crashes and exceptions count.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.spec = spec
        self.address = address
        self.workers = workers
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_attempts = max_attempts
        self._ray = import_ray()
        self._started = False
        self._in_flight: dict[Any, Task] = {}

    def __enter__(self) -> RayExecutor:
        ray = self._ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
            if self.address is None:  # a new local instance: no dashboard, our CPU count
                options["include_dashboard"] = False
                if self.workers is not None:
                    options["num_cpus"] = self.workers
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BuildError(
                    f"cannot start or reach Ray at {self.address or 'a new local instance'} "
                    f"({_describe(exc)}); check --ray-address, or use --executor local"
                ) from None
            self._started = True
        return self

    def __exit__(self, *exc_info) -> None:
        for ref in self._in_flight:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        self._in_flight = {}
        if self._started:
            self._ray.shutdown()
            self._started = False

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        """Submit ``tasks`` as Ray tasks; yield an :class:`Outcome` per task as it finishes."""
        ray = self._ray
        retries = max(0, self.max_attempts - 1)
        threads = max(1, int(self.cpus_per_task))
        spec = replace(
            self.spec, device="cuda" if self.gpus_per_task > 0 else "cpu", threads=threads
        )
        remote = ray.remote(_ray_train).options(
            num_cpus=self.cpus_per_task,
            num_gpus=self.gpus_per_task,
            max_retries=retries,
            retry_exceptions=True,
        )
        spec_ref = ray.put(spec)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        window = max(8, 4 * cpus)
        pending = deque(tasks)
        while pending or self._in_flight:
            while pending and len(self._in_flight) < window:
                task = pending.popleft()
                self._in_flight[remote.remote(spec_ref, task)] = task
            ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=5.0)
            for ref in ready:
                task = self._in_flight.pop(ref)
                try:
                    row, info = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None)  # a RayTaskError wraps the task's own
                    reason = _describe(cause if isinstance(cause, BaseException) else exc)
                    yield Outcome(task, retries + 1, error=reason.splitlines()[0])
                else:
                    yield Outcome(task, 1, row=row, dataset_info=info)


def local_gpus() -> list[str]:
    """GPU ids visible to this process (CUDA_VISIBLE_DEVICES, else all devices torch sees)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for ``--device cpu|cuda|auto``; asking for a missing GPU is an error."""
    if device not in ("cpu", "cuda", "auto"):
        raise BuildError(f"--device {device!r}: use cpu, cuda or auto")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise BuildError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
    return "cpu"


def default_workers(device: str) -> int:
    return max(1, len(local_gpus())) if device == "cuda" else usable_cpus()


def write_outcome_row(out: Path, outcome: Outcome, spec: WorkerSpec) -> Path:
    """Commit a row that an executor returned to the driver; returns the row file."""
    if outcome.row is None or outcome.dataset_info is None:
        raise BuildError(f"task {outcome.task} returned no row to write")
    return write_rows(
        row_path(out, outcome.task), [outcome.row], spec.settings, outcome.dataset_info
    )
