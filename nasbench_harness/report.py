"""The comparison report: figures (seaborn), HTML, Markdown, CSV and JSON.

:func:`write_report` turns the numbers of :func:`nasbench_harness.compare.analyse`
into

* ``report.html``: one self-contained file, figures embedded as base64 PNG,
  CSS inline, no script and no external resource;
* ``report.md`` with its figures as PNG files in ``figures/``;
* ``results.csv``: one row per run;
* ``summary.json``: every number the report shows (and no wall-clock value,
  so two runs of the same compare give the same file).

Figures are drawn on :class:`matplotlib.figure.Figure` objects outside pyplot
(rendered by Agg), so no display is needed and the caller's pyplot state and
style are left alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nasbench_harness.compare import ALPHA, QUERY_COST, display_name, format_p

__all__ = ["write_report"]

#: Linear range of the symmetric-log regret axis (accuracy points).
REGRET_LINTHRESH = 0.1
_DPI = 110
_PNG_META = {"Software": None}  # no version string in the files: same bytes on every run


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _palette(names: list[str]) -> dict[str, Any]:
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colors))


def _subplots(*args, figsize, **kwargs):
    """A figure outside pyplot (no global figure registry, any backend): ``(fig, axes)``."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata=_PNG_META)
    return buffer.getvalue()


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() or c == "." else " " for c in text.lower()).split()
    return "-".join(words)


def _set_regret_axis(ax, axis: str = "y") -> None:
    scale = ax.set_yscale if axis == "y" else ax.set_xscale
    scale("symlog", linthresh=REGRET_LINTHRESH, linscale=0.6)


def _theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    matplotlib.rcParams.update({"axes.spines.top": False, "axes.spines.right": False})


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------
def figure_curves(task: dict, order: list[str], colors: dict) -> bytes:
    """Anytime regret: median with IQR band (left), mean with 95% bootstrap CI (right)."""
    fig, axes = _subplots(1, 2, figsize=(11, 4.2), sharey=True)
    panels = (
        ("median", "q25", "q75", "median, interquartile band"),
        ("mean", "ci_low", "ci_high", "mean, 95% bootstrap CI"),
    )
    for ax, (center, low, high, title) in zip(axes, panels):
        for name in order:
            curve = task["curves"][name]
            grid = np.asarray(curve["grid_s"], dtype=float)
            mid = np.asarray([np.nan if v is None else v for v in curve[center]], dtype=float)
            lo = np.asarray([np.nan if v is None else v for v in curve[low]], dtype=float)
            hi = np.asarray([np.nan if v is None else v for v in curve[high]], dtype=float)
            ax.plot(
                grid,
                mid,
                color=colors[name],
                lw=1.8,
                label=display_name(name),
                drawstyle="steps-post",
            )
            ax.fill_between(grid, lo, hi, color=colors[name], alpha=0.15, lw=0, step="post")
        ax.axhline(0.0, color="0.2", lw=1, ls="--")
        ax.set_xscale("log")
        _set_regret_axis(ax)
        ax.set_xlabel("simulated time (s, log scale)")
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xlim(task["window_s"][0], task["window_s"][1])
    axes[0].set_ylabel("regret (accuracy points)")
    axes[0].annotate(
        f"table's best ({task['best_test_acc']:.2f}%) = regret 0",
        xy=(0.02, 0.0),
        xycoords=("axes fraction", "data"),
        xytext=(0, 4),
        textcoords="offset points",
        fontsize=8,
        color="0.25",
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=min(len(order), 5),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    return _png(fig)


def figure_final(task: dict, frame: pd.DataFrame, order: list[str], colors: dict) -> bytes:
    """Final-regret distribution per algorithm: box plot with every seed as a point."""
    data = frame[frame["task"] == task["id"]].copy()
    data["name"] = data["algorithm"].map(display_name)
    names = [display_name(n) for n in order]
    pal = {display_name(n): colors[n] for n in order}
    fig, ax = _subplots(figsize=(7.5, 0.5 * len(order) + 1.4))
    common = {
        "data": data,
        "x": "final_regret",
        "y": "name",
        "hue": "name",
        "order": names,
        "palette": pal,
        "ax": ax,
        "legend": False,
    }
    sns.boxplot(
        **common,
        width=0.6,
        fliersize=0,
        linewidth=1,
        boxprops={"alpha": 0.35},
    )
    # every seed as a point, jittered by a seeded generator (seaborn's stripplot would
    # draw from numpy's global random state: another picture on every run)
    jitter = np.random.default_rng(0)
    for position, name in enumerate(names):
        values = data.loc[data["name"] == name, "final_regret"].to_numpy(dtype=np.float64)
        offsets = jitter.uniform(-0.22, 0.22, values.size)
        ax.scatter(values, position + offsets, s=3.2**2, alpha=0.7, color=pal[name], linewidths=0)
    means = [task["algorithms"][n]["final_regret"]["mean"] for n in order]
    ax.scatter(means, range(len(order)), marker="D", color="0.1", s=22, zorder=5)
    _set_regret_axis(ax, "x")
    ax.axvline(0.0, color="0.2", lw=1, ls="--")
    ax.set_xlabel("final regret (accuracy points; 0 = table's best)")
    ax.set_ylabel("")
    fig.tight_layout()
    return _png(fig)


def figure_pairwise(task: dict, order: list[str]) -> bytes:
    """Effect size (rank-biserial, row vs column) coloured, Holm-adjusted p annotated."""
    k = len(order)
    effect = np.full((k, k), np.nan)
    label = np.full((k, k), "", dtype=object)
    index = {n: i for i, n in enumerate(order)}
    for t in task["pairwise"]["final_regret"]:
        i, j = index[t["a"]], index[t["b"]]
        r = t["effect_size"] if t["effect_size"] is not None else np.nan
        p = t["p_holm"]
        effect[i, j], effect[j, i] = r, -r if math.isfinite(r) else np.nan
        star = "*" if p is not None and p < ALPHA else ""
        for a, b, sign in ((i, j, 1), (j, i, -1)):
            label[a, b] = f"{sign * r:+.2f}{star}\np={format_p(p)}" if math.isfinite(r) else ""
    names = [display_name(n) for n in order]
    size = max(4.5, 0.72 * k + 1.8)
    fig, ax = _subplots(figsize=(size + 1.2, size))
    ax.grid(False)
    sns.heatmap(
        effect,
        ax=ax,
        cmap="vlag_r",
        vmin=-1,
        vmax=1,
        center=0,
        annot=label,
        fmt="",
        annot_kws={"fontsize": 7 if k > 6 else 8},
        xticklabels=names,
        yticklabels=names,
        linewidths=0.5,
        linecolor="white",
        square=True,
        cbar_kws={"label": "rank-biserial r (row better > 0)", "shrink": 0.7},
    )
    ax.set_xticklabels(ax.get_xticklabels(), rotation=35, ha="right")
    ax.set_title(
        "final regret, row vs column: effect size and Holm-adjusted Wilcoxon p"
        f"\n(* significant at {ALPHA:g})",
        fontsize=9,
        loc="left",
    )
    fig.tight_layout()
    return _png(fig)


def figure_cd(friedman: dict, colors: dict | None = None) -> bytes | None:
    """Critical-difference diagram (scikit-posthocs), or None when the test was not run."""
    import scikit_posthocs as sp

    if friedman.get("reason") or not friedman.get("nemenyi_p"):
        return None
    ranks = pd.Series({display_name(k): v for k, v in friedman["average_ranks"].items()})
    sig = pd.DataFrame(friedman["nemenyi_p"]).astype(float)
    sig.index = [display_name(n) for n in sig.index]
    sig.columns = [display_name(n) for n in sig.columns]
    palette = {display_name(n): c for n, c in (colors or {}).items()} or None
    fig, ax = _subplots(figsize=(9, 0.3 * len(ranks) + 1.8))
    artists = sp.critical_difference_diagram(
        ranks,
        sig,
        ax=ax,
        color_palette=palette,
        alpha=friedman["alpha"],
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    # scikit-posthocs joins a crossbar's points in the order of a set of names, which
    # changes with Python's string hashing, and so do the anti-aliased pixels of the
    # line: draw each bar left to right so that the figure is the same on every run
    for line in (item for group in artists.get("crossbars", []) for item in group):
        x, y = line.get_data()
        line.set_data(np.sort(np.asarray(x, dtype=float)), np.asarray(y, dtype=float))
    title = (
        f"average rank over {len(friedman['tasks'])} tasks (1 = best); "
        f"Nemenyi CD = {friedman['critical_difference']:.2f} at alpha = {friedman['alpha']:g}"
    )
    p_omnibus = _omnibus_p(friedman)
    if math.isfinite(p_omnibus) and not p_omnibus < friedman["alpha"]:
        title += (
            f"\nomnibus test not significant (p = {format_p(p_omnibus)}): "
            "no pair is shown to differ, bars or not"
        )
    ax.set_title(
        title,
        fontsize=9,
        loc="left",
        pad=18,
    )
    fig.tight_layout()
    return _png(fig)


def _ceiling_value(ceiling: dict | None) -> float | None:
    """Mean seed-vs-seed Spearman rho over all unique archs, from ``Table.noise_ceiling()``."""
    try:
        value = ceiling["mean"]["all"]["spearman_rho"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def figure_proxies(proxies: dict) -> bytes:
    """Spearman rho and Kendall tau-b of every proxy, 95% bootstrap CIs, noise ceiling."""
    rows = []
    for name, entry in proxies["proxies"].items():
        for method, label in (("spearman_rho", "Spearman rho"), ("kendall_tau_b", "Kendall tau-b")):
            c = entry["all"][method]
            rows.append((name, label, c["estimate"], c["ci_low"], c["ci_high"]))
    data = pd.DataFrame(rows, columns=["proxy", "method", "estimate", "low", "high"])
    data = data.fillna(np.nan)
    order = (
        data[data["method"] == "Spearman rho"]
        .sort_values("estimate", ascending=False)["proxy"]
        .tolist()
    )
    fig, ax = _subplots(figsize=(7.5, 0.45 * len(order) + 1.8))
    offsets = {"Spearman rho": -0.15, "Kendall tau-b": 0.15}
    colors = {"Spearman rho": "#1f5f99", "Kendall tau-b": "#d9822b"}
    for method, part in data.groupby("method", sort=False):
        y = np.array([order.index(p) for p in part["proxy"]]) + offsets[method]
        est = part["estimate"].to_numpy(dtype=float)
        err = np.vstack([est - part["low"].to_numpy(float), part["high"].to_numpy(float) - est])
        known = np.isfinite(err).all(axis=0)  # a correlation without a CI: a hollow point
        ax.errorbar(
            est[known],
            y[known],
            xerr=err[:, known],
            fmt="o",
            ms=4,
            capsize=2,
            color=colors[method],
            label=method,
        )
        if not known.all():
            ax.plot(est[~known], y[~known], "o", ms=4, mfc="white", color=colors[method])
    ceiling = _ceiling_value(proxies.get("noise_ceiling"))
    if ceiling is not None:
        ax.axvline(ceiling, color="0.2", ls="--", lw=1)
        ax.annotate(
            f"noise ceiling (Spearman, seed vs seed) {ceiling:.2f}",
            xy=(ceiling, 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.25",
        )
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlim(-1, 1)
    ax.invert_yaxis()
    ax.set_xlabel("rank correlation with the table's test accuracy (95% bootstrap CI)")
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
def _results_table(task: dict, order: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-task results table; the best value of each column in bold."""
    algos = task["algorithms"]
    cols = {
        "mean": [algos[n]["final_regret"]["mean"] for n in order],
        "median": [algos[n]["final_regret"]["median"] for n in order],
        "auc": [algos[n]["auc"]["mean"] for n in order],
        "opt": [algos[n]["optimum_share"] for n in order],
    }

    def best(values, highest=False):
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return None
        if highest:
            return max(finite) if max(finite) > 0 else None  # no one at the optimum: no bold
        return min(finite)

    targets = {k: best(v, highest=(k == "opt")) for k, v in cols.items()}
    header = [
        "algorithm",
        "final regret: mean [95% CI]",
        "median [IQR]",
        "log-time AUC: mean [95% CI]",
        "seeds at the optimum",
        "queries (median)",
    ]
    rows = []
    for i, name in enumerate(order):
        fr, auc = algos[name]["final_regret"], algos[name]["auc"]

        def mark(key, text, i=i):
            value = cols[key][i]
            return f"**{text}**" if value is not None and value == targets[key] else text

        rows.append(
            [
                display_name(name),
                mark("mean", f"{_fmt(fr['mean'])} [{_fmt(fr['ci_low'])}, {_fmt(fr['ci_high'])}]"),
                mark("median", f"{_fmt(fr['median'])} [{_fmt(fr['q25'])}, {_fmt(fr['q75'])}]"),
                mark("auc", f"{_fmt(auc['mean'])} [{_fmt(auc['ci_low'])}, {_fmt(auc['ci_high'])}]"),
                mark("opt", f"{algos[name]['optimum_share']:.0%}"),
                f"{algos[name]['n_queries_median']:.0f}",
            ]
        )
    return header, rows


def _ranks_table(summary: dict, order: list[str]) -> tuple[list[str], list[list[str]]]:
    fr = summary["friedman"]["final_regret"]
    auc = summary["friedman"]["auc"]
    header = ["algorithm", "average rank, final regret", "average rank, AUC"]
    best_fr = min(fr["average_ranks"].values()) if fr["average_ranks"] else None
    best_auc = min(auc["average_ranks"].values()) if auc["average_ranks"] else None
    rows = []
    for name in sorted(order, key=lambda n: (fr["average_ranks"].get(n, math.inf), n)):
        a, b = fr["average_ranks"].get(name), auc["average_ranks"].get(name)
        rows.append(
            [
                display_name(name),
                f"**{a:.2f}**" if a is not None and a == best_fr else _fmt(a),
                f"**{b:.2f}**" if b is not None and b == best_auc else _fmt(b),
            ]
        )
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        text = html.escape(text)
        if text.startswith("**") and text.endswith("**"):
            text = f"<strong>{text[2:-2]}</strong>"
        align = ' class="num"' if tag == "td" and not text[:1].isalpha() else ""
        return f"<{tag}{align}>{text}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in rows)
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------
def _has_iman(result: dict) -> bool:
    f_value, p_iman = result.get("iman_davenport"), result.get("p_iman_davenport")
    return f_value is not None and math.isfinite(f_value) and p_iman is not None


def _omnibus_p(result: dict) -> float:
    """The p-value the across-task verdict rests on.

    Iman-Davenport's F where it is finite (Demšar 2006: less conservative than
    Friedman's chi-square), else the chi-square's p.
    """
    value = result["p_iman_davenport"] if _has_iman(result) else result.get("p_value")
    return float("nan") if value is None else float(value)


def _friedman_sentence(result: dict, metric: str, *, one_table: bool) -> str:
    """The across-task test in one sentence; ``one_table``: every task is a budget of one table."""
    n_tasks = len(result.get("tasks") or ())
    if n_tasks < 2:
        scope = f"Across tasks ({metric})"
    elif one_table:
        scope = (
            f"Across the {n_tasks} budgets of one table ({metric}; nested runs, not independent "
            "tasks, so this asks whether the ranking holds over search lengths, not over "
            "benchmarks)"
        )
    else:
        scope = f"Across {n_tasks} tasks ({metric})"
    if result.get("reason"):
        return f"{scope}: not tested; {result['reason']}."
    f_value = result.get("iman_davenport")
    if _has_iman(result):
        iman = (
            f"Iman-Davenport F = {f_value:.2f} from the tie-corrected chi-square "
            f"{result['statistic']:.2f}, p = {format_p(result['p_iman_davenport'])}"
        )
    else:
        iman = "Iman-Davenport F infinite: every task ranks the algorithms the same"
    significant = _omnibus_p(result) < ALPHA
    verdict = "differ" if significant else "do not differ significantly"
    posthoc = (
        f"Two algorithms differ by Nemenyi's test when their average ranks differ by more than "
        f"CD = {result['critical_difference']:.2f} (alpha = {result['alpha']:g})"
    )
    if not significant:
        posthoc += "; with the omnibus test not significant, no pair is claimed to differ"
    return (
        f"{scope}, the algorithms' ranks {verdict} "
        f"(Friedman chi-square = {result['statistic']:.2f}, p = {format_p(result['p_value'])}; "
        f"{iman}). {posthoc}."
    )


METHOD_NOTES = [
    "Regret at time t: the table's best seed-mean final test accuracy minus that of the "
    "incumbent, the best result by observed validation accuracy among the queries finished "
    "by t. The search never sees test data.",
    "Curves: each run's regret is a step function read on a common log-spaced grid of "
    "simulated time by forward fill, with no look-ahead (before a run's first result it has "
    "no value; a grid point is summarised only once every run has one). Median with "
    "inter-quartile band, and mean with a 95% percentile bootstrap CI over runs.",
    "Log-time AUC: the average regret over log time, (1 / ln(T / t0)) x integral of r(t) "
    "d ln t from t0 to the budget T, with t0 the table's median one-epoch training time. Before "
    "a run's first result its regret counts as that of a uniformly random architecture. "
    "Lower is better; it rewards finding good architectures early.",
    "Final regret: at the end of the budget. The query that would cross the budget is dropped "
    "(the simulator's rule).",
    "Per task: two-sided Wilcoxon signed-rank tests for every pair of algorithms, paired by "
    "seed (zero differences split), Holm-corrected over all pairs of the task; effect size: "
    "the matched-pairs rank-biserial correlation r in [-1, 1]; tied seeds count in its "
    "denominator, so ties pull r toward 0. Mean CIs: BCa bootstrap (scipy.stats.bootstrap, "
    "seeded); a single run has none.",
    "Across tasks (table x budget): Friedman test on each algorithm's mean over seeds, decided "
    "by Iman-Davenport's F of the tie-corrected chi-square, Nemenyi post-hoc (scikit-posthocs), CD = q_alpha sqrt(k (k + 1) / (6 N)) with N the number of "
    "tasks (Demšar 2006). With few tasks the CD is wide: the per-task paired tests are the "
    "sharper instrument. The budgets of one table are not independent tasks: no algorithm sees "
    "the budget, so a seed's run at a smaller budget is the start of its run at the largest; "
    "across the budgets of one table the test asks whether the ranking holds over search "
    "lengths, not over benchmarks.",
]


CSS = """
:root { --ink: #1d2330; --muted: #5b6577; --line: #e3e6ec; --accent: #1f5f99; --warn: #9a3412; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fbfbfc;
  font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 2.2rem 1.5rem 4rem; }
h1 { font-size: 1.75rem; margin: 0 0 .2rem; letter-spacing: -.01em; }
h2 { font-size: 1.3rem; margin: 2.6rem 0 .6rem; padding-top: .6rem; border-top: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; color: var(--muted); }
p.sub { color: var(--muted); margin: 0 0 1.4rem; }
.banner { background: #fff4e5; border: 1px solid #f5c38b; color: var(--warn);
  padding: .8rem 1rem; border-radius: 6px; margin: 1rem 0 1.4rem; font-weight: 600; }
ul.headlines { padding-left: 1.1rem; } ul.headlines li { margin: .45rem 0; }
ul.headlines b { color: var(--accent); }
figure { margin: 1rem 0 1.4rem; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
table.results { border-collapse: collapse; width: 100%; font-size: .88rem; margin: .6rem 0 1rem;
  font-variant-numeric: tabular-nums; }
table.results th { text-align: left; font-weight: 600; color: var(--muted);
  border-bottom: 2px solid var(--line); padding: .4rem .5rem; }
table.results td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; }
table.results td.num { text-align: right; white-space: nowrap; }
table.results tr:hover td { background: #f2f5fa; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; font-size: .88rem; }
dl.prov dt { color: var(--muted); } dl.prov dd { margin: 0; word-break: break-all; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .84rem; }
pre { background: #f3f4f7; padding: .7rem; border-radius: 5px; overflow-x: auto; }
.notes li { margin: .35rem 0; color: #333a48; font-size: .9rem; }
footer { color: var(--muted); font-size: .8rem; margin-top: 3rem; }
"""


# ---------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------
def _order(task: dict) -> list[str]:
    algos = task["algorithms"]

    def key(name):
        mean = algos[name]["final_regret"]["mean"]
        return (mean if mean is not None else math.inf, name)

    return sorted(algos, key=key)


def write_report(
    summary: dict,
    frame: pd.DataFrame,
    out: Path,
    *,
    run_info: dict | None = None,
) -> dict[str, Path]:
    """Write report.html, report.md (+ figures/), results.csv and summary.json under ``out``.

    Parameters
    ----------
    summary
        From :func:`nasbench_harness.compare.analyse`.
    frame
        One row per run (same source).
    out
        Output folder (created).
    run_info
        Counts and wall-clock seconds of the runs; shown in the footer of the
        report only, never in summary.json.

    Returns
    -------
    dict
        Paths under the keys ``html``, ``md``, ``csv``, ``json``, ``figures``.
    """
    with warnings.catch_warnings():
        # seaborn 0.13 calls matplotlib APIs that 3.11 deprecates; nothing to act on here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        with matplotlib.rc_context():  # the theme stays inside the report
            return _write_report(summary, frame, Path(out), run_info)


def _write_report(summary: dict, frame: pd.DataFrame, out: Path, run_info) -> dict[str, Path]:
    _theme()
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, bytes, str]] = []  # (file name, png, alt text)

    def add(name: str, png: bytes | None, alt: str) -> str | None:
        if png is None:
            return None
        figures.append((name, png, alt))
        (fig_dir / name).write_bytes(png)
        return name

    all_names = list(summary["provenance"]["algorithms"])
    colors = _palette(all_names)
    prov = summary["provenance"]
    synthetic = [t for t in prov["tables"] if t.get("synthetic")]
    title = "nasbench compare: " + ", ".join(t["stem"] for t in prov["tables"])
    seeds = prov["seeds"]
    seed_text = f"{seeds[0]}..{seeds[-1]} ({len(seeds)} paired seeds)" if seeds else "none"

    html_parts: list[str] = []
    md_parts: list[str] = []

    def section(title_text: str, level: int = 2) -> None:
        anchor = _slug(title_text)
        html_parts.append(f'<h{level} id="{anchor}">{html.escape(title_text)}</h{level}>')
        md_parts.append("#" * level + " " + title_text)

    def para(text: str) -> None:
        html_parts.append(f"<p>{html.escape(text)}</p>")
        md_parts.append(text)

    def image(name: str | None, alt: str, caption: str) -> None:
        if name is None:
            return
        png = next(p for n, p, _ in figures if n == name)
        data = base64.b64encode(png).decode("ascii")
        html_parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        md_parts.append(f"![{alt}](figures/{name})\n\n*{caption}*")

    def table(header, rows) -> None:
        html_parts.append(_html_table(header, rows))
        md_parts.append(_md_table(header, rows))

    # --- top ---
    html_parts.append(f"<h1>{html.escape(title)}</h1>")
    md_parts.append(f"# {title}")
    sub = (
        f"{len(all_names)} algorithms x {len(summary['tasks'])} tasks (table x budget) x "
        f"{len(seeds)} paired seeds, {prov['workers']} simulated worker(s); a query costs "
        f"its {prov.get('query_cost', QUERY_COST[False])}."
    )
    html_parts.append(f'<p class="sub">{html.escape(sub)}</p>')
    md_parts.append(f"*{sub}*")
    if synthetic:
        names = ", ".join(t["stem"] for t in synthetic)
        warning = (
            f"Synthetic table ({names}): its accuracies and times are generated, not trained. "
            "The numbers below exercise the harness; they say nothing about real architectures."
        )
        html_parts.append(f'<div class="banner">{html.escape(warning)}</div>')
        md_parts.append(f"> **{warning}**")

    section("Headlines")
    items = []
    for task in summary["tasks"]:
        items.append((task["id"], task["headline"]))
    html_parts.append(
        '<ul class="headlines">'
        + "".join(f"<li><b>{html.escape(i)}</b>: {html.escape(h)}</li>" for i, h in items)
        + "</ul>"
    )
    md_parts.append("\n".join(f"- **{i}**: {h}" for i, h in items))
    one_table = len({t["table_checksum"] for t in summary["tasks"]}) == 1
    if not one_table:  # nested budgets of one table are no headline: see Across tasks
        para(
            _friedman_sentence(summary["friedman"]["final_regret"], "final regret", one_table=False)
        )

    # --- per task ---
    for task in summary["tasks"]:
        order = _order(task)
        slug = _slug(task["id"])
        section(f"Task {task['id']}")
        para(
            f"Budget {task['budget_s']:,.0f} simulated seconds ({task['budget']}); table's best "
            f"test accuracy {task['best_test_acc']:.2f}%; a uniformly random architecture has "
            f"regret {task['blind_regret']:.2f} on average. {task['headline']}"
        )
        name = add(
            f"{slug}-curves.png",
            figure_curves(task, order, colors),
            f"anytime regret curves, {task['id']}",
        )
        image(
            name,
            f"anytime regret curves, {task['id']}",
            "Regret of the incumbent over simulated time (log scale); symmetric-log regret axis, "
            "dashed line = the table's best.",
        )
        header, rows = _results_table(task, order)
        table(header, rows)
        name = add(
            f"{slug}-final.png",
            figure_final(task, frame, order, colors),
            f"final regret per algorithm, {task['id']}",
        )
        image(
            name,
            f"final regret per algorithm, {task['id']}",
            "Final regret of every seed (points), quartiles (boxes) and mean (diamond).",
        )
        if len(order) >= 2:
            name = add(
                f"{slug}-pairwise.png",
                figure_pairwise(task, order),
                f"pairwise tests, {task['id']}",
            )
            image(
                name,
                f"pairwise tests, {task['id']}",
                "Paired Wilcoxon signed-rank tests on final regret, Holm-adjusted over all pairs; "
                "colour = matched-pairs rank-biserial r (blue: row better).",
            )

    # --- across tasks ---
    section("Across tasks")
    for metric, label in (("final_regret", "final regret"), ("auc", "log-time AUC")):
        para(_friedman_sentence(summary["friedman"][metric], label, one_table=one_table))
    header, rows = _ranks_table(summary, all_names)
    table(header, rows)
    cd = figure_cd(summary["friedman"]["final_regret"], colors)
    name = add("critical-difference.png", cd, "critical-difference diagram")
    image(
        name,
        "critical-difference diagram",
        "Average ranks by mean final regret per task; algorithms joined by a bar are not "
        "significantly different (Nemenyi).",
    )

    # --- proxies ---
    for proxies in summary.get("proxies") or []:
        section(f"Proxies stored in {proxies['table']}")
        para(
            "Rank correlation of each stored proxy (mean over its seeds) with the table's "
            f"seed-mean final test accuracy, over {proxies['n_archs']:,} architectures "
            f"({proxies['archs']}); 95% percentile bootstrap CIs over them. The noise ceiling is the rank correlation of the "
            "table's test accuracy between two training seeds (how well one training run predicts "
            "another); the seed-mean truth used here is less noisy than one seed, so it is a "
            "reference line, not a hard bound."
        )
        name = add(
            f"proxies-{_slug(proxies['table'])}.png",
            figure_proxies(proxies),
            f"proxy correlations, {proxies['table']}",
        )
        image(
            name,
            f"proxy correlations, {proxies['table']}",
            "Signed rank correlations with 95% bootstrap CIs (a hollow point has none); dashed "
            "line: noise ceiling.",
        )
        header = [
            "proxy",
            "Spearman rho [95% CI]",
            "Kendall tau-b [95% CI]",
            "rho in true top 10%",
            "top-10% overlap",
            "connected only: rho",
        ]
        rows = []
        for pname, entry in proxies["proxies"].items():
            a = entry["all"]

            def ci(c):
                return f"{_fmt(c['estimate'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]"

            rows.append(
                [
                    pname,
                    ci(a["spearman_rho"]),
                    ci(a["kendall_tau_b"]),
                    ci(a["top_spearman_rho"]),
                    ci(a["top_overlap"]),
                    _fmt(entry["connected"]["spearman_rho"]["estimate"]),
                ]
            )
        table(header, rows)

    # --- method and provenance ---
    section("Method")
    html_parts.append(
        '<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in METHOD_NOTES) + "</ul>"
    )
    md_parts.append("\n".join(f"- {n}" for n in METHOD_NOTES))

    section("Provenance")
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    entries = [
        ("command", prov["command"] or "(Python API)"),
        ("versions", versions),
        ("seeds", seed_text),
        ("budgets", ", ".join(f"{t['budget']} = {t['budget_s']:,.1f} s" for t in summary["tasks"])),
        (
            "algorithms",
            "; ".join(
                f"{n} {json.dumps(p, sort_keys=True)}" for n, p in prov["algorithms"].items()
            ),
        ),
    ]
    if prov.get("algorithm_code"):  # summaries before code fingerprints lack it
        codes = prov["algorithm_code"]
        shared = set(codes.values())
        entries.append(
            (
                "algorithm code",
                next(iter(shared))
                if len(shared) == 1
                else "; ".join(f"{n} {c}" for n, c in codes.items()),
            )
        )
    for t in prov["tables"]:
        p = t.get("provenance") or {}
        dataset = p.get("dataset", {})
        dataset_name = dataset.get("name") if isinstance(dataset, dict) else dataset
        entries += [
            (f"table {t['stem']}", t["path"]),
            ("sha256", t["checksum"]),
            ("synthetic", "yes (generated data, not trained)" if t.get("synthetic") else "no"),
            ("dataset", str(dataset_name)),
            ("device", str(p.get("device", "n/a"))),
            ("code version", str(p.get("code_version", "n/a"))),
            ("created", str(p.get("created", "n/a"))),
        ]
    html_parts.append(
        '<dl class="prov">'
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in entries)
        + "</dl>"
    )
    md_parts.append("\n".join(f"- **{k}**: {v}" for k, v in entries))
    for t in prov["tables"]:
        text = json.dumps(t.get("provenance") or {}, indent=2, sort_keys=True, default=str)
        html_parts.append(
            f"<h3>table provenance: {html.escape(t['stem'])}</h3><pre>{html.escape(text)}</pre>"
        )
        md_parts.append(f"### table provenance: {t['stem']}\n\n```json\n{text}\n```")

    info = run_info or {}
    footer = f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')}"
    if info:
        footer += (
            f"; {info.get('n_runs', 0)} runs ({info.get('n_done', 0)} executed now, "
            f"{info.get('n_skipped', 0)} reused from disk) in {info.get('run_time_s', 0):.1f} s"
        )
    footer += ". Numbers: summary.json; one row per run: results.csv."
    html_parts.append(f"<footer>{html.escape(footer)}</footer>")
    md_parts.append(f"---\n\n{footer}")

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(html_parts)}</main></body></html>\n"
    )
    paths = {
        "html": out / "report.html",
        "md": out / "report.md",
        "csv": out / "results.csv",
        "json": out / "summary.json",
        "figures": fig_dir,
    }
    _atomic_write(paths["html"], page)
    _atomic_write(paths["md"], "\n\n".join(md_parts) + "\n")
    _atomic_write(paths["csv"], frame.to_csv(index=False, lineterminator="\n"))
    _atomic_write(
        paths["json"], json.dumps(summary, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    )
    return paths


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
