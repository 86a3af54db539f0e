"""Weight-sharing search against a table: train a supernet on the table's data, look up the arch.

The table gives the data set, split and skeleton (its provenance recipe);
the supernet trains for real, and only the derived archs are looked up in
the table, at the end, by the harness. The result is a
:class:`nasbench_harness.simulator.Trace` like the tabular algorithms',
with these meanings (also written into ``params``):

- one entry per derivation point (DARTS, GDAS: every supernet epoch; RSPS:
  every ``derive_every`` epochs and the last);
- ``time_s``: cumulative **real wall-clock seconds** of the search since the
  supernet was built (training plus derivation; data loading and the table
  lookup not counted), ``cost_s`` the seconds since the previous entry,
  ``budget_s`` the total; nothing is simulated;
- ``arch``: the arch derived at that point; ``epoch``: the table epoch it is
  looked up at (the last); ``train_seed``: -1 (the lookup is the seed mean);
- ``valid_acc``: what the method observed, the derived arch's
  inherited-weight accuracy on its validation examples (not the table's);
- ``incumbent``: the arch derived at that point (a weight-sharing method's
  answer is its current arch, not a best-so-far over the trace);
  ``incumbent_valid_acc`` / ``incumbent_test_acc`` / ``regret`` /
  ``best_test_acc``: the table's seed-mean last-epoch accuracies, read from
  the simulator's view of the table, as for every other trace.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot._common import CLOCK, OneShotMethod, SearchRun
from nasbench_harness.oneshot.darts import DARTS
from nasbench_harness.oneshot.gdas import GDAS
from nasbench_harness.oneshot.rsps import RSPS
from nasbench_harness.simulator import Trace, table_view

__all__ = [
    "METHODS",
    "list_methods",
    "make_method",
    "oneshot_trace",
    "run_oneshot",
    "table_recipe",
]

#: The weight-sharing methods by name.
METHODS: dict[str, type[OneShotMethod]] = {cls.name: cls for cls in (DARTS, GDAS, RSPS)}


def list_methods() -> dict[str, str]:
    """Names with the first line of each class docstring."""
    return {name: inspect.getdoc(cls).strip().splitlines()[0] for name, cls in METHODS.items()}


def make_method(name: str, seed: int | None = None, **params: Any) -> OneShotMethod:
    """Instantiate a weight-sharing method by name with a seed and hyperparameters."""
    cls = METHODS.get(name)
    if cls is None:
        raise NasbenchError(f"unknown weight-sharing method {name!r}; known: {', '.join(METHODS)}")
    return cls.with_seed(name, seed, params)


def table_recipe(table, recipe: Any = None):
    """The training recipe of ``table`` (its provenance), or ``recipe`` when given.

    Raises :class:`NasbenchError` for a table of another space or a table
    without a training recipe (e.g. a synthetic one).
    """
    from nasbench_harness.train import Recipe

    space = getattr(table.space, "name", None)
    if space != "nb201":
        raise NasbenchError(
            f"{getattr(table, 'path', 'the table')}: the weight-sharing methods search the "
            f"nb201 cell space, but this table's space is {space!r}; use an nb201 table"
        )
    if recipe is not None:
        if isinstance(recipe, dict):
            recipe = Recipe.from_dict(recipe)
        if not isinstance(recipe, Recipe):
            raise NasbenchError(f"recipe={recipe!r}: give a Recipe or a dict of recipe fields")
        return recipe
    raw = table.provenance.get("recipe")
    try:
        return Recipe.from_dict(raw)
    except (NasbenchError, TypeError) as exc:
        raise NasbenchError(
            f"{getattr(table, 'path', 'the table')}: its provenance recipe is not a training "
            f"recipe ({exc}); a supernet needs the data set and skeleton the table was trained "
            "with: pass --recipe-json with one (e.g. a synthetic table has none)"
        ) from exc


def oneshot_trace(
    table, run: SearchRun, recipe: Any = None, *, recipe_source: str = "table provenance"
) -> Trace:
    """The :class:`Trace` of a finished weight-sharing run, scored from ``table``."""
    view = table_view(table, search=False)  # the method selected on its own data
    arch = np.asarray(run.archs, dtype=np.int64)
    rows = view.rows[arch]
    inc_test = view.final_test[rows]
    method_cls = METHODS.get(run.method)
    params = {
        **run.params,
        "kind": "weight-sharing (one-shot)",
        "clock": CLOCK,
        "time_s": "cumulative real seconds since the supernet was built (training + derivation)",
        "valid_acc": "the derived arch's inherited-weight accuracy on the first eval_examples "
        "validation examples (observed by the method; not the table's)",
        "incumbent": "the arch derived at that point (the method's current answer)",
        "train_seed": "-1: the arch is looked up as the table's seed mean at the last epoch",
        "reference_epochs": getattr(method_cls, "reference_epochs", None),
        "reference": getattr(method_cls, "reference", ""),
        "derivation_epochs": run.epochs.tolist(),
        "recipe": None if recipe is None else recipe.to_dict(),
        "recipe_source": recipe_source,
        "torch_threads": torch.get_num_threads(),
        **run.info,
    }
    n = arch.size
    return Trace(
        algorithm=run.method,
        seed=run.seed,
        budget_s=float(run.time_s[-1]) if n else 0.0,
        workers=1,
        time_s=np.asarray(run.time_s, dtype=np.float64),
        arch=arch,
        epoch=np.full(n, view.epochs[-1], dtype=np.int64),
        train_seed=np.full(n, -1, dtype=np.int64),
        valid_acc=np.asarray(run.oneshot_valid_acc, dtype=np.float64),
        cost_s=np.asarray(run.cost_s, dtype=np.float64),
        incumbent=arch.copy(),
        incumbent_valid_acc=view.final_valid[rows],
        incumbent_test_acc=inc_test,
        regret=view.best_test - inc_test,
        best_test_acc=view.best_test,
        params=params,
    )


def run_oneshot(
    table,
    method: str | OneShotMethod,
    *,
    seed: int = 0,
    recipe: Any = None,
    splits: Any = None,
    data_root: Any = None,
    device: str | torch.device = "cpu",
    **params: Any,
) -> tuple[Trace, SearchRun]:
    """Run one weight-sharing search on ``table``'s data and score it from the table.

    Parameters
    ----------
    table
        An open nb201 :class:`~nasbench_harness.table.Table`.
    method
        ``"darts"``, ``"gdas"``, ``"rsps"`` or a :class:`OneShotMethod` instance
        (then ``seed`` and ``params`` are not used).
    seed
        Seed of the run.
    recipe
        Overrides the table's provenance recipe (a ``Recipe`` or a dict);
        needed for tables without one.
    splits
        Pre-loaded ``recipe.load_splits()`` (default: loaded here).
    data_root
        Directory of local-disk data sets (CIFAR), when ``splits`` is not given.
    device
        ``"cpu"`` or a CUDA device.
    **params
        The method's hyperparameters (an unknown one is an error).

    Returns
    -------
    (Trace, SearchRun)
        The trace (see the module docstring) and the method's own record
        (derived paths, arch weights, inherited-weight accuracies).
    """
    source = "table provenance" if recipe is None else "given (overrides the table's)"
    recipe = table_recipe(table, recipe)
    if isinstance(method, OneShotMethod):
        if params:
            raise NasbenchError("give hyperparameters to the method's constructor, not here")
        algorithm = method
    else:
        algorithm = make_method(method, seed=seed, **params)
    if splits is None:
        splits = recipe.load_splits(root=data_root)
    run = algorithm.search(recipe, splits, device=device)
    return oneshot_trace(table, run, recipe, recipe_source=source), run


def summary(table, trace: Trace, run: SearchRun) -> dict:
    """The final derived arch with its table accuracies and when it was first derived."""
    index = int(trace.arch[-1])
    same = trace.arch == index
    first = int(np.flatnonzero(~same)[-1] + 1) if (~same).any() else 0
    return {
        "arch": index,
        "arch_string": table.space.to_string(index),
        "valid_acc": float(trace.incumbent_valid_acc[-1]),
        "test_acc": float(trace.incumbent_test_acc[-1]),
        "regret": float(trace.regret[-1]),
        "best_test_acc": float(trace.best_test_acc),
        "oneshot_valid_acc": float(trace.valid_acc[-1]),
        "found_at_s": float(trace.time_s[first]),
        "wall_time_s": float(trace.time_s[-1]),
        "clock": CLOCK,
    }
