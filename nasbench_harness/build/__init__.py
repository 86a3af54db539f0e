"""Build a table: plan, shards, resume, executors (local processes, Ray) and merge.

Data flow::

    BuildSettings --plan_tasks--> [Task(arch, seed)] --executor--> row files (atomic)
        --compaction--> part files --merge--> table.h5 (validated)

``nasbench build`` calls :func:`run_build`, ``nasbench merge`` calls :func:`merge`.
"""

from __future__ import annotations

from nasbench_harness.build.defaults import DEFAULT_RECIPE, DEFAULT_SEEDS
from nasbench_harness.build.fake import FakeTrainer, KillWorker
from nasbench_harness.build.merge import MergeResult, merge
from nasbench_harness.build.plan import (
    BuildSettings,
    Shard,
    Task,
    arch_order,
    make_settings,
    plan_tasks,
)
from nasbench_harness.build.runner import BuildResult, Failure, run_build
from nasbench_harness.build.store import Row, read_rows

__all__ = [
    "DEFAULT_RECIPE",
    "DEFAULT_SEEDS",
    "BuildResult",
    "BuildSettings",
    "Failure",
    "FakeTrainer",
    "KillWorker",
    "MergeResult",
    "Row",
    "Shard",
    "Task",
    "arch_order",
    "make_settings",
    "merge",
    "plan_tasks",
    "read_rows",
    "run_build",
]
