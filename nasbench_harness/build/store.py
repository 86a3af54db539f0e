"""Rows on disk: atomic row files, immutable part files, resume scans and de-duplication.

Every finished (arch, seed) becomes a row file ``OUT/rows/<arch>-<seed>.h5``,
written to a temporary name, flushed, fsynced and renamed, so that a row
either exists whole or not at all. The driver later compacts row files into
an immutable ``OUT/shards/part-<shard>-<uuid>.h5`` (again by rename) and then
deletes the row files. Row and part files share one columnar HDF5 layout
(a row file is a part of one row). A crash between the rename and the deletes
leaves a row twice; readers de-duplicate by (arch, seed) after checking that
the copies agree.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nasbench_harness.build.plan import (
    ROWS_DIR,
    SETTINGS_FILE,
    SHARDS_DIR,
    BuildSettings,
    Shard,
    Task,
    settings_differences,
)
from nasbench_harness.errors import BuildError
from nasbench_harness.table import schema

ENCODING_TYPE = "nasbench-build-rows"
ENCODING_VERSION = "1"

#: Per-epoch curves of a row: the table's epoch metrics.
CURVES = schema.EPOCH_METRICS
#: Curves that a seeded CPU training reproduces exactly (times are measurements).
DETERMINISTIC_CURVES = tuple(m for m in CURVES if m not in schema.TIME_METRICS)
#: Per-row scalars; params and flops are deterministic, latency is measured.
SCALARS = ("params", "flops", "latency_ms", "start_time", "end_time")
DETERMINISTIC_SCALARS = ("params", "flops")
#: Per-row strings and integers recording where and how the row was made.
STRINGS = ("device", "hostname", "torch_version", "code_version")
INTEGERS = ("pid",)


@dataclass(frozen=True)
class Row:
    """One finished (arch, seed): per-epoch curves, arch costs and where it was trained.

    ``arch`` is the canonical arch index; times are seconds (``start_time`` and
    ``end_time`` are Unix times of the training call).
    """

    arch: int
    seed: int
    curves: Mapping[str, np.ndarray]
    params: float
    flops: float
    latency_ms: float
    device: str
    hostname: str
    pid: int
    start_time: float
    end_time: float
    torch_version: str
    code_version: str

    @property
    def task(self) -> Task:
        return Task(self.arch, self.seed)

    @property
    def wall_time_s(self) -> float:
        return self.end_time - self.start_time

    def same_values(self, other: Row) -> bool:
        """True if the deterministic values (curves, params, flops) agree exactly."""
        return all(
            np.array_equal(self.curves[m], other.curves[m], equal_nan=True)
            for m in DETERMINISTIC_CURVES
        ) and all(
            np.array_equal(getattr(self, s), getattr(other, s), equal_nan=True)
            for s in DETERMINISTIC_SCALARS
        )


@dataclass(frozen=True)
class RowFile:
    """The content of one row or part file."""

    path: Path
    settings: BuildSettings
    dataset_info: Mapping[str, Any]
    rows: tuple[Row, ...]


def row_path(out: str | os.PathLike, task: Task) -> Path:
    return Path(out) / ROWS_DIR / f"{task.arch}-{task.seed}.h5"


def part_path(out: str | os.PathLike, shard: Shard | None) -> Path:
    tag = shard.tag if shard is not None else "all"
    return Path(out) / SHARDS_DIR / f"part-{tag}-{uuid.uuid4().hex[:12]}.h5"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_rows(
    path: str | os.PathLike,
    rows: Sequence[Row],
    settings: BuildSettings,
    dataset_info: Mapping[str, Any],
) -> Path:
    """Write rows atomically to ``path`` (tmp file, fsync, rename) and return it."""
    path = Path(path)
    if not rows:
        raise BuildError(f"{path}: no rows to write")
    tmp = _tmp_name(path)
    string = h5py.string_dtype()
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["encoding-type"] = ENCODING_TYPE
            f.attrs["encoding-version"] = ENCODING_VERSION
            f.attrs["settings"] = settings.to_json()
            f.attrs["fingerprint"] = settings.fingerprint
            f.attrs["dataset_info"] = json.dumps(dict(dataset_info), sort_keys=True)
            f["arch"] = np.array([r.arch for r in rows], dtype=np.int64)
            f["seed"] = np.array([r.seed for r in rows], dtype=np.int64)
            for name in CURVES:
                f[f"curves/{name}"] = np.stack(
                    [np.asarray(r.curves[name], dtype=np.float64) for r in rows]
                )
            for name in SCALARS:
                f[name] = np.array([getattr(r, name) for r in rows], dtype=np.float64)
            for name in INTEGERS:
                f[name] = np.array([getattr(r, name) for r in rows], dtype=np.int64)
            for name in STRINGS:
                f.create_dataset(name, data=[getattr(r, name) for r in rows], dtype=string)
            f.flush()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _corrupt(path: Path, reason: str) -> BuildError:
    what = "part" if path.parent.name == SHARDS_DIR else "row"
    return BuildError(
        f"{path}: corrupt or truncated build {what} file ({reason}); delete it and rerun the build "
        "with the same settings: its rows will be retrained"
    )


def read_rows(path: str | os.PathLike) -> RowFile:
    """Read a row or part file; anything unreadable is a :class:`BuildError` naming the file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("encoding-type")
            if kind == schema.ENCODING_TYPE:
                raise BuildError(
                    f"{path} is a merged nasbench table, not a build part or row file: give the "
                    "build directory (the --out of `nasbench build`) or its part files"
                )
            if kind != ENCODING_TYPE:
                raise _corrupt(path, "not a nasbench build row file")
            if f.attrs.get("encoding-version") != ENCODING_VERSION:
                raise BuildError(
                    f"{path}: build row file of version {f.attrs.get('encoding-version')!r}; "
                    f"this nasbench-harness reads version {ENCODING_VERSION}: merge it with the "
                    "release that wrote it"
                )
            try:
                settings = BuildSettings.from_dict(json.loads(f.attrs["settings"]))
            except BuildError as exc:  # readable, but settings this version cannot use
                raise BuildError(f"{path}: {exc}") from None
            dataset_info = json.loads(f.attrs["dataset_info"])
            arch = f["arch"][()]
            seed = f["seed"][()]
            curves = {name: f[f"curves/{name}"][()] for name in CURVES}
            columns: dict[str, Any] = {name: f[name][()] for name in SCALARS + INTEGERS}
            for name in STRINGS:
                columns[name] = [v.decode() for v in f[name][()]]
    except (BuildError, FileNotFoundError):  # gone: compacted by a concurrent job (see scan)
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    n = len(arch)
    epochs = settings.epochs
    if n == 0 or len(seed) != n or any(c.shape != (n, epochs) for c in curves.values()):
        raise _corrupt(path, f"inconsistent shapes for {n} rows of {epochs} epochs")
    if any(len(v) != n for v in columns.values()):
        raise _corrupt(path, f"inconsistent column lengths for {n} rows")
    rows = tuple(
        Row(
            arch=int(arch[i]),
            seed=int(seed[i]),
            curves={name: curves[name][i] for name in CURVES},
            params=float(columns["params"][i]),
            flops=float(columns["flops"][i]),
            latency_ms=float(columns["latency_ms"][i]),
            device=columns["device"][i],
            hostname=columns["hostname"][i],
            pid=int(columns["pid"][i]),
            start_time=float(columns["start_time"][i]),
            end_time=float(columns["end_time"][i]),
            torch_version=columns["torch_version"][i],
            code_version=columns["code_version"][i],
        )
        for i in range(n)
    )
    return RowFile(path, settings, dataset_info, rows)


def build_files(out: str | os.PathLike) -> list[Path]:
    """Part files then row files of a build directory (temporary files are not included)."""
    out = Path(out)
    return sorted((out / SHARDS_DIR).glob("part-*.h5")) + sorted((out / ROWS_DIR).glob("*.h5"))


def clean_tmp_files(out: str | os.PathLike, *, max_age_s: float = 86400.0) -> int:
    """Delete temporary files left by killed processes and return how many.

    A tmp file is named ``<final>.<host>.<pid>.tmp``; it is deleted when its
    process on this host is gone, or when it is older than ``max_age_s`` (a
    process on another host sharing the directory).
    """
    out = Path(out)
    host = socket.gethostname()
    removed = 0
    for directory in (out / ROWS_DIR, out / SHARDS_DIR, out):
        for tmp in directory.glob("*.tmp"):
            rest, _, pid_text = tmp.name[: -len(".tmp")].rpartition(".")
            try:
                pid = int(pid_text)
                age = time.time() - tmp.stat().st_mtime
            except (ValueError, OSError):
                continue
            if (rest.endswith(f".{host}") and not _pid_alive(pid)) or age > max_age_s:
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive, owned by someone else
        return True
    return True


#: The key of a row's ``dataset_info`` that names where the data was read
#: (a CIFAR folder): it differs between machines of one build, so it is left
#: out when rows' data sets are compared, and the merged table lists each.
LOCAL_DATA_KEY = "files"


def data_identity(info: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``dataset_info`` says the data is: all of it but the local folder."""
    return {k: v for k, v in dict(info).items() if k != LOCAL_DATA_KEY}


def same_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two rows' ``dataset_info`` describe the same data (the local folder aside)."""
    return data_identity(a) == data_identity(b)


@dataclass
class RowIndex:
    """Rows of one build, de-duplicated by (arch, seed), with the file each came from."""

    settings: BuildSettings | None = None
    dataset_info: Mapping[str, Any] | None = None
    rows: dict[Task, Row] = field(default_factory=dict)
    sources: dict[Task, Path] = field(default_factory=dict)
    n_duplicates: int = 0
    first_source: str = ""
    dataset_source: str = ""  # the file whose dataset_info came first

    def data_locations(self) -> list[str]:
        """Where the rows' data was read from (machine-local folders; empty if not recorded)."""
        text = (self.dataset_info or {}).get(LOCAL_DATA_KEY)
        return [] if text is None else str(text).split(" | ")

    def add_file(self, rowfile: RowFile) -> None:
        """Add a file's rows; other build settings or disagreeing duplicates are errors."""
        if self.settings is None:
            self.settings = rowfile.settings
            self.first_source = str(rowfile.path)
        if rowfile.settings.fingerprint != self.settings.fingerprint:
            changes = "; ".join(
                settings_differences(self.settings.to_dict(), rowfile.settings.to_dict())
            )
            raise BuildError(
                f"{rowfile.path} belongs to another build than {self.first_source} ({changes}); "
                "merge the files of one build only, or move this file out of the build directory"
            )
        if self.dataset_info is None:
            self.dataset_info = dict(rowfile.dataset_info)
            self.dataset_source = str(rowfile.path)
        elif same_data(rowfile.dataset_info, self.dataset_info):
            here = rowfile.dataset_info.get(LOCAL_DATA_KEY)
            locations = self.data_locations()
            new = [
                p for p in ([] if here is None else str(here).split(" | ")) if p not in locations
            ]
            if new:
                self.dataset_info = {
                    **self.dataset_info,
                    LOCAL_DATA_KEY: " | ".join([*locations, *new]),
                }
        else:
            raise BuildError(
                f"{rowfile.path}: data set {dict(rowfile.dataset_info)} differs from "
                f"{dict(self.dataset_info)} of {self.dataset_source} under the same settings "
                "(the data loader gave other splits on another machine or version); keep the "
                "rows of one of them (move the other files out of the build directory) and "
                "rerun the build to train the rest again"
            )
        for row in rowfile.rows:
            key = row.task
            if key in self.rows:
                if not self.rows[key].same_values(row):
                    raise BuildError(
                        f"arch {row.arch} seed {row.seed} is in both {self.sources[key]} and "
                        f"{rowfile.path} with different values (training is not reproducible "
                        "across these runs); delete one of the two files and rerun the build"
                    )
                self.n_duplicates += 1
                continue
            self.rows[key] = row
            self.sources[key] = rowfile.path

    def add_paths(self, paths: Iterable[str | os.PathLike]) -> None:
        for path in paths:
            self.add_file(read_rows(path))

    def add_directory(self, out: str | os.PathLike) -> None:
        """Add every part and row file of the build directory ``out``.

        Safe while other jobs of the build (shards, a running build) commit
        and compact in it: a compaction renames its part file into place
        before it deletes the row files it holds, and part files are never
        deleted. So row files are listed before part files, and when a listed
        row file is gone by the time it is read, the part files are listed
        again: the part holding its rows is among them.
        """
        out = Path(out)
        row_files = sorted((out / ROWS_DIR).glob("*.h5"))
        read = set()

        def add_new_parts() -> None:
            for part in sorted((out / SHARDS_DIR).glob("part-*.h5")):
                if part not in read:
                    read.add(part)
                    self.add_file(read_rows(part))

        add_new_parts()
        vanished = False
        for path in row_files:
            try:
                self.add_file(read_rows(path))
            except FileNotFoundError:
                vanished = True
        if vanished:
            add_new_parts()


def compact(
    out: str | os.PathLike,
    row_files: Sequence[Path],
    settings: BuildSettings,
    shard: Shard | None,
    done_in_parts: Iterable[Task] = (),
) -> Path | None:
    """Move row files into one new part file (atomic rename), then delete them.

    Row files whose task already sits in a part file (a crash between a part's
    rename and the deletes) are deleted without being copied again.
    Returns the new part's path, or None if nothing needed compacting.
    """
    index = RowIndex(settings=settings, first_source=str(Path(out) / SETTINGS_FILE))
    in_parts = set(done_in_parts)
    for path in row_files:
        index.add_file(read_rows(path))
    rows = sorted(
        (row for task, row in index.rows.items() if task not in in_parts),
        key=lambda r: (r.seed, r.arch),
    )
    part = None
    if rows:
        part = write_rows(part_path(out, shard), rows, settings, index.dataset_info or {})
    for path in row_files:
        path.unlink(missing_ok=True)
    _fsync_dir(Path(out) / ROWS_DIR)
    return part
