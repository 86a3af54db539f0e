"""The space-generic encodings and every search algorithm on the NAS-Bench-101 space.

The NB101 space is enumerated on first use (minutes of CPU) and cached in
``$NASBENCH_CACHE_DIR``, which tests/conftest.py points at a fresh directory
per pytest run: every test that needs it is marked slow and lives in this
module, so the space is built once (a module-scoped fixture) and the small
synthetic NB101 table written once.
"""

from __future__ import annotations

import conformance
import numpy as np
import pytest
import torch

from algorithms._common import from_op_codes, op_codes
from algorithms.bohb import BOHB
from algorithms.registry import default_budget, list_algorithms, make_algorithm
from algorithms.reinforce import Reinforce
from nasbench_harness import __version__
from nasbench_harness.errors import ArchError
from nasbench_harness.simulator import run_search
from nasbench_harness.space import get_space
from nasbench_harness.table import open_table, write_table

N_EPOCHS = 4
CONV3, CONV1, POOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


@pytest.fixture(scope="module")
def nb101():
    return get_space("nb101")


@pytest.fixture(scope="module")
def nb101_table(nb101, tmp_path_factory):
    path = tmp_path_factory.mktemp("nb101") / "nb101-synthetic.h5"
    return open_table(write_table(path, **synthetic_nb101(nb101)))


def synthetic_nb101(space, seed=0):
    """write_table arguments: cheap values for every NB101 arch (one seed, N_EPOCHS epochs).

    The final validation accuracy is an additive function of the categorical
    code plus noise; curves saturate with the epoch; costs grow with the edges.
    """
    rng = np.random.default_rng(seed)
    codes = space.encode_categorical(np.arange(space.n_archs)).astype(np.float64)
    score = codes @ rng.normal(0.0, 1.0, codes.shape[1])
    score = (score - score.mean()) / score.std() + rng.normal(0.0, 0.3, space.n_archs)
    final = np.clip(88.0 + 3.0 * score, 40.0, 99.0)
    t = np.arange(1, N_EPOCHS + 1) / N_EPOCHS
    progress = (1.0 - np.exp(-3.0 * t)) / (1.0 - np.exp(-3.0))
    valid = (10.0 + (final[:, None] - 10.0) * progress[None, :])[:, None, :]
    edges = codes[:, :21].sum(axis=1)
    epoch_time = np.broadcast_to((1.0 + 0.1 * edges)[:, None, None], valid.shape)
    metrics = {
        "train_acc": np.minimum(valid + 2.0, 100.0),
        "valid_acc": valid,
        "test_acc": valid - 0.5,
        "train_time_s": epoch_time,
    }
    for split in ("train", "valid", "test"):
        metrics[f"{split}_loss"] = (100.0 - metrics[f"{split}_acc"]) / 40.0
    provenance = {
        "dataset": {
            "name": "synthetic",
            "splits": {"train": 100, "valid": 100, "test": 100},
            "split_seed": seed,
            "n_classes": 10,
            "input_shape": [1, 40],
        },
        "recipe": {"note": "synthetic NB101 values from a formula (tests); nothing was trained"},
        "code_version": __version__,
        "device": "none (synthetic)",
        "build_time_s": 0.0,
        "synthetic": True,
    }
    return {
        "space": space,
        "metrics": {k: v.astype(np.float32) for k, v in metrics.items()},
        "arch_metrics": {
            "params": 1e5 * (1.0 + edges),
            "flops": 1e7 * (1.0 + edges + codes[:, 21:].sum(axis=1)),
            "latency_ms": 1.0 + 0.1 * edges,
        },
        "seeds": [0],
        "provenance": provenance,
    }


def cell(rows, ops):
    """A (matrix, ops) pair from adjacency rows like ``"0110"`` and the interior ops."""
    return np.array([[int(c) for c in row] for row in rows]), ["input", *ops, "output"]


def result(arch, valid, epoch=N_EPOCHS):
    return conformance.told_result(arch, valid, epoch)


# -- NB201: the categorical encoding (no NB101 space needed) ----------------------------------


def test_nb201_categorical_round_trip_over_the_whole_space():
    space = get_space("nb201")
    assert space.categorical_sizes == (5,) * 6
    indices = np.arange(space.n_archs)
    codes = space.encode_categorical(indices)
    assert codes.shape == (space.n_archs, 6) and codes.dtype == np.int64
    np.testing.assert_array_equal(space.decode_categorical(codes), indices)
    ops = np.array([[space.ops.index(op) for op in space.arch(i)] for i in (0, 1, 777, 15624)])
    np.testing.assert_array_equal(codes[[0, 1, 777, 15624]], ops)
    # the algorithms' helpers are the space's API
    np.testing.assert_array_equal(op_codes(space, indices), codes)
    np.testing.assert_array_equal(from_op_codes(space, codes), indices)


def test_nb201_decode_rejects_malformed_codes():
    space = get_space("nb201")
    with pytest.raises(ArchError, match=r"shape \(n, 6\)"):
        space.decode_categorical(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ArchError, match="variable 2.*0..4"):
        space.decode_categorical([[0, 0, 5, 0, 0, 0]])
    with pytest.raises(ArchError, match="integer array"):
        space.decode_categorical(np.zeros((1, 6)))


# -- NB101: the categorical encoding -------------------------------------------------------


@pytest.mark.slow
def test_nb101_categorical_round_trip(nb101):
    assert nb101.categorical_sizes == (2,) * 21 + (3,) * 5
    all_codes = nb101.encode_categorical(np.arange(nb101.n_archs))
    assert all_codes.shape == (nb101.n_archs, 26) and all_codes.dtype == np.int64
    radix = np.cumprod((1, *nb101.categorical_sizes[:0:-1]))[::-1]  # mixed radix: one int each
    assert len(np.unique(all_codes @ radix)) == nb101.n_archs  # one code per arch
    assert (
        all_codes.min() == 0
        and (all_codes.max(axis=0) == np.array(nb101.categorical_sizes) - 1).all()
    )
    sample = np.random.default_rng(0).choice(nb101.n_archs, 3000, replace=False)
    np.testing.assert_array_equal(nb101.decode_categorical(all_codes[sample]), sample)
    np.testing.assert_array_equal(from_op_codes(nb101, op_codes(nb101, sample)), sample)


@pytest.mark.slow
def test_nb101_embedding_of_a_small_cell(nb101):
    # input -> conv3x3 -> output, and input -> output: 3 vertices
    i = nb101.index(cell(["011", "001", "000"], [CONV3]))
    code = nb101.encode_categorical(i)[0]
    edges = {(a, b) for k, (a, b) in enumerate(_pairs()) if code[k]}
    assert edges == {(0, 1), (0, 6), (1, 6)}  # the output sits in slot 6
    assert code[21:].tolist() == [0, 0, 0, 0, 0]  # conv3x3 in slot 1, unused slots op 0
    # an isomorphic cell, drawn in other slots, decodes to the same arch
    other = np.zeros(26, dtype=np.int64)
    other[[_pairs().index((0, 3)), _pairs().index((3, 6)), _pairs().index((0, 6))]] = 1
    other[21:] = [2, 1, 0, 2, 2]  # ops of pruned-away slots do not matter
    assert nb101.decode_categorical(other)[0] == i


@pytest.mark.slow
def test_nb101_decode_of_invalid_codes_is_minus_one(nb101):
    none = np.zeros(26, dtype=np.int64)  # no edges: the output is not reachable
    cut = none.copy()
    cut[_pairs().index((0, 1))] = 1  # input -> slot 1, which leads nowhere
    chain = none.copy()  # 0->1->2->3->4->5->6 plus 0->2, 0->3, 0->4, 0->5: 10 edges
    for pair in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (0, 3), (0, 4), (0, 5)]:
        chain[_pairs().index(pair)] = 1
    nine = chain.copy()
    nine[_pairs().index((0, 5))] = 0
    out = nb101.decode_categorical(np.stack([none, cut, chain, nine]))
    assert out.dtype == np.int64
    assert out[:3].tolist() == [-1, -1, -1]
    assert out[3] >= 0  # nine edges is allowed
    # edges that cannot reach the output are pruned before the rules are checked
    dead = none.copy()
    for pair in [(0, 1), (1, 6), (0, 2), (0, 3), (0, 4), (0, 5), (2, 3), (2, 4), (3, 4), (3, 5)]:
        dead[_pairs().index(pair)] = 1  # 10 edges, 2 of them on an input-to-output path
    dead[21] = 1  # slot 1: conv1x1
    assert nb101.decode_categorical(dead)[0] == nb101.index(cell(["010", "001", "000"], [CONV1]))
    with pytest.raises(ArchError, match="variable 21.*0..2"):
        nb101.decode_categorical([[0] * 21 + [3, 0, 0, 0, 0]])
    with pytest.raises(ArchError, match=r"shape \(n, 26\)"):
        nb101.decode_categorical(np.zeros((1, 6), dtype=np.int64))


def _pairs():
    return [(a, b) for a in range(7) for b in range(a + 1, 7)]


# -- NB101: the path encoding --------------------------------------------------------------


def _path_feature(*ops):
    """Feature of the path with these interior ops: offset by length, then base 3."""
    order = (CONV3, CONV1, POOL)
    code = 0
    for op in ops:
        code = code * 3 + order.index(op)
    return (3 ** len(ops) - 1) // 2 + code


@pytest.mark.slow
def test_nb101_path_encoding_of_hand_made_cells(nb101):
    assert nb101.n_paths == 364 == sum(3**k for k in range(6))
    one = nb101.encode_path(nb101.index(cell(["010", "001", "000"], [CONV3])))
    assert one.shape == (1, 364) and one.dtype == np.float32
    assert np.flatnonzero(one[0]).tolist() == [_path_feature(CONV3)]
    # two parallel paths: input -> conv1x1 -> output and input -> pool -> output
    two = nb101.encode_path(cell(["0110", "0001", "0001", "0000"], [CONV1, POOL]))[0]
    assert sorted(np.flatnonzero(two).tolist()) == sorted(
        [_path_feature(CONV1), _path_feature(POOL)]
    )
    # the direct edge is feature 0; a chain of two ops, first op most significant
    mixed = nb101.encode_path(cell(["0101", "0010", "0001", "0000"], [POOL, CONV1]))[0]
    assert sorted(np.flatnonzero(mixed).tolist()) == [0, _path_feature(POOL, CONV1)]
    assert _path_feature(POOL, CONV1) == 4 + 2 * 3 + 1
    # the longest path: five interior ops
    chain = ["0100000", "0010000", "0001000", "0000100", "0000010", "0000001", "0000000"]
    ops = [POOL, CONV3, CONV1, POOL, POOL]
    long = nb101.encode_path(cell(chain, ops))[0]
    assert np.flatnonzero(long).tolist() == [_path_feature(*ops)] and _path_feature(*ops) < 364


@pytest.mark.slow
def test_nb101_path_encoding_is_isomorphism_invariant_and_batched(nb101):
    sample = np.random.default_rng(1).choice(nb101.n_archs, 200, replace=False)
    batch = nb101.encode_path(sample)
    assert batch.shape == (200, 364) and set(np.unique(batch)) <= {0.0, 1.0}
    assert (batch.sum(axis=1) >= 1).all()  # every cell has an input-to-output path
    for i in sample[:20]:
        matrix, ops = nb101.cell(int(i))
        np.testing.assert_array_equal(nb101.encode_path((matrix, ops))[0], batch[sample == i][0])
    a = nb101.index(cell(["0110", "0001", "0001", "0000"], [CONV1, POOL]))
    b = nb101.index(cell(["0110", "0001", "0001", "0000"], [POOL, CONV1]))  # same arch
    assert a == b


# -- NB101: every algorithm -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(list_algorithms()))
def test_every_algorithm_searches_the_nb101_space(nb101_table, name):
    budget = default_budget(nb101_table, 25)
    trace = run_search(nb101_table, make_algorithm(name, seed=0), budget_s=budget, seed=0)
    archs = np.asarray(trace.arch)
    assert trace.n_queries >= 10
    assert ((archs >= 0) & (archs < nb101_table.space.n_archs)).all()
    assert np.isfinite(trace.valid_acc).all()
    again = run_search(nb101_table, make_algorithm(name, seed=0), budget_s=budget, seed=0)
    np.testing.assert_array_equal(again.arch, trace.arch)  # same seed, same trace


@pytest.mark.slow
def test_reinforce_on_nb101_masks_logits_and_learns_from_the_codes_it_drew(nb101):
    algorithm = Reinforce(seed=0)
    algorithm.setup(nb101, tuple(range(1, N_EPOCHS + 1)))
    p = algorithm.probabilities()
    assert p.shape == (26, 3)
    np.testing.assert_array_equal(p[:21, 2], 0.0)  # binary variables: third logit masked
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    valid = torch.as_tensor(np.arange(3)[None, :] < np.array(nb101.categorical_sizes)[:, None])
    logits = torch.tensor(algorithm.logits, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.01)
    rng = np.random.default_rng(1)
    num = den = 0.0
    differs = 0
    for _ in range(30):
        proposal = algorithm.ask()
        code = np.asarray(proposal.info)
        assert code.shape == (26,) and nb101.decode_categorical(code)[0] == proposal.arch
        differs += not np.array_equal(code, nb101.encode_categorical(proposal.arch)[0])
        reward = float(rng.uniform(50, 90))
        algorithm.tell(proposal, result(proposal.arch, reward))
        num, den = 0.9 * num + 0.1 * reward, 0.9 * den + 0.1
        masked = torch.where(valid, logits, torch.tensor(-torch.inf, dtype=logits.dtype))
        log_p = torch.log_softmax(masked, dim=1)[torch.arange(26), torch.as_tensor(code)].sum()
        optimizer.zero_grad()
        (-log_p * (reward - num / den)).backward()
        optimizer.step()
    assert differs > 0  # drawn codes are often not the arch's own embedding: info is used
    np.testing.assert_allclose(algorithm.logits, logits.detach().numpy(), rtol=1e-6, atol=1e-9)

    # a reward for the direct input -> output edge: its bit's probability goes up
    learner = Reinforce(seed=0, learning_rate=0.1)
    learner.setup(nb101, tuple(range(1, N_EPOCHS + 1)))
    direct = _pairs().index((0, 6))
    for _ in range(150):
        proposal = learner.ask()
        learner.tell(proposal, result(proposal.arch, 50.0 + 40.0 * proposal.info[direct]))
    assert learner.probabilities()[direct, 1] > 0.9


class DecodeSpy:
    """The NB101 space, recording what decode_categorical returns."""

    def __init__(self, space):
        self._space = space
        self.decoded: list[int] = []

    def __getattr__(self, name):
        return getattr(self._space, name)

    def decode_categorical(self, codes):
        out = self._space.decode_categorical(codes)
        self.decoded.extend(out.tolist())
        return out


@pytest.mark.slow
def test_bohb_on_nb101_models_every_variable_and_skips_invalid_codes(nb101):
    spy = DecodeSpy(nb101)
    # a wide kernel (bandwidth factor) redraws many variables: many codes are no arch
    algorithm = BOHB(seed=0, min_points=3, random_fraction=0.0, bandwidth_factor=300.0)
    algorithm.setup(spy, tuple(range(1, N_EPOCHS + 1)))
    assert algorithm._min_points == 3
    assert _default_min_points(nb101) == 27  # number of variables + 1
    rng = np.random.default_rng(2)
    good_code = np.zeros(26, dtype=np.int64)
    good_code[[_pairs().index((0, 1)), _pairs().index((1, 6))]] = 1
    for arch in nb101.sample(rng, 12).tolist():
        algorithm._observe(arch, N_EPOCHS, 60.0)
    for _ in range(4):
        algorithm._observe(int(nb101.decode_categorical(good_code)[0]), N_EPOCHS, 95.0)
    good, good_bw, bad, bad_bw = algorithm._model()
    assert good.shape[1] == bad.shape[1] == 26
    assert (good_bw <= (np.array(nb101.categorical_sizes) - 1) / nb101.categorical_sizes).all()
    proposals = [algorithm.ask() for _ in range(12)]
    archs = [p.arch for p in proposals]
    assert all(0 <= a < nb101.n_archs for a in archs)
    assert -1 in spy.decoded  # some draws were no arch, and none of them was proposed
    assert set(archs) <= set(spy.decoded)  # every new arch came from the model's draws


def _default_min_points(space):
    algorithm = BOHB(seed=0)
    algorithm.setup(space, tuple(range(1, N_EPOCHS + 1)))
    return algorithm._min_points
