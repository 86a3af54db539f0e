"""``nasbench table info|validate``: describe or check a table file."""

from __future__ import annotations

import sys

from nasbench_harness.commands._common import add_json_flag, add_table_argument, emit_json
from nasbench_harness.table import default_table_path, open_table, validate_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("table", help="describe or validate a table")
    sub = parser.add_subparsers(dest="table_command", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="provenance, shapes, seeds, epochs, metrics, noise ceiling")
    add_table_argument(info)
    add_json_flag(info)
    info.set_defaults(func=run_info)
    validate = sub.add_parser(
        "validate", help="check schema, shapes, NaN holes; exit 1 on problems"
    )
    add_table_argument(validate)
    add_json_flag(validate)
    validate.set_defaults(func=run_validate)


def run_info(args) -> int:
    table = open_table(args.table)
    info = table.info()
    if args.json:
        emit_json(info)
        return 0
    prov = table.provenance
    dataset = prov.get("dataset", {})
    print(f"table {info['path']}")
    print(
        f"  space {prov.get('space')}: {table.n_archs:,} archs, seeds {table.seeds.tolist()}, "
        f"epochs {table.epochs[0]}..{table.epochs[-1]}"
    )
    print(f"  dataset {dataset.get('name')} splits {dataset.get('splits')}")
    print(f"  metrics: {', '.join(table.metric_names)}")
    if table.proxy_names:
        print(f"  proxies: {', '.join(table.proxy_names)}")
    ceiling = info.get("noise_ceiling") or {}
    if ceiling:
        print(
            f"  noise ceiling ({ceiling['metric']} at epoch {ceiling['epoch']}, seed vs seed, "
            "mean over seed pairs):"
        )
        sizes = {
            "above_chance": ceiling.get("n_above_chance"),
            "connected": ceiling["n_connected"],
            "all": ceiling["n_unique"],
        }
        for subset, size in sizes.items():
            mean = ceiling["mean"].get(subset)
            if mean is None:
                continue
            n = max((p[subset]["n"] for p in ceiling["pairs"]), default=0)
            print(
                f"    {subset:<12} Kendall tau-b {mean['kendall_tau']:.3f}, Spearman rho "
                f"{mean['spearman_rho']:.3f} over {n:,} of {size:,} distinct archs"
            )
    not_recorded = prov.get("not_recorded")
    if not_recorded:
        print(f"  not recorded by the source: {not_recorded.get('why', not_recorded)}")
    if prov.get("synthetic"):
        print("  SYNTHETIC: made by a generator, not by training")
    return 0


def run_validate(args) -> int:
    path = args.table if args.table is not None else default_table_path()
    problems = validate_table(path)
    if args.json:
        emit_json({"path": str(path), "valid": not problems, "problems": problems})
    elif problems:
        for problem in problems:  # one line each, naming the file once
            prefix = "" if problem.startswith(f"{path}:") else f"{path}: "
            print(f"{prefix}{problem}", file=sys.stderr)
    else:
        print(f"{path}: valid")
    return 1 if problems else 0
