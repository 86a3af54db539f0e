"""Throughput of the table builder against a naive training loop, measured side by side.

Both train the same ``--archs`` distinct archs (the build's fixed shuffled
order) with the same recipe (the shipped table's, ``--epochs`` epochs, one
seed) and the real ``train_arch``:

- naive: one process, one arch after another, data loaded once; timed from
  loading the data to the last arch. It runs twice (``--naive-threads``):
  with torch's default thread count (all cores), and with one thread, which
  is the builder's own setting and so computes exactly the values that go
  into the table;
- builder: ``nasbench build``'s :func:`run_build` with ``--workers`` local
  worker processes (one torch thread each, unless ``--threads``), timed from
  the call to its return: worker start-up, data loading in every worker,
  row commits and compaction included.

Generated data (MNIST-1D) is made once before either is timed, so that both
read it from the cache (the naive loop from memory, the workers from disk).

Prints archs x epochs per second of each and the ratio builder / naive for
each naive variant, all measured in the same run.
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
        default="default,1",
        help="comma-separated torch thread counts of the naive loop, one run each; "
        "'default' is torch's default, all cores (default: default,1)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import torch

    from nasbench_harness.build import make_settings

    settings = make_settings(seeds=(0,), limit=args.archs, epochs=args.epochs)
    work = args.archs * args.epochs
    default_threads = torch.get_num_threads()
    thread_counts = []
    for item in args.naive_threads.split(","):
        item = item.strip()
        if item == "default":
            count = default_threads
        elif item.isdigit() and int(item) > 0:
            count = int(item)
        else:
            parser.error(f"--naive-threads: {item!r} is neither 'default' nor a positive integer")
        if count not in thread_counts:
            thread_counts.append(count)
    from nasbench_harness.train import Recipe

    Recipe.from_dict(dict(settings.recipe)).load_splits()  # fill the data cache
    naive = {}
    for count in thread_counts:
        torch.set_num_threads(count)
        naive[count] = naive_loop(settings, args.device)
    torch.set_num_threads(default_threads)
    build_s = builder(settings, args.workers, args.threads, args.device)
    report = {
        "archs": args.archs,
        "epochs": args.epochs,
        "device": args.device,
        "recipe": dict(settings.recipe),
        "workers": args.workers,
        "builder_s": round(build_s, 2),
        "builder_arch_epochs_per_s": round(work / build_s, 3),
        "naive": [
            {
                "threads": count,
                "seconds": round(seconds, 2),
                "arch_epochs_per_s": round(work / seconds, 3),
                "ratio": round(seconds / build_s, 2),
            }
            for count, seconds in naive.items()
        ],
        "load_average": os.getloadavg(),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"{args.archs} archs x {args.epochs} epochs on {args.device}")
        print(
            f"builder ({args.workers} workers, 1 thread each): {build_s:7.1f} s  "
            f"{report['builder_arch_epochs_per_s']:.3f} arch-epochs/s"
        )
        for entry in report["naive"]:
            print(
                f"naive loop (1 process, {entry['threads']} threads): {entry['seconds']:7.1f} s  "
                f"{entry['arch_epochs_per_s']:.3f} arch-epochs/s  "
                f"ratio builder / naive {entry['ratio']:.2f}x"
            )
        print(f"load average after the run: {report['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
