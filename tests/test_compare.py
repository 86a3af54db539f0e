"""End-to-end tests of `nasbench compare` (nasbench_harness/compare.py) on the fixture table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasbench_harness import stats
from nasbench_harness.cli import main
from nasbench_harness.compare import (
    CompareConfig,
    RunRecord,
    compare,
    execute_run,
    make_plan,
    parse_budget,
)
from nasbench_harness.errors import NasbenchError
from nasbench_harness.table import open_table

FIXTURE = Path(__file__).resolve().parent / "data" / "nb201-synthetic-v1.h5"

pytestmark = pytest.mark.skipif(not FIXTURE.is_file(), reason="fixture table missing")


def small_config(out, **changes) -> CompareConfig:
    base = dict(
        tables=(str(FIXTURE),),
        algorithms=("random", "rea"),
        runs=5,
        budgets=("x1",),
        jobs=1,
        out=str(out),
    )
    base.update(changes)
    return CompareConfig(**base)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One compare of 2 algorithms x 5 seeds x 1 budget, through 2 worker processes."""
    out = tmp_path_factory.mktemp("compare") / "out"
    result = compare(small_config(out, jobs=2), progress=False)
    return result


def test_compare_writes_every_file(first):
    assert first.n_runs == 10 and first.n_done == 10 and first.n_skipped == 0
    for path in (first.report_html, first.report_md, first.results_csv, first.summary_json):
        assert path.is_file() and path.stat().st_size > 0
    runs = list((first.out / "runs").glob("*.jsonl"))
    assert len(runs) == 1 and len(runs[0].read_text().splitlines()) == 10
    assert first.headlines and "paired seeds" in first.headlines[0]


def test_summary_numbers_agree_with_the_csv(first):
    summary = json.loads(first.summary_json.read_text())
    frame = pd.read_csv(first.results_csv)
    assert len(frame) == 10
    assert list(frame.columns[:8]) == [
        "task",
        "table",
        "table_checksum",
        "budget",
        "budget_s",
        "workers",
        "algorithm",
        "seed",
    ]
    (task,) = summary["tasks"]
    for name in ("random", "rea"):
        rows = frame[frame["algorithm"] == name]
        assert rows["seed"].tolist() == [0, 1, 2, 3, 4]
        algo = task["algorithms"][name]
        assert algo["n_runs"] == 5
        assert algo["final_regret"]["mean"] == pytest.approx(rows["final_regret"].mean())
        assert algo["final_regret"]["median"] == pytest.approx(rows["final_regret"].median())
        assert algo["auc"]["mean"] == pytest.approx(rows["auc"].mean())
        assert algo["n_queries_median"] == pytest.approx(rows["n_queries"].median())
        # incumbent strings and accuracies are the table's
        assert rows["final_incumbent"].str.startswith("|").all()
        table = open_table(FIXTURE)
        best = np.nanmax(np.nanmean(table.array("test_acc")[:, :, -1], axis=1))
        assert task["best_test_acc"] == pytest.approx(best)
        looked_up = [table.query(a, metric="test_acc") for a in rows["final_incumbent"]]
        np.testing.assert_allclose(rows["incumbent_test_acc"], looked_up, rtol=1e-6)
        assert (rows["incumbent_test_acc"] <= task["best_test_acc"] + 1e-9).all()
        np.testing.assert_allclose(
            rows["final_regret"], task["best_test_acc"] - rows["incumbent_test_acc"], atol=1e-9
        )
    (test,) = task["pairwise"]["final_regret"]
    r = frame.pivot(index="seed", columns="algorithm", values="final_regret")
    _, p, effect, n = stats.paired_wilcoxon(r["random"], r["rea"])
    assert (test["p_value"], test["effect_size"], test["n"]) == pytest.approx((p, effect, n))
    assert summary["provenance"]["seeds"] == [0, 1, 2, 3, 4]
    assert summary["provenance"]["tables"][0]["synthetic"] is True


def test_an_algorithms_numbers_do_not_depend_on_the_others_compared(first, tmp_path):
    out = tmp_path / "only-rea"
    shutil.copytree(first.out, out)  # the same runs, analysed without random search
    alone = compare(small_config(out, algorithms=("rea",)), progress=False)
    assert alone.n_done == 0
    (both,) = json.loads(first.summary_json.read_text())["tasks"]
    (single,) = json.loads(alone.summary_json.read_text())["tasks"]
    assert single["algorithms"]["rea"] == both["algorithms"]["rea"]  # CIs included
    assert single["curves"]["rea"] == both["curves"]["rea"]


def test_second_run_skips_everything_and_gives_identical_numbers(first):
    before = {p: (first.out / p).read_bytes() for p in ("summary.json", "results.csv")}
    again = compare(small_config(first.out), progress=False)
    assert again.n_done == 0 and again.n_skipped == 10
    for name, data in before.items():
        assert (first.out / name).read_bytes() == data, name


def test_a_fresh_compare_with_the_same_arguments_gives_identical_numbers(first, tmp_path):
    # every run executed again, in one process instead of two, into a new directory
    again = compare(small_config(tmp_path / "again"), progress=False)
    assert again.n_done == 10 and again.n_skipped == 0
    assert again.results_csv.read_bytes() == first.results_csv.read_bytes()
    ours, theirs = (json.loads(r.summary_json.read_text()) for r in (again, first))
    ours.pop("provenance"), theirs.pop("provenance")  # dates, paths and timings
    assert ours == theirs


def test_interrupted_compare_resumes_only_missing_runs(first, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(first.out, out)
    (runs,) = (out / "runs").glob("*.jsonl")
    lines = runs.read_text().splitlines(keepends=True)
    # 6 finished runs, then a line torn by the interruption
    runs.write_text("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    resumed = compare(small_config(out), progress=False)
    assert resumed.n_skipped == 6 and resumed.n_done == 4
    assert len(runs.read_text().splitlines()) == 10
    for name in ("summary.json", "results.csv"):
        assert (out / name).read_bytes() == (first.out / name).read_bytes(), name


def test_resume_keeps_foreign_records_and_mends_a_missing_newline(first, tmp_path):
    out = tmp_path / "foreign"
    shutil.copytree(first.out, out)
    (runs,) = (out / "runs").glob("*.jsonl")
    lines = runs.read_text().splitlines(keepends=True)
    foreign = json.dumps({**json.loads(lines[0]), "format": 99, "key": "other"}) + "\n"
    # a record of another format in the middle; the last line has lost its newline
    runs.write_text("".join(lines[:3]) + foreign + "".join(lines[3:]).rstrip("\n"))
    resumed = compare(small_config(out), progress=False)
    assert resumed.n_skipped == 10 and resumed.n_done == 0
    text = runs.read_text()
    assert foreign in text and text.endswith("\n")  # kept on disk, newline mended
    assert text.splitlines(keepends=True) == [*lines[:3], foreign, *lines[3:]]
    # a new run appended after the mended last line is its own record
    more = compare(small_config(out, runs=6), progress=False)
    assert more.n_done == 2 and more.n_skipped == 10
    again = compare(small_config(out, runs=6), progress=False)
    assert again.n_done == 0 and again.n_skipped == 12


def test_workers_refuse_a_table_replaced_since_the_plan():
    from nasbench_harness.compare import _worker_table

    table = _worker_table(str(FIXTURE), open_table(FIXTURE).checksum)
    assert table.path == FIXTURE
    with pytest.raises(NasbenchError, match="changed while compare ran"):
        _worker_table(str(FIXTURE), "0" * 64)


def test_a_failed_run_names_itself_and_its_hyperparameters(tmp_path):
    path = tmp_path / "boom.py"
    path.write_text(
        "from algorithms.regularized_evolution import RegularizedEvolution\n\n\n"
        "class Boom(RegularizedEvolution):\n    name = ''\n\n"
        "    def ask(self):\n        raise ValueError('boom')\n"
    )
    algo = f"{path}:Boom"
    config = small_config(
        tmp_path / "out", algorithms=(algo,), params={algo: {"population_size": 7}}, runs=1
    )
    with pytest.raises(NasbenchError) as info:
        compare(config, progress=False)
    message = str(info.value)
    assert f"run {algo} seed 0" in message and "boom" in message
    assert "--param population_size=7" in message and "--param sample_size=3" in message


def test_changed_hyperparameters_are_new_runs(first, tmp_path):
    out = tmp_path / "params"
    shutil.copytree(first.out, out)
    result = compare(small_config(out, params={"rea": {"population_size": 20}}), progress=False)
    assert result.n_done == 5 and result.n_skipped == 5  # random reused, rea run again
    summary = json.loads(result.summary_json.read_text())
    assert summary["provenance"]["algorithms"]["rea"]["population_size"] == 20


def test_runs_of_other_algorithm_code_are_not_resumed(first, tmp_path, monkeypatch):
    import algorithms.registry as registry

    out = tmp_path / "code"
    shutil.copytree(first.out, out)
    real = registry.code_fingerprint
    monkeypatch.setattr(registry, "code_fingerprint", lambda n: "0" * 16 if n == "rea" else real(n))
    result = compare(small_config(out), progress=False)
    assert result.n_done == 5 and result.n_skipped == 5  # random reused, rea run again
    summary = json.loads(result.summary_json.read_text())
    assert summary["provenance"]["algorithm_code"] == {"random": real("random"), "rea": "0" * 16}


def test_code_fingerprint_follows_the_algorithm_file(tmp_path):
    from algorithms.registry import code_fingerprint

    path = tmp_path / "mine.py"
    source = (
        "from algorithms.random_search import RandomSearch\n\n\n"
        "class Mine(RandomSearch):\n    name = ''\n"
    )
    path.write_text(source)
    mine = code_fingerprint(f"{path}:Mine")
    assert mine != code_fingerprint("random") and code_fingerprint("random") == code_fingerprint(
        "random"
    )
    path.write_text(source + "# edited\n")
    assert code_fingerprint(f"{path}:Mine") != mine
    # the table code that decides what a query answers is covered too
    from algorithms.registry import _shared_code

    assert {"reader.py", "schema.py", "simulator.py"} <= {p.name for p, _ in _shared_code()}


def test_every_algorithm_compare_refuses_while_a_module_is_broken(monkeypatch):
    import algorithms.registry as registry
    from nasbench_harness.compare import tabular_algorithms

    assert "rea" in tabular_algorithms()
    monkeypatch.setitem(registry._import_errors, "algorithms.mine", "SyntaxError: oops")
    with pytest.raises(NasbenchError, match=r"algorithms\.mine \(SyntaxError: oops\)"):
        tabular_algorithms()


def test_charging_evaluation_time_makes_new_runs_with_fewer_queries(first, tmp_path):
    out = tmp_path / "eval"
    shutil.copytree(first.out, out)
    result = compare(small_config(out, eval_time=True), progress=False)
    assert result.n_done == 10 and result.n_skipped == 0  # other runs than the plain ones
    assert sorted(p.name.endswith("-eval.jsonl") for p in (out / "runs").glob("*.jsonl")) == [
        False,
        True,
    ]
    summary = json.loads(result.summary_json.read_text())
    assert "validation evaluation" in summary["provenance"]["query_cost"]
    plain = json.loads(first.summary_json.read_text())["provenance"]["query_cost"]
    assert "evaluation" not in plain
    charged = pd.read_csv(result.results_csv).set_index(["algorithm", "seed"])["n_queries"]
    free = pd.read_csv(first.results_csv).set_index(["algorithm", "seed"])["n_queries"]
    # random search proposes the same archs for a seed; each now costs more
    assert (charged.loc["random"] < free.loc["random"]).all()
    plain_again = compare(small_config(out), progress=False)  # the plain runs are still there
    assert plain_again.n_done == 0 and plain_again.n_skipped == 10


def test_eval_time_refuses_a_table_without_evaluation_times_before_any_run(tmp_path):
    from nasbench_harness.errors import QueryError
    from nasbench_harness.table.synthetic import make_synthetic_table

    bare = make_synthetic_table(tmp_path / "no-eval.h5", n_seeds=1, n_epochs=3, eval_time=False)
    config = small_config(tmp_path / "out", tables=(str(FIXTURE), str(bare)), eval_time=True)
    with pytest.raises(QueryError, match="has no eval_time_s"):
        make_plan(config)
    assert not (tmp_path / "out").exists()


def test_a_sample_table_is_refused_before_any_run(tmp_path, capsys):
    from nasbench_harness.build import make_settings, merge, run_build
    from nasbench_harness.errors import QueryError

    settings = make_settings(seeds=(0,), limit=4, epochs=3, trainer="fake")
    run_build(settings, tmp_path / "b", workers=1, progress=False)
    sample = merge([tmp_path / "b"], tmp_path / "sample.h5").path  # 4 of 5,234 archs
    config = small_config(tmp_path / "out", tables=(str(sample),))
    with pytest.raises(QueryError, match="5,230 of its 5,234 distinct archs have no result"):
        make_plan(config)
    assert not (tmp_path / "out").exists()
    assert main(["search", str(sample), "--algorithm", "random", "--seed", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "search a complete table" in err


def test_stored_step_function_reproduces_the_trace():
    from algorithms.registry import make_algorithm
    from nasbench_harness.simulator import run_search
    from nasbench_harness.table import open_table

    plan = make_plan(small_config("unused", algorithms=("rea",), runs=1))
    spec = plan.specs()[0]
    record = execute_run(spec, plan.tables[0])
    assert RunRecord.from_json(record.to_json()) == record
    trace = run_search(
        plan.tables[0], make_algorithm("rea", seed=0), budget_s=spec.task.budget_s, seed=0
    )
    # the change points alone give back the regret after every query
    np.testing.assert_array_equal(
        stats.step_values(record.time_s, record.regret, trace.time_s), trace.regret
    )
    assert record.n_queries == trace.n_queries
    assert record.final_regret == trace.final_regret
    assert open_table(FIXTURE).checksum == spec.task.table_checksum


def test_cli_json_and_defaults(first, capsys):
    code = main(
        [
            "compare",
            "--table",
            str(FIXTURE),
            "--algorithms",
            "random,rea",
            "--runs",
            "5",
            "--budgets",
            "x1",
            "--jobs",
            "1",
            "--out",
            str(first.out),
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_runs"] == 10 and out["n_resumed"] == 10 and out["n_executed"] == 0
    assert Path(out["report_html"]).is_file()


def test_budget_parsing():
    assert parse_budget("x0.25") == ("x0.25", None)
    assert parse_budget("3600") == ("3600 s", 3600.0)
    for bad in ("x0", "-5", "soon", "xx1"):
        with pytest.raises(NasbenchError, match="budget"):
            parse_budget(bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budgets", "later"], "budget"),
        (["--algorithms", "no-such-algo"], "unknown algorithm"),
        (["--runs", "0"], "--runs"),
        (["--param", "rea=1"], "ALGO:KEY=VALUE"),
        (["--param", "rea:=1"], "ALGO:KEY=VALUE"),
        (["--out", str(FIXTURE)], "--out"),
    ],
)
def test_cli_bad_input_is_one_line_error(tmp_path, capsys, args, message):
    code = main(["compare", "--table", str(FIXTURE), "--out", str(tmp_path / "x"), *args])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_headline_follows_the_paired_test_when_the_mean_disagrees():
    from nasbench_harness.compare import _headline

    rng = np.random.default_rng(0)
    random = rng.uniform(1.0, 2.0, 100)
    rea = random + 0.2
    rea[:15] = 0.0  # lowest mean (a few seeds at the optimum), worse on 85% of seeds
    samples = {"rea": rea, "random": random}
    means = {name: float(values.mean()) for name, values in samples.items()}
    assert means["rea"] < means["random"]
    line = _headline("t", stats.pairwise_tests(samples), means)
    assert line.startswith("REA has the lowest mean final regret, but random search ends lower")
    assert "in 85% of paired seeds (REA in 15%" in line and "in favour of random search" in line
    consistent = {"rea": random - 0.2, "random": random}
    means = {name: float(values.mean()) for name, values in consistent.items()}
    line = _headline("t", stats.pairwise_tests(consistent), means)
    assert line.startswith("REA reaches lower final regret than random search in 100%")


def test_params_of_an_algorithm_named_by_path():
    from nasbench_harness.commands.compare import _parse_params

    assert _parse_params(["dir/mine.py:Mine:population_size=20", "rea:tag=a:b"]) == {
        "dir/mine.py:Mine": {"population_size": 20},
        "rea": {"tag": "a:b"},
    }
