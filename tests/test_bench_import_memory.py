"""The generator of ``benchmarks/bench_import_memory.py`` writes what ``torch.save`` writes.

The benchmark measures the importer on a generated NAS-Bench-201 ``.pth``
file; these tests check, on tiny files, that the file is the legacy
``torch.save`` of NB201's dictionary, that its streaming pickler keeps a
small memo, and that the importer reads the source's values from it.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from nasbench_harness.importers.nb201 import import_nb201
from nasbench_harness.space import get_space
from nasbench_harness.table import open_table, validate_table

torch = pytest.importorskip("torch")

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_import_memory.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_import_memory", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
TINY = {"full_epochs": 5, "less_epochs": 3, "seed": 1}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "nb201-3archs.pth"
    return bench.write_nb201_pth(path, 3, **TINY)


@pytest.fixture(scope="module")
def tiny_source():
    return bench.nb201_source(3, streamed=False, **TINY)


def test_generated_file_is_the_legacy_torch_save(tiny_file, tiny_source):
    assert torch.load(tiny_file, weights_only=False) == tiny_source
    buffer = io.BytesIO()
    torch.save(tiny_source, buffer, _use_new_zipfile_serialization=False)
    assert tiny_file.read_bytes() == buffer.getvalue()  # memo indices and BINGETs included


def test_one_arch_file_is_the_legacy_torch_save(tmp_path):
    path = bench.write_nb201_pth(tmp_path / "one.pth", 1, **TINY)
    buffer = io.BytesIO()
    source = bench.nb201_source(1, streamed=False, **TINY)
    torch.save(source, buffer, _use_new_zipfile_serialization=False)
    assert path.read_bytes() == buffer.getvalue()  # a one-item dict: SETITEM, no MARK


def test_source_has_nb201_structure(tiny_source):
    assert list(tiny_source) == ["meta_archs", "arch2infos", "evaluated_indexes", "total_archs"]
    assert len(tiny_source["meta_archs"]) == tiny_source["total_archs"] == 15_625
    entry = tiny_source["arch2infos"][2]
    assert list(entry) == ["less", "full"]
    full = entry["full"]
    assert full["arch_str"] == tiny_source["meta_archs"][2]
    assert list(full["all_results"]) == [("cifar10-valid", 777), ("cifar100", 777)]
    run = full["all_results"][("cifar100", 777)]
    assert run["epochs"] == 5 and len(run["train_acc1es"]) == 5
    assert sorted(run["eval_acc1es"]) == sorted(
        f"{s}@{e}" for s in ("ori-test", "x-valid", "x-test") for e in range(5)
    )
    values = [
        v
        for e in tiny_source["arch2infos"].values()
        for h in e.values()
        for r in h["all_results"].values()
        for field in ("train_acc1es", "train_losses", "eval_acc1es", "eval_losses")
        for v in r[field].values()
    ]
    assert len(set(values)) == len(values)


@pytest.mark.parametrize(
    "obj",
    [
        {i: float(i) for i in range(1000)},  # a full batch: an empty MARK SETITEMS follows
        {i: i * 300 for i in range(1001)},
        [0.5] * 1000,
        [0.5] * 1001,
        [[]],
        {"k": ("k", "k")},
        (1, 2, 3, 4),
        ("x",),
        (),
        2**70,
        -(2**70),
        -129,
        70_000,
        2**31,
        -(2**31) - 1,
        [True, False, None, "é", "x" * 300],
    ],
)
def test_pickler_writes_cpython_bytes(obj):
    buffer = io.BytesIO()
    bench.StreamingPickler(buffer).dump(obj)
    assert buffer.getvalue() == pickle.dumps(obj, protocol=2)


@pytest.mark.parametrize("n", [0, 1, 2, 1000, 1001])
def test_streamed_dict_is_written_as_its_dict(n):
    items = [(i, {"k": [float(i)], f"x@{i}": i}) for i in range(n)]
    buffer = io.BytesIO()
    bench.StreamingPickler(buffer).dump({"a": bench.StreamedDict(iter(items)), "b": "k"})
    assert buffer.getvalue() == pickle.dumps({"a": dict(items), "b": "k"}, protocol=2)


def test_streamed_archs_leave_the_memo(tmp_path):
    sizes = []
    for n in (3, 9):
        pickler = bench.StreamingPickler(io.BytesIO())
        pickler.dump(bench.nb201_source(n, **TINY))
        sizes.append((len(pickler.memo), pickler.next_index))
    (memo_3, index_3), (memo_9, index_9) = sizes
    assert memo_9 == memo_3  # one arch's objects at most, whatever the number of archs
    assert index_9 > index_3 > 15_625  # indices grow as in a pickle of the whole dict


def test_importer_reads_the_source_values(tiny_file, tiny_source, tmp_path):
    out = tmp_path / "t.h5"
    result = import_nb201(tiny_file, out, "cifar10-valid")
    assert result.n_imported == 3
    assert validate_table(out) == []
    table = open_table(out)
    assert list(table.seeds) == [777] and list(table.epochs) == [1, 2, 3, 4, 5]
    space = get_space("nb201")
    fields = {
        "train_acc": ("train_acc1es", None),
        "train_loss": ("train_losses", None),
        "train_time_s": ("train_times", None),
        "valid_acc": ("eval_acc1es", "x-valid"),
        "valid_loss": ("eval_losses", "x-valid"),
        "test_acc": ("eval_acc1es", "ori-test"),
        "test_loss": ("eval_losses", "ori-test"),
    }
    for idx, entry in tiny_source["arch2infos"].items():
        run = entry["full"]["all_results"][("cifar10-valid", 777)]
        row = space.index(tiny_source["meta_archs"][idx])
        for metric, (field, split) in fields.items():
            want = [run[field][e if split is None else f"{split}@{e}"] for e in range(5)]
            got = table.array(metric)[row, 0]
            np.testing.assert_array_equal(got, np.float32(want), err_msg=f"{idx} {metric}")
        assert table.query(row, metric="flops") == pytest.approx(run["flop"] * 2e6)


def test_measure_reads_the_childs_own_peak_rss():
    big = bench.measure([sys.executable, "-c", "x = b'x' * 150_000_000"])
    small = bench.measure([sys.executable, "-c", "pass"])
    assert big.returncode == small.returncode == 0
    assert big.peak_rss_bytes > small.peak_rss_bytes + 140e6
    assert small.peak_rss_bytes < 100e6  # neither this process's memory nor the last child's
    assert big.cpu_s >= 0 and big.wall_s > 0


def test_documented_bound():
    # docs/import.md: 230 MB + 2 x 4 B x 15,625 x S x E x 8
    assert bench.documented_bound(seeds=1, epochs=200) == 430e6
    assert bench.documented_bound(seeds=3, epochs=200) == 830e6
