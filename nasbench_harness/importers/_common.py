"""What the importers share: the result record, checksums, source description."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from nasbench_harness.errors import NasbenchError

#: Bytes read per step when checksumming a source file.
HASH_CHUNK = 1 << 22


class ImportFormatError(NasbenchError):
    """A source file that is not in the format the importer reads, or damaged."""


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What an import wrote.

    Attributes
    ----------
    table
        The table file written.
    space
        Search space of the table (``nb201`` or ``nb101``).
    n_imported
        Archs with at least one result in the source.
    seeds
        Seeds of the table's seed axis.
    epochs
        Number of epochs ``E`` of the table.
    holes
        Per epoch metric: NaN values among the imported archs (what the
        source does not have).
    source
        Source description as stored in the provenance (name, sha256, ...).
    wall_s
        Wall time of the import, seconds.
    """

    table: Path
    space: str
    n_imported: int
    seeds: tuple[int, ...]
    epochs: int
    holes: dict[str, int]
    source: dict
    wall_s: float


def check_output(output: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Refuse, before any source is read, an output that would lose something.

    Refused: a directory, a missing directory, the source file itself, an
    existing file that is not a table, and a table holding stored proxies (a
    fresh import has none). An existing table without proxies is replaced (a
    re-import).
    """
    from nasbench_harness.table.writer import existing_table

    out = Path(output)
    if out.is_file() and source is not None and Path(source).exists() and out.samefile(source):
        raise ImportFormatError(f"-o {out} is the source file itself; give another -o")
    old = existing_table(out, doing="the import", error=ImportFormatError)
    if old is not None and old.proxy_names:
        raise ImportFormatError(
            f"-o {out} holds stored proxies ({', '.join(old.proxy_names)}); the import would "
            "drop them: give another -o, or move the file away first"
        )
    return out


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(paths: list[Path], root: Path) -> str:
    """Hex SHA-256 over files (relative name and content hash of each, in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fsencode(path.relative_to(root).as_posix()) + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def count_holes(metrics: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, int]:
    """NaN values per metric among ``rows`` (the archs the source has)."""
    return {name: int(np.isnan(arr[rows]).sum()) for name, arr in metrics.items()}
