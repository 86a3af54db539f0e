"""Shared pytest configuration and fixtures."""

from __future__ import annotations

import pickle

import numpy as np
import pytest


def pytest_addoption(parser):
    # conformance suite (tests/test_conformance.py): run it over these algorithms only
    parser.addoption(
        "--algorithm",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="run the algorithm conformance suite over this algorithm only: a registered "
        "name or path/to/file.py:ClassName (repeatable)",
    )


def pytest_configure(config):
    # generated data sets and the enumerated nb101 space are cached on disk: keep the tests'
    # cache apart from the user's; NASBENCH_TEST_CACHE_DIR names one to keep between runs
    import os
    import tempfile

    kept = os.environ.get("NASBENCH_TEST_CACHE_DIR")
    if kept:
        os.makedirs(kept, exist_ok=True)
        os.environ["NASBENCH_CACHE_DIR"] = kept
        return
    config._nasbench_cache = tempfile.mkdtemp(prefix="nasbench-test-cache-")
    os.environ["NASBENCH_CACHE_DIR"] = config._nasbench_cache


def pytest_unconfigure(config):
    import shutil

    cache = getattr(config, "_nasbench_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


# --- CIFAR in the standard python pickle format, tiny and random --------------------


def _write_cifar_batch(path, n, label_key, n_classes, seed):
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"synthetic batch",
        label_key: rng.integers(0, n_classes, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


@pytest.fixture
def cifar_root(tmp_path):
    """A directory holding tiny cifar-10 (100 train, 30 test) and cifar-100 (100/30) files."""
    folder10 = tmp_path / "cifar-10-batches-py"
    folder10.mkdir()
    for i in range(1, 6):
        _write_cifar_batch(folder10 / f"data_batch_{i}", 20, b"labels", 10, i)
    _write_cifar_batch(folder10 / "test_batch", 30, b"labels", 10, 6)
    folder100 = tmp_path / "cifar-100-python"
    folder100.mkdir()
    _write_cifar_batch(folder100 / "train", 100, b"fine_labels", 100, 7)
    _write_cifar_batch(folder100 / "test", 30, b"fine_labels", 100, 8)
    return tmp_path
