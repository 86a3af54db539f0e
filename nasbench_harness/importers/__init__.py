"""Importers of community benchmark files (NAS-Bench-201 / NATS-Bench, NAS-Bench-101).

See ``docs/import.md``. Each importer reads its source as a stream with
bounded memory and writes a table with :func:`~nasbench_harness.table.write_table`.
"""

from nasbench_harness.importers._common import ImportFormatError, ImportResult
from nasbench_harness.importers.nb101 import import_nb101
from nasbench_harness.importers.nb201 import import_nb201, read_nb201

__all__ = ["ImportFormatError", "ImportResult", "import_nb101", "import_nb201", "read_nb201"]
