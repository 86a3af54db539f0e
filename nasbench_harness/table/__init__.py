"""The versioned HDF5 table format (v1): schema, writer, reader, validator.

See ``docs/format.md`` for the specification. The public surface:
:func:`write_table`, :func:`store_proxy`, :func:`open_table`, :class:`Table`,
:func:`validate_table` and :func:`make_synthetic_table`.
"""

from __future__ import annotations

from nasbench_harness.table.reader import (
    DEFAULT_TABLE_DIR,
    DEFAULT_TABLE_ENV,
    DEFAULT_TABLE_NAME,
    Table,
    default_table_path,
    open_table,
)
from nasbench_harness.table.schema import ENCODING_TYPE, ENCODING_VERSION
from nasbench_harness.table.synthetic import make_synthetic_table, synthetic_data
from nasbench_harness.table.validate import validate_table
from nasbench_harness.table.writer import store_proxy, write_table

__all__ = [
    "DEFAULT_TABLE_DIR",
    "DEFAULT_TABLE_ENV",
    "DEFAULT_TABLE_NAME",
    "ENCODING_TYPE",
    "ENCODING_VERSION",
    "Table",
    "default_table_path",
    "make_synthetic_table",
    "open_table",
    "store_proxy",
    "synthetic_data",
    "validate_table",
    "write_table",
]
