"""Shared pytest configuration."""

from __future__ import annotations


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
