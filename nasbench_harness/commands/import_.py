"""``nasbench import nb201|nb101``: turn a community benchmark file into a table."""

from __future__ import annotations

import argparse
import sys

from nasbench_harness.commands._common import add_json_flag, emit_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import a community benchmark file (NAS-Bench-201 / NATS-Bench, NAS-Bench-101)",
        description="Read a community benchmark file as a stream (bounded memory) and write "
        "a table (its structure checked as it is written; `nasbench table validate` checks "
        "its values). See docs/import.md.",
    )
    sub = parser.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    nb201 = sub.add_parser(
        "nb201",
        help="NAS-Bench-201 .pth file, NATS-Bench topology archive directory or bz2 pickle",
        description="Import one dataset and schedule of NAS-Bench-201 / NATS-Bench "
        "(topology space). Split names stay exact: valid_* come only from the dataset's "
        "validation split (none for cifar10: NaN), test_* from its test split; missing "
        "seeds and epochs are NaN.",
    )
    nb201.add_argument(
        "source",
        metavar="FILE",
        help="the .pth file, the NATS archive directory or its .pickle.pbz2 file",
    )
    nb201.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="TABLE",
        help="table to write (refused: the source itself, a file that is not a table, a table holding stored proxies; a table without proxies is replaced)",
    )
    nb201.add_argument(
        "--dataset",
        required=True,
        choices=("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"),
        help="NB201 dataset name",
    )
    nb201.add_argument(
        "--epochs",
        type=int,
        default=200,
        choices=(200, 12),
        help="training schedule: 200 (NB201 'full', NATS '200'; default) or 12",
    )
    add_json_flag(nb201)
    nb201.set_defaults(func=run_nb201)
    nb101 = sub.add_parser(
        "nb101",
        help="NAS-Bench-101 TFRecord file (read without TensorFlow)",
        description="Import the runs of one epoch budget of NAS-Bench-101 into a table of "
        "the nb101 space (one arch per module hash, 423,624). Accuracies exist at the "
        "halfway and final epochs only; losses, FLOPs and latency are NaN (not recorded).",
    )
    nb101.add_argument("source", metavar="FILE", help="nasbench_only108.tfrecord or _full")
    nb101.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="TABLE",
        help="table to write (refused: the source itself, a file that is not a table, a table holding stored proxies; a table without proxies is replaced)",
    )
    nb101.add_argument(
        "--epochs",
        type=int,
        default=108,
        choices=(4, 12, 36, 108),
        help="epoch budget (default 108)",
    )
    nb101.add_argument(
        "--verify-crc",
        action="store_true",
        help="check every record's data CRC even without a compiled crc32c package (slow)",
    )
    add_json_flag(nb101)
    nb101.set_defaults(func=run_nb101)


def _summary(result) -> dict:
    return {
        "table": str(result.table),
        "space": result.space,
        "archs_imported": result.n_imported,
        "seeds": list(result.seeds),
        "epochs": result.epochs,
        "missing_values": result.holes,
        "source": result.source,
        "wall_s": round(result.wall_s, 3),
    }


def run_nb201(args: argparse.Namespace) -> int:
    from nasbench_harness.importers.nb201 import import_nb201

    result = import_nb201(args.source, args.output, args.dataset, epochs=args.epochs)
    _report(result, args.json)
    return 0


def run_nb101(args: argparse.Namespace) -> int:
    from nasbench_harness.importers.nb101 import import_nb101

    result = import_nb101(
        args.source, args.output, epochs=args.epochs, verify_data=True if args.verify_crc else None
    )
    _report(result, args.json)
    return 0


def _report(result, as_json: bool) -> None:
    if as_json:
        emit_json(_summary(result))
        return
    holes = sum(result.holes.values())
    note = (
        f"; {holes} values the source does not have are NaN (gaps it never records are "
        "declared in provenance not_recorded; `nasbench table validate` lists only the others "
        "as missing results)"
        if holes
        else ""
    )
    print(
        f"nasbench import: wrote {result.table}: {result.n_imported} archs, seeds "
        f"{list(result.seeds)}, {result.epochs} epochs, from {result.source.get('file')} "
        f"(sha256 {result.source.get('sha256', '')[:12]}...) in {result.wall_s:.1f} s{note}",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch (the sub-subcommands set their own ``func``)."""
    return args.func(args)
