"""Benchmarks of the table reader on a full-size synthetic table.

Run with ``pytest benchmarks/bench_table.py --benchmark-enable``. The table
(15,625 archs x 3 seeds x 200 epochs, 8 epoch metrics, about 300 MB of raw
float32) is written once per session by the real writer into a temporary
directory (takes about half a minute). Targets: open < 0.5 s, one query
(int or string arch) median < 10 us, ``query_many`` of 100,000 archs < 50 ms,
memory held < 1.5 x the raw array bytes.
"""

from __future__ import annotations

import gc
import itertools
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nasbench_harness.table import make_synthetic_table, open_table

N_SEEDS, N_EPOCHS = 3, 200
OPEN_TARGET_S = 0.5
QUERY_TARGET_S = 10e-6
MANY_TARGET_S = 50e-3
MEMORY_TARGET = 1.5


@pytest.fixture(scope="session")
def table_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "nb201-full.h5"
    start = time.perf_counter()
    # full float32 losses and times, as a real build records them (they compress worst)
    make_synthetic_table(path, n_seeds=N_SEEDS, n_epochs=N_EPOCHS, loss_step=None, time_step=None)
    _report(
        f"full-size table written in {time.perf_counter() - start:.1f} s: "
        f"{path.stat().st_size / 1e6:.0f} MB on disk"
    )
    return path


@pytest.fixture(scope="session")
def table(table_path):
    t = open_table(table_path, preload=True)
    t.query(0)
    t.query(0, seed=777)
    t.cost(0)
    return t


def _report(text: str) -> None:
    print(f"\n[bench_table] {text}", flush=True)


def _median(benchmark) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


def test_open(benchmark, table_path, capsys):
    table = benchmark.pedantic(open_table, args=(table_path,), rounds=7, iterations=1)
    assert table.n_epochs == N_EPOCHS
    median = _median(benchmark)
    if median is not None:
        with capsys.disabled():
            _report(f"open (metrics read on first use): median {median * 1e3:.1f} ms")
        assert median < OPEN_TARGET_S


def test_open_and_read_everything(benchmark, table_path, capsys):
    def run():
        return open_table(table_path, preload=True)

    table = benchmark.pedantic(run, rounds=3, iterations=1)
    raw = sum(table.array(m).nbytes for m in table.epoch_metric_names)
    median = _median(benchmark)
    if median is not None:
        with capsys.disabled():
            _report(
                f"open + read all {len(table.epoch_metric_names)} epoch metrics "
                f"({raw / 1e6:.0f} MB raw): median {median:.2f} s "
                f"({raw / 1e6 / median:.0f} MB/s)"
            )


def test_query_int(benchmark, table):
    archs = itertools.cycle(np.random.default_rng(0).integers(0, table.n_archs, 1000).tolist())
    value = benchmark(lambda: table.query(next(archs)))
    assert isinstance(value, float)
    median = _median(benchmark)
    if median is not None:
        assert median < QUERY_TARGET_S


def test_query_str(benchmark, table):
    rng = np.random.default_rng(1)
    strings = [table.space.to_string(int(i)) for i in rng.integers(0, table.n_archs, 1000)]
    archs = itertools.cycle(strings)
    value = benchmark(lambda: table.query(next(archs)))
    assert isinstance(value, float)
    median = _median(benchmark)
    if median is not None:
        assert median < QUERY_TARGET_S


def test_query_seed_epoch(benchmark, table):
    archs = itertools.cycle(np.random.default_rng(2).integers(0, table.n_archs, 1000).tolist())
    benchmark(lambda: table.query(next(archs), "valid_acc", epoch=12, seed=888))
    median = _median(benchmark)
    if median is not None:
        assert median < QUERY_TARGET_S


def test_cost(benchmark, table):
    archs = itertools.cycle(np.random.default_rng(3).integers(0, table.n_archs, 1000).tolist())
    benchmark(lambda: table.cost(next(archs), epoch=12))
    median = _median(benchmark)
    if median is not None:
        assert median < QUERY_TARGET_S


def test_query_many_100k(benchmark, table):
    idx = np.random.default_rng(4).integers(0, table.n_archs, 100_000)
    out = benchmark(table.query_many, idx)
    assert out.shape == (100_000,)
    median = _median(benchmark)
    if median is not None:
        assert median < MANY_TARGET_S


def test_query_many_100k_seed_epochs(benchmark, table):
    rng = np.random.default_rng(5)
    idx = rng.integers(0, table.n_archs, 100_000)
    epochs = rng.integers(1, N_EPOCHS + 1, 100_000)
    out = benchmark(table.query_many, idx, "valid_acc", epochs, 777)
    assert out.shape == (100_000,)
    median = _median(benchmark)
    if median is not None:
        assert median < MANY_TARGET_S


def test_memory_held(table_path, capsys):
    """Bytes allocated by an open table, with every metric read and the query caches built."""
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        table = open_table(table_path, preload=True)
        opened = tracemalloc.get_traced_memory()[0]
        table.query(0)  # seed-mean of valid_acc
        table.cost(0)  # cumulative times
        table.query(0, "test_acc")
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    rss_after = _rss_bytes()
    raw = sum(table.array(m).nbytes for m in table.epoch_metric_names)
    raw += sum(table.array(m).nbytes for m in table.arch_metric_names)
    with capsys.disabled():
        _report(
            f"memory: raw arrays {raw / 1e6:.0f} MB; held after open {opened / 1e6:.0f} MB "
            f"({opened / raw:.3f}x); after query/cost caches {held / 1e6:.0f} MB "
            f"({held / raw:.3f}x); RSS delta {(rss_after - rss_before) / 1e6:.0f} MB "
            f"({(rss_after - rss_before) / raw:.3f}x)"
        )
    assert held < MEMORY_TARGET * raw
    del table


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")
