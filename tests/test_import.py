"""Importers of community benchmark files, on small files written here in each format.

Formats (the structures below follow these sources):

* NAS-Bench-201 ``.pth`` (``NAS-Bench-201-v1_0-e61699.pth``, ``v1_1-096897``):
  ``torch.save`` of ``{"meta_archs": [arch strings], "arch2infos": {index:
  {"less": ArchResults state, "full": ArchResults state}}, "evaluated_indexes":
  [...], "total_archs": n}``; read by ``NASBench201API.__init__`` in
  ``nas_201_api/api.py`` (D-X-Y/NAS-Bench-201) and ``NATStopology.__init__`` in
  ``nats_bench/api_topology.py`` (D-X-Y/NATS-Bench).
* ArchResults state (``ArchResults.state_dict`` in ``api_utils.py``):
  ``arch_index``, ``arch_str``, ``all_results`` ``{(dataset, seed): ResultsCount
  state}``, ``dataset_seed`` ``{dataset: [seeds]}``, ``clear_net_done``.
* ResultsCount state (its ``__dict__``, same file): ``name``,
  ``net_state_dict``, ``train_acc1es`` / ``train_acc5es`` / ``train_losses`` /
  ``train_times`` keyed by 0-based epoch, ``arch_config``, ``params`` (M),
  ``flop`` (M), ``seed``, ``epochs``, ``latency`` (list, s), ``eval_names``,
  ``eval_acc1es`` / ``eval_times`` / ``eval_losses`` keyed ``"<split>@<epoch>"``.
  Splits per dataset as in ``get_more_info``: cifar10-valid x-valid / ori-test,
  cifar10 ori-test only, cifar100 and ImageNet16-120 x-valid / x-test / ori-test.
* NATS-Bench topology archive (``NATS-tss-v1_0-3ffb9-simple/``):
  ``meta.pickle.pbz2`` (``{"meta_archs": ...}``) and ``{index:06d}.pickle.pbz2``
  per arch, bz2 pickles of ``{"12": ArchResults state, "200": ...}``
  (``NATStopology.reload``); ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` is one bz2
  pickle of the whole dictionary.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import pickle

import numpy as np
import pytest

from nasbench_harness.cli import main
from nasbench_harness.errors import NasbenchError
from nasbench_harness.importers import _pickle
from nasbench_harness.importers._common import ImportFormatError
from nasbench_harness.importers.nb201 import import_nb201
from nasbench_harness.simulator import Simulator
from nasbench_harness.space import get_space
from nasbench_harness.table import open_table, validate_table

torch = pytest.importorskip("torch")

SPACE = get_space("nb201")
EVAL_NAMES = {
    "cifar10-valid": ["x-valid", "ori-test"],
    "cifar10": ["ori-test"],
    "cifar100": ["ori-test", "x-valid", "x-test"],
    "ImageNet16-120": ["ori-test", "x-valid", "x-test"],
}


def results_count(name, seed, epochs, rng):
    """A ResultsCount state dictionary with distinct values for every entry."""
    train = {
        "train_acc1es": {e: float(rng.uniform(10, 100)) for e in range(epochs)},
        "train_acc5es": {e: float(rng.uniform(50, 100)) for e in range(epochs)},
        "train_losses": {e: float(rng.uniform(0, 3)) for e in range(epochs)},
        "train_times": {e: float(rng.uniform(5, 20)) for e in range(epochs)},
    }
    evals = {"eval_acc1es": {}, "eval_times": {}, "eval_losses": {}}
    for split in EVAL_NAMES[name]:
        for e in range(epochs):
            key = f"{split}@{e}"
            evals["eval_acc1es"][key] = float(rng.uniform(10, 100))
            evals["eval_times"][key] = float(rng.uniform(0.5, 2))
            evals["eval_losses"][key] = float(rng.uniform(0, 3))
    return {
        "name": name,
        "net_state_dict": None,
        **train,
        "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "num_classes": 10},
        "params": float(rng.uniform(0.1, 1.5)),
        "flop": float(rng.uniform(10, 200)),
        "seed": seed,
        "epochs": epochs,
        "latency": [float(rng.uniform(0.01, 0.02)), float(rng.uniform(0.01, 0.02))],
        "eval_names": list(EVAL_NAMES[name]),
        **evals,
    }


def arch_results(index, arch_str, runs, epochs, rng):
    """An ArchResults state dictionary; ``runs`` maps dataset -> seeds."""
    return {
        "arch_index": index,
        "arch_str": arch_str,
        "all_results": {
            (ds, seed): results_count(ds, seed, epochs, rng)
            for ds, seeds in runs.items()
            for seed in seeds
        },
        "dataset_seed": {ds: list(seeds) for ds, seeds in runs.items()},
        "clear_net_done": True,
    }


def source_order():
    """NB201's meta_archs in an order different from ours (reversed), as a mapping test."""
    return [SPACE.to_string(i) for i in reversed(range(SPACE.n_archs))]


def nb201_dict(
    archs,
    *,
    seeds=(777, 888),
    missing=(),
    schedules=(("less", 12), ("full", 200)),
    epochs_full=200,
    rng=None,
):
    """``{"meta_archs", "arch2infos", ...}`` for source indices ``archs``.

    ``missing`` lists (source index, dataset, seed) runs left out.
    """
    rng = rng or np.random.default_rng(0)
    meta = source_order()
    arch2infos = {}
    for idx in archs:
        entry = {}
        for key, epochs in schedules:
            epochs = epochs_full if epochs == 200 else epochs
            runs = {
                ds: [s for s in seeds if (idx, ds, s) not in missing]
                for ds in ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
            }
            entry[key] = arch_results(idx, meta[idx], runs, epochs, rng)
        arch2infos[idx] = entry
    return {
        "meta_archs": meta,
        "arch2infos": arch2infos,
        "evaluated_indexes": sorted(archs),
        "total_archs": len(meta),
    }


def write_nats_dir(root, data):
    """A NATS-Bench topology archive directory of ``data`` (schedule keys '12'/'200')."""
    root.mkdir()
    with bz2.open(root / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump(
            {"meta_archs": data["meta_archs"], "arch2infos": {}, "evaluated_indexes": []}, fh
        )
    for idx, entry in data["arch2infos"].items():
        renamed = {{"less": "12", "full": "200"}[k]: v for k, v in entry.items()}
        with bz2.open(root / f"{idx:06d}.pickle.pbz2", "wb") as fh:
            pickle.dump(renamed, fh)
    return root


def source_value(data, idx, dataset, seed, metric, epoch, hp="full"):
    run = data["arch2infos"][idx][hp]["all_results"][(dataset, seed)]
    valid, test = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": (None, "ori-test")}.get(
        dataset, ("x-valid", "x-test")
    )
    e = epoch - 1
    field, split = {
        "train_acc": ("train_acc1es", None),
        "train_loss": ("train_losses", None),
        "train_time_s": ("train_times", None),
        "valid_acc": ("eval_acc1es", valid),
        "valid_loss": ("eval_losses", valid),
        "test_acc": ("eval_acc1es", test),
        "test_loss": ("eval_losses", test),
    }[metric]
    if split is None and metric.startswith("valid"):
        return float("nan")
    if field.startswith("train"):
        return run[field][e]
    if split is None:
        return float("nan")
    return run[field][f"{split}@{e}"]


ARCHS = [3, 100, 7000, 15624]  # source indices
METRICS = (
    "train_acc",
    "train_loss",
    "train_time_s",
    "valid_acc",
    "valid_loss",
    "test_acc",
    "test_loss",
)


@pytest.fixture(scope="module")
def small_source():
    return nb201_dict(ARCHS, epochs_full=6)


def _check_all_entries(table, data, dataset, seeds, epochs, hp="full"):
    meta = data["meta_archs"]
    for idx in data["arch2infos"]:
        arch = meta[idx]
        for seed in seeds:
            for metric in METRICS:
                for epoch in range(1, epochs + 1):
                    want = source_value(data, idx, dataset, seed, metric, epoch, hp)
                    got = table.query(arch, metric=metric, epoch=epoch, seed=seed)
                    if np.isnan(want):
                        assert np.isnan(got), (arch, seed, metric, epoch)
                    else:
                        assert got == np.float32(want), (arch, seed, metric, epoch)


@pytest.mark.parametrize("layout", ["legacy", "zip", "nats", "bz2"])
def test_nb201_every_entry_matches_the_source(tmp_path, small_source, layout):
    data = small_source
    if layout == "legacy":
        src = tmp_path / "NB201.pth"
        torch.save(data, src, _use_new_zipfile_serialization=False)
    elif layout == "zip":
        src = tmp_path / "NB201.pth"
        torch.save(data, src)
    elif layout == "nats":
        src = write_nats_dir(tmp_path / "NATS-tss-simple", data)
    else:
        src = tmp_path / "NATS-tss.pickle.pbz2"
        with bz2.open(src, "wb") as fh:
            pickle.dump(
                {
                    **data,
                    "arch2infos": {
                        k: {{"less": "12", "full": "200"}[h]: v for h, v in e.items()}
                        for k, e in data["arch2infos"].items()
                    },
                },
                fh,
            )
    out = tmp_path / "t.h5"
    result = import_nb201(src, out, "cifar10-valid", epochs=200)
    assert validate_table(out) == []
    table = open_table(out)
    assert list(table.seeds) == [777, 888]
    assert list(table.epochs) == list(range(1, 7))
    _check_all_entries(table, data, "cifar10-valid", (777, 888), 6)
    # archs the source does not have stay NaN
    assert np.isnan(table.query(1, metric="valid_acc", seed=777))  # source 15623
    prov = table.provenance
    assert prov["source"]["file"] == src.name
    if layout != "nats":
        assert prov["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert sorted(prov["build"]["planned_archs"]) == sorted(
        SPACE.index(data["meta_archs"][i]) for i in ARCHS
    )
    assert result.n_imported == len(ARCHS)
    # arch metrics: converted units, mean over seeds
    idx = ARCHS[1]
    runs = [
        data["arch2infos"][idx]["full"]["all_results"][("cifar10-valid", s)] for s in (777, 888)
    ]
    arch = data["meta_archs"][idx]
    assert table.query(arch, metric="flops") == pytest.approx(
        np.mean([r["flop"] for r in runs]) * 2e6
    )
    assert table.query(arch, metric="latency_ms") == pytest.approx(
        np.mean([np.mean(r["latency"]) for r in runs]) * 1e3
    )
    # the validation part of eval_time_s, from the source's own seconds of the imported runs
    valid_s = all_s = 0.0
    for i in ARCHS:
        for seed in (777, 888):
            times = data["arch2infos"][i]["full"]["all_results"][("cifar10-valid", seed)]
            times = times["eval_times"]
            for e in range(6):
                pair = [times.get(f"{split}@{e}") for split in ("x-valid", "ori-test")]
                if None not in pair:
                    valid_s, all_s = valid_s + pair[0], all_s + sum(pair)
    assert all_s > 0 and prov["eval_time_valid_share"] == pytest.approx(valid_s / all_s)


def test_nb201_splits_are_never_mixed(tmp_path, small_source):
    src = tmp_path / "NB201.pth"
    torch.save(small_source, src)
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        out = tmp_path / f"{dataset}.h5"
        import_nb201(src, out, dataset)
        table = open_table(out)
        _check_all_entries(table, small_source, dataset, (777, 888), 6)
        prov = table.provenance
        if dataset == "cifar10":  # no validation split: NaN, never the test split
            assert np.isnan(table.array("valid_acc")).all()
            assert prov["source"]["split_names"] == {"valid": None, "test": "ori-test"}
            assert prov["dataset"]["split_sizes"] == {"train": 50_000, "test": 10_000}
            assert prov["not_recorded"]["epoch_metrics"] == {
                "valid_acc": "all",
                "valid_loss": "all",
            }
            assert validate_table(out) == []  # declared, so not missing results
            with pytest.raises(NasbenchError, match="no validation accuracy"):
                Simulator(table, budget_s=1e4)  # would have to select on test data
        else:
            assert prov["source"]["split_names"] == {"valid": "x-valid", "test": "x-test"}
            assert validate_table(out) == []
            # the chance line is drawn for the real split size, not a default of 1,000
            n_valid = {"cifar100": 5_000, "ImageNet16-120": 3_000}[dataset]
            assert table.noise_ceiling("valid_acc")["chance"]["split_size"] == n_valid
            imported = [SPACE.index(small_source["meta_archs"][i]) for i in ARCHS]  # others NaN
            valid = np.asarray(table.array("valid_acc"))[imported]
            assert np.isfinite(valid).any()
            assert not np.array_equal(valid, table.array("test_acc")[imported], equal_nan=True)


def test_nb201_twelve_epoch_schedule(tmp_path, small_source):
    src = write_nats_dir(tmp_path / "nats", small_source)
    out = tmp_path / "t12.h5"
    import_nb201(src, out, "cifar100", epochs=12)
    table = open_table(out)
    assert list(table.epochs) == list(range(1, 13))
    _check_all_entries(table, small_source, "cifar100", (777, 888), 12, hp="less")


def missing_seed_source(tmp_path):
    """Source archs 5 and 6 at 3 seeds, 4 epochs; arch 5 lacks seed 999 on cifar10-valid."""
    data = nb201_dict(
        [5, 6],
        seeds=(777, 888, 999),
        missing={(5, "cifar10-valid", 999)},
        epochs_full=4,
        schedules=(("full", 200),),
    )
    src = tmp_path / "NB201.pth"
    torch.save(data, src, _use_new_zipfile_serialization=False)
    return data, src


def test_nb201_missing_seed_is_nan(tmp_path):
    data, src = missing_seed_source(tmp_path)
    out = tmp_path / "t.h5"
    result = import_nb201(src, out, "cifar10-valid")
    table = open_table(out)
    arch5 = data["meta_archs"][5]
    assert np.isnan(table.query(arch5, metric="valid_acc", seed=999))
    assert table.query(arch5, metric="valid_acc") == pytest.approx(
        np.mean(
            [
                np.float32(source_value(data, 5, "cifar10-valid", s, "valid_acc", 4))
                for s in (777, 888)
            ]
        ),
        rel=1e-6,
    )
    assert result.holes["valid_acc"] == 4  # four epochs of one (arch, seed)
    assert table.provenance["not_recorded"]["absent_runs"] == 1
    assert validate_table(out) == []  # the absent run is declared, not missing


def _rewrite_h5(path, edit):
    import h5py

    with h5py.File(path, "r+") as f:
        edit(f)


def test_declared_gaps_hide_no_holes_and_no_values(tmp_path):
    """A not_recorded declaration excuses NaN only where it says, and only NaN."""
    data, src = missing_seed_source(tmp_path)
    out = tmp_path / "t.h5"
    import_nb201(src, out, "cifar10-valid")
    assert validate_table(out) == []
    row = SPACE.index(data["meta_archs"][6])

    def hole(f):  # a real hole inside a recorded run
        values = f["metrics/valid_acc"][()]
        values[row, 0, 2] = np.nan
        f["metrics/valid_acc"][...] = values

    _rewrite_h5(out, hole)
    problems = validate_table(out)
    assert len(problems) == 1 and "valid_acc" in problems[0] and "missing results" in problems[0]

    import_nb201(src, out, "cifar10")

    def fill(f):  # a value where the source declares it recorded nothing
        values = f["metrics/valid_acc"][()]
        values[row, 1, 3] = 50.0
        f["metrics/valid_acc"][...] = values

    _rewrite_h5(out, fill)
    problems = validate_table(out)
    assert any("declares nothing recorded" in p and f"arch {row}" in p for p in problems)

    import_nb201(src, out, "cifar10-valid")

    def lose_run(f):  # a second absent run, not declared
        for name in f["metrics"]:
            values = f[f"metrics/{name}"][()]
            values[row, 2, :] = np.nan
            f[f"metrics/{name}"][...] = values

    _rewrite_h5(out, lose_run)
    problems = validate_table(out)
    assert any("absent_runs is 1, but 2" in p for p in problems)


def test_nb201_stream_frees_finished_archs():
    """The memo of the stream holds no per-arch objects once an arch is consumed."""
    from nasbench_harness.importers.nb201 import _Reader

    sizes = []
    for n in (3, 12):
        data = nb201_dict(list(range(n)), epochs_full=3, schedules=(("full", 200),))
        del data["meta_archs"]
        buf = io.BytesIO()
        pickle.Pickler(buf, protocol=2).dump(data)
        reader = _Reader("cifar10-valid", 200, "mem")
        buf.seek(0)
        reader.run_pickle(buf, "mem")
        assert reader.present.sum() == n
        memo = reader.unpickler.memo
        containers = [v for v in memo.values() if isinstance(v, (dict, list, float))]
        # only the top dict, the (emptied) arch2infos and evaluated_indexes remain
        assert len(containers) == 3 and containers[1] == {}
        sizes.append(len(memo))
    # what stays per arch: its small (dataset, seed) key tuples (8 here), nothing else
    assert (sizes[1] - sizes[0]) / 9 <= 8


def test_cli_import_and_query(tmp_path, small_source, capsys):
    src = tmp_path / "NB201.pth"
    torch.save(small_source, src)
    out = tmp_path / "cli.h5"
    code = main(
        ["import", "nb201", str(src), "-o", str(out), "--dataset", "cifar10-valid", "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["archs_imported"] == len(ARCHS)
    assert summary["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert main(["table", "validate", str(out)]) == 0
    capsys.readouterr()
    arch = small_source["meta_archs"][ARCHS[0]]
    assert (
        main(
            [
                "query",
                str(out),
                arch,
                "--metric",
                "test_acc",
                "--epoch",
                "2",
                "--seed",
                "888",
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    want = source_value(small_source, ARCHS[0], "cifar10-valid", 888, "test_acc", 2)
    assert answer["value"] == pytest.approx(want, rel=1e-6)
    # the arch has an isomorphic representative in the space, but an import trained every
    # arch on its own: the row that answered is its own
    assert answer["canonical"] == answer["index"] != get_space("nb201").canonical(answer["index"])


def test_damaged_sources_are_named_errors_not_tracebacks(tmp_path, small_source):
    from nasbench_harness.importers.nb101 import parse_record

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x04](K\x01\x90.")  # ADDITEMS on a list: no such operation
    with pytest.raises(NasbenchError, match="truncated or malformed.*download it again"):
        import_nb201(bad, tmp_path / "x.h5", "cifar10-valid")
    cut = tmp_path / "cut.pth"
    torch.save(small_source, cut)  # the zip format
    cut.write_bytes(cut.read_bytes()[: int(cut.stat().st_size * 0.9)])
    with pytest.raises(ImportFormatError, match="truncated or damaged.*download it again"):
        import_nb201(cut, tmp_path / "x.h5", "cifar10-valid")
    with pytest.raises(ImportFormatError, match="not a NAS-Bench-101 record"):
        parse_record(json.dumps(["h", 4, "0110", 5, ""]).encode())  # operations not a string
    assert not (tmp_path / "x.h5").exists()


def test_import_never_overwrites_what_it_would_lose(tmp_path, small_source):
    from nasbench_harness.table import store_proxy

    src = tmp_path / "NB201.pth"
    torch.save(small_source, src)
    original = src.read_bytes()
    with pytest.raises(ImportFormatError, match="is the source file itself"):
        import_nb201(src, src, "cifar10-valid")
    assert src.read_bytes() == original
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes")
    with pytest.raises(ImportFormatError, match="not a readable table"):
        import_nb201(src, notes, "cifar10-valid")
    assert notes.read_text() == "my notes"
    out = tmp_path / "t.h5"
    import_nb201(src, out, "cifar10-valid")
    import_nb201(src, out, "cifar10-valid")  # a table without proxies: a re-import replaces it
    store_proxy(out, "mine", np.zeros(SPACE.n_archs), {"definition": "x", "seeds": [0]})
    before = out.read_bytes()
    with pytest.raises(ImportFormatError, match=r"holds stored proxies \(mine\)"):
        import_nb201(src, out, "cifar10-valid")
    assert out.read_bytes() == before


def test_bad_inputs_are_named(tmp_path, small_source, capsys):
    src = tmp_path / "NB201.pth"
    torch.save(small_source, src)
    with pytest.raises(ImportFormatError, match="unknown NB201 dataset"):
        import_nb201(src, tmp_path / "x.h5", "cifar10-test")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImportFormatError, match="not a NAS-Bench-201 file"):
        import_nb201(text, tmp_path / "x.h5", "cifar10-valid")
    truncated = tmp_path / "cut.pth"
    torch.save(small_source, truncated, _use_new_zipfile_serialization=False)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(_pickle.PickleStreamError, match="truncated"):
        import_nb201(truncated, tmp_path / "x.h5", "cifar10-valid")
    assert not (tmp_path / "x.h5").exists()
    code = main(
        ["import", "nb201", str(text), "-o", str(tmp_path / "x.h5"), "--dataset", "cifar10"]
    )
    assert code == 2
    assert "notes.txt" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):
        return (print, ("ran",))


def test_pickle_reader_runs_no_code():
    data = pickle.dumps({"arch2infos": {}, "x": _Payload()}, protocol=2)
    with pytest.raises(_pickle.PickleStreamError, match="print, which is not read"):
        _pickle.load(io.BytesIO(data))


@pytest.mark.parametrize("protocol", range(0, 6))
def test_pickle_reader_matches_pickle(protocol):
    obj = {
        "a": [1, -2, 2**70, 1.5, "x" * 300, b"b", None, True, (1, 2), (1, 2, 3, 4)],
        "b": {i: float(i) / 3 for i in range(2500)},
        "c": {1, 2},
        "d": "é",
        "e": [],
        "f": np.float64(0.25),
    }
    shared = ["s"]
    obj["g"] = [shared, shared]
    data = pickle.dumps(obj, protocol=protocol)
    got = _pickle.load(io.BytesIO(data))
    assert got == pickle.loads(data)
    assert got["g"][0] is got["g"][1]


@pytest.mark.slow
def test_simulator_runs_on_an_imported_table(tmp_path):
    """Every arch imported (12-epoch schedule, one seed): every algorithm runs unchanged."""
    from algorithms.registry import list_algorithms, make_algorithm

    rng = np.random.default_rng(1)
    meta = source_order()
    epochs = range(12)
    arch2infos = {}
    for idx in range(SPACE.n_archs):
        run = {
            "name": "cifar10-valid",
            "seed": 777,
            "epochs": 12,
            "train_acc1es": {e: 50.0 + e for e in epochs},
            "train_losses": {e: 1.0 for e in epochs},
            "train_times": {e: 10.0 for e in epochs},
            "eval_acc1es": {
                f"{s}@{e}": float(rng.uniform(40, 90))
                for s in ("x-valid", "ori-test")
                for e in epochs
            },
            "eval_losses": {f"{s}@{e}": 1.0 for s in ("x-valid", "ori-test") for e in epochs},
            "eval_times": {},
            "params": 0.5,
            "flop": 50.0,
            "latency": [0.01],
        }
        arch2infos[idx] = {
            "12": {"arch_str": meta[idx], "all_results": {("cifar10-valid", 777): run}}
        }
    src = tmp_path / "all.pickle"  # a plain pickle of the NB201 dictionary
    with open(src, "wb") as fh:
        pickle.dump({"meta_archs": meta, "arch2infos": arch2infos}, fh, protocol=4)
    out = tmp_path / "all.h5"
    import_nb201(src, out, "cifar10-valid", epochs=12)
    table = open_table(out)
    assert "planned_archs" not in table.provenance.get("build", {})
    for name in list_algorithms():
        trace = Simulator(table, budget_s=2000.0, seed=0).run(make_algorithm(name, seed=0))
        assert trace.n_queries > 0, name
        assert np.isfinite(trace.incumbent_test_acc).all(), name


# -- NAS-Bench-101 ----------------------------------------------------------------
#
# Record format (google-research/nasbench, nasbench/api.py NASBench.__init__ and
# nasbench/lib/model_metrics.proto): each TFRecord record is the UTF-8 JSON list
# [module_hash, epochs, raw_adjacency ("0110..." row-major), raw_operations
# ("input,conv3x3-bn-relu,...,output"), base64(ModelMetrics)]; ModelMetrics has
# repeated EvaluationData evaluation_data = 1 (current_epoch = 1, training_time = 2,
# train_accuracy = 3, validation_accuracy = 4, test_accuracy = 5, checkpoint_path = 6,
# all doubles but the string), int32 trainable_parameters = 2, double total_time = 3.
# TFRecord framing (tensorflow/core/lib/io/record_writer.cc): uint64 length,
# uint32 masked crc32c(length), data, uint32 masked crc32c(data).

from nasbench_harness.importers import nb101 as nb101_mod  # noqa: E402
from nasbench_harness.importers import tfrecord  # noqa: E402
from nasbench_harness.space_nb101 import module_hash, prune  # noqa: E402


def _pb_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb_double(field, value):
    import struct

    return _pb_varint(field << 3 | 1) + struct.pack("<d", value)


def encode_model_metrics(evaluations, params, total_time):
    """ModelMetrics in protobuf wire format, written field by field."""
    out = b""
    for ev in evaluations:
        body = b"".join(_pb_double(i + 1, v) for i, v in enumerate(ev))
        body += _pb_varint(6 << 3 | 2) + _pb_varint(len(b"ckpt")) + b"ckpt"
        out += _pb_varint(1 << 3 | 2) + _pb_varint(len(body)) + body
    out += _pb_varint(2 << 3 | 0) + _pb_varint(params)
    out += _pb_double(3, total_time)
    return out


def nb101_record(matrix, ops, epochs, evaluations, params):
    m = np.asarray(matrix)
    raw = "".join(str(int(x)) for x in m.ravel())
    metrics = base64_encode(encode_model_metrics(evaluations, params, 1234.5))
    row = [module_hash(m, ops), epochs, raw, ",".join(ops), metrics]
    return json.dumps(row).encode("utf-8")


def base64_encode(data):
    import base64

    return base64.b64encode(data).decode("ascii")


def test_crc32c_and_tfrecord_framing(tmp_path):
    assert tfrecord._crc32c_python(b"123456789") == 0xE3069283  # RFC 3720 check value
    records = [b"", b"a", b"x" * 1000]
    path = tfrecord.write_records(tmp_path / "r.tfrecord", records)
    assert list(tfrecord.iter_records(path, verify_data=True)) == records
    raw = bytearray(path.read_bytes())
    raw[8 + 4 + 8 + 4 + 4 + 1 + 4 + 8 + 4 + 10] ^= 1  # a byte inside the third record's data
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ImportFormatError, match="record 2 .* bad data checksum"):
        list(tfrecord.iter_records(bad, verify_data=True))
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ImportFormatError, match="truncated"):
        list(tfrecord.iter_records(cut, verify_data=False))


def test_model_metrics_decoding():
    evaluations = [
        (0.0, 0.0, 0.1, 0.1, 0.1),
        (54.0, 100.5, 0.8, 0.75, 0.74),
        (108.0, 201.25, 0.99, 0.93, 0.925),
    ]
    data = encode_model_metrics(evaluations, 2_694_282, 1234.5)
    decoded, params, total = nb101_mod.decode_model_metrics(data)
    assert params == 2_694_282 and total == 1234.5
    assert [tuple(dataclasses_astuple(e)) for e in decoded] == evaluations


def dataclasses_astuple(ev):
    import dataclasses

    return dataclasses.astuple(ev)


def test_module_hash_is_isomorphism_invariant():
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    m = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    swapped = m[np.ix_([0, 2, 1, 3], [0, 2, 1, 3])]
    swapped_ops = [ops[i] for i in (0, 2, 1, 3)]
    assert module_hash(m, ops) == module_hash(swapped, swapped_ops)
    other = ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"]
    assert module_hash(m, ops) != module_hash(m, other)
    dangling = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    kept, kept_ops = prune(dangling, ops)
    assert kept.shape == (3, 3) and kept_ops == ["input", "conv3x3-bn-relu", "output"]


def test_nb101_record_parsing():
    m = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    ops = ["input", "maxpool3x3", "output"]
    evs = [(0.0, 0.0, 0.1, 0.1, 0.1), (2.0, 10.0, 0.5, 0.4, 0.3), (4.0, 20.0, 0.9, 0.8, 0.7)]
    run = nb101_mod.parse_record(nb101_record(m, ops, 4, evs, 321))
    assert run.module_hash == module_hash(m, ops) and run.epochs == 4
    assert np.array_equal(run.matrix, m) and run.ops == ops
    assert run.trainable_parameters == 321 and run.evaluations[2].test_accuracy == 0.7
    with pytest.raises(ImportFormatError, match="record 7: not a NAS-Bench-101 record"):
        nb101_mod.parse_record(b'["abc", 4, "0101", "input,output"]', "record 7")
    with pytest.raises(ImportFormatError, match="not a square 0/1 matrix"):
        nb101_mod.parse_record(json.dumps(["h", 4, "010", "input,output", ""]).encode())


@pytest.mark.slow
def test_nb101_import_every_entry(tmp_path):
    """End to end on a small TFRecord (needs the nb101 space: enumerated once, cached)."""
    space = get_space("nb101")
    assert space.n_archs == 423_624
    cells = [
        (np.array([[0, 1], [0, 0]]), ["input", "output"]),
        (np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), ["input", "conv1x1-bn-relu", "output"]),
        (
            np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
            ["input", "conv3x3-bn-relu", "maxpool3x3", "output"],
        ),
    ]
    rng = np.random.default_rng(3)
    records, expected = [], {}
    for m, ops in cells:
        for epochs in (4, 108):
            for repeat in range(3):
                evs = [
                    (0.0, 0.0, 0.1, 0.1, 0.1),
                    (epochs / 2, float(rng.uniform(10, 50)), *rng.uniform(0.5, 0.9, 3)),
                    (float(epochs), float(rng.uniform(60, 99)), *rng.uniform(0.8, 1.0, 3)),
                ]
                records.append(nb101_record(m, ops, epochs, evs, 1000 + repeat))
                expected[(module_hash(m, ops), epochs, repeat)] = evs
    src = tfrecord.write_records(tmp_path / "nasbench_small.tfrecord", records)
    out = tmp_path / "nb101.h5"
    result = nb101_mod.import_nb101(src, out, epochs=4, verify_data=True)
    assert result.n_imported == len(cells)
    table = open_table(out)
    for (key, epochs, repeat), evs in expected.items():
        if epochs != 4:
            continue
        arch = space.index_of_hash(key)
        for epoch, ev in ((2, evs[1]), (4, evs[2])):
            for metric, pos in (("train_acc", 2), ("valid_acc", 3), ("test_acc", 4)):
                got = table.query(arch, metric=metric, epoch=epoch, seed=repeat)
                assert got == np.float32(ev[pos] * 100), (key, metric, epoch)
        assert table.cost(arch, epoch=4, seed=repeat) == pytest.approx(evs[2][1], rel=1e-5)
        assert np.isnan(table.query(arch, metric="valid_acc", epoch=1, seed=repeat))
    assert table.provenance["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    # NB101's gaps (intermediate epochs, losses, FLOPs, latency) are declared, not holes
    assert validate_table(out) == []
    from nasbench_harness.errors import QueryError
    from nasbench_harness.simulator import Proposal

    with pytest.raises(QueryError, match="have none at all"):  # 3 of NB101's archs
        Simulator(table, budget_s=1e6, seed=0)
    from nasbench_harness.simulator import table_view

    table_view(table, search=False).incomplete = None  # the imported archs' answers, below
    sim = Simulator(table, budget_s=1e6, seed=0)
    assert sim.view.fidelities == (2, 4)  # the epochs NB101 evaluated
    some = space.index_of_hash(module_hash(*cells[1]))
    result, _ = sim._answer(Proposal(arch=some, epoch=2), 0.0)
    assert np.isfinite(result.valid_acc)
    with pytest.raises(QueryError, match="fidelities"):
        sim._answer(Proposal(arch=some, epoch=3), 0.0)
    # moves used by evolution and local search stay inside the space
    start = space.index_of_hash(module_hash(*cells[2]))
    neighbours = space.neighbours(start)
    assert neighbours and start not in neighbours and len(set(neighbours)) == len(neighbours)
    assert space.mutate(start, np.random.default_rng(0)) in neighbours
    assert space.index(space.to_string(neighbours[0])) == neighbours[0]
    grown = space.neighbours(space.index_of_hash(module_hash(*cells[0])))
    assert {len(space.cell(i)[1]) for i in grown} == {3}  # input -> new op -> output


def test_pickle_reader_refuses_every_truncation():
    data = pickle.dumps({"a": [1.5] * 50, "b": "x" * 70, "c": {(1, 2): None}}, protocol=2)
    for cut in range(len(data)):
        with pytest.raises(_pickle.PickleStreamError, match="truncated"):
            _pickle.load(io.BytesIO(data[:cut]))
