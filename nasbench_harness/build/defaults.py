"""Default settings of ``nasbench build``: the recipe of the shipped default table.

One place for every default, so that the CLI, the Python API and the
benchmarks agree; change them here (and rebuild the shipped table) to tune it.
"""

from __future__ import annotations

#: Recipe of the shipped table: :class:`nasbench_harness.train.Recipe` fields (data set and
#: split included); fields not named here take the Recipe's defaults.
DEFAULT_RECIPE = {
    "dataset": "mnist1d",
    "train_size": 4000,
    "valid_size": 2000,
    "test_size": 2000,
    "split_seed": 0,
    "channels": 8,
    "cells_per_stage": 2,
    "reduction": "light",
    "epochs": 10,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
}

#: Training seeds of the shipped table.
DEFAULT_SEEDS = (0, 1)

#: Seed of the fixed shuffled arch order (``--limit K`` takes its first K archs).
DEFAULT_ORDER_SEED = 0

#: A build dispatches its last ``TAIL_PER_WORKER * workers`` tasks longest first (by
#: :func:`nasbench_harness.build.plan.expected_cost`), so that its workers finish together.
TAIL_PER_WORKER = 4

#: Rows a driver commits before compacting its row files into one part file.
ROWS_PER_PART = 64

#: Attempts per (arch, seed) before it is reported failed (a worker crash or an exception).
MAX_ATTEMPTS = 3
