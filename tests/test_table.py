"""Tests of nasbench_harness.table: format v1 writer, reader, validator, synthetic tables."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats

from nasbench_harness.errors import ArchError, QueryError, TableFormatError
from nasbench_harness.space import get_space
from nasbench_harness.table import (
    ENCODING_VERSION,
    Table,
    open_table,
    schema,
    store_proxy,
    synthetic_data,
    validate_table,
    write_table,
)
from nasbench_harness.table import reader as reader_module
from nasbench_harness.table import writer as writer_module

DATA = Path(__file__).resolve().parent / "data"
V1 = DATA / "nb201-synthetic-v1.h5"
V0 = DATA / "nb201-synthetic-v0.h5"


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


@pytest.fixture(scope="module")
def table() -> Table:
    return open_table(V1)


@pytest.fixture(scope="module")
def small_data():
    """Arguments of write_table for a small synthetic table (2 seeds, 4 epochs)."""
    return synthetic_data(n_seeds=2, n_epochs=4, seed=3, created="2024-01-01T00:00:00Z")


def _copy(src: Path, tmp_path: Path, name: str = "t.h5") -> Path:
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def _with(data: dict, **changes) -> dict:
    """A copy of write_table arguments with some metrics replaced."""
    out = dict(data)
    out["metrics"] = {**data["metrics"], **changes.pop("metrics", {})}
    out["arch_metrics"] = {**data["arch_metrics"], **changes.pop("arch_metrics", {})}
    out.update(changes)
    return out


def _member_and_rep(space) -> tuple[int, int]:
    canon = np.asarray(space.canonical_ids)
    member = int(np.flatnonzero(canon != np.arange(canon.size))[0])
    return member, int(canon[member])


# -- the committed fixtures ----------------------------------------------------


def test_fixture_is_a_valid_v1_table(table):
    assert validate_table(V1) == []
    assert V1.stat().st_size < 3_000_000
    assert table.n_archs == 15625 and table.n_seeds == 3 and table.n_epochs == 12
    assert table.seeds.tolist() == [777, 888, 999]
    assert table.epochs.tolist() == list(range(1, 13))
    assert table.provenance["synthetic"] is True
    assert table.provenance["dataset"]["name"] == "synthetic"
    assert table.n_classes == 10
    assert table.n_unique == get_space("nb201").n_unique
    assert set(schema.EPOCH_METRICS) <= set(table.metric_names)
    assert {"params", "flops", "latency_ms"} <= set(table.metric_names)
    with h5py.File(V1, "r") as f:
        assert f.attrs["encoding-type"] == "nasbench-table"
        assert f.attrs["encoding-version"] == ENCODING_VERSION
        for name in schema.EPOCH_METRICS:
            ds = f[f"metrics/{name}"]
            assert ds.dtype == np.float32 and ds.compression == "gzip" and ds.shuffle
            assert ds.attrs["units"] == schema.UNITS[name]
        assert f["arch_metrics/params"].dtype == np.float64


def test_committed_fixtures_are_what_make_fixtures_writes(tmp_path):
    # docs/format.md promises they regenerate byte for byte: a change of the format or of
    # the generator (a metric's description, say) must come with regenerated fixtures
    import sys

    sys.path.insert(0, str(DATA.parent))
    try:
        import make_fixtures
    finally:
        sys.path.pop(0)
    for make, committed in (
        (make_fixtures.make_v1, V1),
        (make_fixtures.make_v0, DATA / "nb201-synthetic-v0.h5"),
    ):
        fresh = make(tmp_path / committed.name)
        assert fresh.read_bytes() == committed.read_bytes(), committed.name


def test_old_version_fixture_is_refused_with_advice():
    with pytest.raises(TableFormatError) as info:
        open_table(V0)
    message = str(info.value)
    assert str(V0) in message and "version 0" in message and "reads version 1" in message
    assert "convert" in message and "\n" not in message
    assert len(validate_table(V0)) == 1


def test_newer_version_says_upgrade(tmp_path):
    path = _copy(V1, tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["encoding-version"] = "2"
    with pytest.raises(TableFormatError, match="version 2.*upgrade nasbench-harness"):
        open_table(path)


def test_other_encoding_type_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
    with pytest.raises(TableFormatError, match="not a nasbench table"):
        open_table(path)


# -- damaged files ------------------------------------------------------------


def test_truncated_file(tmp_path):
    path = _copy(V1, tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(TableFormatError) as info:
        open_table(path)
    assert str(path) in str(info.value) and "truncated" in str(info.value)
    problems = validate_table(path)
    assert len(problems) == 1 and "truncated" in problems[0]


def test_non_hdf5_and_missing_files(tmp_path):
    text = tmp_path / "table.h5"
    text.write_text("arch,valid_acc\n0,10.0\n")
    with pytest.raises(TableFormatError, match="not an HDF5 file"):
        open_table(text)
    assert len(validate_table(text)) == 1
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert "not an HDF5 file" in validate_table(empty)[0]
    with pytest.raises(TableFormatError, match="no such table file"):
        open_table(tmp_path / "absent.h5")
    assert validate_table(tmp_path / "absent.h5")[0].endswith("check the path")


def test_missing_dataset(tmp_path):
    path = _copy(V1, tmp_path)
    with h5py.File(path, "r+") as f:
        del f["metrics/test_loss"]
    with pytest.raises(TableFormatError, match=r"missing dataset /metrics/test_loss"):
        open_table(path)
    assert any("/metrics/test_loss: missing" in p for p in validate_table(path))


def test_default_table(monkeypatch, tmp_path):
    monkeypatch.setenv("NASBENCH_DEFAULT_TABLE", str(V1))
    assert open_table().path == V1
    monkeypatch.setenv("NASBENCH_DEFAULT_TABLE", str(tmp_path / "nothing.h5"))
    with pytest.raises(TableFormatError, match="NASBENCH_DEFAULT_TABLE"):
        open_table()
    monkeypatch.delenv("NASBENCH_DEFAULT_TABLE")
    expected = reader_module.DEFAULT_TABLE_DIR / reader_module.DEFAULT_TABLE_NAME
    assert reader_module.default_table_path() == expected
    assert expected.parent.name == "benchmark_data"


# -- writing ------------------------------------------------------------------


def test_round_trip(tmp_path, small_data, space):
    path = write_table(tmp_path / "t.h5", **small_data)
    assert validate_table(path) == []
    t = open_table(path)
    canon = np.asarray(space.canonical_ids)
    for name, values in small_data["metrics"].items():
        np.testing.assert_array_equal(t.array(name), values[canon])
        assert t.array(name).dtype == np.float32
    for name, values in small_data["arch_metrics"].items():
        np.testing.assert_array_equal(t.array(name), values[canon])
    assert t.seeds.tolist() == small_data["seeds"].tolist()
    np.testing.assert_array_equal(t.canonical, canon)
    for key, value in small_data["provenance"].items():
        assert t.provenance[key] == value
    assert t.provenance["epochs"] == 4
    with pytest.raises(ValueError):
        t.array("valid_acc")[0, 0, 0] = 1.0  # read-only
    assert len(t.checksum) == 64 and t.checksum == open_table(path).checksum
    assert not list(tmp_path.glob("*.tmp"))


def test_writer_fills_member_rows_from_representative(tmp_path, small_data, space):
    member, rep = _member_and_rep(space)
    valid = small_data["metrics"]["valid_acc"].copy()
    valid[member] = np.nan  # members need no data of their own
    path = write_table(tmp_path / "t.h5", **_with(small_data, metrics={"valid_acc": valid}))
    t = open_table(path)
    np.testing.assert_array_equal(t.array("valid_acc")[member], valid[rep])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"metrics": {"valid_acc": None}}, "missing required metric"),
        ({"metrics": {"top1": np.zeros((15625, 2, 4))}}, "unknown epoch metric"),
        ({"metrics": {"valid_acc": np.zeros((15625, 3, 4))}}, "must have shape"),
        ({"metrics": {"valid_acc": np.full((15625, 2, 4), 101.0)}}, r"outside \[0, 100\]"),
        ({"metrics": {"train_time_s": np.full((15625, 2, 4), -1.0)}}, "negative"),
        ({"metrics": {"test_acc": np.full((15625, 2, 4), np.inf)}}, "infinite"),
        ({"metrics": {"valid_acc": np.full((15625, 2, 4), "a")}}, "real numbers"),
        ({"arch_metrics": {"params": np.zeros(10)}}, "must have shape"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"provenance": {"space": "nb201"}}, "provenance is missing key"),
        ({"provenance_change": {"seeds": [1, 2]}}, "arrays say"),
        ({"provenance_change": {"created": "yesterday"}}, "ISO 8601"),
        ({"canonical": np.r_[0, 1, 2, 4, 5, 5, np.arange(6, 15625)]}, "representative map"),
        ({"canonical": np.r_[0, 2, 2, np.arange(3, 15625)]}, "not isomorphic"),
    ],
)
def test_writer_refuses_bad_input(tmp_path, small_data, change, match):
    args = _with(small_data)
    if "metrics" in change:
        for name, value in change["metrics"].items():
            if value is None:
                del args["metrics"][name]
            else:
                args["metrics"][name] = value
    if "arch_metrics" in change:
        args["arch_metrics"].update(change["arch_metrics"])
    if "provenance_change" in change:
        args["provenance"] = {**args["provenance"], **change["provenance_change"]}
    for key in ("seeds", "provenance", "canonical"):
        if key in change:
            args[key] = change[key]
    with pytest.raises(TableFormatError, match=match):
        write_table(tmp_path / "t.h5", **args)
    assert not (tmp_path / "t.h5").exists()


def test_failed_write_leaves_existing_file_intact(tmp_path, small_data, monkeypatch):
    path = _copy(V1, tmp_path)
    before = path.read_bytes()
    bad = _with(small_data, metrics={"valid_acc": np.full((15625, 2, 4), 200.0)})
    with pytest.raises(TableFormatError):
        write_table(path, **bad)
    calls = []

    def crash(*args, **kwargs):  # fail in the middle of writing the datasets
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_create(*args, **kwargs)

    real_create = writer_module._create
    monkeypatch.setattr(writer_module, "_create", crash)
    with pytest.raises(OSError, match="disk full"):
        write_table(path, **small_data)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    assert validate_table(path) == []


def test_store_proxy(tmp_path, space):
    path = _copy(V1, tmp_path)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(15625, 2))
    scores[7, 1] = np.nan
    store_proxy(path, "jacov", scores, {"definition": "test proxy", "seeds": [1, 2]})
    store_proxy(path, "snip", scores[:, 0], {"definition": "other", "seeds": [5], "extra": [1]})
    t = open_table(path)
    assert t.proxy_names == ("jacov", "snip")
    assert "proxy/jacov" in t.metric_names
    assert t.proxy_attrs["jacov"]["seeds"] == [1, 2]
    assert t.proxy_attrs["snip"]["extra"] == [1]
    assert t.proxy_attrs["jacov"]["n_failures"] == int(np.isnan(scores[space.unique_indices]).sum())
    rep = int(space.canonical_ids[7])
    assert t.query(7, "proxy/jacov", seed=1) == scores[rep, 0]
    expected = np.nanmean(scores[rep]) if rep != 7 else scores[7, 0]
    assert t.query(7, "proxy/jacov") == pytest.approx(expected)
    with pytest.raises(QueryError, match="1, 2"):
        t.query(7, "proxy/jacov", seed=777)
    np.testing.assert_array_equal(
        t.query_many(np.arange(100), "proxy/jacov"),
        [t.query(i, "proxy/jacov") for i in range(100)],
    )
    assert validate_table(path) == []
    # replacing one proxy keeps the other and the rest of the table
    store_proxy(path, "jacov", scores[:, 0], {"definition": "v2", "seeds": [3]})
    t2 = open_table(path)
    assert t2.proxy_attrs["jacov"]["definition"] == "v2" and "snip" in t2.proxy_names
    np.testing.assert_array_equal(t2.array("valid_acc"), open_table(V1).array("valid_acc"))
    with pytest.raises(TableFormatError, match="proxy name"):
        store_proxy(path, "a/b", scores[:, 0], {"definition": "x", "seeds": [1]})
    with pytest.raises(TableFormatError, match="definition"):
        store_proxy(path, "x", scores[:, 0], {"seeds": [1]})
    with pytest.raises(TableFormatError, match="seeds"):
        store_proxy(path, "x", scores, {"definition": "x", "seeds": [1]})
    assert not list(tmp_path.glob("*.tmp"))


def test_store_proxy_concurrent_calls_keep_both(tmp_path, monkeypatch):
    """Two processes storing different proxies in one table keep both (no lost update)."""
    import threading

    from nasbench_harness.table import writer

    path = _copy(V1, tmp_path)
    started, go = threading.Event(), threading.Event()
    prepare = writer._prepare_proxy

    def slow_prepare(name, *args):
        if name == "first":  # hold the first call between its read and its replace
            started.set()
            go.wait(timeout=30)
        return prepare(name, *args)

    monkeypatch.setattr(writer, "_prepare_proxy", slow_prepare)
    errors = []

    def store(name):
        try:
            store_proxy(path, name, np.zeros(15625), {"definition": name, "seeds": [0]})
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    first = threading.Thread(target=store, args=("first",))
    second = threading.Thread(target=store, args=("second",))
    first.start()
    assert started.wait(timeout=30)
    second.start()
    second.join(timeout=2.0)  # without the lock it finishes here, on the old file
    go.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert not errors
    assert open_table(path).proxy_names == ("first", "second")


# -- queries ------------------------------------------------------------------


def test_query_semantics(table, space):
    arch = 1234
    row = int(space.canonical_ids[arch])
    valid = table.array("valid_acc")
    assert table.query(arch) == float(np.mean(valid[row, :, -1], dtype=np.float64))
    assert table.query(arch, epoch=12) == table.query(arch)
    assert table.query(arch, "test_acc", epoch=3, seed=888) == float(
        table.array("test_acc")[row, 1, 2]
    )
    assert table.query(arch, "params") == float(table.array("params")[row])
    text = space.to_string(arch)
    ops = space.arch(arch)
    assert table.query(text) == table.query(ops) == table.query(np.int64(arch))


def test_query_with_nan_holes(tmp_path, small_data, space):
    member, rep = _member_and_rep(space)
    other = int(space.unique_indices[-1])  # another representative, after rep
    valid = small_data["metrics"]["valid_acc"].copy()
    valid[rep, 0, :] = np.nan  # seed 0 of this arch is missing
    valid[other, :, 3] = np.nan  # epoch 4 of this arch is missing in every seed
    times = small_data["metrics"]["train_time_s"].copy()
    times[rep, 0, 1] = np.nan  # the time of epoch 2 of seed 0 is missing
    changed = {"valid_acc": valid, "train_time_s": times}
    path = write_table(tmp_path / "t.h5", **_with(small_data, metrics=changed))
    t = open_table(path)  # NaN holes are legal: missing results
    seeds = small_data["seeds"].tolist()
    assert t.query(rep) == pytest.approx(float(valid[rep, 1, -1]))
    assert t.query(member) == t.query(rep)
    assert np.isnan(t.query(rep, seed=seeds[0]))
    assert np.isnan(t.query(other, epoch=4))
    assert np.isnan(t.query_many([other], epoch=4)[0])
    expected = float(np.mean(valid[other, :, 2], dtype=np.float64))
    assert t.query(other, epoch=3) == pytest.approx(expected)
    assert t.cost(rep, epoch=1, seed=seeds[0]) == pytest.approx(float(times[rep, 0, 0]))
    assert np.isnan(t.cost(rep, epoch=2, seed=seeds[0]))  # unknown from epoch 2 on
    assert t.cost(rep) == t.cost(rep, seed=seeds[1])  # mean over seeds that have it
    problems = validate_table(path)
    assert len(problems) == 2
    assert "/metrics/train_time_s: 1 NaN value(s)" in problems[1]
    assert f"/metrics/valid_acc: {4 + 2} NaN value(s) of representative archs" in problems[0]
    assert f"first at (arch {rep}, seed {seeds[0]}, epoch 1)" in problems[0]
    assert f"(arch {other}, seed {seeds[0]}, epoch 4)" in problems[0]


def test_query_many_equals_query(table, space):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, table.n_archs, 500)
    for metric in ("valid_acc", "train_loss", "params", "latency_ms"):
        expected = [table.query(int(i), metric) for i in idx]
        np.testing.assert_array_equal(table.query_many(idx, metric), expected)
    expected = [table.query(int(i), "test_acc", epoch=5, seed=999) for i in idx]
    np.testing.assert_array_equal(table.query_many(idx, "test_acc", epoch=5, seed=999), expected)
    epochs = rng.integers(1, 13, idx.size)
    seeds = rng.choice(table.seeds, idx.size)
    got = table.query_many(idx, "valid_acc", epoch=epochs, seed=seeds)
    expected = [
        table.query(int(i), epoch=int(e), seed=int(s)) for i, e, s in zip(idx, epochs, seeds)
    ]
    np.testing.assert_array_equal(got, expected)
    strings = [space.to_string(int(i)) for i in idx[:50]]
    np.testing.assert_array_equal(table.query_many(strings), table.query_many(idx[:50]))
    tuples = [space.arch(int(i)) for i in idx[:50]]
    np.testing.assert_array_equal(table.query_many(tuples), table.query_many(idx[:50]))
    np.testing.assert_array_equal(table.query_many(idx.tolist()), table.query_many(idx))
    assert table.query_many([]).shape == (0,)
    assert table.query_many(idx).dtype == np.float64


def test_cost_is_cumulative_train_time(table, space):
    arch = 4321
    row = int(space.canonical_ids[arch])
    times = table.array("train_time_s")[row].astype(np.float64)
    cumulative = np.cumsum(times, axis=1)
    for epoch in (1, 5, 12):
        for k, seed in enumerate(table.seeds.tolist()):
            assert table.cost(arch, epoch, seed) == pytest.approx(cumulative[k, epoch - 1])
        assert table.cost(arch, epoch) == pytest.approx(cumulative[:, epoch - 1].mean())
    assert table.cost(arch) == table.cost(arch, 12)
    idx = np.arange(0, 15625, 97)
    np.testing.assert_array_equal(table.cost_many(idx, 7), [table.cost(int(i), 7) for i in idx])


def test_isomorphic_archs_answer_identically(table, space):
    canon = np.asarray(space.canonical_ids)
    members = np.flatnonzero(canon != np.arange(canon.size))[::50]
    for i in members:
        rep = int(canon[i])
        for metric in table.metric_names:
            assert table.query(int(i), metric) == table.query(rep, metric)
        assert table.query(int(i), seed=888, epoch=2) == table.query(rep, seed=888, epoch=2)
        assert table.cost(int(i)) == table.cost(rep)


def test_members_are_answered_from_their_representatives_row(tmp_path, table, space):
    # The writer copies a representative's rows over its members, so the test above cannot
    # tell a reader that ignores /archs/canonical: here the members' own rows are garbage.
    path = tmp_path / "scrambled.h5"
    shutil.copy(table.path, path)
    canon = np.asarray(space.canonical_ids)
    members = np.flatnonzero(canon != np.arange(canon.size))[::50]
    with h5py.File(path, "r+") as f:
        for metric in ("valid_acc", "train_time_s"):
            values = f[f"metrics/{metric}"][...]
            values[members] = -1.0
            f[f"metrics/{metric}"][...] = values
    scrambled = open_table(path)
    for i in members:
        rep = int(canon[i])
        assert scrambled.query(int(i), "valid_acc") == table.query(rep, "valid_acc") >= 0
        assert scrambled.query(int(i), seed=888, epoch=2) == table.query(rep, seed=888, epoch=2)
        assert scrambled.cost(int(i)) == table.cost(rep) > 0
    got = scrambled.query_many(members.tolist(), metric="valid_acc")
    np.testing.assert_array_equal(got, [table.query(int(canon[i]), "valid_acc") for i in members])


def test_query_errors(table):
    with pytest.raises(QueryError, match=r"unknown metric 'top1'.*valid_acc"):
        table.query(0, "top1")
    with pytest.raises(QueryError, match="epochs run from 1 to 12"):
        table.query(0, epoch=13)
    with pytest.raises(QueryError, match="epochs run from 1 to 12"):
        table.query(0, epoch=0)
    with pytest.raises(QueryError, match="epochs run from 1 to 12"):
        table.cost(0, epoch=2.5)
    with pytest.raises(QueryError, match="777, 888, 999"):
        table.query(0, seed=1)
    with pytest.raises(QueryError, match="777, 888, 999"):
        table.query_many([0, 1], seed=[777, 5])
    with pytest.raises(QueryError, match="1 to 12"):
        table.query_many([0, 1], epoch=[1, 40])
    with pytest.raises(ArchError):
        table.query(15625)
    with pytest.raises(ArchError):
        table.query("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ArchError):
        table.query_many(np.array([0, 99999]))
    with pytest.raises(ArchError):
        table.query_many(["|nope|"])
    with pytest.raises(ArchError, match="use query"):
        table.query_many(5)
    with pytest.raises(QueryError):
        table.array("nothing")


def test_lazy_loading_and_changed_file(tmp_path):
    path = _copy(V1, tmp_path)
    t = open_table(path, preload=False)
    assert t._epoch_data == {}
    assert t.query(10) == open_table(V1).query(10)
    assert set(t._epoch_data) == {"valid_acc"}
    shutil.copyfile(V1, tmp_path / "other.h5")
    os.replace(tmp_path / "other.h5", path)  # the file is replaced under the open table
    with pytest.raises(TableFormatError, match="changed on disk"):
        t.query(10, "test_acc")
    assert t.query(11) == open_table(V1).query(11)  # what was read stays usable


def test_pickle_round_trip(table):
    clone = pickle.loads(pickle.dumps(table))
    assert clone.query(77, "test_loss", seed=888) == table.query(77, "test_loss", seed=888)


# -- analysis -----------------------------------------------------------------


def test_frame(table, space):
    df = table.frame()
    assert len(df) == table.n_archs * table.n_seeds
    for column in ("arch", "arch_str", "canonical", "seed", "valid_acc", "test_acc"):
        assert column in df.columns
    for column in ("train_time_total_s", "params", "flops", "latency_ms"):
        assert column in df.columns
    row = df[(df.arch == 4000) & (df.seed == 999)].iloc[0]
    assert row.arch_str == space.to_string(4000)
    assert row.canonical == space.canonical_ids[4000]
    assert row.valid_acc == table.query(4000, seed=999)
    assert row.params == table.query(4000, "params")
    assert row.train_time_total_s == pytest.approx(table.cost(4000, seed=999))


def test_noise_ceiling_matches_scipy(tmp_path, small_data, space):
    valid = small_data["metrics"]["valid_acc"].copy()
    reps = space.unique_indices
    valid[reps[:10], 0, -1] = np.nan  # excluded from pairs with seed 0
    path = write_table(tmp_path / "t.h5", **_with(small_data, metrics={"valid_acc": valid}))
    result = open_table(path).noise_ceiling()
    assert result["epoch"] == 4 and result["n_unique"] == reps.size
    assert len(result["pairs"]) == 1
    pair = result["pairs"][0]
    assert pair["seeds"] == small_data["seeds"].tolist()
    x, y = valid[reps, 0, -1], valid[reps, 1, -1]
    connected = np.asarray(space.connected)[reps]
    for label, mask in (("all", np.ones(reps.size, bool)), ("connected", connected)):
        ok = mask & ~np.isnan(x) & ~np.isnan(y)
        assert pair[label]["n"] == ok.sum()
        assert pair[label]["n_excluded"] == (mask & ~ok).sum()
        assert pair[label]["kendall_tau"] == pytest.approx(stats.kendalltau(x[ok], y[ok])[0])
        assert pair[label]["spearman_rho"] == pytest.approx(stats.spearmanr(x[ok], y[ok])[0])
        assert result["mean"][label]["kendall_tau"] == pair[label]["kendall_tau"]


def test_noise_ceiling_above_chance(tmp_path, small_data, space):
    """Archs at chance level in some seed are left out of the above_chance subset."""
    valid = small_data["metrics"]["valid_acc"].copy()
    reps = space.unique_indices
    valid[reps[:30], 1, -1] = 10.5  # chance level in seed 1
    path = write_table(tmp_path / "t.h5", **_with(small_data, metrics={"valid_acc": valid}))
    table = open_table(path)
    result = table.noise_ceiling()
    chance = result["chance"]
    assert chance["accuracy"] == pytest.approx(100.0 / table.n_classes)
    x, y = valid[reps, 0, -1], valid[reps, 1, -1]
    above = (x > chance["threshold"]) & (y > chance["threshold"])
    assert chance["threshold"] > 10.5 and not above[:30].any()
    assert result["n_above_chance"] == above.sum()
    pair = result["pairs"][0]["above_chance"]
    assert pair["n"] == above.sum()
    assert pair["kendall_tau"] == pytest.approx(stats.kendalltau(x[above], y[above])[0])
    assert "chance" not in table.noise_ceiling("valid_loss")


def test_noise_ceiling_pairs_ignore_other_seeds_gaps(tmp_path, table):
    # NB201 imports: seed 999 exists for only some archs; the (777, 888) pair must not
    # lose the archs that lack it
    path = tmp_path / "gaps.h5"
    shutil.copy(table.path, path)
    reps = np.unique(np.asarray(table.canonical))
    with h5py.File(path, "r+") as f:
        valid = f["metrics/valid_acc"][...]
        valid[reps[::2], 2, :] = np.nan
        f["metrics/valid_acc"][...] = valid
    result = open_table(path).noise_ceiling()
    thr = result["chance"]["threshold"]
    x, y = valid[reps, 0, -1], valid[reps, 1, -1]
    both = (x > thr) & (y > thr)
    pair = result["pairs"][0]
    assert pair["seeds"] == [777, 888] and both.sum() > reps.size * 0.9
    assert pair["above_chance"]["n"] == both.sum() and pair["above_chance"]["n_excluded"] == 0
    assert pair["above_chance"]["kendall_tau"] == pytest.approx(
        stats.kendalltau(x[both], y[both])[0]
    )
    gapped = result["pairs"][1]["above_chance"]  # (777, 999): half the archs lack 999
    assert gapped["n_excluded"] == reps[::2].size


def test_noise_ceiling_three_seeds(table):
    result = table.noise_ceiling()
    assert [p["seeds"] for p in result["pairs"]] == [[777, 888], [777, 999], [888, 999]]
    taus = [p["connected"]["kendall_tau"] for p in result["pairs"]]
    assert result["mean"]["connected"]["kendall_tau"] == pytest.approx(np.mean(taus))
    assert 0.5 < result["mean"]["connected"]["kendall_tau"] < 1.0


def test_info_is_json(table):
    info = table.info()
    text = json.dumps(info)
    assert "noise_ceiling" in info and info["checksum"] == table.checksum
    assert info["shapes"]["metrics/valid_acc"] == [15625, 3, 12]
    assert info["epochs"] == list(range(1, 13)) and info["n_epochs"] == 12
    assert json.loads(text)["provenance"]["synthetic"] is True


# -- validation ---------------------------------------------------------------


def test_validate_reports_bad_contents(tmp_path, space):
    path = _copy(V1, tmp_path)
    member, rep = _member_and_rep(space)
    canon = np.asarray(space.canonical_ids)
    alone = np.flatnonzero(np.bincount(canon, minlength=canon.size) == 1)  # classes of one
    a, b = int(alone[0]), int(alone[1])
    with h5py.File(path, "r+") as f:
        times = f["metrics/train_time_s"]
        times[a, 0, 0] = -1.0
        acc = f["metrics/test_acc"]
        acc[b, 1, 1] = 130.0
        loss = f["metrics/valid_loss"]
        loss[member, 0, 0] = loss[rep, 0, 0] + 1.0
        del f["arch_metrics/flops"].attrs["units"]
        f["metrics/top5"] = np.zeros(3, dtype=np.float32)
    problems = validate_table(path)
    text = "\n".join(problems)
    assert (
        f"/metrics/train_time_s: 1 negative time(s), first at (arch {a}, seed 777, epoch 1)" in text
    )
    assert "/metrics/test_acc: 1 accuracy value(s) outside [0, 100]" in text
    assert "/metrics/valid_loss: 1 arch(s) differ from their representative's row" in text
    assert "/arch_metrics/flops: attribute units" in text
    assert "/metrics/top5: not a metric of format v1" in text
    assert len(problems) == 5


def test_validate_reports_index_problems(tmp_path):
    path = _copy(V1, tmp_path)
    with h5py.File(path, "r+") as f:
        canon = f["archs/canonical"][()]
        canon[1] = 2  # 1 and 2 are not isomorphic, and 2 is not a representative
        f["archs/canonical"][...] = canon
        prov = json.loads(f.attrs["provenance"])
        del prov["device"]
        prov["seeds"] = [1, 2, 3]
        f.attrs["provenance"] = json.dumps(prov)
    problems = validate_table(path)
    assert any("missing key(s) device" in p for p in problems)
    assert any("provenance seeds [1, 2, 3] differ" in p for p in problems)
    assert any(p.startswith("/archs/canonical") for p in problems)


def test_synthetic_is_deterministic_and_plausible(small_data, space):
    again = synthetic_data(n_seeds=2, n_epochs=4, seed=3, created="2024-01-01T00:00:00Z")
    for name, values in small_data["metrics"].items():
        np.testing.assert_array_equal(values, again["metrics"][name])
    other = synthetic_data(n_seeds=2, n_epochs=4, seed=4)
    assert not np.array_equal(other["metrics"]["valid_acc"], small_data["metrics"]["valid_acc"])
    valid = small_data["metrics"]["valid_acc"]
    disconnected = ~np.asarray(space.connected)
    assert abs(float(valid[disconnected].mean()) - 10.0) < 0.5
    assert float(valid[~disconnected, :, -1].mean()) > 50.0
    gap = small_data["metrics"]["test_acc"] - valid
    assert abs(float(gap.mean())) < 1.0


def test_validate_sample_table_checks_planned_archs_only(tmp_path, small_data, space):
    """A --limit build's table: holes outside ``build.planned_archs`` are by design."""
    reps = [int(i) for i in space.unique_indices]
    planned, unplanned = reps[:3], reps[3:]
    member = int(np.flatnonzero(np.asarray(space.canonical_ids) == planned[0])[-1])
    metrics = {name: values.copy() for name, values in small_data["metrics"].items()}
    arch_metrics = {name: values.copy() for name, values in small_data["arch_metrics"].items()}
    for values in (*metrics.values(), *arch_metrics.values()):
        values[unplanned] = np.nan
        values[np.asarray(space.canonical_ids) != np.arange(space.n_archs)] = np.nan
    provenance = json.loads(json.dumps(small_data["provenance"]))
    provenance["build"] = {"planned_archs": sorted([member, *planned[1:]])}
    args = _with(small_data, metrics=metrics, arch_metrics=arch_metrics, provenance=provenance)
    assert validate_table(write_table(tmp_path / "ok.h5", **args)) == []

    metrics["valid_acc"][planned[1], 0, -1] = np.nan  # a planned arch lost a value
    args = _with(small_data, metrics=metrics, arch_metrics=arch_metrics, provenance=provenance)
    problems = validate_table(write_table(tmp_path / "hole.h5", **args))
    assert len(problems) == 1
    assert "/metrics/valid_acc: 1 NaN value(s)" in problems[0]
    assert f"(arch {planned[1]}, seed" in problems[0]

    provenance["build"] = {"planned_archs": [-1]}
    args = _with(small_data, metrics=metrics, arch_metrics=arch_metrics, provenance=provenance)
    problems = validate_table(write_table(tmp_path / "bad.h5", **args))
    assert any("build.planned_archs must be a list of arch indices" in p for p in problems)


def test_cli_query_with_and_without_a_table(monkeypatch, capsys):
    from nasbench_harness.cli import main

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["query", str(V1), arch, "--metric", "test_acc", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["value"] == pytest.approx(open_table(V1).query(arch, metric="test_acc"))
    monkeypatch.setenv("NASBENCH_DEFAULT_TABLE", str(V1))
    assert main(["query", arch, "--metric", "test_acc", "--json"]) == 0  # the default table
    assert json.loads(capsys.readouterr().out) == answer
    with pytest.raises(SystemExit) as exit_info:
        main(["query", str(V1), arch, "12"])
    assert exit_info.value.code == 2 and "unrecognized arguments: 12" in capsys.readouterr().err


def test_cli_query_a_proxy_at_a_proxy_seed(tmp_path, capsys):
    from nasbench_harness.cli import main

    path = tmp_path / "t.h5"
    shutil.copy(V1, path)
    scores = np.stack([np.arange(15625.0), -np.arange(15625.0)], axis=1)
    store_proxy(path, "jacov", scores, {"definition": "test proxy", "seeds": [1, 2]})
    table = open_table(path)
    argv = ["query", str(path), "5", "--metric", "proxy/jacov", "--seed", "2", "--json"]
    assert main(argv) == 0  # seed 2 is a proxy seed, not a training seed of the table
    answer = json.loads(capsys.readouterr().out)
    assert answer["value"] == table.query(5, metric="proxy/jacov", seed=2) == -table.canonical[5]
    assert answer["cost_s"] == pytest.approx(table.cost(5, epoch=table.epochs[-1]))


def test_cli_validate_names_a_broken_file_once_on_one_line(tmp_path, capsys):
    from nasbench_harness.cli import main

    bad = tmp_path / "bad.h5"
    bad.write_bytes(V1.read_bytes()[:300_000])  # an interrupted copy
    assert main(["table", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.count(str(bad)) == 1 and "truncated" in err
    assert main(["table", "validate", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False and out["problems"]
    assert main(["table", "validate", str(V1)]) == 0


def test_seed_mean_accuracy_ties_means_that_are_equal_in_exact_arithmetic():
    from nasbench_harness.table.reader import _nanmean, seed_mean_accuracy

    # 97.0 and 97.1 average to 97.05, as 97.05 twice does; in float32 the plain means differ
    acc = np.array([[97.0, 97.1], [97.05, 97.05], [97.1, np.nan], [np.nan, np.nan]], np.float32)
    plain = _nanmean(acc, axis=1)
    assert plain[0] != plain[1]  # the float32 storage error this function removes
    mean = seed_mean_accuracy(acc)
    assert mean[0] == mean[1] == pytest.approx(97.05)
    assert mean[2] == pytest.approx(97.1) and mean[2] > mean[0]
    assert np.isnan(mean[3])
