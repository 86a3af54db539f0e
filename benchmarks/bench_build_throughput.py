"""Throughput of the table builder against a naive training loop, measured side by side.

Both train the same ``--archs`` distinct archs (the build's fixed shuffled
order) with the same recipe (the shipped table's, ``--epochs`` epochs, one
seed) and the real ``train_arch``:

- naive: one process, one arch after another, torch's default thread count
  (all cores), data loaded once; timed from loading the data to the last arch;
- builder: ``nasbench build``'s :func:`run_build` with ``--workers`` local
  worker processes (one torch thread each, unless ``--threads``), timed from
  the call to its return: worker start-up, data loading in every worker,
  row commits and compaction included.

Generated data (MNIST-1D) is made once before either is timed, so that both
read it from the cache (the naive loop from memory, the workers from disk).

Prints archs x epochs per second of each and the ratio builder / naive.
Run: ``python benchmarks/bench_build_throughput.py [--archs K --epochs E --workers W]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def naive_loop(settings, device: str) -> float:
    """Seconds to train every task of ``settings`` one after another in this process."""
    from nasbench_harness.build import plan_tasks
    from nasbench_harness.train import Recipe, train_arch

    start = time.perf_counter()
    recipe = Recipe.from_dict(dict(settings.recipe))
    splits = recipe.load_splits()
    for task in plan_tasks(settings):
        train_arch(task.arch, task.seed, recipe, splits, device=device)
    return time.perf_counter() - start


def builder(settings, workers: int, threads: int | None, device: str) -> float:
    """Seconds for ``run_build`` with ``workers`` local workers to train the same tasks."""
    from nasbench_harness.build import run_build

    with tempfile.TemporaryDirectory(prefix="bench-build-") as out:
        start = time.perf_counter()
        result = run_build(
            settings, out, workers=workers, threads=threads, device=device, progress=False
        )
        elapsed = time.perf_counter() - start
    if not result.complete:
        raise SystemExit(f"the build did not complete: {result}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=24, help="distinct archs to train")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per arch")
    parser.add_argument("--workers", type=int, default=2, help="builder worker processes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument(
        "--naive-threads",
        type=int,
        default=None,
        help="torch threads of the naive loop (default: torch's default, all cores)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import torch

    from nasbench_harness.build import make_settings

    settings = make_settings(seeds=(0,), limit=args.archs, epochs=args.epochs)
    work = args.archs * args.epochs
    if args.naive_threads is not None:
        torch.set_num_threads(args.naive_threads)
    naive_threads = torch.get_num_threads()
    from nasbench_harness.train import Recipe

    Recipe.from_dict(dict(settings.recipe)).load_splits()  # fill the data cache
    naive_s = naive_loop(settings, args.device)
    build_s = builder(settings, args.workers, args.threads, args.device)
    report = {
        "archs": args.archs,
        "epochs": args.epochs,
        "device": args.device,
        "recipe": dict(settings.recipe),
        "naive_threads": naive_threads,
        "workers": args.workers,
        "naive_s": round(naive_s, 2),
        "builder_s": round(build_s, 2),
        "naive_arch_epochs_per_s": round(work / naive_s, 3),
        "builder_arch_epochs_per_s": round(work / build_s, 3),
        "ratio": round(naive_s / build_s, 2),
        "load_average": os.getloadavg(),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"{args.archs} archs x {args.epochs} epochs on {args.device}")
        print(
            f"naive loop (1 process, {naive_threads} threads): {naive_s:7.1f} s  "
            f"{report['naive_arch_epochs_per_s']:.3f} arch-epochs/s"
        )
        print(
            f"builder ({args.workers} workers):            {build_s:7.1f} s  "
            f"{report['builder_arch_epochs_per_s']:.3f} arch-epochs/s"
        )
        print(f"ratio builder / naive: {report['ratio']:.2f}x")
        print(f"load average after the run: {report['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
