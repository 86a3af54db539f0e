"""Tests of the comparison report (nasbench_harness/report.py), rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from nasbench_harness.compare import CompareConfig, compare

FIXTURE = Path(__file__).resolve().parent / "data" / "nb201-synthetic-v1.h5"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(not FIXTURE.is_file(), reason="fixture table missing")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """3 algorithms x 3 seeds x 2 budgets on a copy of the fixture with two stored proxies."""
    from nasbench_harness.table import open_table, store_proxy

    tmp = tmp_path_factory.mktemp("report")
    table_path = tmp / "nb201-proxied.h5"
    shutil.copy(FIXTURE, table_path)
    table = open_table(table_path)
    rng = np.random.default_rng(0)
    truth = np.nanmean(np.asarray(table.array("test_acc"))[:, :, -1], axis=1)
    good = truth[:, None] + rng.normal(0, 3.0, (truth.size, 2))
    store_proxy(
        table_path, "noisy_truth", good, {"definition": "test: truth + noise", "seeds": [0, 1]}
    )
    params = np.asarray(table.array("params"), dtype=float)
    store_proxy(table_path, "params", params[:, None], {"definition": "test: params", "seeds": [0]})
    config = CompareConfig(
        tables=(str(table_path),),
        algorithms=("random", "rea", "ls"),
        runs=3,
        budgets=("x0.25", "x1"),
        jobs=1,
        out=str(tmp / "out"),
        bootstrap_resamples=300,
    )
    result = compare(config, progress=False)
    return result, table_path


def test_report_is_self_contained(report):
    result, _ = report
    page = result.report_html.read_text()
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    images = re.findall(r'<img src="([^"]+)"', page)
    # 2 tasks x (curves, final, pairwise) + critical difference + proxies
    assert len(images) == 8
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # the synthetic warning comes before anything else the reader sees
    assert page.index('class="banner"') < page.index("Headlines")
    assert "Provenance" in page and result.summary_json.is_file()
    summary = json.loads(result.summary_json.read_text())
    table = summary["provenance"]["tables"][0]
    assert table["checksum"] in page and table["path"] in page


def test_markdown_figures_exist(report):
    result, _ = report
    text = result.report_md.read_text()
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert len(figures) == 8
    for rel in figures:
        assert (result.out / rel).stat().st_size > 1000
    assert "Synthetic table" in text.split("## Headlines")[0]


def test_friedman_and_proxies_in_summary(report):
    from nasbench_harness.table import open_table

    result, table_path = report
    summary = json.loads(result.summary_json.read_text())
    friedman = summary["friedman"]["final_regret"]
    assert friedman["reason"] == "" and len(friedman["tasks"]) == 2
    assert sorted(friedman["average_ranks"]) == ["ls", "random", "rea"]
    (proxies,) = summary["proxies"]
    assert set(proxies["proxies"]) == {"noisy_truth", "params"}
    table = open_table(table_path)
    reps = np.unique(table.space.canonical_ids)
    assert proxies["n_archs"] == reps.size and proxies["archs"] == "one per isomorphism class"
    assert f"over {reps.size:,} architectures (one per isomorphism class)" in (
        result.report_md.read_text()
    )
    truth = np.nanmean(np.asarray(table.array("test_acc"))[reps, :, -1], axis=1)
    score = np.asarray(table.array("params"))[reps]
    ok = np.isfinite(truth) & np.isfinite(score)
    rho = proxies["proxies"]["params"]["all"]["spearman_rho"]
    assert rho["estimate"] == pytest.approx(sps.spearmanr(truth[ok], score[ok]).statistic)
    assert rho["ci_low"] <= rho["estimate"] <= rho["ci_high"]
    assert proxies["noise_ceiling"]["mean"]["all"]["spearman_rho"] > 0.5


# Added to a copy of the page: records load errors and each image's decoded width.
CHECK_SCRIPT = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__errors.push(String((t && (t.src || t.href)) || e.message || "error").slice(0, 120));
}, true);
window.addEventListener("load", function () {
  var widths = Array.prototype.map.call(document.images, function (img) {
    return img.complete ? img.naturalWidth : -1;
  });
  var out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify({widths: widths, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def render(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` in headless Chromium; return the decoded image widths and load errors."""
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("<head>", "<head>" + CHECK_SCRIPT, 1))
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="render-check">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium gave no result (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install -y chromium) - report rendering unchecked",
)
def test_report_renders_in_headless_chromium(report, tmp_path):
    result, _ = report
    outcome = render(result.report_html, tmp_path)
    assert outcome["errors"] == []
    assert len(outcome["widths"]) == 8
    assert all(width > 100 for width in outcome["widths"]), outcome["widths"]
    # the probe can fail: a broken image is reported with width 0
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<html><head></head><body><img src="data:image/png;base64,AAAA"></body></html>'
    )
    assert render(broken, tmp_path)["widths"] == [0]


CD_SCRIPT = """
import hashlib, sys
from nasbench_harness.report import figure_cd
names = ["random", "rea", "ls", "bananas", "bohb", "hb"]
ranks = dict(zip(names, [4.5, 2.0, 1.5, 1.0, 3.5, 5.5]))
p = {a: {b: (1.0 if a == b else 0.5) for b in names} for a in names}
for a, b in (("bananas", "hb"), ("ls", "hb"), ("bananas", "random")):
    p[a][b] = p[b][a] = 0.001
friedman = {"reason": None, "nemenyi_p": p, "average_ranks": ranks, "alpha": 0.05,
            "critical_difference": 2.0, "tasks": ["a", "b", "c"], "p_value": 0.01}
sys.stdout.write(hashlib.sha256(figure_cd(friedman)).hexdigest())
"""


def test_critical_difference_figure_says_when_the_omnibus_test_is_not_significant(monkeypatch):
    from nasbench_harness import report as report_module

    titles = []
    monkeypatch.setattr(
        report_module, "_png", lambda fig: titles.append(fig.axes[0].get_title("left"))
    )
    names = ["random", "rea", "ls"]
    base = {
        "reason": None,
        "nemenyi_p": {a: {b: 1.0 if a == b else 0.2 for b in names} for a in names},
        "average_ranks": dict(zip(names, [2.6, 1.8, 1.6])),
        "alpha": 0.05,
        "critical_difference": 1.9,
        "tasks": ["a", "b", "c"],
        "statistic": 1.2,
        "p_value": 0.03,  # the chi-square alone would call it significant
        "iman_davenport": 0.6,
        "p_iman_davenport": 0.58,
    }
    report_module.figure_cd(base)
    report_module.figure_cd({**base, "p_iman_davenport": 0.004})
    assert "not significant (p = 0.58)" in titles[0]
    assert "not significant" not in titles[1] and "Nemenyi CD = 1.90" in titles[1]


def test_critical_difference_figure_does_not_depend_on_string_hashing():
    import os
    import sys

    digests = set()
    for hash_seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [sys.executable, "-c", CD_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout)
    assert len(digests) == 1
