"""Helpers shared by the subcommands: JSON output and common arguments."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None  # JSON has no NaN
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (NaN and inf become null)."""
    json.dump(_jsonable(obj), sys.stdout, indent=2, sort_keys=False, allow_nan=False)
    sys.stdout.write("\n")


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_eval_time_flag(parser) -> None:
    """``--eval-time`` of ``search`` and ``compare`` (``Simulator(eval_time=True)``)."""
    parser.add_argument(
        "--eval-time",
        action="store_true",
        help="a query also costs the validation evaluation after its epoch (NATS-Bench's "
        "rule); by default it costs its training time only",
    )


def add_table_argument(parser, *, optional: bool = True) -> None:
    if optional:
        parser.add_argument(
            "table",
            nargs="?",
            default=None,
            metavar="TABLE",
            help="table file (HDF5); default: the shipped default table",
        )
    else:
        parser.add_argument("table", metavar="TABLE", help="table file (HDF5)")
