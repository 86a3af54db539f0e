"""Weight-sharing (one-shot) NAS on the NB201 cell: supernet, DARTS, GDAS, RSPS, one-shot proxy.

A supernet (:mod:`.supernet`) is trained for real on a table's own data set
and skeleton; each method (:mod:`.darts`, :mod:`.gdas`, :mod:`.rsps`) derives
an architecture, which the harness looks up in the table
(:func:`.search.run_oneshot`, returning a
:class:`~nasbench_harness.simulator.Trace` whose clock is real wall-clock
seconds). :mod:`.proxy` stores each distinct arch's inherited-weight validation
accuracy in the table as proxy ``oneshot``. See ``docs/oneshot.md``.
"""

from nasbench_harness.oneshot._common import CLOCK, OneShotMethod, SearchRun, evaluate_path
from nasbench_harness.oneshot.darts import DARTS
from nasbench_harness.oneshot.gdas import GDAS, gumbel_one_hot
from nasbench_harness.oneshot.rsps import RSPS
from nasbench_harness.oneshot.search import (
    METHODS,
    list_methods,
    make_method,
    oneshot_trace,
    run_oneshot,
    table_recipe,
)
from nasbench_harness.oneshot.supernet import (
    Supernet,
    arch_to_choice,
    build_supernet,
    choice_to_index,
    extract_network,
    onehot_weights,
)

__all__ = [
    "CLOCK",
    "DARTS",
    "GDAS",
    "METHODS",
    "RSPS",
    "OneShotMethod",
    "SearchRun",
    "Supernet",
    "arch_to_choice",
    "build_supernet",
    "choice_to_index",
    "evaluate_path",
    "extract_network",
    "gumbel_one_hot",
    "list_methods",
    "make_method",
    "oneshot_trace",
    "onehot_weights",
    "run_oneshot",
    "table_recipe",
]
