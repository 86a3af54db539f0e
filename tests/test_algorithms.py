"""Unit tests of the search algorithms (algorithms/*.py), the registry and `nasbench search`."""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from pathlib import Path

import conformance
import numpy as np
import pytest
import torch

from algorithms._brackets import rung_epochs
from algorithms._common import from_op_codes, op_codes
from algorithms.bananas import Bananas
from algorithms.bohb import BOHB
from algorithms.hardware_evolution import HardwareAwareEvolution
from algorithms.hyperband import Hyperband
from algorithms.local_search import LocalSearch
from algorithms.pareto_search import ParetoSearch
from algorithms.random_search import RandomSearch
from algorithms.registry import (
    default_budget,
    get_algorithm_class,
    list_algorithms,
    make_algorithm,
    parse_param_strings,
)
from algorithms.regularized_evolution import RegularizedEvolution
from algorithms.reinforce import Reinforce
from algorithms.successive_halving import SuccessiveHalving
from nasbench_harness.cli import main
from nasbench_harness.errors import NasbenchError
from nasbench_harness.simulator import Proposal, run_search
from nasbench_harness.space import get_space
from nasbench_harness.table import open_table

FIXTURE = Path(__file__).parent / "data" / "nb201-synthetic-v1.h5"
EPOCHS = tuple(range(1, 13))
NAMES = ("random", "rea", "reinforce", "ls", "bananas", "sh", "hb", "bohb", "hw-rea", "hw-pareto")


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


@pytest.fixture(scope="module")
def table():
    return open_table(FIXTURE)


def result(arch, valid, epoch=12):
    return conformance.told_result(arch, valid, epoch)


def landscape(space, seed=0):
    """An additive score per (edge, op): a smooth landscape with one global optimum."""
    weights = np.random.default_rng(seed).normal(size=(space.n_edges, len(space.ops)))
    codes = op_codes(space, np.arange(space.n_archs))
    return weights[np.arange(space.n_edges), codes].sum(axis=1)


def drive(algorithm, values, n, epoch_value=None):
    """Run ask/tell sequentially n times against ``values[arch]``; return the proposals."""
    proposals = []
    for _ in range(n):
        proposal = algorithm.ask()
        proposals.append(proposal)
        epoch = proposal.epoch or 12
        value = float(values[proposal.arch]) if epoch_value is None else epoch_value(proposal)
        algorithm.tell(proposal, result(proposal.arch, value, epoch))
    return proposals


# -- the registry ---------------------------------------------------------------------


def test_every_algorithm_is_registered_with_a_description():
    listed = list_algorithms()
    assert set(NAMES) <= set(listed)
    assert all(description and "\n" not in description for description in listed.values())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(NasbenchError, match="unknown algorithm 'nope'.*rea") as info:
        get_algorithm_class("nope")
    assert "darts, gdas, rsps, with `nasbench search` only" in str(info.value)


def test_user_file_by_path_and_class(tmp_path):
    path = tmp_path / "my_search.py"
    path.write_text(
        textwrap.dedent(
            """
            from algorithms.base import Algorithm, Proposal

            class MySearch(Algorithm):
                name = "my-search"

                def __init__(self, *, step=1, seed=None):
                    self.step = step
                    self.seed = seed

                def ask(self):
                    return Proposal(arch=int(self.rng.integers(self.space.n_archs)))
            """
        )
    )
    cls = get_algorithm_class(f"{path}:MySearch")
    assert cls.__name__ == "MySearch"
    assert get_algorithm_class(str(path)) is cls  # the only algorithm in the file
    assert make_algorithm(f"{path}:MySearch", seed=1, step=2).get_params() == {"step": 2, "seed": 1}
    conformance.check_constructor_stores_arguments(cls)
    with pytest.raises(NasbenchError, match="no class 'Other'.*MySearch"):
        get_algorithm_class(f"{path}:Other")
    with pytest.raises(NasbenchError, match="does not exist"):
        get_algorithm_class(str(tmp_path / "missing.py") + ":X")


def test_make_algorithm_rejects_unknown_hyperparameters():
    algorithm = make_algorithm("rea", seed=4, population_size=20)
    assert algorithm.get_params() == {"population_size": 20, "sample_size": 3, "seed": 4}
    with pytest.raises(NasbenchError, match="unknown hyperparameter.*pop_size.*population_size"):
        make_algorithm("rea", seed=0, pop_size=20)


def test_parse_param_strings():
    assert parse_param_strings(["a=3", "b=0.5", "c=its", "d=[1, 2]", "e=null"]) == {
        "a": 3,
        "b": 0.5,
        "c": "its",
        "d": [1, 2],
        "e": None,
    }
    with pytest.raises(NasbenchError, match="key=value"):
        parse_param_strings(["novalue"])


def test_default_budget_is_200_median_full_trainings(table):
    rows = np.unique(table.space.canonical_ids)
    full = np.asarray(table.array("train_time_s"), dtype=np.float64)[rows].sum(axis=2)
    expected = 200 * np.median(full.mean(axis=1))
    assert default_budget(table) == pytest.approx(expected)
    assert default_budget(table, 10) == pytest.approx(expected / 20)


def test_hyperparameters_are_validated_in_setup_not_in_the_constructor(space):
    algorithm = RegularizedEvolution(population_size=3, sample_size=5)  # stored as given
    with pytest.raises(NasbenchError, match="sample_size=5"):
        algorithm.setup(space, EPOCHS)
    with pytest.raises(NasbenchError, match="acquisition='ei'"):
        Bananas(acquisition="ei").setup(space, EPOCHS)
    with pytest.raises(NasbenchError, match="eta=1"):
        Hyperband(eta=1).setup(space, EPOCHS)
    with pytest.raises(NasbenchError, match="min_epoch=0"):
        SuccessiveHalving(min_epoch=0).setup(space, EPOCHS)


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_give_different_searches(table, name):
    budget = conformance.check_budget(table)
    a = run_search(table, make_algorithm(name, seed=1), budget_s=budget, seed=1)
    b = run_search(table, make_algorithm(name, seed=2), budget_s=budget, seed=2)
    assert not np.array_equal(a.arch[:20], b.arch[:20])


# -- single algorithms --------------------------------------------------------------------


def test_op_codes_round_trip(space):
    indices = np.array([0, 1, 777, 15624])
    codes = op_codes(space, indices)
    for index, row in zip(indices, codes):
        assert tuple(space.ops[c] for c in row) == space.arch(int(index))
    np.testing.assert_array_equal(from_op_codes(space, codes), indices)


def test_random_search_is_uniform_at_full_fidelity(space):
    algorithm = RandomSearch(seed=0)
    algorithm.setup(space, EPOCHS)
    proposals = [algorithm.ask() for _ in range(5000)]
    assert all(p.epoch is None for p in proposals)
    edge0 = op_codes(space, [p.arch for p in proposals])[:, 0]
    counts = np.bincount(edge0, minlength=5)
    assert counts.min() > 900 and counts.max() < 1100


def test_regularized_evolution_mutates_tournament_winners(space):
    values = landscape(space)
    algorithm = RegularizedEvolution(population_size=10, sample_size=3, seed=0)
    algorithm.setup(space, EPOCHS)
    drive(algorithm, values, 10)
    population = [arch for arch, _ in algorithm._population]
    for _ in range(50):
        proposal = algorithm.ask()
        # a child differs from a current member in exactly one edge
        diffs = (op_codes(space, proposal.arch) != op_codes(space, population)).sum(axis=1)
        assert 1 in diffs
        algorithm.tell(proposal, result(proposal.arch, values[proposal.arch]))
        population = [arch for arch, _ in algorithm._population]
        assert len(population) == 10  # the oldest left


def test_regularized_evolution_tournament_draws_with_replacement(space):
    # Real et al.'s Algorithm 1 and NATS-Bench draw S members with replacement: the best of
    # P = 10 wins with probability 1 - 0.9^3 = 0.271 (0.3 without replacement)
    class Identity:  # mutate returns the parent, so each proposal is the tournament's winner
        def __getattr__(self, name):
            return getattr(space, name)

        def mutate(self, arch, rng):
            return arch

    algorithm = RegularizedEvolution(population_size=10, sample_size=3, seed=0)
    algorithm.setup(space, EPOCHS)
    members = list(range(100, 110))
    for rank, arch in enumerate(members):
        algorithm.tell(Proposal(arch=arch), result(arch, float(rank)))
    algorithm._n_asked = 10
    algorithm.space = Identity()
    n = 20000
    wins = Counter(algorithm.ask().arch for _ in range(n))
    for rank, arch in enumerate(members):  # winner rank r: (r + 1)^3 - r^3 of 1000
        expected = ((rank + 1) ** 3 - rank**3) / 1000
        assert abs(wins[arch] / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_reinforce_adam_matches_torch_and_learns(space):
    algorithm = Reinforce(seed=0)
    algorithm.setup(space, EPOCHS)
    assert np.abs(algorithm.logits).max() < 1e-2  # 1e-3 * N(0, 1)
    logits = torch.tensor(algorithm.logits, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.01)
    rng = np.random.default_rng(1)
    num = den = 0.0
    for _ in range(30):
        arch = int(rng.integers(space.n_archs))
        reward = float(rng.uniform(50, 90))
        algorithm.tell(Proposal(arch=arch), result(arch, reward))
        num, den = 0.9 * num + 0.1 * reward, 0.9 * den + 0.1
        ops = torch.as_tensor(op_codes(space, arch)[0])
        log_p = torch.log_softmax(logits, dim=1)[torch.arange(6), ops].sum()
        optimizer.zero_grad()
        (-log_p * (reward - num / den)).backward()
        optimizer.step()
    np.testing.assert_allclose(algorithm.logits, logits.detach().numpy(), rtol=1e-6, atol=1e-9)

    # the policy concentrates on the ops of a good landscape
    values = landscape(space, seed=3)
    learner = Reinforce(seed=0, learning_rate=0.1)
    learner.setup(space, EPOCHS)
    drive(learner, 50 + 10 * values, 400)
    best = op_codes(space, int(np.argmax(values)))[0]
    p = learner.probabilities()
    assert p[np.arange(6), best].mean() > 0.5


def test_local_search_moves_at_first_improvement_and_restarts(space):
    values = landscape(space, seed=1)
    algorithm = LocalSearch(n_init=10, seed=0)
    algorithm.setup(space, EPOCHS)
    drive(algorithm, values, 10)
    start = max(((a, values[a]) for a, _ in algorithm._start_results), key=lambda t: t[1])[0]
    proposal = algorithm.ask()
    assert proposal.arch in space.neighbours(start)
    center = start
    for _ in range(300):
        value = values[proposal.arch]
        was_neighbour = proposal.arch in space.neighbours(center)
        algorithm.tell(proposal, result(proposal.arch, value))
        if was_neighbour and value > values[center]:
            assert algorithm._center[0] == proposal.arch  # moved at the first improvement
            center = proposal.arch
        proposal = algorithm.ask()
        if algorithm._center is None:  # restarted: only at a local optimum
            assert all(values[n] <= values[center] for n in space.neighbours(center))
            break
    else:
        pytest.fail("local search never reached a local optimum")
    # the additive landscape has one local optimum: the global one (ties aside)
    assert values[center] == pytest.approx(values.max())


def test_local_search_never_queries_an_arch_twice(table):
    trace = run_search(table, LocalSearch(seed=0), budget_s=default_budget(table), seed=0)
    canonical = table.space.canonical_ids[trace.arch[10:]]
    assert len(set(canonical.tolist())) == canonical.size


def test_bananas_queries_mutants_of_the_best_and_restores_threads(space):
    values = landscape(space, seed=2)
    threads = torch.get_num_threads()
    algorithm = Bananas(seed=0, n_epochs=20)
    algorithm.setup(space, EPOCHS)
    init = drive(algorithm, values, 10)
    told = {p.arch for p in init}
    best = max(told, key=lambda a: values[a])
    canon = space.canonical_ids
    candidates = algorithm._candidates()
    # naszilla's rule: best parents first until 100 distinct unseen candidates (the best
    # 2 alone have at most 48 one-edit neighbours), isomorphs once, nothing told again
    assert len(candidates) >= 100
    assert len({int(canon[a]) for a in candidates}) == len(candidates)
    assert not {int(canon[a]) for a in candidates} & {int(canon[a]) for a in told}
    assert all(any(a in space.neighbours(t) for t in told) for a in candidates)
    assert sum(a in candidates for a in space.neighbours(best)) >= 18  # 50 draws of 24
    batch = [algorithm.ask() for _ in range(10)]
    assert torch.get_num_threads() == threads
    assert all(any(p.arch in space.neighbours(t) for t in told) for p in batch)
    ids = [int(canon[p.arch]) for p in init + batch]
    assert len(set(ids)) == len(ids)


def test_bananas_top_up_never_repeats_an_isomorphism_class(space):
    canon = np.asarray(space.canonical_ids)
    classes, sizes = np.unique(canon, return_counts=True)
    unseen = set(classes[np.argsort(-sizes)[:3]].tolist())  # the 3 largest classes
    algorithm = Bananas(seed=0)
    algorithm.setup(space, EPOCHS)
    algorithm._seen = set(classes.tolist()) - unseen
    reps = [int(np.flatnonzero(canon == c)[0]) for c in sorted(set(classes.tolist()) - unseen)]
    algorithm._archs, algorithm._values = reps[:20], list(np.linspace(0.0, 1.0, 20))
    candidates = algorithm._candidates()
    assert sorted(int(canon[a]) for a in candidates) == sorted(unseen)


def test_bananas_queries_again_when_every_class_has_been_seen(space):
    canon = np.asarray(space.canonical_ids)
    algorithm = Bananas(seed=0)
    algorithm.setup(space, EPOCHS)
    algorithm._seen = set(np.unique(canon).tolist())
    algorithm._archs, algorithm._values = list(range(20)), list(np.linspace(0.0, 1.0, 20))
    assert algorithm._candidates() == []
    (arch,) = algorithm._next_batch()  # no candidate left to rank: one arch, not a crash
    assert 0 <= arch < space.n_archs


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_bananas_hand_written_gradient_and_adam_are_autograds_and_torchs(n_layers):
    from algorithms.bananas import _Ensemble, _FlatAdam

    gen = torch.Generator().manual_seed(n_layers)
    sizes = [7] + [5] * n_layers + [1]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(torch.randn(3, fan_in, fan_out, generator=gen))
        params.append(torch.randn(3, 1, fan_out, generator=gen))
    x = (torch.rand(11, 7, generator=gen) < 0.3).float()  # binary, like the path encoding
    target = torch.randn(11, generator=gen)
    ensemble = _Ensemble(params)
    ensemble.mae_gradient(x, target)
    leaves = [p.clone().requires_grad_(True) for p in params]
    h = x.unsqueeze(0).expand(3, -1, -1)
    for i in range(len(leaves) // 2):
        h = torch.baddbmm(leaves[2 * i + 1], h, leaves[2 * i])
        if i < len(leaves) // 2 - 1:
            h = torch.relu(h)
    (h.squeeze(-1) - target).abs().mean().backward()
    for got, leaf in zip(ensemble.grads, leaves):
        torch.testing.assert_close(got, leaf.grad)
    # three Adam steps on the same gradients: the flat update is torch.optim.Adam's
    reference = [p.clone() for p in params]
    optimizer = torch.optim.Adam(reference, lr=0.01)
    adam = _FlatAdam(ensemble.flat, 0.01)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        for p, g in zip(reference, grads):
            p.grad = g
        optimizer.step()
        adam.step(torch.cat([g.reshape(-1) for g in grads]))
    for got, want in zip(ensemble.params, reference):
        torch.testing.assert_close(got, want)


def test_bananas_ucb_runs(table):
    trace = run_search(
        table, Bananas(seed=0, acquisition="ucb", n_epochs=10), budget_s=2000.0, seed=0
    )
    assert trace.n_queries > 20
    its = run_search(table, Bananas(seed=0, n_epochs=10), budget_s=2000.0, seed=0)
    assert not np.array_equal(trace.arch[10:20], its.arch[10:20])  # the same start, other picks


@pytest.mark.parametrize("acquisition", ["ucb", "its"])
def test_bananas_batch_is_the_best_by_acquisition(space, acquisition, monkeypatch):
    values = landscape(space, seed=3)
    algorithm = Bananas(seed=0, acquisition=acquisition, ucb_beta=2.0)
    algorithm.setup(space, EPOCHS)
    drive(algorithm, values, 10)
    state = algorithm.rng.bit_generator.state
    candidates = algorithm._candidates()  # what _next_batch will draw (same generator state)
    algorithm.rng.bit_generator.state = state
    n = len(candidates)
    mean, std = np.linspace(0.0, 1.0, n), np.linspace(1.0, 0.0, n) ** 2
    monkeypatch.setattr(algorithm, "_fit_predict", lambda x, y, x_test: (mean, std))
    batch = algorithm._next_batch()
    if acquisition == "ucb":
        value = mean + 2.0 * std
    else:  # one normal draw per candidate, right after the candidates, from the same generator
        algorithm.rng.bit_generator.state = state
        algorithm._candidates()
        value = algorithm.rng.normal(mean, std)
    assert batch == [candidates[i] for i in np.argsort(-value, kind="stable")[:10]]


def test_rung_epochs_for_12_and_200_epochs():
    assert rung_epochs(EPOCHS, 3, 2, 12, 1) == [1, 4, 12]
    assert rung_epochs(tuple(range(1, 201)), 3, 4, 200, 1) == [2, 7, 22, 67, 200]


def test_successive_halving_promotes_the_best_third(space):
    values = landscape(space, seed=4)
    algorithm = SuccessiveHalving(seed=0)
    algorithm.setup(space, EPOCHS)
    proposals = drive(algorithm, values, 13)
    assert [p.epoch for p in proposals] == [1] * 9 + [4] * 3 + [12]
    first = [p.arch for p in proposals[:9]]
    top3 = sorted(first, key=lambda a: -values[a])[:3]
    assert [p.arch for p in proposals[9:12]] == top3
    assert proposals[12].arch == top3[0]
    assert algorithm.ask().epoch == 1  # the next bracket


def test_hyperband_cycles_its_brackets(space):
    values = landscape(space, seed=5)
    algorithm = Hyperband(seed=0)
    algorithm.setup(space, EPOCHS)
    proposals = drive(algorithm, values, 13 + 6 + 3)
    assert [p.epoch for p in proposals] == [1] * 9 + [4] * 3 + [12] + [4] * 5 + [12] + [12] * 3


def test_multi_fidelity_with_workers_tracks_pending_jobs(table):
    recorder = conformance.Recorder(Hyperband(seed=0))
    trace = run_search(table, recorder, budget_s=3000.0, seed=0, workers=8)
    assert set(trace.epoch.tolist()) == {1, 4, 12}
    assert recorder.max_outstanding == 8  # every worker kept busy while rungs wait
    # nothing is told twice and every told proposal was asked
    assert len({id(p) for p, _ in recorder.told}) == len(recorder.told)
    assert {id(p) for p, _ in recorder.told} <= {id(p) for p in recorder.proposals}


def test_bohb_density_is_normalised_and_model_guides_sampling(space):
    values = landscape(space, seed=6)
    algorithm = BOHB(seed=0)
    algorithm.setup(space, EPOCHS)
    rng = np.random.default_rng(0)
    archs = rng.integers(space.n_archs, size=40)
    for arch in archs:
        algorithm._observe(int(arch), 1, float(values[arch]))
    good, good_bw, bad, bad_bw = algorithm._model()
    assert len(good) == 7 and len(bad) == 33  # max(min_points, 15 %) good
    density = algorithm._density(op_codes(space, np.arange(space.n_archs)), good, good_bw)
    assert density.sum() == pytest.approx(1.0)
    # draws from the model are better than uniform ones on average
    guided = BOHB(seed=1, random_fraction=0.0)
    guided.setup(space, EPOCHS)
    for arch in archs:
        guided._observe(int(arch), 1, float(values[arch]))
    bracket = type("B", (), {"archs": []})()
    picks = [guided._sample_new(bracket) for _ in range(50)]
    assert values[picks].mean() > values.mean() + 1.0


def test_bohb_without_a_model_samples_uniformly(space):
    algorithm = BOHB(seed=0)
    algorithm.setup(space, EPOCHS)
    assert algorithm._model() is None
    proposals = drive(algorithm, landscape(space), 5)
    assert all(p.epoch == 1 for p in proposals)


def test_hardware_evolution_reward_and_report(space, table):
    algorithm = HardwareAwareEvolution(hw_metric="flops", target=2.0, seed=0)
    costs = {"flops": np.full(space.n_archs, 4.0)}
    costs["flops"][0] = 1.0
    algorithm.setup(space, EPOCHS, arch_metrics=costs)
    assert algorithm.reward(0, 90.0) == 90.0  # below target: w = 0
    assert algorithm.reward(1, 90.0) == pytest.approx(90.0 * 2.0**-0.07)
    assert algorithm.reward(1, math.nan) == -math.inf
    with pytest.raises(NasbenchError, match="needs the table's per-architecture latency_ms"):
        HardwareAwareEvolution().setup(space, EPOCHS)
    with pytest.raises(NasbenchError, match="hw_metric='energy'"):
        HardwareAwareEvolution(hw_metric="energy").setup(space, EPOCHS, arch_metrics=costs)

    hw = HardwareAwareEvolution(seed=0)
    trace = run_search(table, hw, budget_s=default_budget(table, 50), seed=0)
    latency = np.asarray(table.array("latency_ms"))[table.space.canonical_ids]
    assert hw._target == pytest.approx(np.median(latency[np.unique(table.space.canonical_ids)]))
    best = hw.report()["best_by_reward"]
    assert best["arch_string"] == table.space.to_string(best["arch"])
    # the best by reward over everything the search was told, recomputed from the trace
    rewards = [hw.reward(int(a), float(v)) for a, v in zip(trace.arch, trace.valid_acc)]
    assert best["reward"] == pytest.approx(max(rewards))
    assert hw.reward(best["arch"], best["valid_acc"]) == pytest.approx(max(rewards))
    assert best["latency_ms"] == pytest.approx(latency[best["arch"]])


def test_pareto_search_front_is_non_dominated_and_sorted(table):
    algorithm = ParetoSearch(seed=0)
    trace = run_search(table, algorithm, budget_s=default_budget(table, 50), seed=0)
    front = algorithm.pareto_front()
    assert len(front) >= 2
    costs = [m["latency_ms"] for m in front]
    accs = [m["valid_acc"] for m in front]
    assert costs == sorted(costs)
    assert all(a < b for a, b in zip(accs, accs[1:]))  # cheaper members are less accurate
    # no told result dominates a front member
    latency = np.asarray(table.array("latency_ms"))[table.space.canonical_ids]
    for member in front:
        dominated = (trace.valid_acc >= member["valid_acc"]) & (
            latency[trace.arch] <= member["latency_ms"]
        )
        strictly = (trace.valid_acc > member["valid_acc"]) | (
            latency[trace.arch] < member["latency_ms"]
        )
        assert not np.any(dominated & strictly)


# -- `nasbench search` --------------------------------------------------------------------


def test_cli_search_json(capsys):
    code = main(
        ["search", str(FIXTURE), "--algorithm", "rea", "--seed", "3", "--budget", "3000", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["algorithm"] == "rea" and out["seed"] == 3 and out["budget_s"] == 3000
    assert out["trace"]["n_queries"] == len(out["trace"]["arch"]) > 0
    inc = out["incumbent"]
    assert inc["arch"] == out["trace"]["incumbent"][-1]
    assert inc["regret"] == pytest.approx(inc["best_test_acc"] - inc["test_acc"])


def test_cli_search_eval_time_charges_more_per_query(capsys):
    argv = ["search", str(FIXTURE), "-a", "random", "--seed", "2", "--budget", "3000", "--json"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "--eval-time"]) == 0
    charged = json.loads(capsys.readouterr().out)
    assert plain["eval_time"] is False and charged["eval_time"] is True
    n = charged["trace"]["n_queries"]
    assert charged["trace"]["arch"] == plain["trace"]["arch"][:n]  # same proposals
    extra = np.subtract(charged["trace"]["cost_s"], plain["trace"]["cost_s"][:n])
    assert (extra > 0).all() and n < plain["trace"]["n_queries"]


def test_cli_search_default_budget_params_and_report(capsys, table):
    argv = ["search", str(FIXTURE), "-a", "hw-pareto", "--param", "n_init=5", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget_is_default"] and out["budget_s"] == pytest.approx(default_budget(table))
    assert out["params"]["n_init"] == 5
    front = out["algorithm_report"]["pareto_front"]
    assert front and {"mean_valid_acc", "mean_test_acc", "latency_ms"} <= set(front[0])


def test_cli_search_list_and_human_summary(capsys):
    assert main(["search", "--list", "--json"]) == 0
    assert set(NAMES) <= set(json.loads(capsys.readouterr().out)["algorithms"])
    assert main(["search", "--list"]) == 0
    assert "bananas" in capsys.readouterr().out
    assert main(["search", str(FIXTURE), "-a", "ls", "--budget", "2000", "--workers", "2"]) == 0
    assert "incumbent" in capsys.readouterr().out


def test_cli_search_errors_are_one_line(capsys):
    assert main(["search", str(FIXTURE), "--algorithm", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'nope'" in err and err.count("\n") == 1
    assert main(["search", str(FIXTURE), "-a", "rea", "--param", "sample_size=99"]) == 2
    assert "sample_size=99" in capsys.readouterr().err
    assert main(["search", str(FIXTURE), "-a", "rea", "--param", "seed=1"]) == 2
    err = capsys.readouterr().err
    assert "the seed is not a hyperparameter; give it with --seed" in err and err.count("\n") == 1
    argv = ["compare", "--table", str(FIXTURE), "--runs", "1", "--param", "rea:seed=1"]
    assert main(argv) == 2
    assert "the seed is not a hyperparameter" in capsys.readouterr().err
    assert main(["search", str(FIXTURE), "-a", "random", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--seed -1: give a seed >= 0" in err and err.count("\n") == 1
