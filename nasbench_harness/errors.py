"""Exceptions raised by the harness.

Every error a user can cause derives from :class:`NasbenchError`; its message
names the offending input and the fix, and the CLI prints it as one line.
"""

from __future__ import annotations


class NasbenchError(Exception):
    """Base class for errors caused by input (files, arguments, archs)."""


class ArchError(NasbenchError, ValueError):
    """An architecture that is not part of the search space."""


class TableFormatError(NasbenchError):
    """A table file that is missing, unreadable, of another version or inconsistent."""


class QueryError(NasbenchError, KeyError):
    """A query for a metric, epoch or seed the table does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BudgetError(NasbenchError):
    """A search asked for more after its simulated budget was spent."""


class BuildError(NasbenchError):
    """A build directory, shard or plan that cannot be used as asked."""
