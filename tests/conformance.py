"""Conformance checks that every search algorithm must pass.

Each ``check_*`` function takes an algorithm class (and tables, a budget)
and raises ``AssertionError`` with a message that says which rule of the
algorithm interface (DESIGN.md, STYLE.md) was broken. ``tests/test_conformance.py``
runs them over every algorithm the registry discovers, or over the ones
named with ``pytest --algorithm NAME_OR_PATH`` (e.g.
``--algorithm path/to/my_algo.py:MyAlgo``).

The rules:

* the constructor takes keyword-only arguments with defaults (``seed`` among
  them) and stores each unchanged under its own name, and nothing else;
* same seed, same trace (every array equal), with 1 and with 4 workers;
* it never sees test metrics: a table whose ``test_acc``/``test_loss`` are
  scrambled gives the same trace except the incumbent's test score;
* it proposes only valid architectures, and epochs among the fidelities;
* it works with asynchronous workers (several asks before the tells) and
  its traces respect the budget;
* it leaves the global random state (``random``, ``numpy.random``, torch)
  untouched.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch

from algorithms.base import Algorithm
from algorithms.registry import default_budget
from nasbench_harness.errors import NasbenchError
from nasbench_harness.simulator import Proposal, Result, run_search

#: Trace arrays that must not depend on test metrics.
TRACE_ARRAYS_WITHOUT_TEST = (
    "time_s",
    "arch",
    "epoch",
    "train_seed",
    "valid_acc",
    "cost_s",
    "incumbent",
    "incumbent_valid_acc",
)
#: Every array of a trace.
TRACE_ARRAYS = TRACE_ARRAYS_WITHOUT_TEST + ("incumbent_test_acc", "regret")
#: Full trainings' worth of simulated time used by the checks (small: fast tests).
CHECK_FULL_TRAININGS = 40


def told_result(arch: int, valid: float, epoch: int) -> Result:
    """A :class:`Result` of ``arch`` at ``epoch`` with validation (and train) accuracy ``valid``,
    for telling an algorithm by hand."""
    return Result(
        arch=int(arch),
        epoch=epoch,
        train_acc=valid,
        train_loss=0.0,
        valid_acc=valid,
        valid_loss=0.0,
        cost_s=1.0,
        finished_at_s=0.0,
    )


def check_budget(table) -> float:
    """The simulated budget the checks run with: 40 typical full trainings."""
    return default_budget(table, CHECK_FULL_TRAININGS)


def scrambled_copy(source: str | Path, destination: str | Path, seed: int = 12345) -> Path:
    """Copy a table file, permuting its ``test_acc`` and ``test_loss`` over architectures."""
    destination = Path(destination)
    shutil.copyfile(source, destination)
    rng = np.random.default_rng(seed)
    with h5py.File(destination, "r+") as f:
        for name in ("test_acc", "test_loss"):
            data = f[f"metrics/{name}"]
            values = data[...]
            # shift whole arch rows and add noise: every incumbent's test score changes
            values = np.roll(values, 7919, axis=0) + rng.normal(0, 1.0, size=values.shape)
            data[...] = values.astype(data.dtype)
    return destination


class Recorder:
    """Wraps an algorithm; checks and records every ask and tell the simulator makes."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self.name = getattr(algorithm, "name", type(algorithm).__name__)
        self.uses_arch_metrics = getattr(algorithm, "uses_arch_metrics", False)
        self.proposals: list[Proposal] = []
        self.told: list[tuple[Proposal, Result]] = []
        self.outstanding: list[int] = []  # id() of proposals asked and not yet told
        self.max_outstanding = 0

    def get_params(self) -> dict:
        return self.algorithm.get_params()

    def setup(self, space, fidelities, **kwargs) -> None:
        self.space = space
        self.fidelities = tuple(fidelities)
        self.algorithm.setup(space, fidelities, **kwargs)

    def ask(self):
        proposal = self.algorithm.ask()
        if not isinstance(proposal, Proposal):
            proposal = Proposal(arch=proposal)
        try:
            self.space.index(proposal.arch)
        except NasbenchError as exc:
            raise AssertionError(
                f"{self.name} proposed an invalid arch {proposal.arch!r}: {exc}"
            ) from exc
        if proposal.epoch is not None and proposal.epoch not in self.fidelities:
            raise AssertionError(
                f"{self.name} proposed epoch {proposal.epoch!r}, not one of the fidelities "
                f"{self.fidelities}"
            )
        self.proposals.append(proposal)
        self.outstanding.append(id(proposal))
        self.max_outstanding = max(self.max_outstanding, len(self.outstanding))
        return proposal

    def tell(self, proposal, result) -> None:
        if id(proposal) not in self.outstanding:
            raise AssertionError(f"{self.name} was told about a proposal it has no pending ask for")
        self.outstanding.remove(id(proposal))
        leaked = [k for k in vars(result) if "test" in k]
        if leaked:
            raise AssertionError(f"the result told to {self.name} carries test fields {leaked}")
        self.told.append((proposal, result))
        self.algorithm.tell(proposal, result)


def _run(cls, table, *, seed: int, budget: float, workers: int = 1, record: bool = False):
    algorithm = cls(seed=seed)
    wrapped = Recorder(algorithm) if record else algorithm
    trace = run_search(table, wrapped, budget_s=budget, seed=seed, workers=workers)
    return trace, wrapped


def _assert_traces_equal(a, b, fields, what: str) -> None:
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        if not np.array_equal(x, y, equal_nan=np.issubdtype(np.asarray(x).dtype, np.floating)):
            raise AssertionError(f"{what}: trace field {name!r} differs")


# -- the checks -------------------------------------------------------------------


def check_constructor_stores_arguments(cls) -> None:
    """Keyword-only arguments with defaults, stored unchanged, nothing else stored."""
    signature = inspect.signature(cls.__init__)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    for p in params:
        if p.kind is not p.KEYWORD_ONLY:
            raise AssertionError(
                f"{cls.__name__}.__init__ argument {p.name!r} must be keyword-only (after `*`)"
            )
        if p.default is p.empty:
            raise AssertionError(f"{cls.__name__}.__init__ argument {p.name!r} needs a default")
    names = [p.name for p in params]
    if "seed" not in names:
        raise AssertionError(f"{cls.__name__}.__init__ must take seed=")
    defaults = {p.name: p.default for p in params}

    algorithm = cls()
    got = algorithm.get_params()
    if got != defaults:
        raise AssertionError(f"{cls.__name__}() get_params() {got} != the defaults {defaults}")
    for name, value in defaults.items():
        if getattr(algorithm, name) is not value:
            raise AssertionError(f"{cls.__name__}() changed the default of {name!r}")

    # any value is stored as given (validation belongs in setup): use sentinels
    sentinels = {name: object() for name in names}
    algorithm = cls(**sentinels)
    for name, value in sentinels.items():
        if getattr(algorithm, name, None) is not value:
            raise AssertionError(
                f"{cls.__name__}(...) did not store {name!r} unchanged: the constructor must "
                "store its arguments and nothing else (validate in setup())"
            )
    extra = set(vars(algorithm)) - set(names)
    if extra:
        raise AssertionError(
            f"{cls.__name__}.__init__ set attributes that are not arguments: {sorted(extra)}; "
            "make state in setup()"
        )


def check_same_seed_same_trace(cls, table, budget: float, workers: int = 1) -> None:
    """Two runs with one seed give identical traces (every array)."""
    a, _ = _run(cls, table, seed=3, budget=budget, workers=workers)
    b, _ = _run(cls, table, seed=3, budget=budget, workers=workers)
    if a.n_queries == 0:
        raise AssertionError(f"{cls.__name__} finished no query within {budget:.0f} s")
    _assert_traces_equal(a, b, TRACE_ARRAYS, f"{cls.__name__} with seed 3 and {workers} workers")
    if a.params != b.params:
        raise AssertionError(f"{cls.__name__}: trace params differ between equal runs")


def check_never_sees_test_metrics(cls, table, scrambled_table, budget: float) -> None:
    """Results carry no test field; scrambling test metrics changes only test scores."""
    fields = {f.name for f in dataclasses.fields(Result)}
    if any("test" in name for name in fields):
        raise AssertionError(f"Result has test fields: {sorted(fields)}")
    a, algo_a = _run(cls, table, seed=5, budget=budget, record=True)
    b, algo_b = _run(cls, scrambled_table, seed=5, budget=budget, record=True)
    _assert_traces_equal(
        a, b, TRACE_ARRAYS_WITHOUT_TEST, f"{cls.__name__} on a table with scrambled test metrics"
    )
    report_a = getattr(algo_a.algorithm, "report", None)
    if callable(report_a) and report_a() != algo_b.algorithm.report():
        raise AssertionError(f"{cls.__name__}.report() depends on test metrics")


def check_valid_proposals_and_budget(cls, table, budget: float, workers: int) -> None:
    """Valid archs, epochs among the fidelities, tells match asks, budget respected."""
    trace, recorder = _run(cls, table, seed=11, budget=budget, workers=workers, record=True)
    if trace.n_queries == 0:
        raise AssertionError(f"{cls.__name__} finished no query within {budget:.0f} s")
    if trace.time_s[-1] > budget or np.any(trace.time_s > budget):
        raise AssertionError(f"{cls.__name__}: a query finished after the budget")
    if len(recorder.told) != trace.n_queries:
        raise AssertionError(f"{cls.__name__}: told {len(recorder.told)} != {trace.n_queries}")
    if not set(trace.epoch.tolist()) <= set(int(e) for e in table.epochs):
        raise AssertionError(f"{cls.__name__}: trace holds epochs outside the table")
    if workers > 1 and recorder.max_outstanding < 2:
        raise AssertionError(f"{cls.__name__}: with {workers} workers asks never overlapped")


def check_no_global_random_state(cls, table, budget: float) -> None:
    """A run leaves ``random``, ``numpy.random`` and torch's global generators as they were."""
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - checking, not using, it
    torch_state = torch.random.get_rng_state().clone()
    _run(cls, table, seed=2, budget=budget, workers=2)
    if random.getstate() != py_state:
        raise AssertionError(f"{cls.__name__} used Python's global `random` state")
    after = np.random.get_state()  # noqa: NPY002
    if not (
        after[0] == np_state[0]
        and np.array_equal(after[1], np_state[1])
        and after[2:] == np_state[2:]
    ):
        raise AssertionError(
            f"{cls.__name__} used numpy's global random state; use self.rng (a Generator)"
        )
    if not torch.equal(torch.random.get_rng_state(), torch_state):
        raise AssertionError(
            f"{cls.__name__} used torch's global generator; pass a torch.Generator"
        )


#: Every check, in the order test_conformance.py runs them.
CHECKS = (
    check_constructor_stores_arguments,
    check_same_seed_same_trace,
    check_never_sees_test_metrics,
    check_valid_proposals_and_budget,
    check_no_global_random_state,
)
