"""Tests for nasbench_harness.data: sizes, determinism, disjoint splits, CIFAR files."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch

from nasbench_harness.data import DATASETS, Splits, dataset_info, load_dataset
from nasbench_harness.errors import BuildError, NasbenchError

SMALL = {"train": 300, "valid": 100, "test": 120}


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1).numpy()}


@pytest.fixture(scope="module")
def mnist1d() -> Splits:
    return load_dataset("mnist1d", seed=0, **SMALL)


def test_mnist1d_sizes_types_and_info(mnist1d):
    assert mnist1d.train_x.shape == (300, 1, 40)
    assert mnist1d.valid_x.shape == (100, 1, 40)
    assert mnist1d.test_x.shape == (120, 1, 40)
    for name in ("train", "valid", "test"):
        assert getattr(mnist1d, f"{name}_x").dtype == torch.float32
        assert getattr(mnist1d, f"{name}_y").dtype == torch.int64
    info = mnist1d.info
    assert info["name"] == "mnist1d"
    assert info["splits"] == SMALL
    assert info["split_seed"] == 0
    assert info["input_shape"] == [1, 40]
    assert info["n_classes"] == 10
    assert "mnist1d" in info["source"]
    assert json.loads(json.dumps(info)) == info  # provenance-ready
    assert set(mnist1d.train_y.tolist()) == set(range(10))


def test_standardised_with_train_statistics(mnist1d):
    assert abs(float(mnist1d.train_x.mean())) < 1e-5
    assert float(mnist1d.train_x.std()) == pytest.approx(1.0, abs=1e-2)
    assert len(mnist1d.info["standardisation"]["mean"]) == 1


def test_same_seed_same_splits(mnist1d):
    again = load_dataset("mnist1d", seed=0, **SMALL)
    for name in ("train_x", "train_y", "valid_x", "valid_y", "test_x", "test_y"):
        assert torch.equal(getattr(mnist1d, name), getattr(again, name))


def test_other_seed_other_splits(mnist1d):
    other = load_dataset("mnist1d", seed=1, **SMALL)
    assert not torch.equal(mnist1d.train_x, other.train_x)
    assert other.info["split_seed"] == 1


def test_splits_disjoint(mnist1d):
    train, valid, test = (_rows(getattr(mnist1d, f"{s}_x")) for s in ("train", "valid", "test"))
    assert len(train) == 300 and len(valid) == 100 and len(test) == 120
    assert not train & valid and not train & test and not valid & test


def test_no_trace_in_global_rngs(tmp_path, monkeypatch):
    from nasbench_harness import data

    # an empty cache, so that the generator (which seeds numpy's and Python's RNGs) runs
    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(tmp_path))
    data._generate_mnist1d.cache_clear()
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    torch_state = torch.random.get_rng_state()
    load_dataset("mnist1d", seed=3, train=50, valid=20, test=30)
    assert list(tmp_path.glob("mnist1d-*.npz"))  # generated, not read from a cache
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(np_state[1], after[1]) and np_state[2] == after[2]
    assert random.getstate() == py_state
    assert torch.equal(torch_state, torch.random.get_rng_state())


def test_digits():
    splits = load_dataset("digits", seed=0)
    assert splits.train_x.shape == (1000, 1, 8, 8)
    assert sum(splits.info["splits"].values()) == 1797
    assert splits.info["n_classes"] == 10
    with pytest.raises(BuildError, match="only 1797"):
        load_dataset("digits", train=1500, valid=200, test=200)


def test_registry_and_info():
    assert {"mnist1d", "digits", "cifar10", "cifar100"} <= set(DATASETS)
    info = dataset_info("cifar100")
    assert info["n_classes"] == 100 and info["input_shape"] == [3, 32, 32]
    assert info["valid_from"] == "test" and info["needs_root"]
    assert dataset_info("cifar10")["valid_from"] == "train"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: load_dataset("imagenet"), "unknown data set"),
        (lambda: dataset_info("imagenet"), "unknown data set"),
        (lambda: load_dataset("mnist1d", training=10), "unknown split size"),
        (lambda: load_dataset("mnist1d", train=0), "positive integer"),
        (lambda: load_dataset("mnist1d", seed=-1), "split seed"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(NasbenchError, match=match):
        call()


# --- CIFAR in the standard python pickle format --------------------------


def test_cifar10_valid_from_train(cifar_root):
    splits = load_dataset("cifar10", root=cifar_root, train=60, valid=40, test=30)
    assert splits.train_x.shape == (60, 3, 32, 32)
    assert splits.valid_x.shape == (40, 3, 32, 32)
    assert splits.test_x.shape == (30, 3, 32, 32)
    assert splits.info["valid_from"] == "train"
    assert len(splits.info["standardisation"]["mean"]) == 3
    assert not _rows(splits.train_x) & _rows(splits.valid_x)
    # the test split is the official test batch (in a seeded order)
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert sorted(splits.test_y.tolist()) == sorted(raw[b"labels"])
    again = load_dataset(
        "cifar10", root=cifar_root / "cifar-10-batches-py", train=60, valid=40, test=30
    )
    assert torch.equal(splits.train_x, again.train_x)


def test_cifar100_valid_and_test_from_test(cifar_root):
    splits = load_dataset("cifar100", root=cifar_root, train=100, valid=15, test=15)
    assert splits.info["n_classes"] == 100
    assert splits.info["valid_from"] == "test"
    assert not _rows(splits.valid_x) & _rows(splits.test_x)
    assert splits.train_y.max() < 100
    with pytest.raises(BuildError, match="only 30"):
        load_dataset("cifar100", root=cifar_root, train=100, valid=20, test=20)


def test_cifar_missing_directory_names_path_and_fix(tmp_path):
    with pytest.raises(BuildError) as excinfo:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    message = str(excinfo.value)
    assert "nowhere" in message and "data_batch_1" in message
    assert "cifar-10-python.tar.gz" in message
    with pytest.raises(BuildError, match="no root"):
        load_dataset("cifar100")


def test_cifar_corrupt_file(cifar_root):
    (cifar_root / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(BuildError, match="not a CIFAR python batch"):
        load_dataset("cifar100", root=cifar_root, train=10, valid=5, test=5)


def test_mnist1d_disk_cache(tmp_path, monkeypatch):
    """Generated MNIST-1D is cached on disk; a damaged or unwritable cache changes nothing."""
    from nasbench_harness import data

    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(tmp_path / "cache"))
    data._generate_mnist1d.cache_clear()
    fresh_x, fresh_y = data._run_mnist1d_generator(100)
    x, y = data._generate_mnist1d(100)  # generates and writes the cache
    files = list((tmp_path / "cache").glob("mnist1d-*-n100-seed42.npz"))
    assert len(files) == 1
    assert np.array_equal(x, fresh_x) and np.array_equal(y, fresh_y)

    calls = []
    monkeypatch.setattr(data, "_run_mnist1d_generator", lambda n: calls.append(n))
    data._generate_mnist1d.cache_clear()
    x2, y2 = data._generate_mnist1d(100)  # read back, no generation
    assert calls == []
    assert np.array_equal(x2, fresh_x) and np.array_equal(y2, fresh_y)
    assert x2.dtype == np.float32 and y2.dtype == np.int64 and not x2.flags.writeable

    monkeypatch.undo()
    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(tmp_path / "cache"))
    files[0].write_bytes(b"not a zip file")  # damaged: regenerated and rewritten
    data._generate_mnist1d.cache_clear()
    x3, _ = data._generate_mnist1d(100)
    assert np.array_equal(x3, fresh_x)
    with np.load(files[0]) as again:
        assert np.array_equal(again["x"], fresh_x)

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(blocker / "cache"))
    data._generate_mnist1d.cache_clear()
    x4, _ = data._generate_mnist1d(100)  # cannot write: still works
    assert np.array_equal(x4, fresh_x)
    data._generate_mnist1d.cache_clear()
