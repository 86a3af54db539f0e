"""``nasbench compare``: the main job; seeded searches, statistics and a report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from nasbench_harness.commands._common import add_eval_time_flag, add_json_flag, emit_json
from nasbench_harness.compare import DEFAULT_BUDGETS, DEFAULT_RUNS, CompareConfig, compare
from nasbench_harness.errors import NasbenchError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare search algorithms on tables: runs, statistics, report",
        description=(
            "Run every algorithm with the same seeds 0..N-1 on every task (table x budget), "
            "then write report.html, report.md, results.csv and summary.json. Finished runs "
            "are kept in OUT/runs/ as they finish, so an interrupted compare resumes where it "
            "stopped when run again with the same --out (runs of other code, i.e. after a change "
            "to the algorithms, simulator, spaces or table reader, are done again; after "
            "changing only modules your own algorithm file imports, give a new --out). With "
            "no arguments: the shipped "
            f"default table, every tabular algorithm, {DEFAULT_RUNS} seeds, budgets "
            f"{','.join(DEFAULT_BUDGETS)}."
        ),
    )
    parser.add_argument(
        "--table",
        dest="tables",
        action="extend",
        nargs="+",
        metavar="TABLE",
        help="table file(s) (HDF5); default: the shipped default table",
    )
    parser.add_argument(
        "--algorithms",
        default=None,
        metavar="A,B,...",
        help="comma-separated names (or path/to/file.py:Class); default: every tabular algorithm",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        metavar="N",
        help=f"paired seeds 0..N-1 per algorithm and task (default: {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--budgets",
        "--budget",
        dest="budgets",
        default=",".join(DEFAULT_BUDGETS),
        metavar="B1,B2,...",
        help="simulated budgets: seconds (3600) or multiples of the table's default budget "
        f"(x1 = about 200 full trainings); default: {','.join(DEFAULT_BUDGETS)}",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="W",
        help="simulated asynchronous workers per search (default: 1)",
    )
    add_eval_time_flag(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="J",
        help="worker processes that run the searches (default: the CPUs this process may use)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="ALGO:KEY=VALUE",
        help="a hyperparameter of one algorithm, e.g. rea:population_size=20 (repeatable)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: reports/<table-stem>-<YYYY-MM-DD>)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _parse_params(items: list[str]) -> dict[str, dict]:
    from algorithms.registry import parse_param_strings

    out: dict[str, dict] = {}
    for item in items:
        # split at the first '=' (a value may hold ':'), then at the last ':' of the left
        # part (an algorithm named by path, dir/mine.py:Mine, holds ':' itself)
        left, eq, value = item.partition("=")
        algo, sep, key = left.rpartition(":")
        if not eq or not sep or not algo or not key:
            raise NasbenchError(
                f"--param {item!r}: write ALGO:KEY=VALUE, e.g. --param rea:population_size=20"
            )
        out.setdefault(algo, {}).update(parse_param_strings([f"{key}={value}"]))
    return out


def _command_line(args) -> str:
    """The command as typed when run as ``nasbench``; else an equivalent one from ``args``."""
    if Path(sys.argv[0]).name in ("nasbench", "cli.py") and "compare" in sys.argv[1:]:
        return shlex.join(["nasbench", *sys.argv[1:]])
    words = ["nasbench", "compare"]
    for table in args.tables or []:
        words += ["--table", table]
    if args.algorithms:
        words += ["--algorithms", args.algorithms]
    words += ["--runs", str(args.runs), "--budgets", args.budgets, "--workers", str(args.workers)]
    if args.eval_time:
        words.append("--eval-time")
    for item in args.param:
        words += ["--param", item]
    if args.out:
        words += ["--out", args.out]
    return shlex.join(words)


def run(args) -> int:
    algorithms = tuple(a.strip() for a in (args.algorithms or "").split(",") if a.strip())
    budgets = tuple(b.strip() for b in args.budgets.split(",") if b.strip())
    if args.jobs is not None and args.jobs < 1:
        raise NasbenchError(f"--jobs {args.jobs}: give a whole number >= 1")
    config = CompareConfig(
        tables=tuple(args.tables) if args.tables else (None,),
        algorithms=algorithms,
        runs=args.runs,
        budgets=budgets,
        workers=args.workers,
        eval_time=args.eval_time,
        jobs=args.jobs,
        out=args.out,
        params=_parse_params(args.param),
        command_line=_command_line(args),
    )
    result = compare(config, progress=not args.quiet and not args.json)
    if args.json:
        emit_json(
            {
                "out": str(result.out),
                "report_html": str(result.report_html),
                "report_md": str(result.report_md),
                "results_csv": str(result.results_csv),
                "summary_json": str(result.summary_json),
                "n_runs": result.n_runs,
                "n_executed": result.n_done,
                "n_resumed": result.n_skipped,
                "elapsed_s": round(result.elapsed_s, 3),
                "headlines": list(result.headlines),
            }
        )
    else:
        for line in result.headlines:
            print(line)
        print(
            f"{result.n_runs} runs ({result.n_done} executed, {result.n_skipped} resumed) in "
            f"{result.elapsed_s:.1f} s; report: {result.report_html}"
        )
    return 0
