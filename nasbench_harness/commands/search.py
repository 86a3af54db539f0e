"""``nasbench search``: one seeded search run in simulated time, its trace and incumbent.

The weight-sharing methods (``darts``, ``gdas``, ``rsps``;
:mod:`nasbench_harness.oneshot`) run here too: they train a supernet for real
on the table's data set and skeleton, and their trace's clock is real
wall-clock seconds, labelled as such (see ``docs/oneshot.md``).
"""

from __future__ import annotations

from algorithms.registry import (
    default_budget,
    list_algorithms,
    list_weight_sharing,
    make_algorithm,
    parse_param_strings,
)
from nasbench_harness.commands._common import add_eval_time_flag, add_json_flag, emit_json
from nasbench_harness.errors import NasbenchError
from nasbench_harness.simulator import incumbent_positions, run_search


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="run one search algorithm against a table in simulated time",
        description=(
            "Run one seeded search against TABLE (default: the shipped default table) until "
            "the simulated budget is spent, and print its incumbent: the best architecture by "
            "validation accuracy, scored by its seed-mean test accuracy and regret (--json also "
            "prints the whole trace). The seed seeds both the algorithm and the draw of training seeds. "
            "Default budget: the time to train 200 typical architectures to the table's last "
            "epoch (median full training time x 200; algorithms.registry.default_budget). "
            "`nasbench search --list` lists the algorithms. The weight-sharing methods "
            "(darts, gdas, rsps) instead train a supernet for real on the table's data set and "
            "skeleton (its provenance recipe) and look the derived architecture up in the "
            "table; their cost is real wall-clock seconds, set by their schedule "
            "(--param epochs=N), not by --budget."
        ),
    )
    parser.add_argument(
        "table",
        nargs="?",
        default=None,
        metavar="TABLE",
        help="table file (HDF5); default: the shipped default table",
    )
    parser.add_argument(
        "--algorithm",
        "-a",
        default=None,
        metavar="NAME",
        help="registered name (see --list) or path/to/file.py:ClassName",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default: 0)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SEC",
        help="simulated seconds (default: 200 x the table's median full training time)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="simulated asynchronous workers (default: 1)"
    )
    add_eval_time_flag(parser)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="algorithm hyperparameter (repeatable); VALUE is read as JSON, else as text",
    )
    parser.add_argument(
        "--recipe-json",
        default=None,
        metavar="JSON|FILE",
        help="weight-sharing methods only: a training recipe (JSON object or a file holding "
        "one) overriding the table's, for tables without one (e.g. synthetic)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="weight-sharing methods only: where the supernet trains (default: cpu)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="weight-sharing methods only: directory of local data sets (CIFAR), for a "
        "table trained on one",
    )
    parser.add_argument("--list", action="store_true", help="list the algorithms and exit")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.list:
        algorithms = list_algorithms()
        weight_sharing = list_weight_sharing()
        if args.json:
            emit_json({"algorithms": algorithms, "weight_sharing": weight_sharing})
        else:
            width = max(len(name) for name in (*algorithms, *weight_sharing))
            for name, description in algorithms.items():
                print(f"{name:<{width}}  {description}")
            for name, description in weight_sharing.items():
                print(f"{name:<{width}}  {description}")
        return 0
    if not args.algorithm:
        raise NasbenchError("give --algorithm NAME (see `nasbench search --list`)")
    if args.seed < 0:
        raise NasbenchError(f"--seed {args.seed}: give a seed >= 0")
    from nasbench_harness.table import open_table

    if args.algorithm in list_weight_sharing():
        return run_weight_sharing(args, open_table(args.table))
    if args.recipe_json is not None or args.device != "cpu" or args.data_root is not None:
        raise NasbenchError(
            f"--recipe-json, --device and --data-root are for the weight-sharing methods "
            f"({', '.join(list_weight_sharing())}); {args.algorithm} runs in simulated time"
        )
    table = open_table(args.table)
    params = parse_param_strings(args.param)
    algorithm = make_algorithm(args.algorithm, seed=args.seed, **params)
    budget_is_default = args.budget is None
    budget = default_budget(table) if budget_is_default else float(args.budget)
    trace = run_search(
        table,
        algorithm,
        budget_s=budget,
        seed=args.seed,
        workers=args.workers,
        eval_time=args.eval_time,
    )
    out = {
        "table": str(getattr(table, "path", "")),
        "algorithm": algorithm.name or type(algorithm).__name__,
        "seed": args.seed,
        "budget_s": budget,
        "budget_is_default": budget_is_default,
        "workers": args.workers,
        "eval_time": args.eval_time,
        "params": algorithm.get_params(),
        "incumbent": incumbent_summary(table, trace),
        "trace": trace.to_dict(),
    }
    report = getattr(algorithm, "report", None)
    if callable(report):
        out["algorithm_report"] = score_report(table, report())
    if args.json:
        emit_json(out)
    else:
        print_summary(out, trace)
    return 0


def run_weight_sharing(args, table) -> int:
    """``nasbench search`` for a weight-sharing method: a real supernet run, then the lookup."""
    from nasbench_harness.commands.proxies import _recipe
    from nasbench_harness.oneshot.search import make_method, run_oneshot, summary

    if args.budget is not None:
        raise NasbenchError(
            f"{args.algorithm} is a weight-sharing method: its cost is real time set by its "
            "schedule (--param epochs=N), not a simulated --budget; leave --budget out"
        )
    if args.workers != 1:
        raise NasbenchError(f"{args.algorithm} runs one supernet: leave --workers out")
    if args.eval_time:
        raise NasbenchError(
            f"{args.algorithm} is a weight-sharing method, timed in real seconds: leave "
            "--eval-time out"
        )
    # the method is made here, so that --param names are checked as its hyperparameters
    method = make_method(args.algorithm, seed=args.seed, **parse_param_strings(args.param))
    trace, run = run_oneshot(
        table,
        method,
        recipe=_recipe(args.recipe_json),
        data_root=args.data_root,
        device=args.device,
    )
    out = {
        "table": str(getattr(table, "path", "")),
        "algorithm": args.algorithm,
        "kind": "weight-sharing",
        "clock": trace.params["clock"],
        "seed": args.seed,
        "wall_time_s": trace.budget_s,
        "params": trace.params,
        "incumbent": summary(table, trace, run),
        "arch_weights": run.arch_weights[-1].tolist() if run.arch_weights.size else None,
        "trace": trace.to_dict(),
    }
    if args.json:
        emit_json(out)
        return 0
    inc = out["incumbent"]
    print(
        f"{args.algorithm} (seed {args.seed}, weight-sharing): {trace.n_queries} derivations, "
        f"{inc['wall_time_s']:.1f} s real wall-clock time (not simulated)"
    )
    print(
        f"derived    {inc['arch_string']}  (index {inc['arch']}, since {inc['found_at_s']:.1f} s)"
    )
    print(
        f"  table seed-mean valid {inc['valid_acc']:.2f}  test {inc['test_acc']:.2f}  "
        f"regret {inc['regret']:.3f} (table best test {inc['best_test_acc']:.2f}); "
        f"one-shot valid {inc['oneshot_valid_acc']:.2f}"
    )
    return 0


def incumbent_summary(table, trace) -> dict | None:
    """The final incumbent: arch, seed-mean valid and test accuracy, regret, time found."""
    if trace.n_queries == 0:
        return None
    index = trace.final_incumbent
    found = int(incumbent_positions(trace.valid_acc)[-1])
    return {
        "arch": index,
        "arch_string": table.space.to_string(index),
        "valid_acc": float(trace.incumbent_valid_acc[-1]),
        "test_acc": float(trace.incumbent_test_acc[-1]),
        "regret": trace.final_regret,
        "best_test_acc": trace.best_test_acc,
        "found_at_s": float(trace.time_s[found]),
    }


def score_report(table, report: dict) -> dict:
    """Add seed-mean valid and test accuracy to the architectures an algorithm reports.

    Done by the harness after the run, from the table; the algorithm never
    sees test accuracy.
    """

    def scored(entry: dict) -> dict:
        entry = dict(entry)
        arch = entry["arch"]
        entry["mean_valid_acc"] = table.query(arch, metric="valid_acc")
        entry["mean_test_acc"] = table.query(arch, metric="test_acc")
        return entry

    out = dict(report)
    for key, value in report.items():
        if isinstance(value, dict) and "arch" in value:
            out[key] = scored(value)
        elif (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "arch" in v for v in value)
        ):
            out[key] = [scored(v) for v in value]
    return out


def print_summary(out: dict, trace) -> None:
    print(
        f"{out['algorithm']} (seed {out['seed']}, {out['workers']} worker(s)): "
        f"{trace.n_queries} queries, {trace.time_s[-1] if trace.n_queries else 0.0:.1f} s "
        f"of {out['budget_s']:.1f} s simulated"
        + (" (default budget)" if out["budget_is_default"] else "")
        + ("; queries cost training and validation time" if out.get("eval_time") else "")
    )
    inc = out["incumbent"]
    if inc is None:
        print("no query finished within the budget: no incumbent")
        return
    print(
        f"incumbent  {inc['arch_string']}  (index {inc['arch']}, found at {inc['found_at_s']:.1f} s)"
    )
    print(
        f"  seed-mean valid {inc['valid_acc']:.2f}  test {inc['test_acc']:.2f}  "
        f"regret {inc['regret']:.3f} (table best test {inc['best_test_acc']:.2f})"
    )
    report = out.get("algorithm_report")
    if report and "pareto_front" in report:
        metric = report.get("hw_metric", "cost")
        print(f"Pareto front ({len(report['pareto_front'])} archs, valid acc vs {metric}):")
        for entry in report["pareto_front"]:
            print(
                f"  {entry[metric]:>12.4g}  valid {entry['valid_acc']:.2f}  "
                f"test(mean) {entry['mean_test_acc']:.2f}  {entry['arch_string']}"
            )
    elif report and report.get("best_by_reward"):
        best = report["best_by_reward"]
        metric = report["hw_metric"]
        print(
            f"best by reward  {best['arch_string']}  {metric} {best[metric]:.4g} "
            f"(target {report['target']:.4g})  test(mean) {best['mean_test_acc']:.2f}"
        )
