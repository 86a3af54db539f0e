"""``nasbench query``: one entry of a table, with its simulated cost."""

from __future__ import annotations

from nasbench_harness.commands._common import add_json_flag, emit_json
from nasbench_harness.table import open_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "query",
        help="one metric of one architecture",
        description="Look up one metric of one architecture. ARCH is an NB201 string "
        "('|nor_conv_3x3~0|+|...|'), an index, or comma-separated op names.",
    )
    parser.add_argument(
        "table",
        nargs="?",
        default=None,
        metavar="TABLE",
        help="table file (default: the default table)",
    )
    parser.add_argument("arch", metavar="ARCH", help="the architecture")
    parser.add_argument("--metric", default="valid_acc", help="metric name (default: valid_acc)")
    parser.add_argument("--epoch", type=int, default=None, help="epoch (default: the last)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed, or for proxy/NAME a proxy seed (default: mean over seeds)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def parse_arch(text: str):
    """An arch from the command line: an index, an NB201 string or op names."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if "," in text and "|" not in text:
        return tuple(part.strip() for part in text.split(","))
    return text


def run(args) -> int:
    table = open_table(args.table)
    arch = parse_arch(args.arch)
    value = table.query(arch, metric=args.metric, epoch=args.epoch, seed=args.seed)
    epoch = args.epoch if args.epoch is not None else int(table.epochs[-1])
    # --seed of a proxy is a proxy seed: the training cost is then the mean over seeds
    training_seed = args.seed if args.metric in table.epoch_metric_names else None
    cost = table.cost(arch, epoch=epoch, seed=training_seed)
    index = table.space.index(arch)
    out = {
        "table": str(table.path),
        "arch": table.space.to_string(index),
        "index": index,
        "canonical": int(table.canonical[index]),  # the row that answered (the table's map)
        "metric": args.metric,
        "epoch": epoch,
        "seed": args.seed if args.seed is not None else "mean",
        "value": value,
        "cost_s": cost,
    }
    if args.json:
        emit_json(out)
    else:
        print(
            f"{out['arch']}  {args.metric}@{epoch} (seed {out['seed']}) = {value:.6g}  "
            f"cost {cost:.3f} s"
        )
    return 0
