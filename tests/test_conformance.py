"""The conformance suite (tests/conformance.py) over every discovered algorithm.

``pytest tests/test_conformance.py --algorithm path/to/file.py:ClassName``
runs it over your own algorithm instead (repeatable; registered names work
too).
"""

from __future__ import annotations

from pathlib import Path

import conformance
import pytest

from algorithms.registry import get_algorithm_class, list_algorithms
from nasbench_harness.table import open_table

FIXTURE = Path(__file__).parent / "data" / "nb201-synthetic-v1.h5"


def pytest_generate_tests(metafunc):
    if "algorithm_class" in metafunc.fixturenames:
        specs = metafunc.config.getoption("--algorithm", default=None) or list(list_algorithms())
        metafunc.parametrize("algorithm_spec", specs, scope="module")


@pytest.fixture(scope="module")
def algorithm_class(algorithm_spec):
    return get_algorithm_class(algorithm_spec)


@pytest.fixture(scope="module")
def table():
    return open_table(FIXTURE)


@pytest.fixture(scope="module")
def scrambled_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("scrambled") / "scrambled-test.h5"
    return open_table(conformance.scrambled_copy(FIXTURE, path))


@pytest.fixture(scope="module")
def budget(table):
    return conformance.check_budget(table)


def test_scrambled_fixture_differs_in_test_metrics_only(table, scrambled_table):
    import numpy as np

    assert not np.array_equal(table.array("test_acc"), scrambled_table.array("test_acc"))
    for name in ("valid_acc", "train_acc", "train_time_s", "valid_loss"):
        np.testing.assert_array_equal(table.array(name), scrambled_table.array(name))


def test_constructor_stores_arguments(algorithm_class):
    conformance.check_constructor_stores_arguments(algorithm_class)


@pytest.mark.parametrize("workers", [1, 4])
def test_same_seed_same_trace(algorithm_class, table, budget, workers):
    conformance.check_same_seed_same_trace(algorithm_class, table, budget, workers)


def test_never_sees_test_metrics(algorithm_class, table, scrambled_table, budget):
    conformance.check_never_sees_test_metrics(algorithm_class, table, scrambled_table, budget)


@pytest.mark.parametrize("workers", [1, 4])
def test_valid_proposals_and_budget(algorithm_class, table, budget, workers):
    conformance.check_valid_proposals_and_budget(algorithm_class, table, budget, workers)


def test_no_global_random_state(algorithm_class, table, budget):
    conformance.check_no_global_random_state(algorithm_class, table, budget)
