"""``nasbench proxies``: score a table's distinct archs with training-free proxies and store them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nasbench_harness.commands._common import add_json_flag, emit_json
from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot.proxy import DEFAULT_SEEDS as DEFAULT_ONESHOT_SEEDS
from nasbench_harness.proxies.score import DEFAULT_SEEDS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "proxies",
        help="score every distinct arch with training-free proxies",
        description=(
            "Score every distinct architecture of TABLE (isomorphic ones share their "
            "representative's score) with each proxy at proxy seeds 0..K-1 (each seed fixes "
            "the initialisation and a minibatch from the table's training split; params and "
            "flops do not depend on it and are computed once) and store "
            "the scores in the table's proxy group. Finished scores go to TABLE.proxies.jsonl "
            "first, so an interrupted run resumes when run again; scores already stored in the "
            "table under the same settings count as done and are kept (all their seeds, also "
            "beyond K); a stored proxy of other settings is replaced only with --replace. By "
            "default only archs with a training result are scored (--all-archs). The data set and skeleton "
            "come from the table's provenance recipe; a table without a training recipe "
            "(e.g. a synthetic one) needs --recipe-json. The proxy 'oneshot' (not part of 'all': "
            "it trains a supernet per proxy seed, minutes each) is the validation accuracy of "
            "every arch with weights inherited from a supernet trained by uniform path sampling "
            "on the table's data (nasbench_harness.oneshot.proxy, docs/oneshot.md)."
        ),
    )
    parser.add_argument(
        "table",
        metavar="TABLE",
        nargs="?",
        help="table file (HDF5), changed in place (required, except with --list)",
    )
    parser.add_argument(
        "--proxies",
        metavar="P,Q,...",
        help="comma-separated proxy names, or 'all' (see --list)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the proxies and their definitions, and exit"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="K",
        help=f"proxy seeds (default: {DEFAULT_SEEDS} for the training-free proxies, each an "
        f"(init, batch) draw; {DEFAULT_ONESHOT_SEEDS} for 'oneshot', a supernet each)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="W", help="worker processes (default: 1)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="score only the first N distinct archs (trial run; archs not scored before "
        "stay NaN, scores stored before are kept)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace a stored proxy that was scored with other settings (recipe, batch "
        "size, schedule, device, code version); refused without it",
    )
    parser.add_argument(
        "--all-archs",
        action="store_true",
        help="also score the archs without a training result (by default, on a table still "
        "being built, only the trained ones are scored: the others have no truth yet)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="examples per proxy batch (default: the recipe's batch size)",
    )
    parser.add_argument(
        "--recipe-json",
        default=None,
        metavar="JSON|FILE",
        help="a training recipe (JSON object or a file holding one) overriding the table's",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="directory of local data sets (CIFAR), for a table trained on one",
    )
    parser.add_argument(
        "--oneshot-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="proxy 'oneshot' only: a supernet schedule setting (RSPS hyperparameter, e.g. "
        "epochs=20) or eval_examples=N (validation examples per arch, default 512; null: all); "
        "repeatable",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="proxy 'oneshot' only: where the supernets train and evaluate (default: cpu)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _recipe(text: str | None):
    from nasbench_harness.train import Recipe

    if text is None:
        return None
    try:
        # inline JSON first: a whole recipe is longer than a file name may be
        raw = json.loads(text if text.lstrip().startswith("{") else Path(text).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NasbenchError(
            f"--recipe-json {text!r} is neither a JSON object nor a file holding one ({exc})"
        ) from exc
    if not isinstance(raw, dict):
        raise NasbenchError(f"--recipe-json {text!r}: give a JSON object of recipe fields")
    return Recipe.from_dict(raw)


def _seeds(args, proxy: str) -> int:
    """Proxy seeds for ``proxy``: ``--seeds``, else the default of its kind."""
    if args.seeds is not None:
        return args.seeds
    return DEFAULT_ONESHOT_SEEDS if proxy == "oneshot" else DEFAULT_SEEDS


def _score_oneshot(args, recipe) -> dict:
    from algorithms.registry import parse_param_strings
    from nasbench_harness.oneshot.proxy import DEFAULT_EVAL_EXAMPLES, score_oneshot

    schedule = parse_param_strings(args.oneshot_param)
    eval_examples = schedule.pop("eval_examples", DEFAULT_EVAL_EXAMPLES)
    return score_oneshot(
        args.table,
        seeds=_seeds(args, "oneshot"),
        recipe=recipe,
        schedule=schedule,
        eval_examples=eval_examples,
        device=args.device,
        data_root=args.data_root,
        limit=args.limit,
        all_archs=args.all_archs,
        progress=not args.no_progress,
        replace=args.replace,
    )


def _list(args) -> int:
    """Print every proxy with its kind and definition (the first sentence in text mode)."""
    from nasbench_harness.proxies import get_proxy, proxy_names

    rows = []
    for name in proxy_names():
        spec = get_proxy(name)
        kind = "training-free, seed-independent" if spec.seed_independent else "training-free"
        rows.append(
            {
                "name": name,
                "kind": kind,
                "revision": spec.revision,
                "in_all": True,
                "definition": spec.definition,
            }
        )
    rows.append(
        {
            "name": "oneshot",
            "kind": "one-shot (trains a supernet per proxy seed)",
            "revision": None,
            "in_all": False,
            "definition": (
                "validation accuracy of each arch with weights inherited from a supernet "
                "trained by uniform path sampling (RSPS) on the table's data; docs/oneshot.md"
            ),
        }
    )
    if args.json:
        emit_json({"proxies": rows})
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        text = re.sub(r"(?::\w+:)?`+([^`]*)`+", r"\1", " ".join(r["definition"].split()))
        first = text.split(". ")[0].rstrip(".")
        note = "" if r["in_all"] else " [not in 'all']"
        print(f"{r['name']:<{width}}  {first}{note}")
    return 0


def run(args) -> int:
    from nasbench_harness.proxies import proxy_names
    from nasbench_harness.proxies.score import score_table

    if args.list:
        return _list(args)
    if args.table is None or args.proxies is None:
        raise NasbenchError(
            "give a TABLE and --proxies P,Q,... (or 'all'); `nasbench proxies --list` lists them"
        )
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    if names == ["all"]:
        names = proxy_names()
    elif "all" in names:
        raise NasbenchError(
            f"--proxies {args.proxies}: 'all' stands alone (every training-free proxy); "
            "give --proxies all, then --proxies oneshot in a second run, or list the names"
        )
    unknown = [n for n in names if n != "oneshot" and n not in proxy_names()]
    if unknown:
        raise NasbenchError(
            f"--proxies: unknown proxy {unknown[0]!r}; known: {', '.join(proxy_names())}, "
            "oneshot, or 'all' for every training-free one (`nasbench proxies --list`)"
        )
    if args.workers < 1:
        raise NasbenchError(f"--workers {args.workers}: give 1 or more")
    recipe = _recipe(args.recipe_json)
    if "oneshot" in names:  # its options are checked now, not after hours of other scoring
        from algorithms.registry import parse_param_strings
        from nasbench_harness.oneshot.proxy import DEFAULT_EVAL_EXAMPLES, check_options

        schedule = parse_param_strings(args.oneshot_param)
        check_options(schedule, schedule.pop("eval_examples", DEFAULT_EVAL_EXAMPLES), args.device)
    summary = {}
    training_free = [n for n in names if n != "oneshot"]
    if training_free or not names:
        summary = score_table(
            args.table,
            training_free,
            seeds=_seeds(args, "training-free"),
            workers=args.workers,
            limit=args.limit,
            all_archs=args.all_archs,
            recipe=recipe,
            batch_size=args.batch_size,
            data_root=args.data_root,
            progress=not args.no_progress,
            replace=args.replace,
        )
    if "oneshot" in names:
        summary["oneshot"] = _score_oneshot(args, recipe)
    untrained = 0
    if not args.all_archs:
        import numpy as np

        from nasbench_harness.proxies.score import archs_to_score
        from nasbench_harness.table import open_table

        table = open_table(args.table)
        untrained = np.unique(table.canonical).size - archs_to_score(table).size
    if args.json:
        emit_json(
            {
                "table": args.table,
                "seeds": {name: _seeds(args, name) for name in summary},
                "n_untrained_left_out": untrained,
                "proxies": summary,
            }
        )
    else:
        if untrained:
            print(
                f"{untrained:,} distinct archs have no training result in {args.table} and "
                "were left out (--all-archs scores them too)"
            )
        for name, s in summary.items():
            print(
                f"{name}: {s['n_scored']} scored, {s['n_failures']} failed (NaN), "
                f"{s['n_unscored']} not scored"
            )
            for err in s["errors"]:
                print(f"  {err}")
    return 0
