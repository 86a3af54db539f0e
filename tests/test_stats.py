"""Tests of nasbench_harness/stats.py: known values, scipy on fixed data, no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from nasbench_harness import stats
from nasbench_harness.errors import NasbenchError

# ---------------------------------------------------------------------------
# forward fill without look-ahead
# ---------------------------------------------------------------------------


def test_step_values_reads_the_last_value_at_or_before_each_time():
    times = [1.0, 2.0, 2.0, 5.0]
    values = [10.0, 9.0, 8.0, 3.0]
    grid = [0.5, 1.0, 1.5, 2.0, 4.999, 5.0, 100.0]
    out = stats.step_values(times, values, grid)
    # before the first result: no incumbent; equal times: the state after all of them
    np.testing.assert_array_equal(out, [np.nan, 10.0, 10.0, 8.0, 8.0, 3.0, 3.0])
    assert math.isnan(stats.NO_INCUMBENT)


def test_forward_fill_never_uses_a_later_point():
    """A look-ahead reading (next point, interpolation, back-fill) gives other numbers here.

    Each grid time sits strictly between two results whose values differ a
    lot, and just before a big improvement: interpolating toward, or
    snapping to, the next point would report the improvement too early.
    """
    times = np.array([10.0, 20.0, 40.0, 80.0])
    regret = np.array([30.0, 20.0, 5.0, 0.0])
    grid = np.array([5.0, 10.0, 19.99, 39.0, 79.9, 80.0, 200.0])
    out = stats.step_values(times, regret, grid)
    np.testing.assert_array_equal(out, [np.nan, 30.0, 30.0, 20.0, 5.0, 0.0, 0.0])
    # what look-ahead implementations would give, to show the test tells them apart
    nearest_next = regret[np.minimum(np.searchsorted(times, grid, side="left"), 3)]
    interpolated = np.interp(grid, times, regret)
    assert not np.array_equal(out[1:], nearest_next[1:])
    assert not np.array_equal(out[1:], interpolated[1:])


def test_curve_matrix_later_points_do_not_leak_into_earlier_grid_times():
    rng = np.random.default_rng(5)
    grid = stats.log_time_grid(1.0, 1e4, 60)
    runs = []
    for _ in range(8):
        t = np.sort(rng.uniform(1.0, 1e4, rng.integers(1, 30)))
        runs.append((t, np.minimum.accumulate(rng.uniform(0, 50, t.size))))
    base = stats.curve_matrix(runs, grid)
    for cut in grid[::7]:
        # change every value that comes after `cut`: nothing at or before `cut` may move
        changed = [(t, np.where(t > cut, -999.0, v)) for t, v in runs]
        other = stats.curve_matrix(changed, grid)
        early = grid <= cut
        np.testing.assert_array_equal(other[:, early], base[:, early])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=1, max_size=25),
    st.lists(st.floats(0.01, 2e5, allow_nan=False), min_size=1, max_size=25),
)
def test_step_values_matches_a_brute_force_definition(raw_times, grid):
    times = np.sort(np.asarray(raw_times))
    values = np.arange(times.size, dtype=float) * 1.5 + 1.0
    out = stats.step_values(times, values, grid)
    for g, got in zip(grid, out):
        earlier = np.flatnonzero(times <= g)
        expected = values[earlier[-1]] if earlier.size else np.nan
        np.testing.assert_equal(got, expected)


def test_step_values_rejects_unsorted_times():
    with pytest.raises(NasbenchError, match="non-decreasing"):
        stats.step_values([2.0, 1.0], [1.0, 2.0], [1.5])


def test_log_time_grid_is_log_spaced_with_exact_ends():
    grid = stats.log_time_grid(2.0, 2000.0, 4)
    np.testing.assert_allclose(grid, [2.0, 20.0, 200.0, 2000.0])
    assert grid[0] == 2.0 and grid[-1] == 2000.0
    with pytest.raises(NasbenchError):
        stats.log_time_grid(0.0, 10.0)


# ---------------------------------------------------------------------------
# normalised log-time AUC
# ---------------------------------------------------------------------------


def test_log_time_auc_by_hand():
    # window [1, 100] s = 2 decades. Before t = 10: 6 (before_first); then 2 until 100.
    auc = stats.log_time_auc([10.0], [2.0], start_s=1.0, stop_s=100.0, before_first=6.0)
    assert auc == pytest.approx((6.0 + 2.0) / 2)
    # a value found before the window counts from the window's start
    assert stats.log_time_auc([0.5], [3.0], start_s=1.0, stop_s=100.0) == pytest.approx(3.0)
    # points after the window are ignored
    assert stats.log_time_auc(
        [10.0, 1000.0], [2.0, 0.0], start_s=1.0, stop_s=100.0, before_first=6.0
    ) == pytest.approx(4.0)


def test_log_time_auc_matches_a_fine_grid_average():
    rng = np.random.default_rng(2)
    times = np.sort(rng.uniform(3.0, 900.0, 12))
    values = np.sort(rng.uniform(0.0, 20.0, 12))[::-1]
    exact = stats.log_time_auc(times, values, start_s=2.0, stop_s=1000.0, before_first=25.0)
    grid = stats.log_time_grid(2.0, 1000.0, 200_001)
    filled = np.nan_to_num(stats.step_values(times, values, grid[:-1]), nan=25.0)
    approx = np.sum(filled * np.diff(np.log(grid))) / math.log(1000.0 / 2.0)
    assert exact == pytest.approx(approx, rel=1e-4)


# ---------------------------------------------------------------------------
# describing samples
# ---------------------------------------------------------------------------

FIXED = np.array([3.1, 0.0, 2.2, 5.9, 1.4, 0.0, 4.4, 2.8, 7.5, 1.1, 0.6, 3.3])


def test_describe_matches_numpy_and_scipy_bootstrap():
    d = stats.describe(FIXED, n_resamples=999, seed=7)
    assert d.n == FIXED.size
    assert d.median == pytest.approx(np.median(FIXED))
    assert (d.q25, d.q75) == pytest.approx(tuple(np.percentile(FIXED, [25, 75])))
    assert d.mean == pytest.approx(FIXED.mean())
    ref = sps.bootstrap(
        (FIXED,),
        np.mean,
        n_resamples=999,
        confidence_level=0.95,
        method="BCa",
        rng=np.random.default_rng(7),
    ).confidence_interval
    assert (d.ci_low, d.ci_high) == pytest.approx((ref.low, ref.high))
    assert d.ci_low < d.mean < d.ci_high


def test_describe_is_seeded_and_handles_degenerate_samples():
    assert stats.describe(FIXED, seed=3) == stats.describe(FIXED, seed=3)
    flat = stats.describe([0.0, 0.0, 0.0])
    assert (flat.mean, flat.ci_low, flat.ci_high) == (0.0, 0.0, 0.0)
    empty = stats.describe([np.nan])
    assert empty.n == 0 and math.isnan(empty.mean)
    # one value: its mean is known, its spread is not (no zero-width "CI")
    single = stats.describe([5.0, np.nan])
    assert single.n == 1 and single.mean == 5.0
    assert math.isnan(single.ci_low) and math.isnan(single.ci_high)
    curve = stats.summarize_curves(np.array([[np.nan, 1.0, 0.5]]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(curve.mean, [np.nan, 1.0, 0.5])
    assert np.isnan(curve.ci_low).all() and np.isnan(curve.ci_high).all()


def test_summarize_curves_only_where_every_run_has_a_value():
    grid = np.array([1.0, 2.0, 3.0, 4.0])
    curves = np.array([[np.nan, 5.0, 4.0, 1.0], [np.nan, np.nan, 6.0, 2.0], [7.0, 7.0, 7.0, 0.0]])
    s = stats.summarize_curves(curves, grid, n_resamples=200, seed=0)
    assert np.isnan(s.median[:2]).all() and np.isnan(s.mean[:2]).all()
    np.testing.assert_allclose(s.share_started, [1 / 3, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(s.median[2:], np.median(curves[:, 2:], axis=0))
    np.testing.assert_allclose(s.q25[2:], np.percentile(curves[:, 2:], 25, axis=0))
    np.testing.assert_allclose(s.mean[2:], curves[:, 2:].mean(axis=0))
    assert np.all(s.ci_low[2:] <= s.mean[2:]) and np.all(s.mean[2:] <= s.ci_high[2:])


def test_curve_cis_are_percentile_intervals_of_runs_resampled_jointly():
    rng = np.random.default_rng(5)
    curves = rng.gamma(2.0, size=(12, 6)) + np.linspace(3, 0, 6)  # every column varies
    grid = np.arange(1.0, 7.0)
    s = stats.summarize_curves(curves, grid, n_resamples=400, seed=9)
    ref = sps.bootstrap(
        (curves,),
        np.mean,
        axis=0,
        vectorized=True,
        n_resamples=400,
        method="percentile",
        rng=np.random.default_rng(9),
    )
    # the same resampled runs for every grid time (rows drawn jointly), percentile bounds
    np.testing.assert_allclose(s.ci_low, ref.confidence_interval.low)
    np.testing.assert_allclose(s.ci_high, ref.confidence_interval.high)
    column = sps.bootstrap(
        (curves[:, 2],), np.mean, n_resamples=400, method="BCa", rng=np.random.default_rng(9)
    )
    assert s.ci_low[2] != pytest.approx(column.confidence_interval.low)  # not BCa


# ---------------------------------------------------------------------------
# paired tests
# ---------------------------------------------------------------------------

A = np.array([1.2, 0.4, 3.3, 0.0, 2.5, 1.9, 0.7, 4.1, 2.2, 0.9, 1.5, 3.0])
B = np.array([2.0, 1.1, 3.0, 0.0, 3.9, 2.6, 1.6, 4.0, 3.5, 1.8, 2.9, 3.4])


def test_paired_wilcoxon_matches_scipy():
    stat, p, effect, n = stats.paired_wilcoxon(A, B)
    ref = sps.wilcoxon(A, B, zero_method="zsplit")
    assert n == A.size
    assert stat == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)
    assert effect > 0  # A has the lower (better) values


def test_rank_biserial_by_hand():
    # d = y - x = [1, 2, -3, 4]: ranks 1, 2, 3, 4; R+ = 7, R- = 3 -> r = 0.4
    x = np.array([0.0, 0.0, 3.0, 0.0])
    y = np.array([1.0, 2.0, 0.0, 4.0])
    _, _, effect, _ = stats.paired_wilcoxon(x, y)
    assert effect == pytest.approx(0.4)
    # all pairs equal: no evidence, no effect
    assert stats.paired_wilcoxon(x, x)[1:3] == (1.0, 0.0)
    # 7 tied seeds (ranks 1-7, split evenly) and 3 won by x (ranks 8-10): the ties stay in
    # the denominator, r = ((27 + 14) - 14) / 55
    _, _, effect, _ = stats.paired_wilcoxon(np.zeros(10), [0.0] * 7 + [0.5] * 3)
    assert effect == pytest.approx(27 / 55)


def test_p_values_keep_three_digits_near_the_threshold():
    from nasbench_harness.compare import format_p

    assert (format_p(0.0496), format_p(0.0504)) == ("0.0496", "0.0504")
    assert (format_p(0.04996), format_p(0.05004), format_p(0.05)) == ("0.04996", "0.05004", "0.05")
    assert (format_p(0.5), format_p(0.00123), format_p(5e-5), format_p(None)) == (
        "0.5",
        "0.00123",
        "5.0e-05",
        "n/a",
    )


def test_holm_by_hand_and_against_statsmodels():
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = stats.holm([0.2, np.nan, 0.01])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.2, 0.02])
    p = np.random.default_rng(4).uniform(0, 0.2, size=12)
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1])


def test_pairwise_tests_cover_every_pair_with_holm():
    rng = np.random.default_rng(0)
    samples = {"a": A, "b": B, "c": B + rng.normal(0, 0.1, B.size)}
    tests = stats.pairwise_tests(samples)
    assert [(t.a, t.b) for t in tests] == [("a", "b"), ("a", "c"), ("b", "c")]
    np.testing.assert_allclose([t.p_holm for t in tests], stats.holm([t.p_value for t in tests]))
    ab = tests[0]
    assert ab.share_a_better + ab.share_tied + ab.share_b_better == pytest.approx(1.0)
    assert ab.share_a_better == pytest.approx(np.mean(A < B))
    assert ab.median_difference == pytest.approx(np.median(A - B))


# ---------------------------------------------------------------------------
# Friedman + Nemenyi: Demšar (2006), JMLR 7:1-30, section 3.2.2 and Table 6
# ---------------------------------------------------------------------------

# AUC of C4.5 with four settings (C4.5, C4.5+m, C4.5+cf, C4.5+m+cf) on 14 UCI data
# sets, Table 6 of J. Demšar, "Statistical Comparisons of Classifiers over Multiple
# Data Sets", JMLR 7 (2006) 1-30. The table prints three decimals; on "voting" it
# ranks C4.5+cf (2) ahead of C4.5+m+cf (3) although both print 0.975, so that row
# carries 0.9751 here to reproduce the paper's ranks.
DEMSAR_AUC = np.array(
    [
        [0.763, 0.768, 0.771, 0.798],  # adult (sample)
        [0.599, 0.591, 0.590, 0.569],  # breast cancer
        [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
        [0.628, 0.661, 0.654, 0.657],  # cmc
        [0.882, 0.888, 0.886, 0.898],  # ionosphere
        [0.936, 0.931, 0.916, 0.931],  # iris
        [0.661, 0.668, 0.609, 0.685],  # liver disorders
        [0.583, 0.583, 0.563, 0.625],  # lung cancer
        [0.775, 0.838, 0.866, 0.875],  # lymphography
        [1.000, 1.000, 1.000, 1.000],  # mushroom
        [0.940, 0.962, 0.965, 0.962],  # primary tumor
        [0.619, 0.666, 0.614, 0.669],  # rheum
        [0.972, 0.981, 0.9751, 0.975],  # voting
        [0.957, 0.978, 0.946, 0.970],  # wine
    ]
)
DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]


def test_friedman_nemenyi_reproduces_demsar_2006():
    scores = pd.DataFrame(DEMSAR_AUC, columns=DEMSAR_NAMES)
    res = stats.friedman_nemenyi(scores, lower_is_better=False, alpha=0.05)
    # average ranks printed in the paper: 3.143, 2.000, 2.893, 1.964
    assert [res.average_ranks[n] for n in DEMSAR_NAMES] == pytest.approx(
        [3.143, 2.000, 2.893, 1.964], abs=5e-4
    )
    assert res.chi2_demsar == pytest.approx(9.28, abs=5e-3)  # "chi2_F = 9.28"
    n, k = DEMSAR_AUC.shape
    f_demsar = (n - 1) * res.chi2_demsar / (n * (k - 1) - res.chi2_demsar)
    assert f_demsar == pytest.approx(3.69, abs=5e-3)  # "F_F = 3.69", of the uncorrected chi2
    # the F the harness decides by is of the tie-corrected chi-square (the mushroom
    # row ties all four): Conover's T2, computed here from its own formula
    ranks = np.apply_along_axis(sps.rankdata, 1, DEMSAR_AUC)
    a_sum, c = (ranks**2).sum(), n * k * (k + 1) ** 2 / 4
    t1 = (k - 1) * ((ranks.sum(axis=0) ** 2).sum() - n * c) / (a_sum - c)
    assert res.iman_davenport == pytest.approx((n - 1) * t1 / (n * (k - 1) - t1))
    assert res.iman_davenport == pytest.approx(4.185, abs=5e-4)
    assert res.q_alpha == pytest.approx(2.569, abs=1e-3)  # "q_0.05 = 2.569"
    assert res.critical_difference == pytest.approx(1.25, abs=5e-3)  # "CD = 1.25"
    # scipy's statistic corrects for ties (the all-tied mushroom row): larger than 9.28
    ref = sps.friedmanchisquare(*DEMSAR_AUC.T)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    # the paper: at alpha = 0.05 the post-hoc test finds no pair of C4.5 variants apart
    assert res.nemenyi_p.to_numpy()[~np.eye(4, dtype=bool)].min() > 0.05
    # at alpha = 0.10: q = 2.291, CD = 1.12 (paper, same section)
    loose = stats.friedman_nemenyi(scores, lower_is_better=False, alpha=0.10)
    assert loose.critical_difference == pytest.approx(1.12, abs=5e-3)


@pytest.mark.parametrize(
    "k, expected",
    [
        (2, 1.960),
        (3, 2.343),
        (4, 2.569),
        (5, 2.728),
        (6, 2.850),
        (7, 2.949),
        (8, 3.031),
        (9, 3.102),
        (10, 3.164),
    ],
)
def test_nemenyi_q_alpha_matches_demsar_table_5a(k, expected):
    q, cd = stats.nemenyi_critical_difference(k, 10, alpha=0.05)
    assert q == pytest.approx(expected, abs=1e-3)
    assert cd == pytest.approx(q * math.sqrt(k * (k + 1) / 60))


def test_friedman_reports_why_it_cannot_run():
    two = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 3.0]})
    res = stats.friedman_nemenyi(two)
    assert "at least 3 algorithms" in res.reason and math.isnan(res.p_value)
    one_task = pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]})
    res = stats.friedman_nemenyi(one_task)
    assert res.reason and res.average_ranks == {"a": 1.0, "b": 2.0, "c": 3.0}
    # every algorithm reaches regret 0 on every task: scipy's statistic would be NaN
    ties = pd.DataFrame({"a": [0.0, 0.0, 0.0], "b": [0.0, 0.0, 0.0], "c": [0.0, 0.0, 0.0]})
    res = stats.friedman_nemenyi(ties)
    assert "ties all algorithms" in res.reason and math.isnan(res.p_value)
    assert res.average_ranks == {"a": 2.0, "b": 2.0, "c": 2.0} and res.nemenyi_p is None
    from nasbench_harness.compare import _finite
    from nasbench_harness.report import _friedman_sentence

    sentence = _friedman_sentence(_finite(res.to_dict()), "final regret", one_table=False)
    assert sentence.startswith("Across 3 tasks (final regret): not tested; every task ties")


def test_friedman_sentence_decides_by_iman_davenport_and_qualifies_nested_budgets():
    from nasbench_harness.compare import _finite
    from nasbench_harness.report import _friedman_sentence

    res = _finite(
        stats.friedman_nemenyi(
            pd.DataFrame(DEMSAR_AUC, columns=DEMSAR_NAMES), lower_is_better=False
        ).to_dict()
    )
    # Demšar's data: Iman-Davenport p = 0.0116 of the tie-corrected chi-square (whose
    # own p is 0.0167; the paper's F of the uncorrected one gives 0.0198)
    assert res["p_iman_davenport"] == pytest.approx(sps.f.sf(res["iman_davenport"], 3, 39))
    assert res["p_iman_davenport"] == pytest.approx(0.0116, abs=5e-5)
    sentence = _friedman_sentence(res, "AUC", one_table=False)
    assert sentence.startswith("Across 14 tasks (AUC), the algorithms' ranks differ")
    assert "p = 0.0116" in sentence and "no pair is claimed" not in sentence
    assert "tie-corrected chi-square 10.23" in sentence
    nested = _friedman_sentence(res, "AUC", one_table=True)
    assert nested.startswith("Across the 14 budgets of one table (AUC; nested runs")
    res["p_iman_davenport"] = 0.2  # not significant: the post-hoc CD is not a claim
    weak = _friedman_sentence(res, "AUC", one_table=False)
    assert "do not differ significantly" in weak and "no pair is claimed to differ" in weak


def test_iman_davenport_is_not_more_conservative_than_friedman_under_ties():
    # tied means within tasks (a whole task tied: all reach the same regret)
    scores = pd.DataFrame(
        [[1, 1, 0, 2], [0, 1, 0, 2], [2, 2, 2, 2], [0, 0, 0, 2]],
        columns=list("abcd"),
        dtype=float,
    )
    res = stats.friedman_nemenyi(scores)
    assert res.p_value == pytest.approx(sps.friedmanchisquare(*scores.to_numpy().T).pvalue)
    assert res.p_value == pytest.approx(0.0487, abs=5e-5)
    # the F of the uncorrected chi-square would give p = 0.192 and call it not significant
    assert res.p_iman_davenport == pytest.approx(0.0179, abs=5e-5)
    assert res.p_iman_davenport < res.p_value
    from nasbench_harness.compare import _finite
    from nasbench_harness.report import _friedman_sentence

    sentence = _friedman_sentence(_finite(res.to_dict()), "final regret", one_table=False)
    assert "the algorithms' ranks differ" in sentence


def test_friedman_with_identical_rankings_gives_no_f_p_value():
    # every task ranks a < b < c: chi2_F = N (k - 1), its maximum; F = inf has no p-value
    scores = pd.DataFrame({"a": [1.0, 1.5, 0.5], "b": [2.0, 2.5, 1.0], "c": [3.0, 4.0, 2.0]})
    res = stats.friedman_nemenyi(scores)
    assert res.chi2_demsar == pytest.approx(6.0) and res.iman_davenport == math.inf
    assert math.isnan(res.p_iman_davenport) and "ranks the algorithms the same" in res.notes[0]
    assert res.p_value == pytest.approx(sps.friedmanchisquare(*scores.to_numpy().T).pvalue)


# ---------------------------------------------------------------------------
# rank correlations
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(11)
    truth = rng.normal(size=400)
    score = truth + rng.normal(scale=1.0, size=400)
    score[:5] = np.nan
    return truth, score


def test_rank_correlations_match_scipy_and_keep_sign(scored):
    truth, score = scored
    ok = np.isfinite(score)
    rep = stats.rank_correlations(truth, score, n_resamples=300, seed=1)
    assert rep.kendall_tau_b.estimate == pytest.approx(
        sps.kendalltau(truth[ok], score[ok], variant="b").statistic
    )
    assert rep.spearman_rho.estimate == pytest.approx(sps.spearmanr(truth[ok], score[ok]).statistic)
    assert rep.spearman_rho.n == 395 and rep.spearman_rho.n_dropped == 5
    for c in (rep.kendall_tau_b, rep.spearman_rho, rep.top_spearman_rho, rep.top_overlap):
        assert c.ci_low <= c.estimate <= c.ci_high
    neg = stats.spearman_rho(truth, -score, n_resamples=100)
    assert neg.estimate == pytest.approx(-rep.spearman_rho.estimate)
    assert neg.ci_high < 0
    # same seed, same interval
    again = stats.kendall_tau_b(truth, score, n_resamples=300, seed=1)
    assert (again.ci_low, again.ci_high) == (rep.kendall_tau_b.ci_low, rep.kendall_tau_b.ci_high)


def test_top_fraction_metrics_by_hand():
    truth = np.arange(20, dtype=float)  # true top 10%: positions 18, 19
    score = truth.copy()
    score[19] = -1.0  # the best arch scored worst: top-2 by score = 17, 18
    assert stats.top_fraction_overlap(truth, score, 0.1) == pytest.approx(0.5)
    assert stats.top_fraction_overlap(truth, truth, 0.1) == 1.0
    # top 25% = positions 15..19; score order inside: 15 < 16 < 17 < 18, 19 last
    rho = stats.top_fraction_spearman(truth, score, 0.25)
    assert rho == pytest.approx(sps.spearmanr(truth[15:], score[15:]).statistic)
    with pytest.raises(NasbenchError, match="fraction"):
        stats.top_fraction_overlap(truth, score, 0.0)


def test_top_fraction_metrics_do_not_depend_on_the_order_of_tied_archs():
    truth = np.arange(100, dtype=float)  # true top 10%: 90..99
    constant = np.zeros(100)
    binary = (truth >= 50).astype(float)  # 50 archs tie at the score's cut-off
    reverse = slice(None, None, -1)
    for score, expected in ((constant, 0.1), (binary, 0.2)):  # 10 places among 100 / 50 tied
        assert stats.top_fraction_overlap(truth, score, 0.1) == pytest.approx(expected)
        assert stats.top_fraction_overlap(truth[reverse], score[reverse], 0.1) == pytest.approx(
            expected
        )
    # ties in the truth at its cut-off: 4 values tie for the last 2 of 5 places (share 1/2)
    truth = np.array([9, 8, 7, 5, 5, 5, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0])
    score = np.zeros(20)
    score[[0, 3, 4, 7, 8]] = 1.0  # the score's top 5: exact
    assert stats.top_fraction_overlap(truth, score, 0.25) == pytest.approx((1 + 0.5 + 0.5) / 5)
    score = -np.arange(20.0)
    rho = stats.top_fraction_spearman(truth, score, 0.25)  # all 7 archs >= the cut-off value
    assert rho == pytest.approx(sps.spearmanr(truth[:7], score[:7]).statistic)


def test_bootstrap_ci_leaves_out_resamples_without_a_correlation():
    # n = 40: the true top 10% has 4 archs, so some resamples repeat one arch 4 times (no rho)
    rng = np.random.default_rng(3)
    truth = rng.normal(size=40)
    score = truth + rng.normal(scale=0.5, size=40)
    rep = stats.rank_correlations(truth, score, n_resamples=500, seed=0)
    top = rep.top_spearman_rho
    assert math.isfinite(top.ci_low) and math.isfinite(top.ci_high)
    assert -1.0 <= top.ci_low <= top.ci_high <= 1.0
    # the left-out resamples are counted, and only where there are some
    assert 0 < top.n_resamples_undefined < 250
    assert top.to_dict()["n_resamples_undefined"] == top.n_resamples_undefined
    assert rep.spearman_rho.n_resamples_undefined == 0


@pytest.mark.parametrize(
    "n, fraction, case",
    [
        (40, 0.1, "rounded"),
        (55, 0.3, "rounded"),
        (7, 0.25, "few score values"),
        (9, 0.1, "tied truth"),
    ],
)
def test_bootstrap_statistics_equal_scipy_on_each_expanded_resample(n, fraction, case):
    # the bootstrap computes its statistics from draw counts; on every resample they must be
    # what scipy (and the plain top metrics) give on the resample written out pair by pair
    import warnings

    rng = np.random.default_rng(n)
    truth = np.round(rng.normal(size=n), 1)
    score = np.round(truth + rng.normal(size=n), 1)
    if case == "few score values":
        score = np.array([1, 1, 1, 2, 2, 3, 3.0])
    if case == "tied truth":
        truth = np.array([1, 1, 1, 1, 1, 1, 1, 1, 2.0])
    dists = stats._resampled(
        truth, score, stats._STATISTICS, fraction=fraction, n_resamples=150, seed=5
    )
    order = np.lexsort((score, truth))  # the bootstrap draws from the pairs in (truth, score) order
    t, s = truth[order], score[order]
    draws = np.random.default_rng(5).integers(0, n, size=(150, n))
    plain = {
        "kendall_tau_b": lambda a, b: sps.kendalltau(a, b, variant="b").statistic,
        "spearman_rho": lambda a, b: sps.spearmanr(a, b).statistic,
        "top_spearman_rho": lambda a, b: stats.top_fraction_spearman(a, b, fraction),
        "top_overlap": lambda a, b: stats.top_fraction_overlap(a, b, fraction),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant resamples: NaN, compared as such
        for name, func in plain.items():
            expected = np.array([func(t[i], s[i]) for i in draws], dtype=float)
            np.testing.assert_allclose(dists[name], expected, rtol=0, atol=1e-12, err_msg=name)
    if case == "tied truth":  # resamples with one truth value have no correlation
        assert np.isnan(dists["spearman_rho"]).any()


def test_a_negative_resample_count_is_refused_by_name(scored):
    with pytest.raises(NasbenchError, match="n_resamples=-1"):
        stats.spearman_rho(*scored, n_resamples=-1)


def test_bootstrap_ci_does_not_depend_on_the_order_of_the_archs(scored):
    truth, score = scored
    perm = np.random.default_rng(0).permutation(truth.size)
    a = stats.rank_correlations(truth, score, n_resamples=200, seed=4)
    b = stats.rank_correlations(truth[perm], score[perm], n_resamples=200, seed=4)
    for f in ("kendall_tau_b", "spearman_rho", "top_spearman_rho", "top_overlap"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x.ci_low, x.ci_high) == pytest.approx((y.ci_low, y.ci_high), abs=1e-12), f


def test_a_constant_score_has_no_correlation_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning must not reach the user
        for func in (stats.spearman_rho, stats.kendall_tau_b):
            result = func(np.arange(10.0), np.zeros(10), n_resamples=50)
            assert math.isnan(result.estimate) and math.isnan(result.ci_low)
