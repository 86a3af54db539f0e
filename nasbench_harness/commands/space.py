"""``nasbench space info``: the search space's size and equivalence classes."""

from __future__ import annotations

import numpy as np

from nasbench_harness.commands._common import add_json_flag, emit_json
from nasbench_harness.space import RULES, get_space


def register(subparsers) -> None:
    parser = subparsers.add_parser("space", help="describe a search space")
    sub = parser.add_subparsers(dest="space_command", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="ops, number of archs and of distinct computations")
    info.add_argument(
        "--space",
        default="nb201",
        type=str.lower,
        choices=("nb201", "nb101"),
        help="search space (default: nb201; nb101 is enumerated on first use, ~5 min, then cached)",
    )
    add_json_flag(info)
    info.set_defaults(func=run_info)


def run_info(args) -> int:
    space = get_space(args.space)
    out = {
        "space": space.name,
        "ops": list(space.ops),
        "n_archs": space.n_archs,
        "n_unique": space.n_unique,
        "n_connected": int(space.connected.sum()),
    }
    out["n_unique_nb201"] = None  # NAS-Bench-201's string rule: nb201 only (null elsewhere)
    if args.space == "nb201":  # cells on edges, and several equivalence rules
        out["n_edges"] = space.n_edges
        out["n_unique_nb201"] = space.n_unique_nb201
        out["n_unique_by_rule"] = {
            rule: int(np.unique(space.canonical_ids_for(rule)).size) for rule in RULES
        }
    if args.json:
        emit_json(out)
        return 0
    if "n_edges" in out:
        print(f"space {out['space']}: {out['n_edges']} edges, ops {', '.join(out['ops'])}")
    else:
        print(f"space {out['space']}: ops {', '.join(out['ops'])}")
    print(f"  {out['n_archs']:,} architectures, {out['n_unique']:,} distinct computations")
    if out["n_unique_nb201"] is not None:
        print(f"  {out['n_unique_nb201']:,} unique under NAS-Bench-201's own string rule")
    print(f"  {out['n_connected']:,} with a path from input to output")
    for rule, count in out.get("n_unique_by_rule", {}).items():
        print(f"  rule {rule:<26} {count:>6,} classes  ({RULES[rule]})")
    return 0
