"""``nasbench merge``: merge the rows of a build into one validated table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nasbench_harness.commands._common import add_json_flag, emit_json

#: Validation problems shown in the one-line error.
SHOW_PROBLEMS = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge build directories or part files into one validated table",
        description=(
            "Read every row of one build (build directories, part files or row files, e.g. "
            "copied from several machines), drop duplicates, expand each canonical arch's row "
            "to its isomorphic archs, write the table beside TABLE and validate it there: only "
            "a table that passes replaces TABLE; one that fails is left beside it as "
            "NAME.rejected.h5 for a TABLE NAME.h5 (exit 1) and TABLE is untouched. Proxies stored in the TABLE it replaces are kept "
            "(same space, recipe and data); a TABLE of other proxies, or a file that is not a "
            "table, is refused before a latency sweep or any writing. A build with planned "
            "rows missing is refused (exit 1, nothing written) unless --allow-partial."
        ),
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="DIR_OR_PART", help="build directories or part files"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="TABLE", help="table file to write"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="write the table even if planned rows are missing (they are NaN in it)",
    )
    parser.add_argument(
        "--latency-sweep",
        action="store_true",
        help=(
            "measure every trained arch's latency again here, in one process (batch 1, "
            "fastest pass over rounds in random order), instead of the median of what the "
            "workers measured "
            "right after training; use it when the rows were trained at different times or "
            "on a busy machine, or to measure latency on this machine's device"
        ),
    )
    parser.add_argument(
        "--latency-device",
        default=None,
        metavar="DEVICE",
        help="device of the latency sweep: cpu (default) or cuda",
    )
    parser.add_argument(
        "--latency-rounds",
        type=int,
        default=None,
        metavar="R",
        help="passes over all archs in the latency sweep (default 5)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar for the latency sweep"
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasbench_harness.build import merge
    from nasbench_harness.errors import BuildError

    options = {"device": args.latency_device, "rounds": args.latency_rounds}
    options = {name: value for name, value in options.items() if value is not None}
    if options and not args.latency_sweep:
        flags = ", ".join(f"--latency-{name}" for name in options)
        raise BuildError(f"{flags} only apply to a latency sweep: add --latency-sweep")
    result = merge(
        args.inputs,
        args.output,
        latency="sweep" if args.latency_sweep else "rows",
        latency_options=options if args.latency_sweep else None,
        progress=not args.no_progress,
        allow_partial=args.allow_partial,
    )
    missing = [f"arch {t.arch} seed {t.seed}" for t in result.missing]
    if args.json:
        emit_json(
            {
                "table": result.path,
                "rows": result.n_rows,
                "expected_rows": result.n_expected,
                "duplicates": result.n_duplicates,
                "missing": [{"arch": t.arch, "seed": t.seed} for t in result.missing],
                "problems": list(result.problems),
                "latency": result.provenance["latency"],
            }
        )
    from nasbench_harness.table.validate import HOLES_MARK

    code = 0
    problems = list(result.problems)
    if missing:  # --allow-partial: the holes of the missing rows are expected
        problems = [p for p in problems if HOLES_MARK not in p]
    if problems:
        first = "; ".join(problems[:SHOW_PROBLEMS])
        aside = (
            f" (put aside: {args.output} was left as it was)"
            if Path(result.path) != Path(args.output)
            else ""
        )
        print(
            f"nasbench merge: {result.path} fails validation{aside} ({len(problems)} problem(s), "
            f"first: {first}); `nasbench table validate {result.path}` lists them all",
            file=sys.stderr,
        )
        code = 1
    if code == 0:
        holes = f"; {len(missing)} missing rows are NaN" if missing else ""
        print(
            f"nasbench merge: wrote {result.path}: {result.n_rows} rows of {result.n_expected} "
            f"planned ({result.n_duplicates} duplicates dropped{holes})",
            file=sys.stderr,
        )
    return code
