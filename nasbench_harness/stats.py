"""Statistics for comparing search runs and for scoring proxies.

Everything here works on plain numpy arrays, so it can be tested on fixed
numbers and reused by ``nasbench compare`` and ``nasbench correlate``. The
tests themselves come from maintained libraries (:mod:`scipy.stats`,
:mod:`statsmodels` for Holm, :mod:`scikit_posthocs` for Nemenyi); this module
only decides which test answers which question and puts the numbers into
frozen dataclasses.

Anytime curves
    A run is a step function: ``value[i]`` holds from ``time[i]`` until the
    next change. :func:`step_values` reads it on a grid **without
    look-ahead**: the value at grid time ``t`` is the last value whose time is
    ``<= t``, and :data:`NO_INCUMBENT` (NaN) before the first one. No
    interpolation toward a later point ever happens (DESIGN.md, rule 4).
Normalised log-time area (:func:`log_time_auc`)
    ``AUC = 1 / ln(stop / start) * integral_{start}^{stop} r(t) d ln t``: the
    average of the step function ``r`` over log time in ``[start, stop]``,
    in the units of ``r`` (regret in accuracy points). It equals the regret of
    a run that held that regret throughout; 0 means the optimum was known at
    ``start``. Before the first value, ``r`` takes the caller's
    ``before_first`` value (``nasbench compare`` uses the expected regret of
    an architecture drawn uniformly at random, i.e. of knowing nothing).
    Computed exactly on the step function, not on a grid.
Paired tests (:func:`pairwise_tests`)
    Wilcoxon signed-rank test per pair of algorithms, paired by seed, zero
    differences split between the signs (``zero_method="zsplit"``, as Demšar
    2006 recommends), two-sided, Holm-corrected over all pairs of one task.
    Effect size: the matched-pairs rank-biserial correlation (Kerby 2014),
    ``(R+ - R-) / (R+ + R-)`` over the same signed ranks the test uses,
    positive when the first algorithm is better.
Across tasks (:func:`friedman_nemenyi`)
    Friedman test on one score per (task, algorithm) and Nemenyi's critical
    difference ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` with ``N`` tasks,
    ``q_alpha`` the studentized range quantile for ``k`` groups and infinite
    degrees of freedom divided by ``sqrt(2)`` (Demšar 2006, sec. 3.2.2).
Rank correlations (:func:`rank_correlations`)
    Kendall tau-b and Spearman rho with percentile bootstrap confidence
    intervals over architectures, rho within the true top fraction, and the
    share of the true top fraction that the score also puts in its top
    fraction. Signs are kept. All four share one set of resamples, drawn from
    the pairs in ``(truth, score)`` order (the CI does not depend on the
    archs' order), and are computed from each pair's draw count: exactly the
    values scipy gives on each expanded resample, without sorting one.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from nasbench_harness.errors import NasbenchError

__all__ = [
    "bootstrap_seed",
    "NO_INCUMBENT",
    "Correlation",
    "CurveSummary",
    "Distribution",
    "FriedmanResult",
    "PairedTest",
    "RankCorrelationReport",
    "bootstrap_mean_ci",
    "curve_matrix",
    "describe",
    "friedman_nemenyi",
    "holm",
    "kendall_tau_b",
    "log_time_auc",
    "log_time_grid",
    "nemenyi_critical_difference",
    "paired_wilcoxon",
    "pairwise_tests",
    "rank_correlations",
    "spearman_rho",
    "step_values",
    "summarize_curves",
    "top_fraction_overlap",
    "top_fraction_spearman",
]

#: Value of a step function before its first point ("no incumbent yet").
NO_INCUMBENT = float("nan")

#: Bootstrap resamples used unless the caller says otherwise.
DEFAULT_RESAMPLES = 2000


# ---------------------------------------------------------------------------
# anytime curves
# ---------------------------------------------------------------------------
def log_time_grid(start_s: float, stop_s: float, n_points: int = 150) -> np.ndarray:
    """Log-spaced time grid from ``start_s`` to ``stop_s`` (both included).

    Parameters
    ----------
    start_s, stop_s
        Positive times in seconds, ``start_s < stop_s``.
    n_points
        Number of grid points (at least 2).
    """
    start_s, stop_s = float(start_s), float(stop_s)
    if not (math.isfinite(start_s) and math.isfinite(stop_s) and 0 < start_s < stop_s):
        raise NasbenchError(
            f"time grid [{start_s!r}, {stop_s!r}] s: give 0 < start < stop (finite seconds)"
        )
    if int(n_points) != n_points or n_points < 2:
        raise NasbenchError(f"n_points={n_points!r}: give a whole number >= 2")
    grid = np.geomspace(start_s, stop_s, int(n_points))
    grid[0], grid[-1] = start_s, stop_s  # exact end points (geomspace rounds)
    return grid


def _step_arrays(times, values) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if times.shape != values.shape:
        raise NasbenchError(
            f"step function has {times.size} times but {values.size} values; give one value per time"
        )
    if times.size and (np.isnan(times).any() or np.any(np.diff(times) < 0)):
        raise NasbenchError(
            "step function times must be non-decreasing and not NaN (results in order of finish time)"
        )
    return times, values


def step_values(times, values, grid) -> np.ndarray:
    """Read a step function at grid times, with no look-ahead.

    Parameters
    ----------
    times
        Non-decreasing times at which the function takes ``values``.
    values
        The value from each time on (e.g. the regret of the incumbent after
        each finished query).
    grid
        Times to read at (any order).

    Returns
    -------
    numpy.ndarray
        ``out[j] = values[i]`` for the largest ``i`` with ``times[i] <= grid[j]``;
        :data:`NO_INCUMBENT` (NaN) where no time is ``<= grid[j]``. Among equal
        times the last value counts (it is the state after all of them).
    """
    times, values = _step_arrays(times, values)
    grid = np.asarray(grid, dtype=np.float64)
    position = np.searchsorted(times, grid, side="right") - 1
    out = np.full(grid.shape, NO_INCUMBENT, dtype=np.float64)
    seen = position >= 0
    out[seen] = values[position[seen]]
    return out


def curve_matrix(step_functions: Sequence[tuple[np.ndarray, np.ndarray]], grid) -> np.ndarray:
    """Stack step functions ``[(times, values), ...]`` read on ``grid``: ``(n_runs, n_grid)``."""
    grid = np.asarray(grid, dtype=np.float64)
    if not step_functions:
        return np.empty((0, grid.size))
    return np.vstack([step_values(t, v, grid) for t, v in step_functions])


def log_time_auc(
    times, values, *, start_s: float, stop_s: float, before_first: float = NO_INCUMBENT
) -> float:
    """Normalised area under a step function over log time (see the module docstring).

    Parameters
    ----------
    times, values
        The step function (as in :func:`step_values`).
    start_s, stop_s
        The window, ``0 < start_s < stop_s``.
    before_first
        Value of the function before its first time (NaN makes the area NaN
        whenever the window starts before the first point).

    Returns
    -------
    float
        ``1 / ln(stop/start) * integral r(t) d ln t`` over ``[start_s, stop_s]``.
    """
    times, values = _step_arrays(times, values)
    start_s, stop_s = float(start_s), float(stop_s)
    if not (0 < start_s < stop_s and math.isfinite(stop_s)):
        raise NasbenchError(f"AUC window [{start_s!r}, {stop_s!r}] s: give 0 < start < stop")
    # breakpoints inside the window; the value on [b_j, b_{j+1}) is read at b_j
    inside = times[(times > start_s) & (times < stop_s)]
    edges = np.concatenate(([start_s], inside, [stop_s]))
    position = np.searchsorted(times, edges[:-1], side="right") - 1
    levels = np.full(position.shape, float(before_first))
    seen = position >= 0
    levels[seen] = values[position[seen]]
    widths = np.diff(np.log(edges))
    return float(np.sum(levels * widths) / math.log(stop_s / start_s))


# ---------------------------------------------------------------------------
# describing samples
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Distribution:
    """Median with quartiles, and mean with a bootstrap confidence interval."""

    n: int
    median: float
    q25: float
    q75: float
    mean: float
    ci_low: float
    ci_high: float
    confidence: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _bootstrap_mean(data: np.ndarray, *, confidence, n_resamples, seed, method) -> tuple:
    """Mean along axis 0 with bootstrap CI; constant columns get a zero-width CI.

    One value has no interval at all (NaN), not a zero-width one: nothing is
    known of its spread.
    """
    mean = data.mean(axis=0)
    if data.shape[0] < 2:
        nan = np.full_like(np.asarray(mean, dtype=np.float64), np.nan)
        return mean, nan, nan.copy()
    low = np.array(mean, dtype=np.float64, copy=True)
    high = np.array(mean, dtype=np.float64, copy=True)
    varying = np.ptp(data, axis=0) > 0
    if np.any(varying):
        sub = data[:, varying] if data.ndim == 2 else data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sps.bootstrap(
                (sub,),
                np.mean,
                axis=0,
                vectorized=True,
                n_resamples=int(n_resamples),
                confidence_level=float(confidence),
                method=method,
                batch=max(1, 20_000_000 // max(sub.size, 1)),
                rng=np.random.default_rng(seed),
            )
        lo, hi = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
        if data.ndim == 2:
            low[varying], high[varying] = lo, hi
        else:
            low, high = lo, hi
    return mean, low, high


def bootstrap_mean_ci(
    values,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: str = "BCa",
) -> tuple[float, float, float]:
    """Mean of ``values`` and its bootstrap confidence interval (:func:`scipy.stats.bootstrap`).

    NaNs are dropped. A sample of two or more values that are all equal gets
    the zero-width interval ``(v, v)`` (the bootstrap is degenerate there); a
    single value gets NaN bounds. Seeded, so the same input gives the same
    interval.

    Returns
    -------
    tuple
        ``(mean, ci_low, ci_high)``; NaNs for an empty sample.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[~np.isnan(data)]
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    mean, low, high = _bootstrap_mean(
        data, confidence=confidence, n_resamples=n_resamples, seed=seed, method=method
    )
    return float(mean), float(low), float(high)


def describe(
    values,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Distribution:
    """Median, quartiles, mean and BCa bootstrap CI of the mean of ``values`` (NaNs dropped)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[~np.isnan(data)]
    if data.size == 0:
        nan = math.nan
        return Distribution(0, nan, nan, nan, nan, nan, nan, float(confidence))
    q25, median, q75 = np.percentile(data, [25, 50, 75])
    mean, low, high = bootstrap_mean_ci(
        data, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return Distribution(
        n=int(data.size),
        median=float(median),
        q25=float(q25),
        q75=float(q75),
        mean=mean,
        ci_low=low,
        ci_high=high,
        confidence=float(confidence),
    )


@dataclass(frozen=True)
class CurveSummary:
    """Anytime curve of a group of runs on a common grid.

    Each statistic is NaN at grid times where some run has no value yet
    (statistics are taken over all runs or not at all); ``share_started``
    says which fraction of the runs has one.
    """

    grid_s: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    share_started: np.ndarray
    n_runs: int
    confidence: float

    def to_dict(self) -> dict:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
        }


def summarize_curves(
    curves,
    grid,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> CurveSummary:
    """Median + IQR and mean + percentile-bootstrap CI of ``curves`` (``(n_runs, n_grid)``) per grid time."""
    curves = np.asarray(curves, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] != grid.size:
        raise NasbenchError(
            f"curves of shape {curves.shape} do not match a grid of {grid.size} points"
        )
    n_runs = curves.shape[0]
    nan = np.full(grid.size, np.nan)
    started = ~np.isnan(curves)
    share = started.mean(axis=0) if n_runs else nan.copy()
    complete = started.all(axis=0) if n_runs else np.zeros(grid.size, bool)
    median, q25, q75, mean, low, high = (nan.copy() for _ in range(6))
    if np.any(complete):
        data = curves[:, complete]
        q25[complete], median[complete], q75[complete] = np.percentile(data, [25, 50, 75], axis=0)
        m, lo, hi = _bootstrap_mean(
            data, confidence=confidence, n_resamples=n_resamples, seed=seed, method="percentile"
        )
        mean[complete], low[complete], high[complete] = m, lo, hi
    return CurveSummary(
        grid_s=grid,
        median=median,
        q25=q25,
        q75=q75,
        mean=mean,
        ci_low=low,
        ci_high=high,
        share_started=share,
        n_runs=n_runs,
        confidence=float(confidence),
    )


# ---------------------------------------------------------------------------
# paired tests within a task
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of algorithms ``a`` and ``b`` on one metric (lower is better).

    ``effect_size`` is the matched-pairs rank-biserial correlation, in
    [-1, 1], positive when ``a`` is better (lower). ``share_a_better`` etc.
    count seeds. ``p_holm`` is Holm-adjusted over every pair of the task.
    """

    a: str
    b: str
    n: int
    statistic: float
    p_value: float
    p_holm: float
    effect_size: float
    share_a_better: float
    share_tied: float
    share_b_better: float
    median_difference: float  # median of (a - b)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def paired_wilcoxon(x, y) -> tuple[float, float, float, int]:
    """Wilcoxon signed-rank test of ``x - y`` and the matched-pairs rank-biserial correlation.

    Pairs with a NaN are dropped. Zero differences are split between the
    signs (``zero_method="zsplit"``). The effect size is
    ``(R+ - R-) / (R+ + R-)`` with ``R+`` the rank sum of ``y > x`` pairs
    (``x`` better when lower is better), ranks of ``|x - y|`` with ties
    averaged and zeros split. All differences zero: statistic NaN, p = 1,
    effect 0.

    Returns
    -------
    tuple
        ``(statistic, p_value, rank_biserial, n_pairs)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise NasbenchError(
            f"paired samples differ in length ({x.size} vs {y.size}); pair them by seed first"
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    d = y - x  # positive: x lower (better)
    if np.all(d == 0):
        return (math.nan, 1.0, 0.0, n)
    ranks = sps.rankdata(np.abs(d))
    r_plus = ranks[d > 0].sum() + 0.5 * ranks[d == 0].sum()
    r_minus = ranks[d < 0].sum() + 0.5 * ranks[d == 0].sum()
    effect = float((r_plus - r_minus) / (r_plus + r_minus))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sample size too small for normal approx."
        res = sps.wilcoxon(x, y, zero_method="zsplit", alternative="two-sided")
    return (float(res.statistic), float(res.pvalue), effect, n)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (``statsmodels.stats.multitest``); NaNs stay NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any(ok):
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def pairwise_tests(samples: Mapping[str, np.ndarray]) -> list[PairedTest]:
    """Paired Wilcoxon tests with Holm correction for every pair of algorithms (lower is better).

    Parameters
    ----------
    samples
        ``{algorithm: values}``, each array ordered by the same seeds.

    Returns
    -------
    list of PairedTest
        One per unordered pair, in the order of ``samples`` (``a`` before ``b``).
    """
    names = list(samples)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x = np.asarray(samples[a], dtype=np.float64)
            y = np.asarray(samples[b], dtype=np.float64)
            stat, p, effect, n = paired_wilcoxon(x, y)
            keep = ~(np.isnan(x) | np.isnan(y))
            d = x[keep] - y[keep]
            rows.append(
                dict(
                    a=a,
                    b=b,
                    n=n,
                    statistic=stat,
                    p_value=p,
                    effect_size=effect,
                    share_a_better=float(np.mean(d < 0)) if n else math.nan,
                    share_tied=float(np.mean(d == 0)) if n else math.nan,
                    share_b_better=float(np.mean(d > 0)) if n else math.nan,
                    median_difference=float(np.median(d)) if n else math.nan,
                )
            )
    adjusted = holm([r["p_value"] for r in rows])
    return [PairedTest(p_holm=float(adj), **r) for r, adj in zip(rows, adjusted)]


# ---------------------------------------------------------------------------
# across tasks: Friedman + Nemenyi
# ---------------------------------------------------------------------------
def nemenyi_critical_difference(k: int, n_tasks: int, alpha: float = 0.05) -> tuple[float, float]:
    """Nemenyi's ``(q_alpha, CD)`` for ``k`` algorithms over ``n_tasks`` tasks.

    ``q_alpha`` is :data:`scipy.stats.studentized_range` at ``1 - alpha`` with
    ``k`` groups and infinite degrees of freedom, divided by ``sqrt(2)``
    (Demšar 2006, Table 5a: 2.569 for k = 4 at alpha = 0.05);
    ``CD = q_alpha * sqrt(k (k + 1) / (6 N))``.
    """
    if int(k) != k or k < 2:
        raise NasbenchError(f"k={k!r}: the critical difference needs at least 2 algorithms")
    if int(n_tasks) != n_tasks or n_tasks < 1:
        raise NasbenchError(f"n_tasks={n_tasks!r}: give a whole number >= 1")
    if not 0 < alpha < 1:
        raise NasbenchError(f"alpha={alpha!r}: give a significance level in (0, 1)")
    q = float(sps.studentized_range.ppf(1 - alpha, int(k), np.inf) / math.sqrt(2))
    return q, q * math.sqrt(k * (k + 1) / (6 * n_tasks))


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test over tasks and Nemenyi post-hoc comparisons.

    ``statistic``/``p_value`` are scipy's tie-corrected Friedman chi-square;
    ``chi2_demsar`` is the uncorrected form Demšar (2006) prints, from the
    average ranks; ``iman_davenport``/``p_iman_davenport`` is Iman and
    Davenport's F, ``(n - 1) chi2 / (n (k - 1) - chi2)``, of the
    tie-corrected chi-square (Conover's T2). Without ties the two chi-squares
    are equal; with ties (algorithms with the same mean regret, e.g. all 0
    at a large budget) Demšar's form is the smaller one, and its F would be
    more conservative than the chi-square it is meant to sharpen.
    ``average_ranks``: rank 1 = best. ``nemenyi_p``: pairwise
    p-values (scikit-posthocs). ``reason`` says why a test was not run.
    """

    algorithms: tuple[str, ...]
    tasks: tuple[str, ...]
    average_ranks: dict[str, float]
    statistic: float
    p_value: float
    chi2_demsar: float
    iman_davenport: float
    p_iman_davenport: float
    alpha: float
    q_alpha: float
    critical_difference: float
    nemenyi_p: pd.DataFrame | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "nemenyi_p"}
        out["algorithms"] = list(self.algorithms)
        out["tasks"] = list(self.tasks)
        out["notes"] = list(self.notes)
        out["nemenyi_p"] = (
            None
            if self.nemenyi_p is None
            else {a: {b: float(v) for b, v in row.items()} for a, row in self.nemenyi_p.iterrows()}
        )
        return out


def friedman_nemenyi(
    scores: pd.DataFrame, *, lower_is_better: bool = True, alpha: float = 0.05
) -> FriedmanResult:
    """Friedman test and Nemenyi critical difference across tasks.

    Parameters
    ----------
    scores
        One row per task (the index names it), one column per algorithm, one
        score per cell (e.g. the mean final regret over seeds). Rows with a
        NaN are dropped (and noted).
    lower_is_better
        Rank 1 goes to the lowest score (regret) or the highest (accuracy).
    alpha
        Significance level of the critical difference.

    Returns
    -------
    FriedmanResult
        With NaN test values and ``reason`` set when there are fewer than 3
        algorithms or 2 complete tasks, or when every task ties all
        algorithms (the tests are undefined there).
    """
    if not isinstance(scores, pd.DataFrame):
        raise NasbenchError("scores: give a pandas DataFrame, tasks as rows, algorithms as columns")
    algorithms = tuple(str(c) for c in scores.columns)
    complete = scores.dropna(axis=0, how="any")
    notes = []
    if len(complete) < len(scores):
        notes.append(f"{len(scores) - len(complete)} task(s) with missing scores dropped")
    tasks = tuple(str(i) for i in complete.index)
    k, n = len(algorithms), len(tasks)
    values = complete.to_numpy(dtype=np.float64)
    ranks = sps.rankdata(values if lower_is_better else -values, axis=1) if n else values
    average = {a: float(r) for a, r in zip(algorithms, ranks.mean(axis=0))} if n else {}
    nan = math.nan
    q_alpha, cd = nemenyi_critical_difference(k, max(n, 1), alpha) if k >= 2 else (nan, nan)
    untestable = k < 3 or n < 2
    if untestable:
        reason = (
            f"the Friedman test needs at least 3 algorithms and 2 tasks; got {k} and {n}"
            " (compare more algorithms, budgets or tables)"
        )
    elif np.all(ranks == (k + 1) / 2):  # the chi-square's tie correction divides by zero
        untestable = True
        reason = (
            "every task ties all algorithms (the same value for each), so there are no ranks "
            "to compare (a larger table or a smaller budget separates them)"
        )
    if untestable:
        return FriedmanResult(
            algorithms,
            tasks,
            average,
            nan,
            nan,
            nan,
            nan,
            nan,
            float(alpha),
            q_alpha,
            cd if n >= 1 else nan,
            None,
            reason,
            tuple(notes),
        )
    res = sps.friedmanchisquare(*values.T)
    mean_ranks = ranks.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(mean_ranks**2) - k * (k + 1) ** 2 / 4)
    chi2_ties = float(res.statistic)
    denom = n * (k - 1) - chi2_ties
    if denom > 1e-9 * n * (k - 1):
        f_id = (n - 1) * chi2_ties / denom
        p_id = float(sps.f.sf(f_id, k - 1, (k - 1) * (n - 1)))
    else:  # chi2 at its maximum n (k - 1): F is infinite and its F approximation says nothing
        f_id, p_id = math.inf, math.nan
        notes.append(
            "every task ranks the algorithms the same: the Iman-Davenport F is infinite and "
            "has no p-value; read the Friedman chi-square's"
        )
    import scikit_posthocs as sp

    nemenyi = sp.posthoc_nemenyi_friedman(pd.DataFrame(ranks, columns=list(algorithms)))
    nemenyi.index = list(algorithms)
    nemenyi.columns = list(algorithms)
    return FriedmanResult(
        algorithms=algorithms,
        tasks=tasks,
        average_ranks=average,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        chi2_demsar=float(chi2),
        iman_davenport=float(f_id),
        p_iman_davenport=p_id,
        alpha=float(alpha),
        q_alpha=q_alpha,
        critical_difference=cd,
        nemenyi_p=nemenyi,
        reason="",
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------
# rank correlations (shared with `nasbench correlate`)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its percentile bootstrap CI over architectures."""

    method: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int  # pairs used
    n_dropped: int  # pairs with a NaN or an infinity in either input
    confidence: float
    #: Bootstrap resamples whose correlation is undefined (all values of one side
    #: tied); the interval is taken over the others when they are at least half,
    #: and is NaN otherwise.
    n_resamples_undefined: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _pairs(truth, score) -> tuple[np.ndarray, np.ndarray, int]:
    truth = np.asarray(truth, dtype=np.float64).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if truth.shape != score.shape:
        raise NasbenchError(
            f"truth has {truth.size} values but score has {score.size}; give one per architecture"
        )
    keep = np.isfinite(truth) & np.isfinite(score)
    return truth[keep], score[keep], int(truth.size - keep.sum())


def _top_k(n: int, fraction: float) -> int:
    if not 0 < fraction <= 1:
        raise NasbenchError(f"fraction={fraction!r}: give a share in (0, 1], e.g. 0.1 for top 10%")
    return max(1, int(math.ceil(fraction * n)))


def _top_membership(values: np.ndarray, k: int) -> np.ndarray:
    """Each value's share of a top-``k`` set, ties at the cut-off sharing the places left.

    Values above the ``k``-th largest get 1; the ``m`` values equal to it
    share the ``r`` places left, ``r / m`` each (the probability of being in
    the top ``k`` under a uniformly random tie-break); the rest get 0. The
    shares sum to ``k``.
    """
    cut = np.partition(values, values.size - k)[values.size - k]
    above = values > cut
    tied = values == cut
    share = np.zeros(values.size)
    share[above] = 1.0
    share[tied] = (k - int(above.sum())) / int(tied.sum())
    return share


def _kendall(t, s) -> float:
    return float(sps.kendalltau(t, s, variant="b").statistic)


def _spearman(t, s) -> float:
    return float(sps.spearmanr(t, s).statistic)


def _top_spearman(t, s, fraction) -> float:
    top = _top_membership(t, _top_k(t.size, fraction)) > 0  # ties at the cut-off all in
    if top.sum() < 3:
        return math.nan
    return _spearman(t[top], s[top])


def _top_overlap(t, s, fraction) -> float:
    k = _top_k(t.size, fraction)
    return float(np.dot(_top_membership(t, k), _top_membership(s, k)) / k)


def top_fraction_spearman(truth, score, fraction: float = 0.1) -> float:
    """Spearman rho of ``score`` vs ``truth`` within the true top ``fraction`` (NaN pairs dropped).

    The true top is the ``ceil(fraction * n)`` largest truths and every arch
    tied with the smallest of them, so that which of tied archs count does
    not depend on their order.
    """
    t, s, _ = _pairs(truth, score)
    return _top_spearman(t, s, fraction) if t.size else math.nan


def top_fraction_overlap(truth, score, fraction: float = 0.1) -> float:
    """Share of the true top ``fraction`` that ``score`` also places in its top ``fraction``.

    Both tops have ``k = ceil(fraction * n)`` places. Archs tied at a
    cut-off share the places left (``r`` places among ``m`` tied archs:
    ``r / m`` each), and the overlap is the sum over archs of the product of
    their two shares, divided by ``k``: the expected overlap under uniformly
    random tie-breaks, which does not depend on the archs' order (a constant
    score gets ``k / n``, chance). NaN pairs are dropped first.
    """
    t, s, _ = _pairs(truth, score)
    return _top_overlap(t, s, fraction) if t.size else math.nan


class _Groups:
    """The distinct values of one column, ascending, for ranks computed from draw counts.

    A bootstrap resample is described by ``weights[b, i]``, how often pair
    ``i`` was drawn into resample ``b``. The ranks, ties and top cut-offs of
    the expanded resample follow from the cumulative counts per distinct
    value, so no resample is ever sorted.
    """

    def __init__(self, values: np.ndarray):
        n = values.size
        self.order = np.argsort(values, kind="stable")
        ordered = values[self.order]
        new = np.r_[True, ordered[1:] != ordered[:-1]]
        self.ends = np.r_[np.flatnonzero(new)[1:], n] - 1  # last sorted position of each group
        self.inverse = np.empty(n, dtype=np.intp)
        self.inverse[self.order] = np.cumsum(new) - 1
        self.n_groups = int(new.sum())
        self._sorted = bool(np.all(self.order == np.arange(n)))

    def counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws per group and their running total, ascending: two ``(B, n_groups)`` arrays."""
        cum = np.cumsum(weights if self._sorted else weights[:, self.order], axis=1)
        if self.n_groups < weights.shape[1]:
            cum = cum[:, self.ends]
        return np.diff(cum, axis=1, prepend=0.0), cum

    def ranks(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Average rank (1-based, ties averaged, as :func:`scipy.stats.rankdata`) and draws per group."""
        counts, cum = self.counts(weights)
        return cum - (counts - 1.0) / 2.0, counts

    def top_share(self, weights: np.ndarray, k: int) -> np.ndarray:
        """:func:`_top_membership` of each expanded resample, per original pair: ``(B, n)``."""
        counts, cum = self.counts(weights)
        total = cum[:, -1]
        rows = np.arange(counts.shape[0])
        cut = np.argmax(cum > (total - k)[:, None], axis=1)  # the group of the k-th largest value
        above = total - cum[rows, cut]
        share = (np.arange(self.n_groups)[None, :] > cut[:, None]).astype(np.float64)
        share[rows, cut] = (k - above) / counts[rows, cut]
        return share[:, self.inverse]


def _rank_pearson(weights: np.ndarray, gt: _Groups, gs: _Groups) -> np.ndarray:
    """Spearman rho of each expanded resample (Pearson r of its average ranks); NaN if one side ties.

    The mean of average ranks is ``(N + 1) / 2`` for ``N`` draws, and the
    spreads are sums over distinct values; only the cross term is a sum over
    pairs.
    """
    rt, ct = gt.ranks(weights)
    rs, cs = gs.ranks(weights)
    total = ct.sum(axis=1)
    mid = (total + 1.0) / 2.0
    sxx = np.einsum("bg,bg->b", ct, (rt - mid[:, None]) ** 2)
    syy = np.einsum("bg,bg->b", cs, (rs - mid[:, None]) ** 2)
    sxy = np.einsum("bi,bi,bi->b", weights, rt[:, gt.inverse], rs[:, gs.inverse])
    sxy -= total * mid * mid
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((sxx > 0) & (syy > 0), sxy / np.sqrt(sxx * syy), np.nan)
    return np.clip(r, -1.0, 1.0)


_STATISTICS = ("kendall_tau_b", "spearman_rho", "top_spearman_rho", "top_overlap")


def _resampled(
    t: np.ndarray,
    s: np.ndarray,
    names: Sequence[str],
    *,
    fraction: float,
    n_resamples: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Bootstrap distributions of the statistics ``names`` over paired resamples of ``(t, s)``.

    The pairs are put in ``(t, s)`` order first, so the draws do not depend
    on the order they came in. Resample ``b`` draws ``n`` pairs with
    replacement (``seed`` fixes which); every statistic is computed on the
    same resamples, exactly as on the expanded resample (ties, the top
    cut-off and its shares included), from the draw counts of each pair:
    Spearman and the top metrics vectorised over resamples, Kendall's tau-b
    by :func:`scipy.stats.kendalltau` per resample. A resample where a
    statistic is undefined (one side all tied) gives NaN.
    """
    order = np.lexsort((s, t))
    t, s = t[order], s[order]
    n = t.size
    rng = np.random.default_rng(seed)
    gt, gs = _Groups(t), _Groups(s)
    k = _top_k(n, fraction)
    out = {name: np.empty(n_resamples) for name in names}
    batch = max(1, 2_000_000 // n)  # a function of n only: the same seed gives the same draws
    done = 0
    while done < n_resamples:
        b = min(batch, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        rows = slice(done, done + b)
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        weights = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        if "kendall_tau_b" in out:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sps.ConstantInputWarning)
                out["kendall_tau_b"][rows] = [_kendall(t[i], s[i]) for i in idx]
        if "spearman_rho" in out:
            out["spearman_rho"][rows] = _rank_pearson(weights, gt, gs)
        if "top_overlap" in out or "top_spearman_rho" in out:
            share_t = gt.top_share(weights, k)
        if "top_overlap" in out:
            both = np.einsum("bi,bi,bi->b", weights, share_t, gs.top_share(weights, k))
            out["top_overlap"][rows] = both / k
        if "top_spearman_rho" in out:
            top = weights * (share_t > 0)
            rho = _rank_pearson(top, gt, gs)
            out["top_spearman_rho"][rows] = np.where(top.sum(axis=1) < 3, np.nan, rho)
        done += b
    return out


def _correlations(
    truth, score, names: Sequence[str], *, fraction, n_resamples, confidence, seed
) -> dict[str, Correlation]:
    """Each statistic of ``names`` with its percentile bootstrap CI (shared resamples)."""
    if int(n_resamples) < 0:
        raise NasbenchError(f"n_resamples={n_resamples!r}: give 0 (no CI) or more resamples")
    t, s, dropped = _pairs(truth, score)
    conf = float(confidence)
    if t.size < 3:
        nan = math.nan
        return {
            name: Correlation(name, nan, nan, nan, int(t.size), dropped, conf) for name in names
        }
    funcs = {
        "kendall_tau_b": _kendall,
        "spearman_rho": _spearman,
        "top_spearman_rho": lambda a, b: _top_spearman(a, b, fraction),
        "top_overlap": lambda a, b: _top_overlap(a, b, fraction),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.ConstantInputWarning)  # a constant score: NaN
        estimates = {name: funcs[name](t, s) for name in names}
    wanted = [name for name in names if math.isfinite(estimates[name])]
    dists = (
        _resampled(t, s, wanted, fraction=fraction, n_resamples=int(n_resamples), seed=seed)
        if n_resamples and wanted
        else {}
    )
    tail = 50.0 * (1.0 - conf)
    out = {}
    for name in names:
        low = high = math.nan
        undefined = 0
        if name in dists:
            dist = dists[name]
            defined = np.isfinite(dist)
            undefined = int(dist.size - defined.sum())
            if defined.mean() >= 0.5:
                # a resample whose values are all tied has no rank correlation: the percentile
                # interval is taken over the resamples where it is defined (at least half)
                low, high = (float(v) for v in np.percentile(dist[defined], [tail, 100.0 - tail]))
            # mostly undefined: no interval rather than a biased one
        out[name] = Correlation(
            name, float(estimates[name]), low, high, int(t.size), dropped, conf, undefined
        )
    return out


def kendall_tau_b(
    truth, score, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Correlation:
    """Kendall tau-b (:func:`scipy.stats.kendalltau`) with a percentile bootstrap CI over pairs."""
    return _correlations(
        truth,
        score,
        ["kendall_tau_b"],
        fraction=0.1,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )["kendall_tau_b"]


def spearman_rho(
    truth, score, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Correlation:
    """Spearman rho (:func:`scipy.stats.spearmanr`) with a percentile bootstrap CI over pairs."""
    return _correlations(
        truth,
        score,
        ["spearman_rho"],
        fraction=0.1,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )["spearman_rho"]


@dataclass(frozen=True)
class RankCorrelationReport:
    """All rank-correlation figures of one score against the ground truth."""

    kendall_tau_b: Correlation
    spearman_rho: Correlation
    top_spearman_rho: Correlation  # within the true top `fraction`
    top_overlap: Correlation  # share of the true top `fraction` also in the score's top
    fraction: float

    def to_dict(self) -> dict:
        return {
            "kendall_tau_b": self.kendall_tau_b.to_dict(),
            "spearman_rho": self.spearman_rho.to_dict(),
            "top_spearman_rho": self.top_spearman_rho.to_dict(),
            "top_overlap": self.top_overlap.to_dict(),
            "fraction": self.fraction,
        }


def bootstrap_seed(name: str) -> int:
    """A fixed bootstrap seed for a named row (a proxy): its CIs do not depend on the others."""
    return zlib.crc32(str(name).encode("utf-8"))


def rank_correlations(
    truth,
    score,
    *,
    fraction: float = 0.1,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RankCorrelationReport:
    """Kendall tau-b, Spearman rho, top-``fraction`` rho and overlap, each with a bootstrap CI.

    Parameters
    ----------
    truth
        Ground truth per architecture (e.g. seed-mean final test accuracy);
        higher is better.
    score
        The proxy's score per architecture, same order; its sign is kept
        (a negative correlation is reported as negative).
    fraction
        The "top" share (0.1: the true top 10%).
    n_resamples
        Percentile bootstrap resamples over architectures (0: no CI).
    confidence, seed
        CI level and the bootstrap's seed (same seed, same interval).
    """
    _top_k(1, fraction)  # validates
    c = _correlations(
        truth,
        score,
        _STATISTICS,
        fraction=fraction,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return RankCorrelationReport(
        kendall_tau_b=c["kendall_tau_b"],
        spearman_rho=c["spearman_rho"],
        top_spearman_rho=c["top_spearman_rho"],
        top_overlap=c["top_overlap"],
        fraction=float(fraction),
    )
