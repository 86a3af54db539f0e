"""What benchmark_data/README.md promises about the shipped default table, checked on the file.

Skipped where the table is not there (a checkout without it, or one where
``NASBENCH_DEFAULT_TABLE`` points elsewhere).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from nasbench_harness.proxies.zero_cost import PROXIES
from nasbench_harness.table import open_table
from nasbench_harness.table.reader import DEFAULT_TABLE_DIR, DEFAULT_TABLE_NAME
from nasbench_harness.table.validate import validate_table

SHIPPED = DEFAULT_TABLE_DIR / DEFAULT_TABLE_NAME
README = DEFAULT_TABLE_DIR / "README.md"

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED} is not there")


@pytest.fixture(scope="module")
def table():
    return open_table(SHIPPED)


def test_shipped_table_validates_and_covers_the_space(table):
    assert validate_table(SHIPPED) == []
    assert table.space.name == "nb201" and table.n_archs == 15625
    assert len(table.seeds) >= 2 and table.n_epochs >= 10
    acc = table.array("valid_acc")  # (archs, seeds, epochs): every arch trained at every seed
    assert acc.shape[0] == 15625 and np.isfinite(acc[:, :, -1]).all()


def test_shipped_table_noise_ceiling_is_at_least_the_promised_one(table):
    pair = table.noise_ceiling()["pairs"][0]
    assert pair["above_chance"]["kendall_tau"] >= 0.60
    assert pair["above_chance"]["n"] > 0.99 * table.n_unique  # nearly every arch trains


def test_shipped_table_provenance_says_how_it_was_made(table):
    prov = table.provenance
    for key in ("dataset", "recipe", "seeds", "device", "code_version", "build_time_s"):
        assert prov.get(key) not in (None, "", [], {}), key
    assert set(prov["dataset"]["splits"]) == {"train", "valid", "test"}
    assert prov["build_time_s"] > 0 and not prov.get("synthetic", False)
    train_s = table.array("train_time_s")  # measured per epoch: positive, and they vary
    assert (train_s > 0).all() and np.unique(train_s).size > 1000


def test_shipped_table_holds_every_proxy_at_three_seeds(table):
    for name in [*PROXIES, "oneshot"]:
        assert name in table.proxy_names, name
        scores = table.array(f"proxy/{name}")
        assert scores.shape[0] == 15625 and scores.shape[1] >= 3, name
        # NaN only where the proxy is undefined: cells with no input-to-output path
        assert np.isfinite(scores[table.space.connected]).all(), name


def test_readme_names_the_checksum_of_the_shipped_file(table):
    text = README.read_text()
    found = re.findall(r"SHA-256[^`]*`([0-9a-f]{64})`", text)
    assert found == [table.checksum], f"update the SHA-256 in {README}"
    assert SHIPPED.stat().st_size < 50e6
