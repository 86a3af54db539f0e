"""Tests of the simulated-time search loop (nasbench_harness/simulator.py)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from algorithms.base import Algorithm
from nasbench_harness.errors import BudgetError, NasbenchError, QueryError
from nasbench_harness.simulator import (
    Proposal,
    Result,
    Simulator,
    incumbent_positions,
    run_search,
    table_view,
)
from nasbench_harness.space import get_space


class ArrayTable:
    """A minimal in-memory table with hand-set arrays (the simulator's needs only)."""

    def __init__(self, n_seeds=2, n_epochs=4, seed=0):
        self.space = get_space("nb201")
        n = self.space.n_archs
        rng = np.random.default_rng(seed)
        self.seeds = np.arange(n_seeds)
        self.epochs = np.arange(1, n_epochs + 1)
        shape = (n, n_seeds, n_epochs)
        rows = self.space.canonical_ids
        self.canonical = np.asarray(rows)  # the table's classes: the space's exact rule
        base = rng.uniform(10, 90, size=n)[rows]
        curve = np.linspace(0.5, 1.0, n_epochs)
        noise = rng.normal(0, 1, size=shape)[rows]
        valid = base[:, None, None] * curve[None, None, :] + noise
        self._arrays = {
            "valid_acc": valid.astype(np.float32),
            "test_acc": (valid + rng.normal(0, 1, size=shape)[rows]).astype(np.float32),
            "train_acc": (valid + 5).astype(np.float32),
            "valid_loss": (100 - valid).astype(np.float32) / 50,
            "train_loss": (100 - valid).astype(np.float32) / 60,
            "test_loss": (100 - valid).astype(np.float32) / 50,
            # seed s trains every epoch in (s + 1) seconds: easy cost arithmetic
            "train_time_s": np.broadcast_to(
                (np.arange(n_seeds) + 1.0)[None, :, None], shape
            ).astype(np.float32),
        }

    def array(self, metric):
        return self._arrays[metric]


class Scripted(Algorithm):
    """Proposes a fixed list of (arch, epoch) and records what it was told."""

    name = "scripted"

    def __init__(self, *, script=(), seed=None):
        self.script = script
        self.seed = seed

    def setup(self, space, fidelities):
        super().setup(space, fidelities)
        self.told = []
        self._next = 0

    def ask(self):
        arch, epoch = self.script[self._next % len(self.script)]
        self._next += 1
        return Proposal(arch=arch, epoch=epoch)

    def tell(self, proposal, result):
        self.told.append((proposal, result))


class RandomArchs(Algorithm):
    name = "random-archs"

    def ask(self):
        return Proposal(arch=int(self.rng.integers(self.space.n_archs)))


@pytest.fixture(scope="module")
def table():
    return ArrayTable()


def test_cost_is_recorded_training_time_of_the_drawn_seed(table):
    algo = Scripted(script=[(5, 2)], seed=0)
    trace = run_search(table, algo, budget_s=100.0, seed=3)
    # seed s costs (s + 1) s per epoch; epoch 2 -> 2 (s + 1)
    np.testing.assert_array_equal(trace.cost_s, 2.0 * (trace.train_seed + 1))
    np.testing.assert_allclose(trace.time_s, np.cumsum(trace.cost_s))
    assert set(trace.train_seed.tolist()) == {0, 1}  # both seeds get drawn


def test_cost_is_the_sum_of_the_epoch_times_up_to_the_queried_epoch():
    table = ArrayTable()
    shape = table._arrays["train_time_s"].shape
    # seed s trains epoch e in (s + 1) * e seconds: epochs 1..3 cost 6 (s + 1), not 3 x epoch 3
    table._arrays["train_time_s"] = (
        (np.arange(shape[1]) + 1.0)[None, :, None] * np.arange(1, shape[2] + 1)[None, None, :]
    ) * np.ones(shape)
    trace = run_search(table, Scripted(script=[(5, 3), (7, 1)], seed=0), budget_s=200.0, seed=3)
    expected = np.where(trace.epoch == 3, 6.0, 1.0) * (trace.train_seed + 1)
    np.testing.assert_array_equal(trace.cost_s, expected)


def test_cost_on_the_fixture_table_is_the_tables_cost():
    from pathlib import Path

    from nasbench_harness.table import open_table

    table = open_table(Path(__file__).resolve().parent / "data" / "nb201-synthetic-v1.h5")
    script = [(11, 1), (4000, 6), (12345, 12), (77, 3)]
    trace = run_search(table, Scripted(script=script, seed=0), budget_s=400.0, seed=1)
    assert trace.n_queries > 8
    for arch, epoch, seed, cost in zip(trace.arch, trace.epoch, trace.train_seed, trace.cost_s):
        assert cost == pytest.approx(table.cost(int(arch), epoch=int(epoch), seed=int(seed)))


def test_eval_time_adds_the_validation_share_of_the_queried_epochs_evaluation():
    table = ArrayTable()
    shape = table._arrays["train_time_s"].shape
    # evaluation after epoch e takes 10 * e s in all; valid 300 of 300 + 100 evaluated samples
    table._arrays["eval_time_s"] = np.broadcast_to(
        10.0 * np.arange(1, shape[2] + 1, dtype=np.float32), shape
    )
    table.provenance = {"dataset": {"splits": {"train": 500, "valid": 300, "test": 100}}}
    plain = run_search(table, Scripted(script=[(5, 2)], seed=0), budget_s=500.0, seed=3)
    charged = run_search(
        table, Scripted(script=[(5, 2)], seed=0), budget_s=500.0, seed=3, eval_time=True
    )
    np.testing.assert_array_equal(charged.train_seed, plain.train_seed[: charged.n_queries])
    # training to epoch 2 with seed s: 2 (s + 1) s; one evaluation after epoch 2: 20 * 3/4 s
    np.testing.assert_allclose(charged.cost_s, 2.0 * (charged.train_seed + 1) + 15.0)
    np.testing.assert_allclose(charged.time_s, np.cumsum(charged.cost_s))
    assert charged.n_queries < plain.n_queries


def test_eval_time_is_refused_where_the_table_cannot_say_it():
    table = ArrayTable()
    with pytest.raises(QueryError, match="has no eval_time_s"):
        Simulator(table, budget_s=10.0, eval_time=True)
    table._arrays["eval_time_s"] = np.ones_like(table._arrays["train_time_s"])
    table.provenance = {"dataset": {"splits": {"valid": "x-valid: 25,000 images"}}}
    with pytest.raises(QueryError, match="neither eval_time_valid_share nor sizes"):
        Simulator(table, budget_s=10.0, eval_time=True)
    table.provenance = {"dataset": {"splits": {"valid": 10, "test": 10}}}
    table._arrays["eval_time_s"] = table._arrays["eval_time_s"].copy()
    table._arrays["eval_time_s"][:, 0, :] = np.nan  # seed 0 never timed its evaluation
    with pytest.raises(QueryError, match=r"have no eval_time_s \(first: arch .* seed 0 epoch 1\)"):
        Simulator(table, budget_s=1000.0, eval_time=True)  # refused before any query


def test_eval_time_share_from_provenance_wins_over_split_sizes():
    table = ArrayTable()
    table._arrays["eval_time_s"] = np.full_like(table._arrays["train_time_s"], 8.0)
    table.provenance = {"dataset": {"splits": {"valid": 1, "test": 1}}}
    table.provenance["eval_time_valid_share"] = 0.25  # e.g. an NB201 import's own seconds
    trace = run_search(table, Scripted(script=[(5, 1)], seed=0), budget_s=50.0, eval_time=True)
    np.testing.assert_allclose(trace.cost_s, (trace.train_seed + 1.0) + 2.0)
    for bad in (0.0, 1.5, "half", True):
        other = ArrayTable()
        other._arrays["eval_time_s"] = table._arrays["eval_time_s"]
        other.provenance = {"eval_time_valid_share": bad}
        with pytest.raises(QueryError, match="is not a number in"):
            Simulator(other, budget_s=10.0, eval_time=True)


def test_crossing_query_is_dropped_and_budget_respected():
    one_seed = ArrayTable(n_seeds=1, n_epochs=4)  # 1 s per epoch
    algo = Scripted(script=[(7, 4)], seed=0)
    trace = run_search(one_seed, algo, budget_s=30.0, seed=1)
    # 7 queries of 4 s fit (28 s); the 8th would finish at 32 s and is dropped
    assert trace.n_queries == 7
    assert trace.time_s[-1] == 28.0
    assert len(algo.told) == 7


def test_exact_budget_is_spent_not_crossed(table):
    # single seed column costs 1 s per epoch when only seed 0 exists
    one_seed = ArrayTable(n_seeds=1, n_epochs=4)
    trace = run_search(one_seed, Scripted(script=[(3, 1)]), budget_s=10.0, seed=0)
    assert trace.n_queries == 10
    assert trace.time_s[-1] == 10.0


def test_result_carries_no_test_metrics(table):
    fields = {f.name for f in dataclasses.fields(Result)}
    assert not any("test" in name for name in fields)
    algo = Scripted(script=[(11, None)], seed=0)
    run_search(table, algo, budget_s=20.0, seed=0)
    for _, result in algo.told:
        assert not any("test" in name for name in vars(result))


def test_trace_does_not_depend_on_test_data(table):
    scrambled = ArrayTable()
    rng = np.random.default_rng(99)
    scrambled._arrays["test_acc"] = rng.permutation(table.array("test_acc"))
    scrambled._arrays["test_loss"] = rng.permutation(table.array("test_loss"))
    a = run_search(table, RandomArchs(seed=4), budget_s=200.0, seed=4)
    b = run_search(scrambled, RandomArchs(seed=4), budget_s=200.0, seed=4)
    for name in ("time_s", "arch", "epoch", "train_seed", "valid_acc", "incumbent"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.incumbent_test_acc, b.incumbent_test_acc)


def test_same_seed_same_trace_and_different_seed_differs(table):
    a = run_search(table, RandomArchs(seed=1), budget_s=300.0, seed=1)
    b = run_search(table, RandomArchs(seed=1), budget_s=300.0, seed=1)
    c = run_search(table, RandomArchs(seed=2), budget_s=300.0, seed=2)
    for name in ("time_s", "arch", "train_seed", "valid_acc", "regret"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.arch[:10], c.arch[:10])


def test_async_workers_finish_in_time_order_and_use_parallel_time(table):
    sequential = run_search(table, RandomArchs(seed=0), budget_s=200.0, seed=0, workers=1)
    parallel = run_search(table, RandomArchs(seed=0), budget_s=200.0, seed=0, workers=4)
    assert np.all(np.diff(parallel.time_s) >= 0)
    assert parallel.time_s[-1] <= 200.0
    # four workers fit more queries into the same simulated time
    assert parallel.n_queries > 3 * sequential.n_queries


def test_async_tells_follow_finish_order():
    table = ArrayTable(n_seeds=1)
    # epochs 4, 1, 1, 1 on four workers: the three short ones finish first
    algo = Scripted(script=[(1, 4), (2, 1), (3, 1), (4, 1)], seed=0)
    run_search(table, algo, budget_s=4.5, seed=0, workers=4)
    told_archs = [r.arch for _, r in algo.told]
    assert told_archs[:3] == [2, 3, 4]
    assert 1 in told_archs[3:]


def test_async_budget_keeps_what_finished_and_drops_what_was_in_flight():
    table = ArrayTable(n_seeds=1)  # one second per epoch
    algo = Scripted(script=[(1, 4), (2, 1), (3, 1), (4, 1)], seed=0)
    trace = run_search(table, algo, budget_s=4.5, seed=0, workers=4)
    # by hand: t=0 asks 1@4 2@1 3@1 4@1; t=1 asks 1@4(->5) 2@1 3@1; t=2 asks 4@1 1@4(->6);
    # t=3 asks 2@1 (->4); at t=4 arch 1 (asked first) and arch 2 finish. The two 4-epoch
    # queries asked at t=1 and t=2 and what t=4 asks finish after 4.5 s: dropped.
    np.testing.assert_array_equal(trace.time_s, [1, 1, 1, 2, 2, 3, 4, 4])
    np.testing.assert_array_equal(trace.arch, [2, 3, 4, 2, 3, 4, 1, 2])
    np.testing.assert_array_equal(trace.epoch, [1, 1, 1, 1, 1, 1, 4, 1])
    assert [r.arch for _, r in algo.told] == trace.arch.tolist()  # told = recorded


def test_incumbent_is_best_by_validation_no_lookahead():
    valid = np.array([50.0, 40.0, 60.0, 60.0, np.nan, 70.0])
    np.testing.assert_array_equal(incumbent_positions(valid), [0, 0, 2, 2, 2, 5])
    assert incumbent_positions(np.array([])).size == 0
    np.testing.assert_array_equal(incumbent_positions(np.array([np.nan, 1.0])), [0, 1])


def test_regret_uses_seed_mean_final_test_acc(table):
    trace = run_search(table, RandomArchs(seed=0), budget_s=100.0, seed=0)
    rows = table.space.canonical_ids[trace.incumbent]
    expected = np.nanmean(table.array("test_acc")[rows, :, -1], axis=1)
    np.testing.assert_allclose(trace.incumbent_test_acc, expected)
    best = np.nanmax(np.nanmean(table.array("test_acc")[:, :, -1], axis=1))
    np.testing.assert_allclose(trace.regret, best - expected)
    assert np.all(trace.regret >= 0)


def test_missing_seed_is_never_filled_in():
    table = ArrayTable(n_seeds=2)
    table._arrays["train_time_s"] = table.array("train_time_s").copy()
    row = table.space.canonical_ids[9]
    table._arrays["train_time_s"][row, 1, :] = np.nan  # seed 1 missing for arch 9
    trace = run_search(table, Scripted(script=[(9, None)]), budget_s=50.0, seed=0)
    assert set(trace.train_seed.tolist()) == {0}
    empty = ArrayTable(n_seeds=2)
    empty._arrays["train_time_s"] = empty.array("train_time_s").copy()
    empty._arrays["train_time_s"][row, :, :] = np.nan  # no seed at all
    with pytest.raises(QueryError, match="no result"):
        run_search(empty, Scripted(script=[(9, None)]), budget_s=50.0, seed=0)


def test_seed_without_validation_accuracy_is_not_drawn_while_another_has_one():
    table = ArrayTable(n_seeds=2)
    table._arrays["valid_acc"] = table.array("valid_acc").copy()
    row = table.space.canonical_ids[9]
    table._arrays["valid_acc"][row, 1, -1] = np.nan  # seed 1 has a time but no valid_acc
    algorithm = Scripted(script=[(9, None)])
    trace = run_search(table, algorithm, budget_s=50.0, seed=0)
    assert set(trace.train_seed.tolist()) == {0}
    assert all(np.isfinite(result.valid_acc) for _, result in algorithm.told)
    # no seed has one: a NaN result (a new table: the simulator caches its view of a table)
    table = ArrayTable(n_seeds=2)
    table._arrays["valid_acc"] = table.array("valid_acc").copy()
    table._arrays["valid_acc"][row, :, -1] = np.nan
    trace = run_search(table, Scripted(script=[(9, None)]), budget_s=50.0, seed=0)
    assert set(trace.train_seed.tolist()) == {0, 1} and np.isnan(trace.valid_acc).all()


def test_running_one_simulator_twice_gives_the_same_trace(table):
    simulator = Simulator(table, budget_s=300.0, seed=1)
    a = simulator.run(RandomArchs(seed=1))
    b = simulator.run(RandomArchs(seed=1))
    for name in ("time_s", "arch", "train_seed", "valid_acc", "regret"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert len(set(a.train_seed.tolist())) == 2  # both seeds drawn: the draws matter


def test_decision_time_serialises_the_algorithms_calls(table, monkeypatch):
    import nasbench_harness.simulator as simulator

    class Clock:  # every ask or tell appears to take 2.5 s of wall time
        now = 0.0

        def perf_counter(self):
            self.now += 2.5  # so a call, timed by two readings, takes 2.5 s
            return self.now

    monkeypatch.setattr(simulator, "time", Clock())
    trace = Simulator(table, budget_s=200.0, seed=0, workers=2, decision_time=True).run(
        RandomArchs(seed=0)
    )
    starts = np.sort(trace.time_s - trace.cost_s)
    assert starts[0] == pytest.approx(2.5)  # the first ask took 2.5 s
    # one process: no two trainings start within one call's time of each other
    assert np.diff(starts).min() >= 2.5 - 1e-9


def test_rows_follow_the_tables_classes_not_the_spaces():
    """An imported table trains every arch (canonical = identity): isomorphs answer their own rows."""
    table = ArrayTable(n_seeds=1, n_epochs=4)
    canon = table.space.canonical_ids
    member = int(np.flatnonzero(canon != np.arange(table.space.n_archs))[0])
    rep = int(canon[member])
    table._arrays = {name: values.copy() for name, values in table._arrays.items()}
    table._arrays["valid_acc"][member] = table._arrays["valid_acc"][rep] - 7.0
    table.canonical = np.arange(table.space.n_archs)
    trace = run_search(table, Scripted(script=[(member, 4), (rep, 4)]), budget_s=8.0, seed=0)
    np.testing.assert_allclose(
        trace.valid_acc, [table.array("valid_acc")[i, 0, 3] for i in (member, rep)], rtol=1e-6
    )
    assert trace.valid_acc[0] == pytest.approx(trace.valid_acc[1] - 7.0, abs=1e-4)


def test_bad_inputs_raise_clear_errors(table):
    with pytest.raises(BudgetError, match="budget"):
        Simulator(table, budget_s=0)
    with pytest.raises(BudgetError, match="workers"):
        Simulator(table, budget_s=10, workers=0)
    with pytest.raises(QueryError, match="epoch 9"):
        run_search(table, Scripted(script=[(1, 9)]), budget_s=10.0)
    for seed in (-1, 1.5):
        with pytest.raises(NasbenchError, match="seed"):
            Simulator(table, budget_s=10, seed=seed)
    with pytest.raises(NasbenchError, match="bool"):  # not arch 1, as the space says
        run_search(table, Scripted(script=[(True, None)]), budget_s=10.0)


def test_arch_strings_and_tuples_are_accepted(table):
    space = table.space
    arch = space.arch(1234)
    algo = Scripted(script=[(space.to_string(1234), None), (arch, None)])
    trace = run_search(table, algo, budget_s=30.0, seed=0)
    assert set(trace.arch.tolist()) == {1234}


def test_a_table_with_archs_without_any_result_is_refused_before_the_run():
    table = ArrayTable()
    row = table.space.canonical_ids[9]
    for name in ("train_time_s", "valid_acc"):
        table._arrays[name] = table.array(name).copy()
        table._arrays[name][row] = np.nan  # a sample or partial table: never trained
    algorithm = Scripted(script=[(0, None)])  # would never even propose it
    with pytest.raises(QueryError, match=r"1 of its 5,234 distinct archs have no result"):
        run_search(table, algorithm, budget_s=50.0, seed=0)
    assert not hasattr(algorithm, "told")  # refused before the algorithm was set up
    view = table_view(table, search=False)  # looking archs up is still allowed
    assert "search a complete table" in view.incomplete and "1 have none at all" in view.incomplete
    # a hole at one epoch (accuracies kept, the time lost) ends a run just the same
    holed = ArrayTable()
    holed._arrays["train_time_s"] = holed.array("train_time_s").copy()
    holed._arrays["train_time_s"][row, :, -1] = np.nan  # the last epoch, every seed
    with pytest.raises(QueryError, match=r"1 of its .* \(0 have none at all.*at epoch 4\)"):
        run_search(holed, Scripted(script=[(0, None)]), budget_s=50.0, seed=0)
    one_seed = ArrayTable()  # an arch trained with one seed only is complete
    one_seed._arrays["train_time_s"] = one_seed.array("train_time_s").copy()
    one_seed._arrays["train_time_s"][row, 1, :] = np.nan
    run_search(one_seed, Scripted(script=[(0, None)]), budget_s=50.0, seed=0)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"budget_s": "100"}, BudgetError, "budget '100' s"),
        ({"budget_s": True}, BudgetError, "budget True s"),
        ({"budget_s": 50.0, "seed": None}, NasbenchError, "seed=None"),
        ({"budget_s": 50.0, "seed": 1.5}, NasbenchError, "seed=1.5"),
        ({"budget_s": 50.0, "workers": "2"}, BudgetError, "workers='2'"),
    ],
)
def test_bad_simulator_inputs_are_named(table, kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        Simulator(table, **kwargs)


def test_a_bool_epoch_is_refused(table):
    with pytest.raises(QueryError, match="epoch True is not a whole number"):
        run_search(table, Scripted(script=[(0, True)]), budget_s=50.0, seed=0)
