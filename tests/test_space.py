"""Tests for nasbench_harness.space: conversions, errors, equivalence ids, moves, encodings."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasbench_harness.errors import ArchError, NasbenchError
from nasbench_harness.space import EDGES, OPS, PATHS, RULES, NB201Space, get_space

N = 15625
indices = st.integers(min_value=0, max_value=N - 1)
archs = st.tuples(*[st.sampled_from(OPS)] * 6)


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return get_space()


def edge_differences(space, a, b) -> int:
    return sum(x != y for x, y in zip(space.arch(a), space.arch(b)))


# -- conversions --------------------------------------------------------------


def test_contract_constants(space):
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert (space.name, space.ops, space.edges) == ("nb201", OPS, EDGES)
    assert (space.n_edges, space.n_archs) == (6, N)


def test_index_order(space):
    assert space.arch(0) == ("none",) * 6
    assert space.arch(N - 1) == ("avg_pool_3x3",) * 6
    assert space.index(("none",) * 5 + ("skip_connect",)) == 1
    assert space.index(("skip_connect",) + ("none",) * 5) == 5**5
    arch = ("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "none")
    assert space.index(arch) == sum(OPS.index(op) * 5 ** (5 - e) for e, op in enumerate(arch))


def test_string_form(space):
    arch = ("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "none")
    text = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert space.to_string(arch) == text
    assert space.parse(text) == arch
    assert space.index(text) == space.index(arch)


@settings(deadline=None)  # the first example may build the space's tables
@given(indices)
def test_round_trips_from_index(i):
    space = get_space()
    arch = space.arch(i)
    text = space.to_string(i)
    assert space.index(arch) == i
    assert space.index(list(arch)) == i
    assert space.index(text) == i
    assert space.parse(text) == arch
    assert space.index(np.int64(i)) == i
    assert space.index(np.int32(i)) == i
    assert space.arch(text) == arch and space.to_string(arch) == text


@settings(deadline=None)  # the first example may build the space's tables
@given(archs)
def test_round_trips_from_arch(arch):
    space = get_space()
    assert space.arch(space.index(arch)) == arch
    assert space.parse(space.to_string(arch)) == arch


def test_index_many(space):
    got = space.index_many(
        [0, "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|", (OPS[4],) * 6]
    )
    assert got.tolist() == [0, 1, N - 1]
    assert space.index_many(np.arange(5, dtype=np.int32)).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ArchError, match="15625"):
        space.index_many(np.array([3, 15625]))


def test_index_is_fast(space):
    text = space.to_string(1234)
    start = time.perf_counter()
    for _ in range(100_000):
        space.index(1234)
        space.index(text)
    assert time.perf_counter() - start < 1.0  # about 0.05 s on one core


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        (("conv_5x5",) + ("none",) * 5, ["'conv_5x5'", "valid ops", "nor_conv_3x3"]),
        (("none",) * 5, ["5 ops", "exactly 6"]),
        (("none",) * 7, ["7 ops", "exactly 6"]),
        (-1, ["-1", "0 to 15624"]),
        (N, ["15625", "0 to 15624"]),
        (np.int64(20000), ["20000", "0 to 15624"]),
        (True, ["bool"]),
        (1.5, ["1.5", "float"]),
        (None, ["None", "tuple of 6 op names"]),
        ("|none~0|+|none~0|none~1|", ["expected 3 node groups", "got 2", "write it like"]),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", ["got 4"]),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", ["node 2 must have 2", "got 1"]),
        (
            "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",
            ["node 2 must read from node 1", "'~0'"],
        ),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", ["from node 0", "'~1'"]),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", ["lacks '~0'"]),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["start and end with '|'"]),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["unknown op 'conv'", "valid ops"]),
    ],
)
def test_bad_archs_name_input_and_fix(space, bad, fragments):
    with pytest.raises(ArchError) as info:
        space.index(bad)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, NasbenchError) and isinstance(info.value, ValueError)


def test_other_methods_validate(space):
    for method in (space.arch, space.to_string, space.canonical, space.neighbours):
        with pytest.raises(ArchError, match="out of range"):
            method(N)
    with pytest.raises(ArchError, match="NB201 arch string"):
        space.parse(5)
    with pytest.raises(ArchError, match="unknown search space 'nb301'"):
        get_space("nb301")
    with pytest.raises(ArchError, match="known: exact"):
        space.canonical_ids_for("isomorphism")


# -- equivalence ids -----------------------------------------------------------


def test_counts(space):
    # exact rule: see the module docstring and tests/test_space_equivalence.py
    assert space.n_unique == 5234
    assert len(np.unique(space.canonical_ids_for("exact_nonaffine"))) == 5044
    # NAS-Bench-201's own to_unique_str(consider_zero=True)
    assert space.n_unique_nb201 == 6466
    # the string rules behind the 6,055 / 5,390 figures (not exact)
    assert len(np.unique(space.canonical_ids_for("nb201_dropzero"))) == 6055
    assert len(np.unique(space.canonical_ids_for("nb201_dropzero_nonaffine"))) == 5390
    assert set(RULES) == {
        "exact",
        "exact_nonaffine",
        "nb201",
        "nb201_dropzero",
        "nb201_dropzero_nonaffine",
    }


@pytest.mark.parametrize("rule", sorted(RULES))
def test_canonical_ids_are_representatives(space, rule):
    ids = space.canonical_ids_for(rule)
    assert ids.dtype == np.int64 and ids.shape == (N,)
    assert not ids.flags.writeable
    assert np.array_equal(ids[ids], ids)  # idempotent
    assert (ids <= np.arange(N)).all()  # the smallest index of its class
    # a class is exactly the set of archs sharing the id; its minimum is the id
    first = np.full(N, N)
    np.minimum.at(first, ids, np.arange(N))
    assert np.array_equal(first[ids], ids)


def test_unique_indices(space):
    assert np.array_equal(space.unique_indices, np.flatnonzero(space.canonical_ids == np.arange(N)))
    assert space.n_unique == len(space.unique_indices)
    assert space.canonical(0) == 0  # all 'none' is the zero class
    assert space.canonical("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") == 0


@settings(max_examples=200, deadline=None)  # the first example may build the tables
@given(indices)
def test_canonical_is_class_consistent(i):
    space = get_space()
    rep = space.canonical(i)
    assert space.canonical(rep) == rep
    assert space.canonical(space.to_string(i)) == rep == space.canonical(space.arch(i))
    assert space.canonical_nb201(space.arch(i)) == int(space.canonical_ids_nb201[i])
    # an arch with no path and no conv-on-zero shift computes zero
    if not space.is_connected(i) and "nor_conv" not in space.to_string(i):
        assert rep == 0


def arch_of(*ops: str) -> tuple[str, ...]:
    short = {"-": "none", "s": "skip_connect", "c1": "nor_conv_1x1", "c3": "nor_conv_3x3"}
    return tuple(short.get(op, "avg_pool_3x3" if op == "p" else op) for op in ops)


# (EDGES order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)
MERGED = {
    "pool is linear": (
        arch_of("s", "c3", "s", "-", "-", "p"),
        arch_of("c3", "-", "-", "p", "p", "-"),
    ),
    "conv on zero is its shift, any kernel": (
        arch_of("-", "-", "-", "-", "c1", "-"),
        arch_of("-", "-", "-", "-", "-", "c3"),
    ),
    "pooling a shift keeps it": (
        arch_of("-", "-", "-", "-", "c3", "-"),
        arch_of("-", "-", "c3", "-", "-", "p"),
    ),
    "sums are flat multisets": (
        arch_of("s", "p", "s", "c3", "-", "s"),
        arch_of("p", "s", "s", "c3", "-", "s"),
    ),
    "dead nodes do not count": (
        arch_of("c3", "-", "-", "s", "-", "-"),
        arch_of(*["-"] * 3, "s", "-", "-"),
    ),
    "shift plus input": (
        arch_of("-", "-", "c1", "s", "-", "s"),
        arch_of("-", "s", "-", "-", "c3", "s"),
    ),
    "one conv, two uses": (
        arch_of("c3", "-", "p", "-", "s", "s"),
        arch_of("c3", "-", "s", "-", "p", "s"),
    ),
    "conv of conv": (
        arch_of("c3", "-", "c1", "-", "-", "s"),
        arch_of("c3", "-", "-", "-", "c1", "-"),
    ),
}
SPLIT = {
    "one conv twice is not two convs": (
        arch_of("c1", "-", "s", "-", "s", "s"),
        arch_of("-", "s", "-", "c1", "-", "c1"),
    ),
    "1x1 conv of a shift is not a shift (running stats)": (
        arch_of("-", "-", "c3", "-", "-", "c1"),
        arch_of("-", "-", "-", "-", "c1", "-"),
    ),
    "x is not 2x": (arch_of("-", "-", "-", "s", "-", "-"), arch_of("s", "-", "-", "s", "s", "-")),
    "pool twice is not pool": (
        arch_of("p", "-", "-", "-", "p", "-"),
        arch_of("-", "-", "-", "p", "-", "-"),
    ),
    "conv(2x) is not conv(x) (BN eps)": (
        arch_of("s", "s", "s", "-", "-", "c3"),
        arch_of("-", "-", "-", "c3", "-", "-"),
    ),
}


@pytest.mark.parametrize("name", sorted(MERGED))
def test_exact_rule_merges(space, name):
    a, b = MERGED[name]
    assert a != b and space.canonical(a) == space.canonical(b)


@pytest.mark.parametrize("name", sorted(SPLIT))
def test_exact_rule_splits(space, name):
    a, b = SPLIT[name]
    assert space.canonical(a) != space.canonical(b)


def test_nb201_rule_quirks(space):
    ids = space.canonical_ids_nb201
    # a single zero input is '#': pooling it is zero
    assert ids[space.index(arch_of("-", "-", "-", "-", "p", "-"))] == 0
    # node 2 with two 'none' edges is '#+#', which is not '#': a conv on it is not zero
    assert ids[space.index(arch_of("-", "-", "-", "-", "-", "c3"))] != 0
    # zero terms are kept in sums: x + 0 differs from x
    x_plus_zero, x = arch_of("-", "s", "-", "-", "-", "s"), arch_of("-", "-", "-", "s", "-", "-")
    assert space.canonical_nb201(x_plus_zero) != space.canonical_nb201(x)
    assert space.canonical(x_plus_zero) == space.canonical(x)
    # but sums are unordered: node 3 = x + conv(x) either way round
    assert space.canonical_nb201(arch_of("s", "-", "-", "c3", "s", "-")) == space.canonical_nb201(
        arch_of("c3", "-", "-", "s", "s", "-")
    )


def test_precompute_is_fast():
    start = time.perf_counter()
    fresh = NB201Space()
    _ = fresh.canonical_ids, fresh.canonical_ids_nb201, fresh.connected, fresh.neighbour_table
    assert time.perf_counter() - start < 3.0  # about 0.5 s; loose for a shared machine
    assert get_space() is get_space("NB201")


# -- structure and moves --------------------------------------------------------


def test_connected(space):
    expected = np.zeros(N, dtype=bool)
    for i in range(N):
        ops = space.arch(i)
        alive = {0: True}
        for node in (1, 2, 3):
            alive[node] = any(
                alive[s] and ops[e] != "none" for e, (s, t) in enumerate(EDGES) if t == node
            )
        expected[i] = alive[3]
    assert np.array_equal(space.connected, expected)
    assert space.connected.dtype == bool and not space.is_connected(0)
    assert space.is_connected(arch_of("-", "-", "-", "s", "-", "-"))
    assert not space.is_connected(arch_of("s", "s", "s", "-", "-", "-"))


@settings(deadline=None)  # the first example may build the space's tables
@given(indices)
def test_neighbours(i):
    space = get_space()
    found = space.neighbours(i)
    assert len(found) == 24 and len(set(found)) == 24 and i not in found
    assert all(edge_differences(space, i, j) == 1 for j in found)
    assert found == space.neighbour_table[i].tolist()
    assert all(i in space.neighbours(j) for j in found[:3])


def test_neighbour_table(space):
    table = space.neighbour_table
    assert table.shape == (N, 24) and table.dtype == np.int64
    assert table.min() >= 0 and table.max() < N
    assert space.neighbours(0)[:4] == [5**5 * k for k in (1, 2, 3, 4)]


@settings(deadline=None)  # the first example may build the space's tables
@given(indices, st.integers(0, 2**32 - 1))
def test_mutate_changes_one_edge(i, seed):
    space = get_space()
    child = space.mutate(i, np.random.default_rng(seed))
    assert isinstance(child, int) and edge_differences(space, i, child) == 1
    assert child == space.mutate(space.to_string(i), np.random.default_rng(seed))


def test_mutate_covers_all_neighbours(space):
    rng = np.random.default_rng(0)
    seen = {space.mutate(77, rng) for _ in range(1000)}
    assert seen == set(space.neighbours(77))


def test_sample_uses_only_the_generator(space):
    state = np.random.get_state()  # noqa: NPY002 (checks the global state is untouched)
    a = space.sample(np.random.default_rng(5), size=100)
    b = space.sample(np.random.default_rng(5), size=100)
    assert np.array_equal(a, b) and a.dtype == np.int64 and a.shape == (100,)
    assert a.min() >= 0 and a.max() < N
    one = space.sample(np.random.default_rng(5))
    assert isinstance(one, int) and one == a[0]
    assert space.sample(np.random.default_rng(5), size=(2, 3)).shape == (2, 3)
    assert not np.array_equal(a, space.sample(np.random.default_rng(6), size=100))
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1])  # untouched


def test_rng_must_be_a_generator(space):
    for call in (lambda: space.sample(5), lambda: space.mutate(0, np.random.RandomState(0))):
        with pytest.raises(TypeError, match="default_rng"):
            call()


# -- encodings --------------------------------------------------------------------


def test_encode_onehot(space):
    x = space.encode_onehot([0, N - 1, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert x.shape == (3, 30) and x.dtype == np.float32
    assert (x.sum(axis=1) == 6).all()
    assert x[0].reshape(6, 5)[:, 0].all() and x[1].reshape(6, 5)[:, 4].all()
    assert x[2].reshape(6, 5)[0, 3] == 1
    assert space.encode_onehot(7).shape == (1, 30)
    assert np.array_equal(space.encode_onehot(space.arch(7)), space.encode_onehot([7]))
    assert space.encode_onehot(np.arange(N)).shape == (N, 30)


def test_encode_path(space):
    assert space.n_paths == 100 == sum(4 ** len(p) for p in PATHS)
    x = space.encode_path(np.arange(N))
    assert x.shape == (N, 100) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    # one feature per path without 'none': at most 4 set, none when disconnected
    assert (x.sum(axis=1) <= 4).all()
    assert ((x.sum(axis=1) > 0) == space.connected).all()
    assert x[0].sum() == 0
    # all skip: each path shape has exactly its all-skip op sequence
    skip = space.encode_path(("skip_connect",) * 6)[0]
    assert np.flatnonzero(skip).tolist() == [0, 4, 20, 36]
    # only 0->3 as nor_conv_3x3: path (3,), op code 2
    only = space.encode_path(arch_of("-", "-", "-", "c3", "-", "-"))[0]
    assert np.flatnonzero(only).tolist() == [2]
    # 0->1->2->3 as pool, conv1x1, skip: offset 36 + (3*4 + 1)*4 + 0
    chain = space.encode_path(arch_of("p", "-", "c1", "-", "-", "s"))[0]
    assert np.flatnonzero(chain).tolist() == [36 + (3 * 4 + 1) * 4]
    # against a direct reading of the definition, for every arch
    live_ops = OPS[1:]
    sizes = [4 ** len(p) for p in PATHS]
    names = [
        (path, ops)
        for path, size in zip(PATHS, sizes)
        for ops in itertools.product(live_ops, repeat=len(path))
    ]
    for i in range(0, N, 7):
        arch = space.arch(i)
        expected = {
            (p, tuple(arch[e] for e in p)) for p in PATHS if "none" not in [arch[e] for e in p]
        }
        assert {names[k] for k in np.flatnonzero(x[i])} == expected


def test_cli_space_info_for_both_spaces(capsys):
    import json

    from nasbench_harness.cli import main

    assert main(["space", "info", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_archs"], out["n_unique"], out["n_unique_nb201"]) == (15625, 5234, 6466)
    assert out["n_edges"] == 6 and out["n_unique_by_rule"]["exact"] == 5234
    assert main(["space", "info", "--space", "NB101"]) == 0  # the shared keys only
    text = capsys.readouterr().out
    assert text.startswith("space nb101: ops ") and "423,624 architectures" in text
    assert main(["space", "info", "--space", "nb101", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # DESIGN.md's keys, the nb201-only one null
    assert {"space", "ops", "n_archs", "n_unique", "n_unique_nb201"} <= set(out)
    assert out["n_archs"] == 423624 and out["n_unique_nb201"] is None
    with pytest.raises(SystemExit) as exit_info:
        main(["space", "info", "--space", "nb301"])
    assert exit_info.value.code == 2 and "invalid choice: 'nb301'" in capsys.readouterr().err


def test_nb101_space_is_cached_where_the_data_is(tmp_path, monkeypatch):
    from nasbench_harness import data, space_nb101

    monkeypatch.delenv("NASBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert space_nb101._cache_path().parent == data.cache_dir() == tmp_path / "xdg/nasbench-harness"
    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(tmp_path / "mine"))
    assert space_nb101._cache_path().parent == tmp_path / "mine"


@pytest.mark.parametrize(
    ("argv", "blame", "names"),
    [
        (["space", "info", "--space", "nb301"], "nasbench space info", "nb301"),
        (["search", "--bogus"], "nasbench search", "--bogus"),
        (["frob"], "nasbench", "frob"),
        (["build", "--workers"], "nasbench build", "--workers"),
    ],
)
def test_cli_usage_errors_are_one_line_naming_the_input_and_the_help(capsys, argv, blame, names):
    from nasbench_harness.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"{blame}: error: ")
    assert names in err and err.rstrip().endswith(f"see `{blame} --help`")
