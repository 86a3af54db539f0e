"""Benchmark of simulated search: harness overhead per query and time of seeded runs.

Prints

1. the harness's own overhead per query (simulator and bookkeeping, the
   algorithm's work excluded): a replay algorithm hands out precomputed
   architectures through the simulator, and the time of a bare loop over
   the same ``ask``/``tell`` calls is subtracted;
2. the wall time of ``--runs`` (100) seeded runs of each algorithm at the
   default budget (:func:`algorithms.registry.default_budget`) on the
   default table, or on the committed fixture table when the default table
   is absent, with queries per run and the median final regret;
3. paired one-sided Wilcoxon signed-rank tests (same seeds) of the final
   regret of ``rea`` and ``ls`` against ``random``.

Run as ``python benchmarks/bench_search.py [--runs N] [--table PATH] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from algorithms.base import Algorithm, Proposal
from algorithms.registry import default_budget, list_algorithms, make_algorithm
from nasbench_harness.errors import TableFormatError
from nasbench_harness.simulator import run_search
from nasbench_harness.table import open_table

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "nb201-synthetic-v1.h5"
#: The group whose 100 runs should together take under 60 s.
FAST_GROUP = ("random", "rea", "reinforce", "ls")


class Replay(Algorithm):
    """Hands out a precomputed list of architectures; does no work of its own."""

    name = "replay"

    def __init__(self, *, archs=(), seed=None) -> None:
        self.archs = archs
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        self._proposals = [Proposal(arch=int(a)) for a in self.archs]
        self._next = 0

    def ask(self) -> Proposal:
        proposal = self._proposals[self._next % len(self._proposals)]
        self._next += 1
        return proposal

    def tell(self, proposal, result) -> None:
        pass


def harness_overhead(table, n_queries: int = 20000, workers: int = 1) -> dict:
    """Microseconds per query spent by the simulator, not by the algorithm."""
    archs = np.random.default_rng(0).integers(table.space.n_archs, size=n_queries)
    budget = 1e15  # ended by max_queries, not by time
    run_search(table, Replay(archs=archs), budget_s=budget, max_queries=100)  # warm caches
    algorithm = Replay(archs=archs)
    t0 = time.perf_counter()
    trace = run_search(table, algorithm, budget_s=budget, workers=workers, max_queries=n_queries)
    simulated = time.perf_counter() - t0
    bare = Replay(archs=archs)
    bare.setup(table.space, tuple(table.epochs))
    t0 = time.perf_counter()
    for _ in range(trace.n_queries + workers):
        proposal = bare.ask()
        bare.tell(proposal, None)
    loop = time.perf_counter() - t0
    return {
        "workers": workers,
        "queries": trace.n_queries,
        "us_per_query": (simulated - loop) / trace.n_queries * 1e6,
        "algorithm_us_per_query": loop / trace.n_queries * 1e6,
    }


def time_runs(table, name: str, runs: int, budget: float) -> dict:
    """Wall time of ``runs`` seeded runs, their query counts and final regrets."""
    regrets, queries = [], []
    t0 = time.perf_counter()
    for seed in range(runs):
        trace = run_search(table, make_algorithm(name, seed=seed), budget_s=budget, seed=seed)
        regrets.append(trace.final_regret)
        queries.append(trace.n_queries)
    return {
        "algorithm": name,
        "runs": runs,
        "seconds": time.perf_counter() - t0,
        "median_queries": float(np.median(queries)),
        "median_final_regret": float(np.median(regrets)),
        "mean_final_regret": float(np.mean(regrets)),
        "final_regret": regrets,
    }


def paired_test(better: dict, baseline: dict) -> dict:
    """One-sided Wilcoxon signed-rank test: is ``better``'s final regret lower (paired seeds)?"""
    x = np.asarray(better["final_regret"])
    y = np.asarray(baseline["final_regret"])
    if np.all(x == y):
        p = 1.0
    else:
        p = float(stats.wilcoxon(x, y, alternative="less").pvalue)
    return {
        "algorithm": better["algorithm"],
        "baseline": baseline["algorithm"],
        "median_regret": float(np.median(x)),
        "baseline_median_regret": float(np.median(y)),
        "wins": int(np.sum(x < y)),
        "ties": int(np.sum(x == y)),
        "losses": int(np.sum(x > y)),
        "p_value": p,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table", default=None, help="table (default: default table, else fixture)"
    )
    parser.add_argument("--runs", type=int, default=100, help="seeded runs per algorithm")
    parser.add_argument("--algorithms", default=None, help="comma-separated (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    if args.table is not None:
        table = open_table(args.table)
    else:
        try:
            table = open_table(None)
        except TableFormatError:
            table = open_table(FIXTURE)
    budget = default_budget(table)
    names = args.algorithms.split(",") if args.algorithms else list(list_algorithms())
    say = (lambda *a, **k: None) if args.json else print
    say(f"table: {table.path}  default budget: {budget:.1f} s simulated")

    overhead = [harness_overhead(table, workers=w) for w in (1, 4)]
    for o in overhead:
        say(
            f"harness overhead ({o['workers']} worker(s)): {o['us_per_query']:.1f} us/query "
            f"over {o['queries']} queries (replay algorithm itself: "
            f"{o['algorithm_us_per_query']:.2f} us/query)"
        )

    results = {}
    for name in names:
        results[name] = time_runs(table, name, args.runs, budget)
        r = results[name]
        say(
            f"{name:<10} {r['runs']} runs in {r['seconds']:7.2f} s "
            f"({r['seconds'] / r['runs'] * 1e3:7.1f} ms/run)  median queries "
            f"{r['median_queries']:6.0f}  median final regret {r['median_final_regret']:.3f}"
        )
    fast = [n for n in FAST_GROUP if n in results]
    if fast:
        total = sum(results[n]["seconds"] for n in fast)
        say(f"{' + '.join(fast)}: {total:.2f} s together (target < 60 s for 100 runs each)")

    tests = [
        paired_test(results[n], results["random"])
        for n in ("rea", "ls")
        if n in results and "random" in results
    ]
    for t in tests:
        say(
            f"{t['algorithm']} vs random: median final regret {t['median_regret']:.3f} vs "
            f"{t['baseline_median_regret']:.3f}; wins/ties/losses {t['wins']}/{t['ties']}/"
            f"{t['losses']}; one-sided Wilcoxon p = {t['p_value']:.3g}"
        )
    if args.json:
        for r in results.values():
            r.pop("final_regret")
        json.dump(
            {
                "table": str(table.path),
                "budget_s": budget,
                "overhead": overhead,
                "runs": results,
                "tests": tests,
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
