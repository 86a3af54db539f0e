"""``nasbench compare``: many seeded searches per algorithm, then statistics and a report.

A *task* is one (table, budget) pair. Every algorithm runs once per seed
``0 .. runs - 1`` on every task; the seed list is the same for every
algorithm, so results are paired by seed. A run's seed seeds both the
algorithm and the simulator's draw of training seeds (as ``nasbench search``
does).

Runs go to ``jobs`` worker processes. Each finished run is appended as one
JSON line to ``<out>/runs/<task>.jsonl`` (line-buffered and flushed), so an
interrupted compare loses at most the runs in flight; the next call with the
same ``--out`` reads those files back and skips every run whose key (table
checksum, algorithm, hyperparameters, seed, budget, workers, ``eval_time``
and the fingerprint of the code a search runs:
:func:`algorithms.registry.code_fingerprint`) is already there. A torn line
is dropped and its run done again; a record of another version is kept on
disk and not reused.

A run is stored as its incumbent step function (the time, regret and arch of
every change of incumbent), which is all the statistics need; the full
per-query trace of one run is ``nasbench search``'s business.

Budgets are given in seconds or as multiples of the table's default budget
(:func:`algorithms.registry.default_budget`, about 200 full trainings):
``x0.1,x0.3,x1`` is the default, i.e. roughly 20, 60 and 200 full trainings,
half a decade apart. Larger budgets (``x4``) are a flag away; they are not
the default because BANANAS, whose cost grows with the square of the number
of queries, alone would then need about 12 CPU-minutes for 100 seeds, and
the no-argument compare must stay within a few minutes on two cores.

The analysis (:func:`analyse`) sorts everything by (task, algorithm, seed)
and seeds every bootstrap, so the same runs always give the same numbers.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import math
import multiprocessing
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasbench_harness import stats
from nasbench_harness.errors import NasbenchError
from nasbench_harness.table.reader import _nanmean, seed_mean_accuracy

#: Default budgets, as multiples of the table's default budget.
DEFAULT_BUDGETS = ("x0.1", "x0.3", "x1")
#: Default number of paired seeds per (algorithm, task).
DEFAULT_RUNS = 100
#: Version of the layout of a line of a runs file.
RUN_FORMAT = 1
#: Points of the log-time grid of the anytime curves.
GRID_POINTS = 150
#: Significance level of the critical difference and the report's wording.
ALPHA = 0.05


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareConfig:
    """What to compare; every field has the CLI's default.

    Parameters
    ----------
    tables
        Table paths; ``(None,)`` is the shipped default table.
    algorithms
        Registered names or ``path/to/file.py:Class``; empty: every tabular
        algorithm of the registry.
    runs
        Paired seeds ``0 .. runs - 1``.
    budgets
        Seconds (``"3600"``) or multiples of the default budget (``"x0.25"``).
    workers
        Simulated asynchronous workers per search.
    eval_time
        Charge each query its validation evaluation too, not only its
        training time (``Simulator(eval_time=True)``).
    jobs
        Worker processes (``None``: the CPUs this process may use).
    out
        Output folder (``None``: ``reports/<table-stem>-<date>``).
    params
        Hyperparameters per algorithm name, ``{name: {key: value}}``.
    command_line
        Recorded in the report's provenance.
    bootstrap_resamples
        Resamples of the mean CIs (curves and proxy correlations use at most
        1000).
    """

    tables: tuple[str | None, ...] = (None,)
    algorithms: tuple[str, ...] = ()
    runs: int = DEFAULT_RUNS
    budgets: tuple[str, ...] = DEFAULT_BUDGETS
    workers: int = 1
    eval_time: bool = False
    jobs: int | None = None
    out: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    command_line: str = ""
    bootstrap_resamples: int = stats.DEFAULT_RESAMPLES


@dataclass(frozen=True)
class Task:
    """One (table, budget) pair."""

    table_path: str
    table_stem: str
    table_checksum: str
    budget_s: float
    budget_label: str  # "x1" or "3600 s"
    workers: int
    eval_time: bool = False  # queries also cost their validation evaluation

    @property
    def id(self) -> str:
        return f"{self.table_stem} @ {self.budget_label}"

    @property
    def file_name(self) -> str:
        label = re.sub(r"[^A-Za-z0-9.]+", "-", self.budget_label).strip("-")
        return (
            f"{self.table_stem}-{self.table_checksum[:12]}-budget-{label}-"
            f"{self.budget_s:.6g}s-w{self.workers}{'-eval' if self.eval_time else ''}.jsonl"
        )


@dataclass(frozen=True)
class RunSpec:
    """One run to do: an algorithm with its hyperparameters, on a task, with a seed."""

    task: Task
    algorithm: str
    params_json: str  # the algorithm's get_params() minus seed, as sorted JSON
    seed: int
    code: str  # algorithms.registry.code_fingerprint of the algorithm

    @property
    def key(self) -> str:
        t = self.task
        return json.dumps(
            [
                t.table_checksum,
                self.algorithm,
                self.params_json,
                self.seed,
                self.code,
                repr(t.budget_s),
                t.workers,
                *(["eval_time"] if t.eval_time else []),
            ]
        )


@dataclass(frozen=True)
class RunRecord:
    """The stored outcome of one run (one JSON line of a runs file)."""

    key: str
    algorithm: str
    params: dict
    seed: int
    budget_s: float
    workers: int
    table_checksum: str
    n_queries: int
    spent_s: float  # finish time of the last query that fit the budget (0 if none)
    time_s: tuple[float, ...]  # times at which the incumbent changed
    regret: tuple[float, ...]  # regret from each of those times on
    incumbent: tuple[int, ...]  # incumbent arch index from each of those times on
    final_regret: float  # NaN when no query fit the budget
    final_incumbent: int | None
    final_valid_acc: float  # seed-mean last-epoch validation accuracy of the final incumbent
    final_test_acc: float  # same, test accuracy (read after the run, never by the search)
    best_test_acc: float

    def to_json(self) -> str:
        data = dict(self.__dict__, format=RUN_FORMAT)
        return json.dumps(_finite(data), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> RunRecord:
        data = json.loads(line)
        if data.pop("format", None) != RUN_FORMAT:
            raise ValueError("unknown run format")
        for name in ("time_s", "regret", "incumbent"):
            data[name] = tuple(data[name])
        for name in ("final_regret", "final_valid_acc", "final_test_acc", "best_test_acc"):
            data[name] = math.nan if data[name] is None else float(data[name])
        return cls(**data)

    @classmethod
    def from_trace(cls, spec: RunSpec, trace) -> RunRecord:
        inc = np.asarray(trace.incumbent, dtype=np.int64)
        change = np.ones(inc.size, dtype=bool)
        change[1:] = inc[1:] != inc[:-1]
        final = trace.final_incumbent
        return cls(
            key=spec.key,
            algorithm=spec.algorithm,
            params=json.loads(spec.params_json),
            seed=spec.seed,
            budget_s=spec.task.budget_s,
            workers=spec.task.workers,
            table_checksum=spec.task.table_checksum,
            n_queries=int(trace.n_queries),
            spent_s=float(trace.time_s[-1]) if trace.n_queries else 0.0,
            time_s=tuple(float(v) for v in np.asarray(trace.time_s)[change]),
            regret=tuple(float(v) for v in np.asarray(trace.regret)[change]),
            incumbent=tuple(int(v) for v in inc[change]),
            final_regret=float(trace.final_regret),
            final_incumbent=None if final is None else int(final),
            final_valid_acc=float(trace.incumbent_valid_acc[-1]) if trace.n_queries else math.nan,
            final_test_acc=float(trace.incumbent_test_acc[-1]) if trace.n_queries else math.nan,
            best_test_acc=float(trace.best_test_acc),
        )


def _finite(obj):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------
#: What a query costs in simulated time, by ``eval_time`` (summary provenance ``query_cost``).
QUERY_COST = {
    False: "training time to the queried epoch",
    True: "training time to the queried epoch plus the validation evaluation after it",
}


def tabular_algorithms() -> list[str]:
    """Registered algorithms that run against a table (``tabular`` not set to False).

    Refuses (:class:`NasbenchError`) while a module of the package fails to
    import: a compare of "every algorithm" would silently leave it out.
    """
    from algorithms.registry import get_algorithm_class, import_errors, list_algorithms

    broken = import_errors()
    if broken:
        raise NasbenchError(
            "algorithm modules failed to import: "
            + "; ".join(f"{m} ({e})" for m, e in broken.items())
            + ": fix or move them, or name the algorithms to compare with --algorithms"
        )
    return [n for n in list_algorithms() if getattr(get_algorithm_class(n), "tabular", True)]


def parse_budget(text: str) -> tuple[str, float | None]:
    """``"x0.25"`` -> ``("x0.25", None)`` (a multiple); ``"3600"`` -> ``("3600 s", 3600.0)``."""
    text = str(text).strip()
    body = text[1:] if text[:1] in "xX" else text
    try:
        value = float(body)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise NasbenchError(
            f"budget {text!r}: give seconds (3600) or a multiple of the default budget (x0.3, x1, x4)"
        )
    if text[:1] in "xX":
        return f"x{value:g}", None
    return f"{value:g} s", value


def resolve_budgets(specs: Iterable[str], table) -> list[tuple[str, float]]:
    """``[(label, seconds)]`` for budget specs on ``table`` (multiples of its default budget)."""
    out = []
    base = None
    for spec in specs:
        label, seconds = parse_budget(spec)
        if seconds is None:
            if base is None:
                from algorithms.registry import default_budget

                base = float(default_budget(table))
            seconds = float(label[1:]) * base
        if (label, seconds) not in out:
            out.append((label, seconds))
    if not out:
        raise NasbenchError("no budget given; e.g. --budgets x0.1,x0.3,x1")
    return out


def _table_stem(table) -> str:
    return Path(str(table.path)).name.split(".")[0]


def default_out_dir(tables: Sequence) -> Path:
    """``reports/<table-stem>[+<stem>...]-<YYYY-MM-DD>`` (local date)."""
    stems = "+".join(dict.fromkeys(_table_stem(t) for t in tables))
    return Path("reports") / f"{stems}-{time.strftime('%Y-%m-%d')}"


def _algorithm_params(name: str, params: dict) -> str:
    from algorithms.registry import make_algorithm

    algorithm = make_algorithm(name, seed=0, **params)
    values = {k: v for k, v in algorithm.get_params().items() if k != "seed"}
    try:
        return json.dumps(values, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NasbenchError(
            f"{name}: hyperparameters {values!r} are not JSON numbers/strings/lists; "
            "give plain values so runs can be keyed and resumed"
        ) from exc


@dataclass
class Plan:
    """Tables, tasks and runs of one compare (see :func:`make_plan`)."""

    config: CompareConfig
    tables: list  # open Table objects, in config order
    tasks: list[Task]
    algorithms: list[str]
    params_json: dict[str, str]
    seeds: list[int]
    out: Path

    code: dict[str, str]  # algorithm -> code fingerprint

    def spec(self, task: Task, name: str, seed: int) -> RunSpec:
        return RunSpec(task, name, self.params_json[name], seed, self.code[name])

    def specs(self) -> list[RunSpec]:
        return [
            self.spec(task, name, seed)
            for task in self.tasks
            for name in self.algorithms
            for seed in self.seeds
        ]


def make_plan(config: CompareConfig) -> Plan:
    """Open the tables, resolve algorithms and budgets, list the tasks (nothing runs)."""
    from nasbench_harness.table import open_table

    if int(config.runs) != config.runs or config.runs < 1:
        raise NasbenchError(f"--runs {config.runs!r}: give a whole number of seeds >= 1")
    if int(config.workers) != config.workers or config.workers < 1:
        raise NasbenchError(f"--workers {config.workers!r}: give a whole number >= 1")
    tables = []
    seen = set()
    for path in config.tables or (None,):
        table = open_table(path)
        if table.checksum in seen:
            continue  # the same file given twice
        seen.add(table.checksum)
        tables.append(table)
    names = list(dict.fromkeys(config.algorithms)) or tabular_algorithms()
    if not names:
        raise NasbenchError("no algorithm to compare; give --algorithms A,B")
    unknown_params = sorted(set(config.params) - set(names))
    if unknown_params:
        raise NasbenchError(
            f"hyperparameters given for {', '.join(unknown_params)}, which is not compared"
        )
    from algorithms.registry import code_fingerprint

    params_json = {n: _algorithm_params(n, dict(config.params.get(n, {}))) for n in names}
    code = {n: code_fingerprint(n) for n in names}
    stems = [_table_stem(t) for t in tables]
    tasks = []
    for table, stem in zip(tables, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}-{table.checksum[:8]}"
        for label, seconds in resolve_budgets(config.budgets, table):
            tasks.append(
                Task(
                    str(table.path),
                    stem,
                    table.checksum,
                    seconds,
                    label,
                    int(config.workers),
                    bool(config.eval_time),
                )
            )
    from nasbench_harness.simulator import table_view

    for table in tables:  # refuse a table no search can run on before any run
        view = table_view(table)
        if config.eval_time:  # and one that cannot charge evaluation
            view.valid_eval_time()
    out = Path(config.out) if config.out else default_out_dir(tables)
    seeds = list(range(int(config.runs)))
    return Plan(config, tables, tasks, names, params_json, seeds, out, code)


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------
_WORKER_TABLES: dict[str, Any] = {}


def _worker_table(path: str, checksum: str):
    """The table at ``path``, opened once per process; refused if it is not the planned one."""
    table = _WORKER_TABLES.get(path)
    if table is None:
        from nasbench_harness.table import open_table

        table = _WORKER_TABLES[path] = open_table(path)
    if table.checksum != checksum:  # replaced since the plan: its runs would get the old key
        raise NasbenchError(
            f"table {path} changed while compare ran (checksum {table.checksum[:12]}, planned "
            f"{checksum[:12]}): rerun the same command; the runs already stored are kept "
            "under the old table's checksum"
        )
    return table


def execute_run(spec: RunSpec, table=None) -> RunRecord:
    """Do one run and return its record (used in the worker processes)."""
    from algorithms.registry import make_algorithm
    from nasbench_harness.simulator import run_search

    if table is None:
        table = _worker_table(spec.task.table_path, spec.task.table_checksum)
    algorithm = make_algorithm(spec.algorithm, seed=spec.seed, **json.loads(spec.params_json))
    trace = run_search(
        table,
        algorithm,
        budget_s=spec.task.budget_s,
        seed=spec.seed,
        workers=spec.task.workers,
        eval_time=spec.task.eval_time,
    )
    return RunRecord.from_trace(spec, trace)


def _execute_in_worker(spec: RunSpec) -> RunRecord:
    try:
        return execute_run(spec)
    except NasbenchError:
        raise
    except Exception as exc:  # carry the run's identity back to the parent
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _worker_init() -> None:
    try:  # one thread per process: the processes are the parallelism
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def read_runs(path: Path) -> dict[str, RunRecord]:
    """Records of a runs file by key.

    A torn line (not a JSON object: a run cut off while it was written) is
    dropped and the file rewritten without it, so the run is done again. A
    whole record this version cannot read (another format, written by
    other code) is skipped but kept on disk. A last line without its newline
    gets one, so that the next record appended does not run into it.
    """
    if not path.exists():
        return {}
    records: dict[str, RunRecord] = {}
    kept_lines = []
    rewrite = False
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                rewrite = True
            try:
                whole = isinstance(json.loads(line), dict)
            except ValueError:
                whole = False
            if not whole:
                rewrite = True
                continue
            kept_lines.append(line if line.endswith("\n") else line + "\n")
            try:
                record = RunRecord.from_json(line)
            except (ValueError, TypeError, KeyError):
                continue  # another version's record: not reused, not deleted
            records[record.key] = record
    if rewrite:  # without the torn line(s), with every newline, atomically
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("".join(kept_lines), encoding="utf-8")
        os.replace(tmp, path)
    return records


@contextlib.contextmanager
def _single_threaded_children():
    """Set the BLAS/OpenMP thread counts to 1 for child processes started inside."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    old = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ.setdefault(n, "1")
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_plan` did: the records of every planned run, and counts."""

    records: dict[str, RunRecord]  # by key, every planned run
    n_done: int  # runs executed now
    n_skipped: int  # runs found on disk
    elapsed_s: float


def run_plan(plan: Plan, *, jobs: int | None = None, progress: bool = True) -> RunOutcome:
    """Execute every planned run not already on disk, appending each as it finishes."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    runs_dir = plan.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    specs = plan.specs()
    found: dict[str, RunRecord] = {}
    for task in plan.tasks:
        found.update(read_runs(runs_dir / task.file_name))
    todo = [s for s in specs if s.key not in found]
    records = {s.key: found[s.key] for s in specs if s.key in found}
    n_skipped = len(records)
    # the longest runs first: better balance across processes at the end
    todo.sort(key=lambda s: (-s.task.budget_s, s.algorithm, s.seed))
    if not (jobs or plan.config.jobs):
        from nasbench_harness.build.executors import usable_cpus

        jobs = usable_cpus()  # the CPUs this process may use, not all the machine has
    jobs = int(jobs or plan.config.jobs)
    if jobs < 1:
        raise NasbenchError(f"--jobs {jobs!r}: give a whole number >= 1")
    handles: dict[str, Any] = {}
    bar = tqdm(
        total=len(specs),
        initial=n_skipped,
        desc="compare",
        unit="run",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def store(spec: RunSpec, record: RunRecord) -> None:
        name = spec.task.file_name
        handle = handles.get(name)
        if handle is None:
            handle = handles[name] = (runs_dir / name).open("a", encoding="utf-8", buffering=1)
        handle.write(record.to_json() + "\n")
        handle.flush()
        records[spec.key] = record
        bar.update(1)

    def failed(spec: RunSpec, exc: BaseException) -> NasbenchError:
        params = [
            f"--param {shlex.quote(f'{k}={json.dumps(v)}')}"
            for k, v in json.loads(spec.params_json).items()
        ]
        return NasbenchError(
            f"run {spec.algorithm} seed {spec.seed} on {spec.task.id} failed: {exc}; reproduce with "
            f"`nasbench search {shlex.quote(spec.task.table_path)} --algorithm "
            f"{shlex.quote(spec.algorithm)} --seed {spec.seed}"
            f" --budget {spec.task.budget_s!r} --workers {spec.task.workers}"
            f"{' --eval-time' if spec.task.eval_time else ''}{''.join(' ' + p for p in params)}`"
        )

    try:
        if jobs == 1 or len(todo) <= 1:
            tables = {str(t.path): t for t in plan.tables}
            for spec in todo:
                try:
                    record = execute_run(spec, tables.get(spec.task.table_path))
                except Exception as exc:
                    raise failed(spec, exc) from exc
                store(spec, record)
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with _single_threaded_children():
                pool = cf.ProcessPoolExecutor(
                    max_workers=min(jobs, len(todo)), mp_context=context, initializer=_worker_init
                )
                try:
                    futures = {pool.submit(_execute_in_worker, s): s for s in todo}
                    for future in cf.as_completed(futures):
                        spec = futures[future]
                        try:
                            record = future.result()
                        except Exception as exc:
                            raise failed(spec, exc) from exc
                        store(spec, record)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                pool.shutdown(wait=True)
    finally:
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        bar.close()
    return RunOutcome(records, len(todo), n_skipped, time.perf_counter() - start)


# ---------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TableFacts:
    """What the analysis needs from a table, besides the runs."""

    path: str
    stem: str
    checksum: str
    provenance: dict
    best_test_acc: float
    blind_regret: float  # expected regret of a uniformly random arch: best - mean final test acc
    start_s: float  # start of the log-time window: median epoch-1 training time of an arch
    synthetic: bool
    n_archs: int
    arch_strings: Any  # callable index -> NB201 string


def table_facts(table, stem: str | None = None) -> TableFacts:
    """Best test accuracy, blind-pick regret and the log-time window start of ``table``."""
    from nasbench_harness.simulator import table_view

    view = table_view(table)
    rows = np.asarray(view.rows)
    final_test = np.asarray(view.final_test)[rows]  # per arch index (uniform over the space)
    best = float(view.best_test)
    blind = float(best - np.nanmean(final_test))
    unique = np.unique(rows)
    with np.errstate(all="ignore"):
        first_epoch = np.nanmean(np.asarray(view.cum_time)[unique, :, 0], axis=1)
    start = float(np.nanmedian(first_epoch))
    provenance = dict(getattr(table, "provenance", {}) or {})
    return TableFacts(
        path=str(table.path),
        stem=stem or _table_stem(table),
        checksum=str(table.checksum),
        provenance=provenance,
        best_test_acc=best,
        blind_regret=blind,
        start_s=start,
        synthetic=bool(provenance.get("synthetic", False)),
        n_archs=int(rows.size),
        arch_strings=table.space.to_string,
    )


def _window(facts: TableFacts, budget_s: float) -> tuple[float, float]:
    start = facts.start_s
    if not (math.isfinite(start) and 0 < start < budget_s):
        start = budget_s * 1e-3  # a budget below one epoch: three decades below it
    return start, budget_s


def run_auc(record: RunRecord, facts: TableFacts) -> float:
    """The run's normalised log-time regret area (:func:`stats.log_time_auc`).

    Window: from the table's median one-epoch training time to the budget;
    before the run's first result the regret is ``facts.blind_regret``.
    """
    start, stop = _window(facts, record.budget_s)
    return stats.log_time_auc(
        record.time_s, record.regret, start_s=start, stop_s=stop, before_first=facts.blind_regret
    )


def runs_frame(plan: Plan, outcome: RunOutcome, facts: dict[str, TableFacts]) -> pd.DataFrame:
    """One row per run, sorted by (task, algorithm, seed): the results CSV."""
    rows = []
    algo_order = {n: i for i, n in enumerate(plan.algorithms)}
    for t_index, task in enumerate(plan.tasks):
        f = facts[task.table_checksum]
        for name in plan.algorithms:
            for seed in plan.seeds:
                r = outcome.records[plan.spec(task, name, seed).key]
                final = r.final_incumbent
                rows.append(
                    {
                        "task": task.id,
                        "table": task.table_stem,
                        "table_checksum": task.table_checksum,
                        "budget": task.budget_label,
                        "budget_s": task.budget_s,
                        "workers": task.workers,
                        "algorithm": name,
                        "seed": seed,
                        "final_regret": r.final_regret if final is not None else f.blind_regret,
                        "auc": run_auc(r, f),
                        "n_queries": r.n_queries,
                        "spent_s": r.spent_s,
                        "final_incumbent": f.arch_strings(final) if final is not None else "",
                        "final_incumbent_index": final if final is not None else -1,
                        "incumbent_valid_acc": r.final_valid_acc,
                        "incumbent_test_acc": r.final_test_acc,
                        "_task_order": t_index,
                        "_algo_order": algo_order[name],
                    }
                )
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(["_task_order", "_algo_order", "seed"], kind="stable")
    return frame.drop(columns=["_task_order", "_algo_order"]).reset_index(drop=True)


def _headline(task_id: str, tests: list[stats.PairedTest], means: dict[str, float]) -> str:
    """One sentence: the best algorithm by mean final regret against random search (or the runner-up)."""
    order = sorted(means, key=lambda n: (means[n], n))
    if len(order) < 2:
        return f"{task_id}: only {order[0] if order else 'no algorithm'} was run."
    best = order[0]
    other = "random" if "random" in means and best != "random" else order[1]
    test = next(t for t in tests if {t.a, t.b} == {best, other})
    better = test.share_a_better if test.a == best else test.share_b_better
    tied = test.share_tied
    worse = 1 - better - tied
    effect = test.effect_size if test.a == best else -test.effect_size
    verdict = "significant" if test.p_holm < ALPHA else "not significant"
    subject = display_name(best)
    subject = subject[:1].upper() + subject[1:]
    if tied == 1:
        return f"{subject} and {display_name(other)} end with the same regret on every paired seed."
    test_text = (
        f"Wilcoxon p = {format_p(test.p_holm)}, Holm-adjusted ({verdict} at {ALPHA:g}), "
        f"rank-biserial r = {effect:+.2f}"
    )
    if effect < 0:  # lowest mean, but the paired ranks favour the other: say both
        return (
            f"{subject} has the lowest mean final regret, but {display_name(other)} ends lower "
            f"in {worse:.0%} of paired seeds ({display_name(best)} in {better:.0%}, tied in "
            f"{tied:.0%}); {test_text}, in favour of {display_name(other)}."
        )
    return (
        f"{subject} reaches lower final regret than {display_name(other)} in "
        f"{better:.0%} of paired seeds (higher in {worse:.0%}, tied in {tied:.0%}); "
        f"{test_text}."
    )


#: Names shown in the report for the registry's algorithms.
DISPLAY_NAMES = {
    "random": "random search",
    "rea": "REA",
    "reinforce": "REINFORCE",
    "ls": "local search",
    "bananas": "BANANAS",
    "sh": "successive halving",
    "hb": "Hyperband",
    "bohb": "BOHB",
    "hw-rea": "HW-REA",
    "hw-pareto": "HW-Pareto",
}


def display_name(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)


def format_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 1e-4:
        return f"{p:.1e}"
    text = f"{p:.3g}"
    if float(text) == ALPHA and p != ALPHA:  # 0.04996 and 0.05004 must not both read 0.05
        text = f"{p:.4g}"
    return text


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("nasbench-harness", "numpy", "scipy", "pandas", "torch", "scikit-posthocs"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def analyse(
    plan: Plan, outcome: RunOutcome, *, n_resamples: int = stats.DEFAULT_RESAMPLES
) -> tuple[dict, pd.DataFrame]:
    """All numbers of the report (``summary.json``) and the per-run frame (the CSV).

    Deterministic: ordered by (task, algorithm, seed) and every bootstrap
    seeded by its task and algorithm (not by their positions); no wall-clock
    values. A run that finished no query within its
    budget counts with the blind-pick regret (see :class:`TableFacts`).
    """
    facts = {}
    for table in plan.tables:
        stem = next(t.table_stem for t in plan.tasks if t.table_checksum == table.checksum)
        facts[table.checksum] = table_facts(table, stem)
    frame = runs_frame(plan, outcome, facts)
    summary: dict[str, Any] = {
        "schema": "nasbench-compare-summary/1",
        "provenance": {
            "versions": _versions(),
            "command": plan.config.command_line,
            "seeds": plan.seeds,
            "budgets": list(plan.config.budgets),
            "workers": int(plan.config.workers),
            "query_cost": QUERY_COST[bool(plan.config.eval_time)],
            "algorithms": {n: json.loads(plan.params_json[n]) for n in plan.algorithms},
            "algorithm_code": dict(plan.code),
            "tables": [
                {
                    "path": f.path,
                    "stem": f.stem,
                    "checksum": f.checksum,
                    "synthetic": f.synthetic,
                    "provenance": f.provenance,
                    "best_test_acc": f.best_test_acc,
                    "blind_regret": f.blind_regret,
                    "window_start_s": f.start_s,
                }
                for f in facts.values()
            ],
        },
        "settings": {
            "alpha": ALPHA,
            "confidence": 0.95,
            "bootstrap_resamples": n_resamples,
            "grid_points": GRID_POINTS,
            "friedman_score": "mean over seeds of each task",
        },
        "tasks": [],
    }
    for task in plan.tasks:
        f = facts[task.table_checksum]
        part = frame[frame["task"] == task.id]
        start, stop = _window(f, task.budget_s)
        grid = stats.log_time_grid(start, stop, GRID_POINTS)
        per_algo: dict[str, Any] = {}
        curves: dict[str, Any] = {}
        final_samples, auc_samples = {}, {}
        for name in plan.algorithms:
            rows = part[part["algorithm"] == name]
            # seeded by name: an algorithm's CIs do not move when others join the compare
            seed = stats.bootstrap_seed(f"{task.id}/{name}")
            final_samples[name] = rows["final_regret"].to_numpy()
            auc_samples[name] = rows["auc"].to_numpy()
            recs = [outcome.records[plan.spec(task, name, s).key] for s in plan.seeds]
            matrix = stats.curve_matrix([(r.time_s, r.regret) for r in recs], grid)
            curves[name] = stats.summarize_curves(
                matrix, grid, n_resamples=min(n_resamples, 1000), seed=seed
            ).to_dict()
            per_algo[name] = {
                "final_regret": stats.describe(
                    final_samples[name], n_resamples=n_resamples, seed=seed
                ).to_dict(),
                "auc": stats.describe(
                    auc_samples[name], n_resamples=n_resamples, seed=seed
                ).to_dict(),
                "n_queries_median": float(rows["n_queries"].median()),
                "optimum_share": float(np.mean(final_samples[name] <= 1e-9)),
                "n_runs": int(len(rows)),
            }
        tests_final = stats.pairwise_tests(final_samples)
        tests_auc = stats.pairwise_tests(auc_samples)
        means = {n: per_algo[n]["final_regret"]["mean"] for n in plan.algorithms}
        summary["tasks"].append(
            {
                "id": task.id,
                "table": task.table_stem,
                "table_checksum": task.table_checksum,
                "budget": task.budget_label,
                "budget_s": task.budget_s,
                "workers": task.workers,
                "window_s": [start, stop],
                "best_test_acc": f.best_test_acc,
                "blind_regret": f.blind_regret,
                "headline": _headline(task.id, tests_final, means),
                "algorithms": per_algo,
                "pairwise": {
                    "final_regret": [t.to_dict() for t in tests_final],
                    "auc": [t.to_dict() for t in tests_auc],
                },
                "curves": curves,
            }
        )
    summary["friedman"] = {}
    for metric in ("final_regret", "auc"):
        table = pd.DataFrame(
            {
                t["id"]: {n: t["algorithms"][n][metric]["mean"] for n in plan.algorithms}
                for t in summary["tasks"]
            }
        ).T[plan.algorithms]
        summary["friedman"][metric] = stats.friedman_nemenyi(table, alpha=ALPHA).to_dict()
    summary["proxies"] = [
        proxy_summary(table, facts[table.checksum].stem, n_resamples=min(n_resamples, 1000))
        for table in plan.tables
    ]
    summary["proxies"] = [p for p in summary["proxies"] if p is not None]
    return _finite(summary), frame


def proxy_summary(table, label: str | None = None, *, n_resamples: int = 1000) -> dict | None:
    """Rank correlations of every stored proxy with the table's truth, or None without proxies.

    Truth: seed-mean last-epoch test accuracy. A proxy's score per arch is
    the mean over its stored seeds. Correlations are over the table's
    distinct rows (``table.canonical``: one per isomorphism class in a built
    table; every arch in one that trained each arch separately, as an NB201
    import does; ``archs`` says which), all of them and the connected ones
    only; percentile bootstrap CIs over all of them (the connected-only
    figures are estimates, without CIs: the report shows no more). The noise
    ceiling is :meth:`Table.noise_ceiling` of ``test_acc`` (seed vs seed).
    """
    names = list(getattr(table, "proxy_names", []) or [])
    if not names:
        return None
    reps = np.unique(np.asarray(table.canonical))
    connected = np.asarray(table.space.connected)[reps]
    # NaN, and no numpy warning, where an arch has no finite value; equal means tie exactly
    truth = seed_mean_accuracy(np.asarray(table.array("test_acc"))[reps, :, -1])
    grouped = reps.size < len(table.canonical)
    out = {
        "table": label or _table_stem(table),
        "truth": "seed-mean last-epoch test_acc",
        "n_archs": int(reps.size),
        "archs": "one per isomorphism class"
        if grouped
        else "every arch (the table trained isomorphic cells separately)",
        "proxies": {},
    }
    for name in names:
        i = stats.bootstrap_seed(name)  # a proxy's CIs do not move when others are stored
        raw = np.asarray(table.array(f"proxy/{name}"), dtype=np.float64)
        raw = raw[:, None] if raw.ndim == 1 else raw
        score = _nanmean(raw[reps], axis=1)  # NaN for a disconnected cell: n_nonfinite_scores
        out["proxies"][name] = {
            "all": stats.rank_correlations(truth, score, n_resamples=n_resamples, seed=i).to_dict(),
            # the report shows the connected-only estimates; `nasbench correlate` gives their CIs
            "connected": stats.rank_correlations(
                truth[connected], score[connected], n_resamples=0
            ).to_dict(),
            "n_seeds": int(raw.shape[1]),
            "n_nonfinite_scores": int(np.sum(~np.isfinite(raw[reps]))),
        }
    try:
        out["noise_ceiling"] = table.noise_ceiling("test_acc")
    except Exception as exc:  # a table without two seeds has none
        out["noise_ceiling"] = {"error": str(exc)}
    return out


# ---------------------------------------------------------------------------
# the whole job
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareResult:
    """Paths written by :func:`compare` and the run counts."""

    out: Path
    report_html: Path
    report_md: Path
    results_csv: Path
    summary_json: Path
    n_runs: int
    n_done: int
    n_skipped: int
    elapsed_s: float
    headlines: tuple[str, ...]  # "<task id>: <sentence>", one per task


def compare(config: CompareConfig, *, progress: bool = True) -> CompareResult:
    """Plan, run (resuming), analyse and write the report; see the module docstring."""
    from nasbench_harness import report

    start = time.perf_counter()
    plan = make_plan(config)
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        raise NasbenchError(
            f"--out {plan.out}: cannot make the output folder ({exc.strerror or exc}); "
            "give a folder that can be written"
        ) from None
    outcome = run_plan(plan, jobs=config.jobs, progress=progress)
    summary, frame = analyse(plan, outcome, n_resamples=config.bootstrap_resamples)
    paths = report.write_report(
        summary,
        frame,
        plan.out,
        run_info={
            "n_runs": len(outcome.records),
            "n_done": outcome.n_done,
            "n_skipped": outcome.n_skipped,
            "run_time_s": outcome.elapsed_s,
        },
    )
    return CompareResult(
        out=plan.out,
        report_html=paths["html"],
        report_md=paths["md"],
        results_csv=paths["csv"],
        summary_json=paths["json"],
        n_runs=len(outcome.records),
        n_done=outcome.n_done,
        n_skipped=outcome.n_skipped,
        elapsed_s=time.perf_counter() - start,
        headlines=tuple(f"{t['id']}: {t['headline']}" for t in summary["tasks"]),
    )
