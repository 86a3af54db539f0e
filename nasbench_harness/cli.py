"""The ``nasbench`` command.

Each subcommand lives in :mod:`nasbench_harness.commands` as a module with a
``register(subparsers)`` function. Errors caused by input are
:class:`~nasbench_harness.errors.NasbenchError` and print as one line on
stderr with exit code 2. Exit code 1: a table that fails validation, a merge
with planned rows missing, a build with failed tasks; 130: interrupted
(finished work is kept).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nasbench_harness import __version__
from nasbench_harness.errors import NasbenchError

#: Subcommand modules under nasbench_harness.commands, in --help order.
COMMAND_MODULES = (
    "space",
    "table",
    "query",
    "build",
    "merge",
    "search",
    "compare",
    "proxies",
    "correlate",
    "import_",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), like the others."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nasbench",
        description="Tabular NAS benchmarks: build tables, run searches in simulated time, "
        "score proxies and write comparison reports.",
    )
    parser.add_argument("--version", action="version", version=f"nasbench-harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nasbench_harness.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nasbench_harness.commands.{name}":
                continue  # subcommand not part of this installation
            raise
        module.register(subparsers)
    parser.commands = subparsers.choices  # for errors that name the subcommand
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # blame the subcommand whose options they are not, and point to its --help
        where = parser.commands.get(getattr(args, "command", None) or "", parser)
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except NasbenchError as exc:
        print(f"nasbench {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(
            f"nasbench {args.command}: interrupted; finished work is kept on disk", file=sys.stderr
        )
        return 130
    except BrokenPipeError:
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
