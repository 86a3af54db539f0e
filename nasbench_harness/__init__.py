"""nasbench-harness: tabular NAS benchmarks, simulated search, proxies and reports."""

from __future__ import annotations

from nasbench_harness.errors import (
    ArchError,
    BudgetError,
    BuildError,
    NasbenchError,
    QueryError,
    TableFormatError,
)
from nasbench_harness.space import get_space
from nasbench_harness.table import Table, open_table

__version__ = "0.1.0"

__all__ = [
    "ArchError",
    "BudgetError",
    "BuildError",
    "NasbenchError",
    "QueryError",
    "Table",
    "TableFormatError",
    "__version__",
    "get_space",
    "open_table",
]
