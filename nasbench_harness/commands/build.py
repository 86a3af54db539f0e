"""``nasbench build``: train every distinct arch of a space (or a sample) into shard files."""

from __future__ import annotations

import argparse
import sys

from nasbench_harness.build.defaults import DEFAULT_ORDER_SEED, DEFAULT_RECIPE, DEFAULT_SEEDS
from nasbench_harness.commands._common import add_json_flag, emit_json
from nasbench_harness.errors import BuildError

#: Recipe flags: (flag, Recipe field, type, help).
RECIPE_FLAGS = (
    ("--dataset", "dataset", str, "data set: mnist1d, digits, cifar10, cifar100"),
    ("--n-train", "train_size", int, "training split size"),
    ("--n-valid", "valid_size", int, "validation split size"),
    ("--n-test", "test_size", int, "test split size"),
    ("--split-seed", "split_seed", int, "seed of the train/valid/test split"),
    ("--epochs", "epochs", int, "training epochs"),
    ("--channels", "channels", int, "channels C of the first stage"),
    ("--cells", "cells_per_stage", int, "cells N per stage"),
    ("--reduction", "reduction", str, "reduction block: light or residual"),
    ("--batch-size", "batch_size", int, "minibatch size"),
    ("--lr", "lr", float, "initial learning rate (cosine schedule)"),
    ("--weight-decay", "weight_decay", float, "SGD weight decay"),
)
SIZE_FIELDS = ("train_size", "valid_size", "test_size")


def register(subparsers) -> None:
    recipe_defaults = ", ".join(f"{k}={v}" for k, v in DEFAULT_RECIPE.items())
    parser = subparsers.add_parser(
        "build",
        help="train a search space into shard files (resumable; local processes or Ray)",
        description=(
            "Train every distinct (canonical) architecture of a search space, once per seed, "
            "into row and part files under --out. Rerun the same command to resume: finished "
            "rows are skipped. Settings that decide the values (space, recipe, seeds, limit, "
            "order) are saved in OUT/build.json; a rerun with other settings is refused. "
            "Then `nasbench merge OUT -o TABLE` writes the table. "
            f"Default recipe (the shipped table's): {recipe_defaults}."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="build directory")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="take the settings from OUT/build.json (flags given on top must agree with them)",
    )
    what = parser.add_argument_group("what to build (saved in OUT/build.json)")
    what.add_argument("--space", default=None, help="search space (default: nb201)")
    what.add_argument(
        "--seeds",
        default=None,
        help=f"training seeds, comma-separated (default: {','.join(map(str, DEFAULT_SEEDS))})",
    )
    what.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="K",
        help="train only the first K distinct archs of a fixed seeded shuffle (a fair sample)",
    )
    what.add_argument(
        "--order-seed",
        type=int,
        default=None,
        help=f"seed of the shuffled arch order (default: {DEFAULT_ORDER_SEED})",
    )
    for flag, field, kind, text in RECIPE_FLAGS:
        default = DEFAULT_RECIPE.get(field, "the data set default")
        if field in SIZE_FIELDS:  # the shipped sizes fit only the shipped data set
            default = f"{default} for {DEFAULT_RECIPE['dataset']}, else the data set's own"
        what.add_argument(
            flag, dest=field, type=kind, default=None, help=f"{text} (default: {default})"
        )
    what.add_argument(
        "--dry-run",
        nargs="?",
        type=float,
        const=0.0,
        default=None,
        metavar="SECONDS",
        help="train nothing: a fake trainer writes deterministic synthetic curves (sleeping "
        "SECONDS per epoch), to check a set-up, shards and merge; its table is marked synthetic",
    )
    how = parser.add_argument_group("how to run it (free to change between runs)")
    how.add_argument("--executor", choices=("local", "ray"), default="local")
    how.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: one per core, or one per GPU with CUDA); "
        "with Ray, the CPUs of a new local Ray instance",
    )
    how.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per local worker (default: cores // workers); "
        "with --executor ray, each task trains with --cpus-per-task threads",
    )
    how.add_argument(
        "--shard",
        default=None,
        metavar="i/N",
        help="run only shard i of N (0-based): the archs at positions p of the plan's order "
        "with p %% N == i, each with all its seeds; "
        "e.g. --shard $SLURM_ARRAY_TASK_ID/64 in an --array=0-63 job (N written out: a "
        "resubmitted single index has SLURM_ARRAY_TASK_COUNT 1); docs/build.md",
    )
    how.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where to train (default: cpu); with --executor ray, cuda means "
        "--gpus-per-task 1 unless given, and is not checked on this machine",
    )
    how.add_argument(
        "--data-root", default=None, metavar="DIR", help="directory of local data sets"
    )
    how.add_argument(
        "--ray-address",
        default=None,
        help="address of a running Ray cluster (default: start a local Ray instance)",
    )
    how.add_argument("--cpus-per-task", type=float, default=1.0, help="Ray CPUs per task")
    how.add_argument(
        "--gpus-per-task",
        type=float,
        default=None,
        help="Ray GPUs per task (fractions share a GPU; default 1 with --device cuda, else 0)",
    )
    how.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    """The build settings the arguments ask for (over OUT/build.json with --resume)."""
    from nasbench_harness.build.plan import make_settings, parse_seeds, read_build_dir_settings

    changes = {field: getattr(args, field) for _, field, _, _ in RECIPE_FLAGS}
    changes = {k: v for k, v in changes.items() if v is not None}
    trainer = None if args.dry_run is None else "fake"
    if args.resume:
        base = read_build_dir_settings(args.out)
        if base is None:
            raise BuildError(
                f"--resume: {args.out} holds no build.json; start the build without --resume"
            )
        recipe = dict(base.recipe)
        space, seeds, limit, order_seed = base.space, base.seeds, base.limit, base.order_seed
        trainer = trainer or base.trainer
    else:
        recipe = None  # the shipped recipe; make_settings drops its sizes for other data
        space, seeds, limit, order_seed = "nb201", DEFAULT_SEEDS, None, DEFAULT_ORDER_SEED
    return make_settings(
        space=args.space or space,
        seeds=parse_seeds(args.seeds) if args.seeds is not None else seeds,
        limit=args.limit if args.limit is not None else limit,
        order_seed=args.order_seed if args.order_seed is not None else order_seed,
        trainer=trainer or "train_arch",
        recipe=recipe,
        **changes,
    )


def run(args: argparse.Namespace) -> int:
    from nasbench_harness.build import FakeTrainer, Shard, run_build

    if args.executor == "ray" and args.threads is not None:
        raise BuildError(
            f"--threads {args.threads} applies to --executor local; a Ray task trains with "
            "--cpus-per-task threads (the CPUs Ray reserves for it): give --cpus-per-task instead"
        )
    settings = settings_from_args(args)
    trainer = FakeTrainer(sleep_s=args.dry_run) if args.dry_run is not None else None
    result = run_build(
        settings,
        args.out,
        executor=args.executor,
        workers=args.workers,
        shard=Shard.parse(args.shard) if args.shard else None,
        device=args.device,
        data_root=args.data_root,
        trainer=trainer,
        ray_address=args.ray_address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
        threads=args.threads,
        progress=not args.no_progress,
    )
    failed = [f"arch {f.task.arch} seed {f.task.seed} ({f.reason})" for f in result.failures]
    if args.json:
        emit_json(
            {
                "out": result.out,
                "tasks": result.n_tasks,
                "done": result.n_done,
                "resumed": result.n_resumed,
                "trained": result.n_trained,
                "failed": [
                    {
                        "arch": f.task.arch,
                        "seed": f.task.seed,
                        "attempts": f.attempts,
                        "reason": f.reason,
                    }
                    for f in result.failures
                ],
                "interrupted": result.interrupted,
                "elapsed_s": result.elapsed_s,
            }
        )
    if result.interrupted:
        print(
            f"nasbench build: interrupted; {result.n_done}/{result.n_tasks} rows are on disk in "
            f"{result.out}; rerun the same command to continue",
            file=sys.stderr,
        )
        return 130
    if failed:
        print(
            f"nasbench build: {len(failed)} task(s) failed after retries: {'; '.join(failed)}. "
            f"{result.n_done}/{result.n_tasks} rows are on disk; rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    print(
        f"nasbench build: {result.n_done}/{result.n_tasks} rows done in {result.out} "
        f"({result.n_trained} trained now, {result.n_resumed} resumed, {result.elapsed_s:.1f} s); "
        f"next: nasbench merge {result.out} -o TABLE",
        file=sys.stderr,
    )
    return 0
