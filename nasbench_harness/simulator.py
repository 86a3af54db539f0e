"""Simulated-time search against a table.

The harness owns the search loop: it asks an algorithm for proposals, answers
each from the table, advances a simulated clock and records a trace. The
algorithm sees the search space, the available fidelities (epochs) and, for
each finished query, training and validation metrics with the simulated cost.
It never sees the table and never sees test metrics: those are read only after
the run, to score the incumbent for the report (rule 1 of DESIGN.md).

Rules, applied here once for every algorithm:

* **Cost.** A query of arch ``a`` at epoch ``e`` costs the table's recorded
  training time of ``a`` from scratch to ``e`` (the sum of the per-epoch
  ``train_time_s`` of the training seed that answers it). Nothing else is
  added unless asked: ``eval_time=True`` adds the validation evaluation after
  epoch ``e`` (NATS-Bench's ``simulate_train_eval`` rule; see
  :class:`Simulator`), and ``decision_time=True`` adds the measured wall
  time of the algorithm's own ``ask``/``tell`` calls: the algorithm is one
  process, so its calls happen one after another on the simulated clock, and
  a worker waits while it thinks (then runs are no longer bit-for-bit
  reproducible).
* **Budget.** A query whose finish time would exceed the budget is dropped:
  it is neither told to the algorithm nor recorded, and the run ends there
  (the NAS-Bench-201 rule). With several workers, every query still running
  when the budget is reached is dropped the same way.
* **Training seed.** Each query draws its training seed uniformly from the
  seeds the table holds for that arch at that epoch: those with a training
  time and a validation accuracy there (NaN entries are missing, never filled
  in; if no seed has a validation accuracy, those with a time, and the result
  carries NaN), using the run's own generator, separate from the
  algorithm's, restarted by every ``run``. Querying an arch twice can therefore give two different
  results, as retraining would.
* **Workers.** ``workers=W`` simulates W asynchronous workers: an event queue
  ordered by simulated finish time; the algorithm is asked whenever a worker
  is free and told results in order of finish time (ties by submission order).
  ``W = 1`` is the sequential loop.
* **Fidelities.** Algorithms are offered the epochs at which the table has
  validation accuracy: every epoch of a built table; for an imported one,
  those its source evaluated (provenance ``not_recorded``; NB101: half-way
  and final). A table with no validation accuracy at all is refused, since
  a search on it could only select on test data.
* **Hardware costs.** An algorithm whose class sets ``uses_arch_metrics =
  True`` gets ``setup(space, fidelities, arch_metrics=...)``: the table's
  per-architecture ``params``, ``flops`` and ``latency_ms`` (read-only arrays
  indexed by arch index). They are costs, not test data.
* **Incumbent.** At time t, the best by observed validation accuracy among
  the results finished by t (ties: the earlier one). Its score is the
  arch's seed-mean test accuracy at the table's last epoch; regret is the
  table's best such test accuracy minus the incumbent's.
"""

from __future__ import annotations

import heapq
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from nasbench_harness.errors import BudgetError, NasbenchError, QueryError
from nasbench_harness.table import schema

#: Metrics an algorithm may see in a :class:`Result`.
VISIBLE_METRICS = ("train_acc", "train_loss", "valid_acc", "valid_loss")
#: Per-architecture metrics an algorithm may ask for (``uses_arch_metrics``): costs, never test data.
ARCH_METRICS = ("params", "flops", "latency_ms")


@dataclass(frozen=True)
class Proposal:
    """What an algorithm asks to evaluate.

    Parameters
    ----------
    arch
        An architecture: index, NB201 string or tuple of op names.
    epoch
        Training epochs (a fidelity); ``None`` means the table's last epoch.
    info
        Free-form data the algorithm wants back in ``tell`` (e.g. a rung).
    """

    arch: Any
    epoch: int | None = None
    info: Any = None


@dataclass(frozen=True)
class Result:
    """What an algorithm is told about a finished query (never test metrics)."""

    arch: int
    epoch: int
    train_acc: float
    train_loss: float
    valid_acc: float
    valid_loss: float
    cost_s: float
    finished_at_s: float


@dataclass(frozen=True)
class Trace:
    """One search run: every finished query in order of finish time.

    ``incumbent_*`` and ``regret`` are computed by the harness after the run
    from the table; the algorithm never saw them.
    """

    algorithm: str
    seed: int
    budget_s: float
    workers: int
    time_s: np.ndarray  # finish time of each query
    arch: np.ndarray  # queried arch index
    epoch: np.ndarray
    train_seed: np.ndarray  # training seed that answered the query
    valid_acc: np.ndarray  # observed validation accuracy
    cost_s: np.ndarray
    incumbent: np.ndarray  # incumbent arch index after each query
    incumbent_valid_acc: np.ndarray  # seed-mean last-epoch validation acc of the incumbent
    incumbent_test_acc: np.ndarray  # seed-mean last-epoch test acc of the incumbent
    regret: np.ndarray  # best test acc in the table minus incumbent_test_acc
    best_test_acc: float
    params: dict = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return int(self.time_s.size)

    @property
    def final_incumbent(self) -> int | None:
        return int(self.incumbent[-1]) if self.incumbent.size else None

    @property
    def final_regret(self) -> float:
        return float(self.regret[-1]) if self.regret.size else float("nan")

    def to_dict(self) -> dict:
        """A JSON-friendly dict (arrays as lists)."""
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "seed": self.seed,
            "budget_s": self.budget_s,
            "workers": self.workers,
            "n_queries": self.n_queries,
            "best_test_acc": self.best_test_acc,
            "params": self.params,
        }
        for name in (
            "time_s",
            "arch",
            "epoch",
            "train_seed",
            "valid_acc",
            "cost_s",
            "incumbent",
            "incumbent_valid_acc",
            "incumbent_test_acc",
            "regret",
        ):
            out[name] = getattr(self, name).tolist()
        return out


class _TableView:
    """The arrays the simulator needs from a table, prepared once per table."""

    def __init__(self, table) -> None:
        self.space = table.space
        self.epochs = tuple(int(e) for e in table.epochs)
        self.n_epochs = len(self.epochs)
        self.seeds = np.asarray(table.seeds)
        self.rows = np.asarray(
            table.canonical
        )  # the table's classes (imported tables: one per arch)
        self.visible = {m: table.array(m) for m in VISIBLE_METRICS}
        provenance = getattr(table, "provenance", None) or {}
        not_recorded = schema.NotRecorded(provenance, self.n_epochs)
        valid_gaps = not_recorded.epoch_mask("valid_acc", self.n_epochs)
        #: Why a search cannot run on this table (None: it can): with no validation
        #: accuracy it would have to select on test data. Only looking archs up is left.
        self.no_validation = None
        if valid_gaps.all() or np.isnan(self.visible["valid_acc"]).all():
            source = (provenance.get("source") or {}).get("split_names")
            self.no_validation = (
                f"table {getattr(table, 'path', '')} has no validation accuracy"
                + (f" (source splits {source})" if source else "")
                + ": a search would have to select on test data; use a table with a "
                "validation split (for NB201 CIFAR-10, import --dataset cifar10-valid)"
            )
        #: Epochs at which validation accuracy was recorded: the fidelities offered to algorithms.
        self.fidelities = tuple(e for e, gap in zip(self.epochs, valid_gaps) if not gap)
        self.recorded = ~valid_gaps
        times = np.asarray(table.array("train_time_s"), dtype=np.float64)
        self.cum_time = np.cumsum(times, axis=2)  # NaN propagates to later epochs
        #: (row, seed, epoch) that can answer a query: with a cost, and also with what
        #: the algorithm observes (a query prefers the second, see Simulator._answer)
        self.has_time = ~np.isnan(self.cum_time)
        self.observed = self.has_time & ~np.isnan(np.asarray(self.visible["valid_acc"]))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # archs with no seed: NaN
            final_valid = np.nanmean(np.asarray(table.array("valid_acc"))[:, :, -1], axis=1)
            final_test = np.nanmean(np.asarray(table.array("test_acc"))[:, :, -1], axis=1)
        #: Why a search cannot run on this table (None: it can): an arch without a training
        #: time at an epoch offered to search (a sample or partial table, or a hole) would end
        #: a run the first time it is queried there.
        self.incomplete = None
        distinct = np.unique(self.rows)
        offered = np.flatnonzero(self.recorded)
        timed = self.has_time[:, :, offered].any(axis=1)[distinct]  # (distinct archs, epochs)
        holes = ~timed.all(axis=1)
        if holes.any():
            first = int(np.flatnonzero(holes)[0])
            e = int(offered[np.flatnonzero(~timed[first])[0]])
            self.incomplete = (
                f"table {getattr(table, 'path', '')}: {int(holes.sum()):,} of its "
                f"{distinct.size:,} distinct archs have no result at some epoch offered to "
                f"search ({int((~timed.any(axis=1)).sum()):,} have none at all, as in a sample "
                "or partial table: build --limit, merge --allow-partial, a partial import; "
                f"first: arch {self.space.to_string(int(distinct[first]))} at epoch "
                f"{self.epochs[e]}); a search may propose any arch at any of those epochs, so "
                "it needs them all: search a complete table (finish the build and merge it). "
                "`nasbench query` works on this table as it is, and on NB201 tables so do the "
                "weight-sharing methods (darts, gdas, rsps)"
            )
        self.final_valid = final_valid
        self.final_test = final_test
        self.best_test = float(np.nanmax(final_test))
        self._table = table
        self._arch_metrics = None
        self._valid_eval_time = None

    def valid_eval_time(self) -> np.ndarray:
        """Seconds of the validation evaluation after each (row, seed, epoch) (lazy).

        A table records one ``eval_time_s`` for all the splits it evaluated
        after an epoch (a built table: valid and test; imported NB201: its
        valid and test splits). The validation part is the provenance's
        ``eval_time_valid_share`` where the table has it (an NB201 import:
        the source's own validation seconds over all its evaluation seconds),
        else the validation split's share of the evaluated samples, which is
        exact up to batch rounding when the splits go through the same
        network in batches of one size.
        """
        if self._valid_eval_time is None:
            table = self._table
            where = getattr(table, "path", "")
            try:
                times = np.asarray(table.array("eval_time_s"), dtype=np.float64)
            except (KeyError, NasbenchError):
                raise QueryError(
                    f"table {where} has no eval_time_s, so evaluation time cannot be "
                    "charged: leave --eval-time (eval_time=True) out"
                ) from None
            provenance = getattr(table, "provenance", None) or {}
            share = provenance.get("eval_time_valid_share")
            if share is None:
                splits = (provenance.get("dataset") or {}).get("splits") or {}
                sizes = [splits.get(name) for name in ("valid", "test")]
                if not all(isinstance(v, (int, np.integer)) and v > 0 for v in sizes):
                    raise QueryError(
                        f"table {where}: its provenance gives neither eval_time_valid_share nor "
                        f"sizes of the valid and test splits (dataset.splits = {splits!r}), so "
                        "the validation part of eval_time_s is unknown: import the table again "
                        "(`nasbench import nb201` records the share) or leave --eval-time out"
                    )
                share = sizes[0] / (sizes[0] + sizes[1])
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise QueryError(
                    f"table {where}: provenance eval_time_valid_share = {share!r} is not a "
                    "number in (0, 1]; fix the table's provenance or leave --eval-time out"
                )
            valid_eval = times * float(share)
            # every (row, seed, epoch) that can answer a query must have its evaluation time
            gaps = self.has_time & np.isnan(valid_eval)
            if gaps.any():
                row, seed, e = (int(v[0]) for v in np.nonzero(gaps))
                raise QueryError(
                    f"table {where}: {int(gaps.sum())} (arch, seed, epoch) results with a "
                    f"training time have no eval_time_s (first: arch "
                    f"{self.space.to_string(row)} seed {int(self.seeds[seed])} epoch "
                    f"{self.epochs[e]}), so evaluation cannot be charged: leave --eval-time out"
                )
            self._valid_eval_time = valid_eval
        return self._valid_eval_time

    def arch_metrics(self):
        """The table's :data:`ARCH_METRICS` it has, indexed by arch index (read-only, lazy)."""
        if self._arch_metrics is None:
            out = {}
            for name in ARCH_METRICS:
                try:
                    values = np.array(self._table.array(name), dtype=np.float64)[self.rows]
                except (KeyError, NasbenchError):
                    continue
                values.flags.writeable = False
                out[name] = values
            self._arch_metrics = MappingProxyType(out)
        return self._arch_metrics


def _whole(value) -> bool:
    """Whether ``value`` is a whole number (an int, or a float without a fraction; no bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(value) and int(value) == value


def table_view(table, *, search: bool = True) -> _TableView:
    """Return the simulator's cached view of ``table`` (built on first use).

    With ``search`` (the default) a table without validation accuracy is
    refused (:class:`QueryError`): a search on it would select on test data;
    so is a table with archs that have no result at all (a sample or a
    partial build), where a run would end at the first such arch proposed.
    ``search=False`` is for looking up archs found some other way (a
    weight-sharing method's derived arch).
    """
    view = getattr(table, "_simulator_view", None)
    if view is None:
        view = _TableView(table)
        try:
            table._simulator_view = view
        except AttributeError:  # a table type without a __dict__: rebuild each time
            pass
    if search and (view.no_validation or view.incomplete):
        raise QueryError(view.no_validation or view.incomplete)
    return view


class Simulator:
    """Runs one algorithm against a table in simulated time.

    Parameters
    ----------
    table
        An open :class:`~nasbench_harness.table.Table`.
    budget_s
        Simulated seconds available to the search.
    seed
        Seed of the run: the training seeds that answer queries are drawn
        from a stream of it (the caller seeds the algorithm with the same
        number; :func:`run_search` takes care of neither, the CLI of both).
    workers
        Number of simulated asynchronous workers.
    eval_time
        Also charge, per query, the validation evaluation after the queried
        epoch (the validation share of the table's ``eval_time_s`` there, see
        :meth:`_TableView.valid_eval_time`); the test evaluation is never
        charged, since a search does not run it. Off by default (DESIGN rule
        3: training time only unless asked).
    decision_time
        Add the measured wall time of ``ask``/``tell`` to the clock (the calls
        are serialised: one starts when the previous one has ended).
    max_queries
        Safety bound on the number of queries of one run.
    """

    def __init__(
        self,
        table,
        *,
        budget_s: float,
        seed: int = 0,
        workers: int = 1,
        eval_time: bool = False,
        decision_time: bool = False,
        max_queries: int = 1_000_000,
    ) -> None:
        if (
            isinstance(budget_s, (bool, np.bool_))
            or not isinstance(budget_s, numbers.Real)
            or not np.isfinite(budget_s)
            or budget_s <= 0
        ):
            raise BudgetError(f"budget {budget_s!r} s is not a positive number of seconds")
        if not _whole(workers) or workers < 1:
            raise BudgetError(f"workers={workers!r}: give a whole number >= 1")
        if not _whole(seed) or seed < 0:
            raise NasbenchError(f"seed={seed!r}: give a whole number >= 0")
        self.table = table
        self.view = table_view(table)
        self.budget_s = float(budget_s)
        self.seed = int(seed)
        self.workers = int(workers)
        self.eval_time = bool(eval_time)
        if self.eval_time:
            self.view.valid_eval_time()  # refuse a table without it now, not mid-run
        self.decision_time = bool(decision_time)
        self.max_queries = int(max_queries)
        self._seed_rng = self._new_seed_rng()

    def _new_seed_rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 0x5EED])

    # -- answering one query --------------------------------------------------
    def _answer(self, proposal: Proposal, started_at: float) -> tuple[Result, int]:
        view = self.view
        arch = proposal.arch
        if (
            isinstance(arch, (int, np.integer))
            and not isinstance(arch, (bool, np.bool_))
            and 0 <= arch < view.rows.size
        ):
            index = int(arch)
        else:  # a string, an encoding, or an int out of range or a bool (refused there)
            index = view.space.index(arch)
        epoch = proposal.epoch
        if epoch is None:
            e = view.n_epochs - 1
            epoch = view.epochs[-1]
        else:
            if not _whole(epoch):
                raise QueryError(f"epoch {epoch!r} is not a whole number of epochs")
            e = int(epoch) - view.epochs[0]
            if not 0 <= e < view.n_epochs:
                raise QueryError(
                    f"epoch {epoch!r} is not in the table (epochs {view.epochs[0]}..{view.epochs[-1]})"
                )
            if not view.recorded[e]:
                raise QueryError(
                    f"the table's source recorded no validation accuracy at epoch {epoch}; "
                    f"query one of the fidelities {list(view.fidelities)}"
                )
        row = view.rows[index]
        times = view.cum_time[row, :, e]
        # seeds with a validation accuracy too, where there are any (else: a NaN result)
        observed = view.observed[row, :, e]
        available = np.flatnonzero(observed if observed.any() else view.has_time[row, :, e])
        if available.size == 0:
            raise QueryError(
                f"arch {view.space.to_string(index)} has no result at epoch {epoch} for any "
                "seed in this table; query one of the epochs it has results for"
            )
        s = int(available[self._seed_rng.integers(available.size)])
        cost = float(times[s])
        if self.eval_time:  # complete where there is a training time (valid_eval_time)
            cost += float(view.valid_eval_time()[row, s, e])
        vis = view.visible
        result = Result(
            arch=index,
            epoch=int(epoch),
            train_acc=float(vis["train_acc"][row, s, e]),
            train_loss=float(vis["train_loss"][row, s, e]),
            valid_acc=float(vis["valid_acc"][row, s, e]),
            valid_loss=float(vis["valid_loss"][row, s, e]),
            cost_s=cost,
            finished_at_s=started_at + cost,
        )
        return result, s

    # -- the loop ---------------------------------------------------------------
    def run(self, algorithm) -> Trace:
        """Run ``algorithm`` until the budget is spent; return its trace.

        Every call starts the training-seed draws afresh, so running the same
        (seeded) algorithm twice on one simulator gives the same trace.
        """
        view = self.view
        self._seed_rng = self._new_seed_rng()
        if getattr(algorithm, "uses_arch_metrics", False):
            algorithm.setup(view.space, view.fidelities, arch_metrics=view.arch_metrics())
        else:
            algorithm.setup(view.space, view.fidelities)
        heap: list[tuple[float, int, Proposal, Result, int]] = []
        submitted = 0
        clock = 0.0
        rec_time: list[float] = []
        rec_arch: list[int] = []
        rec_epoch: list[int] = []
        rec_seed: list[int] = []
        rec_valid: list[float] = []
        rec_cost: list[float] = []
        busy_until = 0.0  # with decision_time: when the algorithm's last call ended

        def submit(now: float) -> None:
            nonlocal submitted, busy_until
            t0 = time.perf_counter()
            proposal = algorithm.ask()
            if self.decision_time:
                now = max(now, busy_until) + (time.perf_counter() - t0)
                busy_until = now
            if not isinstance(proposal, Proposal):
                proposal = Proposal(arch=proposal)
            result, s = self._answer(proposal, now)
            heapq.heappush(heap, (result.finished_at_s, submitted, proposal, result, s))
            submitted += 1

        for _ in range(self.workers):
            submit(0.0)
        while heap and len(rec_time) < self.max_queries:
            finish, _, proposal, result, s = heapq.heappop(heap)
            if finish > self.budget_s:
                break  # the crossing query and everything later is dropped
            clock = finish
            t0 = time.perf_counter()
            algorithm.tell(proposal, result)
            if self.decision_time:
                clock = max(clock, busy_until) + (time.perf_counter() - t0)
                busy_until = clock
            rec_time.append(finish)
            rec_arch.append(result.arch)
            rec_epoch.append(result.epoch)
            rec_seed.append(int(view.seeds[s]))
            rec_valid.append(result.valid_acc)
            rec_cost.append(result.cost_s)
            submit(clock)

        return self._trace(algorithm, rec_time, rec_arch, rec_epoch, rec_seed, rec_valid, rec_cost)

    def _trace(self, algorithm, rec_time, rec_arch, rec_epoch, rec_seed, rec_valid, rec_cost):
        view = self.view
        valid = np.asarray(rec_valid, dtype=np.float64)
        arch = np.asarray(rec_arch, dtype=np.int64)
        incumbent_pos = incumbent_positions(valid)
        incumbent = arch[incumbent_pos] if arch.size else arch
        rows = view.rows[incumbent]
        inc_test = view.final_test[rows]
        params = algorithm.get_params() if hasattr(algorithm, "get_params") else {}
        return Trace(
            algorithm=getattr(algorithm, "name", type(algorithm).__name__),
            seed=self.seed,
            budget_s=self.budget_s,
            workers=self.workers,
            time_s=np.asarray(rec_time, dtype=np.float64),
            arch=arch,
            epoch=np.asarray(rec_epoch, dtype=np.int64),
            train_seed=np.asarray(rec_seed, dtype=np.int64),
            valid_acc=valid,
            cost_s=np.asarray(rec_cost, dtype=np.float64),
            incumbent=incumbent,
            incumbent_valid_acc=view.final_valid[rows],
            incumbent_test_acc=inc_test,
            regret=view.best_test - inc_test,
            best_test_acc=view.best_test,
            params=params,
        )


def incumbent_positions(valid: np.ndarray) -> np.ndarray:
    """Position of the best-so-far (by validation, earliest on ties) after each query.

    NaN validation values never become the incumbent unless nothing else was
    seen yet.
    """
    valid = np.asarray(valid, dtype=np.float64)
    if valid.size == 0:
        return np.zeros(0, dtype=np.int64)
    filled = np.where(np.isnan(valid), -np.inf, valid)
    running = np.maximum.accumulate(filled)
    is_new_best = filled >= running  # equal to the running max: a new best or a tie
    is_new_best[1:] &= filled[1:] > running[:-1]  # ties keep the earlier incumbent
    is_new_best[0] = True
    idx = np.where(is_new_best, np.arange(valid.size), 0)
    return np.maximum.accumulate(idx)


def run_search(table, algorithm, *, budget_s: float, seed: int = 0, workers: int = 1, **kwargs):
    """Run one seeded search; shorthand for ``Simulator(...).run(algorithm)``."""
    return Simulator(table, budget_s=budget_s, seed=seed, workers=workers, **kwargs).run(algorithm)
