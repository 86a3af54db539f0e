"""Cost of scoring the training-free proxies, projected from a uniform sample of archs.

Scores ``--archs`` distinct nb201 archs, drawn uniformly (seeded) from the
space's representatives, with every registered training-free proxy (the
``all`` of ``nasbench proxies``) at proxy seeds ``0 .. --seeds - 1``, on the
shipped table's recipe (data, skeleton, batch size), in ``--workers`` worker
processes of one torch thread each: the code path of ``nasbench proxies``
(:func:`nasbench_harness.proxies.score.score_arch`), with its rule that
seed-independent proxies (params, flops) are computed at seed 0 only.

Prints, all measured in this run:

- the wall time of the pool, worker start-up and data loading included, and
  the sum of the tasks' own wall and CPU times in the workers;
- per (arch, seed): mean and median seconds, and the share of failed scores;
- the projection to all distinct archs at the same seeds: pool wall time
  scaled by the number of tasks, in hours and in core-hours (x workers).

The sample is uniform, unlike ``nasbench proxies --limit`` (the first
representatives in index order, mostly disconnected and cheap cells).
Run: ``python benchmarks/bench_proxies.py [--archs 120 --seeds 3 --workers 2] [--json]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import sys
import time


def _task(args):
    """Score one (arch, seed) in a worker; returns (wall s, CPU s, records)."""
    from nasbench_harness.proxies.score import score_arch

    arch, seed, names, config = args
    wall, cpu = time.perf_counter(), time.process_time()
    records = score_arch(arch, seed, names, config)
    return time.perf_counter() - wall, time.process_time() - cpu, records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=120, help="distinct archs sampled")
    parser.add_argument("--seeds", type=int, default=3, help="proxy seeds per arch")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the arch sample")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    for flag in ("archs", "seeds", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)}: give 1 or more")

    import numpy as np

    from nasbench_harness.build.defaults import DEFAULT_RECIPE
    from nasbench_harness.proxies import get_proxy, proxy_names
    from nasbench_harness.proxies.score import ScoreConfig, _worker_init
    from nasbench_harness.space import get_space
    from nasbench_harness.train import Recipe

    recipe = Recipe.from_dict(DEFAULT_RECIPE)
    recipe.load_splits()  # generate and cache the data once, before the clock starts
    config = ScoreConfig(recipe, recipe.batch_size, recipe.dataset)
    names = proxy_names()
    once = {n for n in names if get_proxy(n).seed_independent}
    reps = np.asarray(get_space("nb201").unique_indices)
    rng = np.random.default_rng(args.sample_seed)
    sample = rng.choice(reps, size=min(args.archs, reps.size), replace=False)
    tasks = [
        (int(a), s, [n for n in names if s == 0 or n not in once], config)
        for a in sample
        for s in range(args.seeds)
    ]

    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=args.workers, initializer=_worker_init) as pool:
        results = list(pool.map(_task, tasks, chunksize=1))
    pool_wall = time.perf_counter() - start

    walls = [r[0] for r in results]
    cpus = [r[1] for r in results]
    records = [rec for r in results for rec in r[2]]
    failed = sum(rec["score"] is None for rec in records)
    n_all = reps.size * args.seeds
    scale = n_all / len(tasks)
    out = {
        "archs_sampled": int(sample.size),
        "seeds": args.seeds,
        "workers": args.workers,
        "proxies": names,
        "tasks": len(tasks),
        "pool_wall_s": round(pool_wall, 2),
        "task_wall_sum_s": round(sum(walls), 2),
        "task_cpu_sum_s": round(sum(cpus), 2),
        "per_task_mean_s": round(statistics.fmean(walls), 4),
        "per_task_median_s": round(statistics.median(walls), 4),
        "failed_scores": failed,
        "scores": len(records),
        "all_distinct_archs": int(reps.size),
        "projected_wall_h": round(pool_wall * scale / 3600, 3),
        "projected_core_h": round(pool_wall * scale * args.workers / 3600, 3),
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{out['tasks']} (arch, seed) tasks = {out['archs_sampled']} sampled distinct archs "
        f"x {args.seeds} seeds, {len(names)} proxies, {args.workers} workers"
    )
    print(
        f"pool wall {pool_wall:.1f} s; in the workers: {sum(walls):.1f} s wall, "
        f"{sum(cpus):.1f} s CPU"
    )
    print(
        f"per (arch, seed): mean {out['per_task_mean_s']:.3f} s, median "
        f"{out['per_task_median_s']:.3f} s; failed scores {failed} of {len(records)}"
    )
    print(
        f"projected to all {reps.size:,} distinct archs x {args.seeds} seeds: "
        f"{out['projected_wall_h']:.2f} h wall = {out['projected_core_h']:.2f} core-hours"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
