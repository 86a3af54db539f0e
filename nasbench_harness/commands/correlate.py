"""``nasbench correlate``: rank correlations of stored and low-fidelity proxies with the truth.

For every proxy stored in the table (``kind`` "training-free" unless its
attributes say otherwise, as the one-shot proxy's do), and for the table's
own seed-mean validation accuracy after each epoch e (``valid_acc@e``, a
low-fidelity proxy), against two truths, the seed-mean last-epoch ``valid_acc`` and
``test_acc``, over the table's distinct rows (one per isomorphism class in a
built table; every arch in an NB201 import, which trained each separately), both over
all of them and over the connected ones only (disconnected cells train to
chance level):

- ``seed_mean``: :func:`nasbench_harness.stats.rank_correlations` of the
  proxy's mean over its seeds (Kendall tau-b, Spearman rho, rho within the
  true top 10%, share of the true top 10% in the proxy's top 10%), each with
  a 95% percentile bootstrap CI over archs; signed, never abs();
- ``per_seed``: the same four figures for each proxy seed alone (no CI), and
  their mean and sample std over seeds (for ``valid_acc@e`` the "seeds" are
  the table's training seeds; ``lc_pow3@k`` has one column, the fit of the
  seed-mean curve);
- ``n_nonfinite``: NaN scores among the distinct archs (failures or archs
  left unscored); those archs are dropped pairwise.

``lc_pow3@k`` (for k = 3 and k = E // 2, when below the last epoch E): the
final validation accuracy predicted from the first k epochs of the seed-mean
validation curve by :func:`pow3_extrapolate`.

``valid_acc@e`` against the ``valid_acc`` truth shares its training runs
(and their noise) with the truth, and at the last epoch it *is* the truth:
read it against ``test_acc``. The noise ceiling row is
:meth:`Table.noise_ceiling` (seed vs seed) of each truth.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from nasbench_harness import stats
from nasbench_harness.commands._common import add_json_flag, add_table_argument, emit_json
from nasbench_harness.errors import NasbenchError
from nasbench_harness.table.reader import seed_mean_accuracy

_FIGURES = ("kendall_tau_b", "spearman_rho", "top_spearman_rho", "top_overlap")


#: Exponents tried by :func:`pow3_extrapolate` (log-spaced, 0.05 to 5).
POW3_ALPHAS = np.geomspace(0.05, 5.0, 60)


def pow3_extrapolate(curves, k: int, target_epoch: int, alphas=POW3_ALPHAS) -> np.ndarray:
    """Predict accuracy at ``target_epoch`` from epochs 1..k with ``y(e) = c - a * e**-alpha``.

    The "pow3" learning-curve model of Domhan et al., "Speeding up automatic
    hyperparameter optimization of deep neural networks by extrapolation of
    learning curves", IJCAI 2015. For each ``alpha`` of a fixed grid, ``c``
    and ``a`` are the least-squares fit (a linear problem, solved for every
    curve at once); the alpha with the smallest squared error is kept.
    Predictions are clipped to [0, 100] (accuracy in percent); a curve with a
    NaN among its first k epochs gives NaN.

    Parameters
    ----------
    curves
        ``(n, E)`` accuracies, column j = epoch j + 1.
    k
        Epochs used (>= 3: three parameters).
    target_epoch
        The epoch to predict (1-based).
    """
    y = np.asarray(curves, dtype=np.float64)[:, :k]
    if k < 3 or y.shape[1] < k:
        raise NasbenchError(f"pow3 extrapolation needs k >= 3 observed epochs, got k={k}")
    e = np.arange(1, k + 1, dtype=np.float64)
    ok = np.isfinite(y).all(1)
    best_err = np.full(y.shape[0], np.inf)
    pred = np.full(y.shape[0], np.nan)
    for alpha in alphas:
        design = np.stack([np.ones_like(e), -(e**-alpha)], axis=1)  # (k, 2)
        coef, *_ = np.linalg.lstsq(design, np.where(ok[:, None], y, 0.0).T, rcond=None)
        err = ((design @ coef - np.where(ok[:, None], y, 0.0).T) ** 2).sum(0)
        better = err < best_err
        best_err[better] = err[better]
        pred[better] = coef[0, better] - coef[1, better] * float(target_epoch) ** -alpha
    pred = np.clip(pred, 0.0, 100.0)
    pred[~ok] = np.nan
    return pred


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "correlate",
        help="rank correlations of the table's proxies with its accuracies",
        description=(
            "Kendall tau-b, Spearman rho and top-10% figures of every stored proxy and of "
            "valid_acc@e (each epoch) against seed-mean final valid and test accuracy, with "
            "bootstrap CIs, spread over proxy seeds, with and without disconnected archs, "
            "and the noise ceiling."
        ),
    )
    add_table_argument(parser)
    parser.add_argument(
        "--resamples",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples over archs (default: 1000; 0: no CIs); the bootstrap "
        "dominates the run time: about 10 s per proxy row on 5,000 archs at 1000",
    )
    parser.add_argument(
        "--fraction", type=float, default=0.1, help="the 'top' share (default: 0.1)"
    )
    parser.add_argument(
        "--no-low-fidelity",
        action="store_true",
        help="leave out the valid_acc@e and lc_pow3@k rows",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _per_seed(truth, raw, fraction) -> dict:
    rows = []
    for k in range(raw.shape[1]):
        rep = stats.rank_correlations(truth, raw[:, k], fraction=fraction, n_resamples=0)
        rows.append({f: getattr(rep, f).estimate for f in _FIGURES})
    out: dict = {"values": rows}
    for f in _FIGURES:
        vals = np.array([r[f] for r in rows], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[f] = {
            "mean": float(vals.mean()) if vals.size else math.nan,
            "std": float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
            "n_seeds": int(vals.size),
        }
    return out


def correlate(
    table,
    *,
    n_resamples: int = 1000,
    fraction: float = 0.1,
    low_fidelity: bool = True,
    progress: bool = False,
) -> dict:
    """Everything ``nasbench correlate --json`` prints, as a dict (see the module docstring)."""
    reps = np.unique(np.asarray(table.canonical))
    connected = np.asarray(table.space.connected)[reps]
    subsets = {"all": np.ones(reps.size, dtype=bool), "connected": connected}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        truths = {
            m: seed_mean_accuracy(np.asarray(table.array(m))[reps, :, -1])  # equal means tie
            for m in ("valid_acc", "test_acc")
        }
        scores: dict[str, tuple[np.ndarray, dict]] = {}
        for name in table.proxy_names:
            raw = np.asarray(table.array(f"proxy/{name}"), dtype=np.float64)
            raw = raw[:, None] if raw.ndim == 1 else raw
            scores[name] = (raw[reps], {"kind": "training-free", **_attrs(table, name)})
        if low_fidelity:
            valid = np.asarray(table.array("valid_acc"), dtype=np.float64)[reps]
            epochs = np.asarray(table.epochs)
            for e_pos, e in enumerate(epochs):
                scores[f"valid_acc@{int(e)}"] = (
                    valid[:, :, e_pos],
                    {"kind": "low-fidelity", "epoch": int(e)},
                )
            last = int(epochs[-1])
            for k in sorted({3, last // 2}):
                if 3 <= k < last:
                    pred = pow3_extrapolate(np.nanmean(valid, axis=1), k, last)
                    scores[f"lc_pow3@{k}"] = (
                        pred[:, None],
                        {"kind": "learning-curve extrapolation", "epochs_used": k},
                    )
    out: dict = {
        "table": str(table.path),
        "truths": {m: f"seed-mean last-epoch {m}" for m in truths},
        "n_unique": int(reps.size),
        "n_connected": int(connected.sum()),
        "fraction": fraction,
        "confidence": 0.95,
        "n_resamples": n_resamples,
        "proxies": {},
    }
    items = list(scores.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="correlate", unit="proxy")
    for name, (raw, info) in items:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # all-NaN rows and constant inputs give NaN, reported as such
            warnings.simplefilter("ignore")
            seed = stats.bootstrap_seed(name)  # a proxy's CIs do not move when others are added
            entry = _entry(name, raw, info, truths, subsets, fraction, n_resamples, seed)
        out["proxies"][name] = entry

    ceiling = {}
    for m in truths:
        try:
            ceiling[m] = table.noise_ceiling(m)
        except Exception as exc:  # fewer than two seeds
            ceiling[m] = {"error": str(exc)}
    out["noise_ceiling"] = ceiling
    return out


def _entry(name, raw, info, truths, subsets, fraction, n_resamples, seed) -> dict:
    if info.get("kind") == "low-fidelity":  # accuracies: equal seed means tie exactly
        mean_score = seed_mean_accuracy(raw)
    else:
        mean_score = np.nanmean(raw, axis=1)
    entry: dict = {
        **info,
        "n_seeds": int(raw.shape[1]),
        "n_nonfinite": int((~np.isfinite(raw)).sum()),
    }
    for tname, truth in truths.items():
        for sname, mask in subsets.items():
            rep = stats.rank_correlations(
                truth[mask],
                mean_score[mask],
                fraction=fraction,
                n_resamples=n_resamples,
                seed=seed,
            )
            entry.setdefault(tname, {})[sname] = {
                "seed_mean": rep.to_dict(),
                "per_seed": _per_seed(truth[mask], raw[mask], fraction),
            }
    return entry


def _attrs(table, name: str) -> dict:
    attrs = getattr(table, "proxy_attrs", {}).get(name, {})
    return {k: attrs[k] for k in ("kind", "n_failures", "n_unscored", "seeds") if k in attrs}


def _fmt(x) -> str:
    return "   nan" if x is None or not math.isfinite(x) else f"{x:+.3f}"


def run(args) -> int:
    from nasbench_harness.table import open_table

    if args.resamples < 0:
        raise NasbenchError(f"--resamples {args.resamples}: give 0 or more")
    table = open_table(args.table)
    result = correlate(
        table,
        n_resamples=args.resamples,
        fraction=args.fraction,
        low_fidelity=not args.no_low_fidelity,
        progress=not args.no_progress,
    )
    if args.json:
        emit_json(result)
        return 0
    print(
        f"{result['table']}: {result['n_unique']} distinct archs, {result['n_connected']} connected"
    )
    print(
        f"{'proxy':<16} {'truth':<10} {'subset':<10} {'tau_b':>7} {'rho':>7} {'[95% CI]':>17} "
        f"{'rho_seed':>14} {'top_rho':>7} {'top_ov':>7}"
    )
    for name, entry in result["proxies"].items():
        for tname in result["truths"]:
            for sname, block in entry[tname].items():
                sm, ps = block["seed_mean"], block["per_seed"]
                rho = sm["spearman_rho"]
                print(
                    f"{name:<16} {tname:<10} {sname:<10} {_fmt(sm['kendall_tau_b']['estimate']):>7} "
                    f"{_fmt(rho['estimate']):>7} [{_fmt(rho['ci_low'])},{_fmt(rho['ci_high'])}] "
                    f"{_fmt(ps['spearman_rho']['mean'])}+-{_fmt(ps['spearman_rho']['std'])[1:]} "
                    f"{_fmt(sm['top_spearman_rho']['estimate']):>7} {_fmt(sm['top_overlap']['estimate']):>7}"
                )
    for m, c in result["noise_ceiling"].items():
        mean = c.get("mean", {})
        for sname in ("all", "connected"):
            if sname in mean:
                print(
                    f"{'noise ceiling':<16} {m:<10} {sname:<10} {_fmt(mean[sname]['kendall_tau']):>7} "
                    f"{_fmt(mean[sname]['spearman_rho']):>7}"
                )
    return 0
