"""Open a v1 table into memory and answer queries from numpy arrays.

A :class:`Table` holds dense arrays plus an index: a query is index
arithmetic and one numpy read, a batch of queries is one fancy-index slice.
Isomorphic archs are looked up through ``/archs/canonical`` and answer with
their representative's row. Derived arrays (seed means, cumulative times)
are computed on first use over representatives only and then kept.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nasbench_harness.errors import ArchError, NasbenchError, QueryError, TableFormatError
from nasbench_harness.table import schema

#: File name of the shipped default table, looked up in :data:`DEFAULT_TABLE_DIR`.
DEFAULT_TABLE_NAME = "nb201-mnist1d.h5"
#: ``benchmark_data/`` of the repository (next to the ``nasbench_harness`` package).
DEFAULT_TABLE_DIR = Path(__file__).resolve().parents[2] / "benchmark_data"
#: Environment variable naming another default table file.
DEFAULT_TABLE_ENV = "NASBENCH_DEFAULT_TABLE"
#: Tables whose epoch metrics hold at most this many bytes are read whole at open;
#: larger ones read each metric on first use (so opening stays well under a second).
PRELOAD_BYTES = 64 << 20

_EPOCH, _ARCH, _PROXY = 1, 2, 3


def default_table_path() -> Path:
    """Path of the default table: ``$NASBENCH_DEFAULT_TABLE`` or the shipped one."""
    override = os.environ.get(DEFAULT_TABLE_ENV)
    if override:
        return Path(override).expanduser()
    return DEFAULT_TABLE_DIR / DEFAULT_TABLE_NAME


def open_table(path: str | os.PathLike | None = None, *, preload: bool | None = None) -> Table:
    """Open a table file into memory.

    Parameters
    ----------
    path
        A v1 table (HDF5). None opens the default table (see
        :func:`default_table_path`).
    preload
        True reads every epoch metric now; False reads each on first use;
        None (default) reads now if they hold at most :data:`PRELOAD_BYTES`.

    Returns
    -------
    Table

    Raises
    ------
    TableFormatError
        Missing, non-HDF5, truncated or incomplete file, or another format
        version; the one-line message names the file and what to do.
    """
    if path is None:
        path = default_table_path()
        if not path.is_file():
            raise TableFormatError(
                f"the default table {path} is not there: build it (see benchmark_data/README.md: "
                "`nasbench build` then `nasbench merge`), or set "
                f"{DEFAULT_TABLE_ENV}=/path/to/table.h5, or pass a table path"
            )
    return Table(path, preload=preload)


def check_header(f: h5py.File, path: Path) -> None:
    """Raise :class:`TableFormatError` unless ``f`` declares this format and version."""
    kind = _attr_str(f.attrs.get(schema.ATTR_TYPE))
    version = _attr_str(f.attrs.get(schema.ATTR_VERSION))
    if kind != schema.ENCODING_TYPE:
        found = "no encoding-type attribute" if kind is None else f"encoding-type {kind!r}"
        raise TableFormatError(
            f"{path}: not a nasbench table ({found}; expected {schema.ENCODING_TYPE!r}); "
            "tables are written by `nasbench merge` or nasbench_harness.table.write_table"
        )
    if version != schema.ENCODING_VERSION:
        raise TableFormatError(f"{path}: {_version_advice(version)}")


def _version_advice(version: str | None) -> str:
    reads = f"this nasbench-harness reads version {schema.ENCODING_VERSION}"
    if version is None:
        return f"the table has no encoding-version attribute; {reads}: rebuild the table"
    try:
        newer = int(version) > int(schema.ENCODING_VERSION)
    except ValueError:
        newer = False
    if newer:
        return (
            f"this table is format version {version}; {reads}: upgrade nasbench-harness "
            "(pip install -U nasbench-harness)"
        )
    return (
        f"this table is format version {version}; {reads}: use the nasbench-harness release "
        f"that wrote it, or convert it to version {schema.ENCODING_VERSION} by writing its "
        "arrays with nasbench_harness.table.write_table (docs/format.md, 'Versioning'), "
        "or rebuild it with `nasbench build` and `nasbench merge`"
    )


def _attr_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_str(value.reshape(()).item())
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _h5_open(path: Path) -> h5py.File:
    """Open ``path`` read-only, turning every failure into a one-line TableFormatError."""
    if path.is_dir():
        raise TableFormatError(f"{path} is a directory, not a table file")
    if not path.exists():
        raise TableFormatError(f"{path}: no such table file; check the path")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = _first_line(exc)
        try:
            signature = h5py.is_hdf5(path)
        except OSError:
            signature = False
        if not signature:
            raise TableFormatError(
                f"{path}: not an HDF5 file (no HDF5 signature; empty, another format, or "
                "truncated before its header); a table is written by `nasbench merge`"
            ) from None
        if "truncated" in reason:
            raise TableFormatError(
                f"{path}: truncated HDF5 file ({reason}); the copy is incomplete: "
                "fetch or rebuild it"
            ) from None
        raise TableFormatError(f"{path}: unreadable HDF5 file ({reason})") from None


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Table:
    """A v1 table held in memory.

    Use :func:`open_table` to get one. Arrays are read-only; queries never
    copy the table. Metric names: the per-epoch metrics
    (``{train,valid,test}_{acc,loss}``, ``train_time_s``, maybe
    ``eval_time_s``), the arch metrics (``params``, ``flops``,
    ``latency_ms``: epoch and seed are ignored) and ``proxy/<name>`` for
    stored proxies (epoch is ignored; seed picks a proxy seed).
    """

    def __init__(self, path: str | os.PathLike, *, preload: bool | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._epoch_data: dict[str, np.ndarray] = {}
        self._means: dict[str, np.ndarray] = {}
        self._cum: np.ndarray | None = None
        self._cost_mean: np.ndarray | None = None
        self._checksum: str | None = None
        self._noise: dict[tuple[str, int], dict] = {}
        with _h5_open(self.path) as f:
            self._identity = _file_identity(self.path)
            self._read_index(f)
            if preload is None:
                preload = self._epoch_bytes() <= PRELOAD_BYTES
            if preload:
                for name in self.epoch_metric_names:
                    self._epoch_data[name] = self._read_epoch(f, name)

    # -- opening -------------------------------------------------------------

    def _read_index(self, f: h5py.File) -> None:
        path = self.path
        check_header(f, path)
        try:
            prov = json.loads(_attr_str(f.attrs.get(schema.ATTR_PROVENANCE)) or "")
        except ValueError as exc:
            raise TableFormatError(
                f"{path}: the provenance attribute is missing or not JSON ({exc})"
            ) from None
        if not isinstance(prov, dict) or "space" not in prov:
            raise TableFormatError(f"{path}: provenance has no 'space'; the file is incomplete")
        self.provenance: dict[str, Any] = prov
        try:
            from nasbench_harness.space import get_space

            self.space = get_space(prov["space"])
        except NasbenchError as exc:
            raise TableFormatError(f"{path}: {exc}") from None

        required = ["archs/string", "archs/canonical", "seeds", "epochs"]
        required += [f"metrics/{m}" for m in schema.EPOCH_METRICS_MUST]
        required += [f"arch_metrics/{m}" for m in schema.ARCH_METRICS]
        for name in required:
            if not isinstance(f.get(name), h5py.Dataset):
                raise TableFormatError(
                    f"{path}: missing dataset /{name} (required by table format v1); the file "
                    "is incomplete: run `nasbench table validate` for details"
                )
        n = int(self.space.n_archs)
        seeds = self._small(f, "seeds", np.int64, 1)
        epochs = self._small(f, "epochs", np.int32, 1)
        if seeds.size == 0 or len(np.unique(seeds)) != seeds.size:
            raise TableFormatError(f"{path}: /seeds must be distinct and non-empty")
        if epochs.size == 0 or not np.array_equal(epochs, np.arange(1, epochs.size + 1)):
            raise TableFormatError(f"{path}: /epochs must be 1..E")
        canon = self._small(f, "archs/canonical", np.int64, 1)
        if canon.shape != (n,):
            raise TableFormatError(
                f"{path}: /archs/canonical has shape {canon.shape}; "
                f"space {self.space.name} has {n} archs"
            )
        if canon.min() < 0 or canon.max() >= n or np.any(canon[canon] != canon):
            raise TableFormatError(
                f"{path}: /archs/canonical is not a representative map (ids in 0..{n - 1}, "
                "each representative pointing to itself)"
            )
        if f["archs/string"].shape != (n,):
            raise TableFormatError(f"{path}: /archs/string must have shape ({n},)")
        self.seeds = seeds
        self.epochs = epochs
        self.canonical = canon
        self.n_archs = n
        self.n_seeds = int(seeds.size)
        self.n_epochs = int(epochs.size)
        self._last = self.n_epochs - 1
        self._shape = (n, self.n_seeds, self.n_epochs)

        self.epoch_metric_names = tuple(
            m for m in schema.EPOCH_METRICS if isinstance(f.get(f"metrics/{m}"), h5py.Dataset)
        )
        for name in self.epoch_metric_names:
            ds = f[f"metrics/{name}"]
            if ds.shape != self._shape or ds.dtype.kind != "f":
                raise TableFormatError(
                    f"{path}: /metrics/{name} is {ds.dtype} {ds.shape}; expected float32 "
                    f"{self._shape} (archs, seeds, epochs)"
                )
        self.arch_metric_names = schema.ARCH_METRICS
        self._arch_data = {}
        for name in schema.ARCH_METRICS:
            arr = self._small(f, f"arch_metrics/{name}", np.float64, 1)
            if arr.shape != (n,):
                raise TableFormatError(f"{path}: /arch_metrics/{name} must have shape ({n},)")
            self._arch_data[name] = arr
        self._proxy_data: dict[str, np.ndarray] = {}
        self._proxy_seeds: dict[str, dict[int, int]] = {}
        self.proxy_attrs: dict[str, dict[str, Any]] = {}
        group = f.get("proxies")
        for name in sorted(group) if isinstance(group, h5py.Group) else ():
            arr = self._small(f, f"proxies/{name}", np.float64, 2)
            attrs = {k: _decode_attr(v) for k, v in group[name].attrs.items()}
            proxy_seeds = attrs.get("seeds")
            if arr.shape[0] != n or not (
                isinstance(proxy_seeds, list) and len(proxy_seeds) == arr.shape[1]
            ):
                raise TableFormatError(
                    f"{path}: /proxies/{name} must be ({n}, K) with a 'seeds' attribute of K ints"
                )
            self._proxy_data[name] = arr
            self._proxy_seeds[name] = {int(s): k for k, s in enumerate(proxy_seeds)}
            self.proxy_attrs[name] = attrs
        self.proxy_names = tuple(self._proxy_data)

        # index: full rows for per-seed reads, compact rows into representative-only caches
        reps, compact = np.unique(canon, return_inverse=True)
        self._reps = reps
        self._compact = compact.astype(np.int64).reshape(-1)
        self._canon_list = canon.tolist()
        self._compact_list = self._compact.tolist()
        self._seed_pos = {int(s): k for k, s in enumerate(seeds.tolist())}
        self.n_unique = int(reps.size)
        kinds = {m: _EPOCH for m in self.epoch_metric_names}
        kinds.update({m: _ARCH for m in self.arch_metric_names})
        kinds.update({schema.PROXY_PREFIX + p: _PROXY for p in self.proxy_names})
        self._kind = kinds
        self.metric_names = tuple(kinds)
        for arr in (seeds, epochs, canon, reps, self._compact, *self._arch_data.values()):
            arr.flags.writeable = False
        for arr in self._proxy_data.values():
            arr.flags.writeable = False

    def _small(self, f: h5py.File, name: str, dtype: type, ndim: int) -> np.ndarray:
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset) or ds.ndim != ndim or ds.dtype.kind not in "iuf":
            raise TableFormatError(
                f"{self.path}: /{name} must be a {ndim}-D numeric dataset; the file is damaged "
                "or not a v1 table"
            )
        try:
            return np.asarray(ds[()], dtype=dtype)
        except OSError as exc:
            raise TableFormatError(
                f"{self.path}: cannot read /{name} ({_first_line(exc)}); the file is damaged"
            ) from None

    def _epoch_bytes(self) -> int:
        return 4 * math.prod(self._shape) * len(self.epoch_metric_names)

    def _read_epoch(self, f: h5py.File, name: str) -> np.ndarray:
        out = np.empty(self._shape, dtype=np.float32)
        try:
            f[f"metrics/{name}"].read_direct(out)
        except OSError as exc:
            raise TableFormatError(
                f"{self.path}: cannot read /metrics/{name} ({_first_line(exc)}); "
                "the file is damaged: validate it and rebuild or fetch it again"
            ) from None
        out.flags.writeable = False
        return out

    def _epoch_array(self, name: str) -> np.ndarray:
        arr = self._epoch_data.get(name)
        if arr is not None:
            return arr
        with self._lock:
            arr = self._epoch_data.get(name)
            if arr is None:
                self._check_unchanged()
                with _h5_open(self.path) as f:
                    arr = self._read_epoch(f, name)
                self._epoch_data[name] = arr
        return arr

    def _check_unchanged(self) -> None:
        try:
            same = _file_identity(self.path) == self._identity
        except OSError:
            same = False
        if not same:
            raise TableFormatError(
                f"{self.path} changed on disk after it was opened; open it again "
                "(or open with preload=True to read everything at once)"
            )

    def load(self) -> Table:
        """Read every epoch metric into memory now (e.g. before forking workers)."""
        for name in self.epoch_metric_names:
            self._epoch_array(name)
        return self

    # -- properties ----------------------------------------------------------

    @property
    def n_classes(self) -> int:
        """Number of classes of the table's dataset (from the provenance)."""
        return int(self.provenance["dataset"]["n_classes"])

    @property
    def checksum(self) -> str:
        """SHA-256 (hex) of the table file, computed once."""
        if self._checksum is None:
            with self._lock:
                self._check_unchanged()
                digest = hashlib.sha256()
                with open(self.path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                self._check_unchanged()
                self._checksum = digest.hexdigest()
        return self._checksum

    def nbytes(self) -> int:
        """Bytes of the arrays held now (table data plus derived caches)."""
        arrays = [*self._epoch_data.values(), *self._means.values()]
        arrays += [*self._arch_data.values(), *self._proxy_data.values()]
        arrays += [a for a in (self._cum, self._cost_mean) if a is not None]
        return sum(a.nbytes for a in arrays) + self.canonical.nbytes + self._compact.nbytes

    def __repr__(self) -> str:
        return (
            f"Table({str(self.path)!r}, space={self.space.name!r}, archs={self.n_archs}, "
            f"seeds={self.seeds.tolist()}, epochs={self.n_epochs})"
        )

    def __getstate__(self) -> dict[str, Any]:
        self.load()
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- argument checks -----------------------------------------------------

    def _arch_index(self, arch: Any) -> int:
        return self.space.index(arch)  # raises ArchError naming the arch

    def _arch_indices(self, archs: Any) -> np.ndarray:
        if isinstance(archs, (str, bytes, int, np.integer)) or (
            isinstance(archs, tuple) and archs and all(isinstance(a, str) for a in archs)
        ):
            raise ArchError(
                f"query_many takes a sequence of archs, got one arch {archs!r}; use query()"
            )
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
            idx = archs
        else:
            items = archs if isinstance(archs, np.ndarray) else list(archs)
            if len(items) == 0:
                return np.zeros(0, dtype=np.int64)
            if isinstance(items[0], str):  # strings: one dict lookup each
                found = list(map(self._string_lookup().get, items))
                if None not in found:
                    return np.array(found, dtype=np.int64)
                idx = None
            else:
                idx = np.asarray(items)
            if idx is None or idx.dtype.kind not in "iu" or idx.ndim != 1:
                return np.fromiter(
                    (self.space.index(a) for a in items), dtype=np.int64, count=len(items)
                )
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_archs):
            bad = idx[(idx < 0) | (idx >= self.n_archs)].flat[0]
            self.space.index(int(bad))  # raises ArchError
            raise ArchError(f"arch index {int(bad)} is out of range 0..{self.n_archs - 1}")
        return idx.astype(np.int64, copy=False)

    def _string_lookup(self) -> dict[str, int]:
        lookup = self.__dict__.get("_strings")
        if lookup is None:
            lookup = {self.space.to_string(i): i for i in range(self.n_archs)}
            self._strings = lookup
        return lookup

    def _epoch_position(self, epoch: Any) -> int:
        if isinstance(epoch, (int, np.integer)) and not isinstance(epoch, (bool, np.bool_)):
            if 1 <= epoch <= self.n_epochs:
                return int(epoch) - 1
        raise QueryError(
            f"epoch {epoch!r} is not in this table: epochs run from 1 to {self.n_epochs}; "
            "leave the epoch out (None; no --epoch) for the last"
        )

    def _epoch_positions(self, epoch: Any) -> Any:
        if epoch is None:
            return self._last
        if np.ndim(epoch) == 0:
            return self._epoch_position(epoch.item() if isinstance(epoch, np.ndarray) else epoch)
        ep = np.asarray(epoch)
        if ep.dtype.kind not in "iu":
            raise QueryError(f"epochs must be integers 1..{self.n_epochs}, got dtype {ep.dtype}")
        bad = (ep < 1) | (ep > self.n_epochs)
        if bad.any():
            self._epoch_position(int(ep[bad].flat[0]))
        return ep.astype(np.int64) - 1

    def _seed_position(self, seed: Any, available: Mapping[int, int] | None = None) -> int:
        available = self._seed_pos if available is None else available
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            position = available.get(int(seed))
            if position is not None:
                return position
        raise QueryError(
            f"seed {seed!r} is not in this table; its seeds are "
            f"{', '.join(map(str, available))} (None = mean over seeds)"
        )

    def _seed_positions(self, seed: Any, available: Mapping[int, int] | None = None) -> Any:
        if np.ndim(seed) == 0:
            return self._seed_position(
                seed.item() if isinstance(seed, np.ndarray) else seed, available
            )
        available = self._seed_pos if available is None else available
        values = np.asarray(seed)
        if values.dtype.kind not in "iu":
            raise QueryError(f"seeds must be integers, got dtype {values.dtype}")
        known = np.fromiter(available, dtype=np.int64)
        order = np.argsort(known)
        found = np.searchsorted(known, values, sorter=order).clip(0, known.size - 1)
        positions = order[found]
        missing = known[positions] != values
        if missing.any():
            self._seed_position(int(values[missing].flat[0]), available)
        return np.fromiter(available.values(), dtype=np.int64)[positions]

    def _unknown_metric(self, metric: Any) -> QueryError:
        return QueryError(
            f"unknown metric {metric!r} in table {self.path.name}; available: "
            f"{', '.join(self.metric_names)}"
        )

    # -- derived caches ------------------------------------------------------

    def _seed_mean(self, metric: str) -> np.ndarray:
        mean = self._means.get(metric)
        if mean is None:
            with self._lock:
                mean = self._means.get(metric)
                if mean is None:
                    mean = _nanmean(self._epoch_array(metric)[self._reps], axis=1)
                    mean.flags.writeable = False
                    self._means[metric] = mean
        return mean

    def _proxy_mean(self, name: str) -> np.ndarray:
        key = schema.PROXY_PREFIX + name
        mean = self._means.get(key)
        if mean is None:
            mean = _nanmean(self._proxy_data[name][self._reps], axis=1)
            mean.flags.writeable = False
            self._means[key] = mean
        return mean

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cost_mean is None:
            with self._lock:
                if self._cost_mean is None:
                    times = self._epoch_array("train_time_s")[self._reps]
                    cum = np.cumsum(times, axis=2, dtype=np.float64)  # NaN stays NaN onwards
                    mean = _nanmean(cum, axis=1)
                    cum.flags.writeable = False
                    mean.flags.writeable = False
                    self._cum, self._cost_mean = cum, mean
        return self._cum, self._cost_mean

    # -- queries -------------------------------------------------------------

    def query(
        self,
        arch: Any,
        metric: str = "valid_acc",
        epoch: int | None = None,
        seed: int | None = None,
    ) -> float:
        """One metric of one arch.

        Parameters
        ----------
        arch
            Index, NB201 string or tuple of op names.
        metric
            See :attr:`metric_names`.
        epoch
            1-based epoch; None = the last.
        seed
            A training seed of the table; None = mean over the seeds that
            have a value (NaN if none has).

        Returns
        -------
        float
            NaN where the table has no value.
        """
        i = arch if (type(arch) is int and 0 <= arch < self.n_archs) else self.space.index(arch)
        kind = self._kind.get(metric)
        if kind == _EPOCH:
            if epoch is None:
                e = self._last
            elif type(epoch) is int and 0 < epoch <= self.n_epochs:
                e = epoch - 1
            else:
                e = self._epoch_position(epoch)
            if seed is None:
                mean = self._means.get(metric)
                if mean is None:
                    mean = self._seed_mean(metric)
                return float(mean[self._compact_list[i], e])
            s = self._seed_pos.get(seed) if type(seed) is int else None
            if s is None:
                s = self._seed_position(seed)
            data = self._epoch_data.get(metric)
            if data is None:
                data = self._epoch_array(metric)
            return float(data[self._canon_list[i], s, e])
        if kind == _ARCH:
            return float(self._arch_data[metric][self._canon_list[i]])
        if kind == _PROXY:
            name = metric[len(schema.PROXY_PREFIX) :]
            if seed is None:
                return float(self._proxy_mean(name)[self._compact_list[i]])
            k = self._seed_position(seed, self._proxy_seeds[name])
            return float(self._proxy_data[name][self._canon_list[i], k])
        raise self._unknown_metric(metric)

    def query_many(
        self, archs: Any, metric: str = "valid_acc", epoch: Any = None, seed: Any = None
    ) -> np.ndarray:
        """:meth:`query` for many archs at once, as one vectorised read.

        ``archs`` is a sequence or integer array of archs; ``epoch`` and
        ``seed`` are scalars or arrays broadcastable against ``archs``.
        Returns a float64 array shaped like ``archs``.
        """
        idx = self._arch_indices(archs)
        kind = self._kind.get(metric)
        try:
            if kind == _EPOCH:
                e = self._epoch_positions(epoch)
                if seed is None:
                    out = self._seed_mean(metric)[self._compact[idx], e]
                else:
                    s = self._seed_positions(seed)
                    out = self._epoch_array(metric)[self.canonical[idx], s, e]
            elif kind == _ARCH:
                out = self._arch_data[metric][self.canonical[idx]]
            elif kind == _PROXY:
                name = metric[len(schema.PROXY_PREFIX) :]
                if seed is None:
                    out = self._proxy_mean(name)[self._compact[idx]]
                else:
                    s = self._seed_positions(seed, self._proxy_seeds[name])
                    out = self._proxy_data[name][self.canonical[idx], s]
            else:
                raise self._unknown_metric(metric)
        except IndexError as exc:  # arrays of epochs/seeds that do not broadcast
            raise QueryError(
                f"epoch/seed arrays must broadcast against {idx.shape[0]} archs: {exc}"
            ) from None
        return out.astype(np.float64, copy=False)

    def cost(self, arch: Any, epoch: int | None = None, seed: int | None = None) -> float:
        """Simulated seconds to train ``arch`` from scratch to ``epoch`` (None = last).

        The sum of ``train_time_s`` over epochs 1..epoch of one seed; with
        ``seed=None`` the mean of that sum over the seeds that have it. NaN
        if an epoch's time is missing.
        """
        i = arch if (type(arch) is int and 0 <= arch < self.n_archs) else self.space.index(arch)
        if epoch is None:
            e = self._last
        elif type(epoch) is int and 0 < epoch <= self.n_epochs:
            e = epoch - 1
        else:
            e = self._epoch_position(epoch)
        cum, mean = self._cost_mean_pair()
        if seed is None:
            return float(mean[self._compact_list[i], e])
        s = self._seed_pos.get(seed) if type(seed) is int else None
        if s is None:
            s = self._seed_position(seed)
        return float(cum[self._compact_list[i], s, e])

    def cost_many(self, archs: Any, epoch: Any = None, seed: Any = None) -> np.ndarray:
        """:meth:`cost` for many archs at once (float64 array shaped like ``archs``)."""
        idx = self._arch_indices(archs)
        e = self._epoch_positions(epoch)
        cum, mean = self._cost_mean_pair()
        rows = self._compact[idx]
        try:
            if seed is None:
                return mean[rows, e]
            return cum[rows, self._seed_positions(seed), e]
        except IndexError as exc:
            raise QueryError(
                f"epoch/seed arrays must broadcast against {idx.shape[0]} archs: {exc}"
            ) from None

    def _cost_mean_pair(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cost_mean is None:
            return self._cumulative()
        return self._cum, self._cost_mean

    def array(self, metric: str) -> np.ndarray:
        """The stored array of ``metric`` (read-only, no copy).

        ``(n_archs, n_seeds, n_epochs)`` for epoch metrics, ``(n_archs,)``
        for arch metrics, ``(n_archs, K)`` for ``proxy/<name>``.
        """
        kind = self._kind.get(metric)
        if kind == _EPOCH:
            return self._epoch_array(metric)
        if kind == _ARCH:
            return self._arch_data[metric]
        if kind == _PROXY:
            return self._proxy_data[metric[len(schema.PROXY_PREFIX) :]]
        raise self._unknown_metric(metric)

    # -- analysis ------------------------------------------------------------

    def frame(self):
        """A pandas DataFrame with one row per (arch, seed).

        Columns: ``arch`` (index), ``arch_str``, ``canonical``, ``seed``, every
        epoch metric at the last epoch, ``train_time_total_s`` (training time
        over all epochs), ``params``, ``flops``, ``latency_ms`` and the
        seed-mean of each proxy as ``proxy/<name>``. Values are looked up
        through the canonical id, like :meth:`query`.
        """
        import pandas as pd

        n, s = self.n_archs, self.n_seeds
        canon = self.canonical
        strings = [self.space.to_string(i) for i in range(n)]
        columns: dict[str, Any] = {
            "arch": np.repeat(np.arange(n, dtype=np.int64), s),
            "arch_str": np.repeat(np.asarray(strings, dtype=object), s),
            "canonical": np.repeat(canon, s),
            "seed": np.tile(self.seeds, n),
        }
        for name in self.epoch_metric_names:
            columns[name] = self._epoch_array(name)[:, :, -1][canon].reshape(-1)
        cum, _ = self._cost_mean_pair()
        columns["train_time_total_s"] = cum[:, :, -1][self._compact].reshape(-1)
        for name in self.arch_metric_names:
            columns[name] = np.repeat(self._arch_data[name][canon], s)
        for name in self.proxy_names:
            columns[schema.PROXY_PREFIX + name] = np.repeat(
                self._proxy_mean(name)[self._compact], s
            )
        df = pd.DataFrame(columns)
        df.attrs["epoch"] = self.n_epochs
        df.attrs["path"] = str(self.path)
        return df

    def noise_ceiling(self, metric: str = "valid_acc", epoch: int | None = None) -> dict:
        """Rank agreement of ``metric`` between training seeds: how far one seed predicts another.

        A reference line for proxies, not a hard bound: a proxy is correlated
        with the seed mean, which is more reliable than one seed.

        Kendall's tau-b and Spearman's rho (``scipy.stats``) between every
        pair of seeds over the distinct (representative) archs: over the
        connected ones (whose output depends on the input), over all, and, for
        accuracies, over those that train above chance (``above_chance``:
        both seeds' values of the pair above the line of
        :meth:`_chance_threshold`; ``n_above_chance`` counts the archs above
        it at every seed they have). Archs with NaN in either seed are left
        out of that pair (counted in ``n_excluded``).

        Returns
        -------
        dict
            ``metric``, ``epoch``, ``n_unique``, ``n_connected``, ``pairs``
            (one entry per seed pair with ``seeds`` and ``connected``/``all``
            results ``{kendall_tau, spearman_rho, n, n_excluded}``) and
            ``mean`` (per subset, mean over pairs; NaN with fewer than two
            seeds).
        """
        if self._kind.get(metric) != _EPOCH:
            raise QueryError(
                f"noise_ceiling needs an epoch metric; available: {', '.join(self.epoch_metric_names)}"
            )
        e = self._epoch_positions(epoch)
        key = (metric, e)
        if key not in self._noise:
            self._noise[key] = self._noise_ceiling(metric, e)
        return json.loads(json.dumps(self._noise[key]))  # a fresh copy each call

    def _noise_ceiling(self, metric: str, e: int) -> dict:
        from scipy import stats

        values = self._epoch_array(metric)[self._reps, :, e]
        connected = np.asarray(self.space.connected)[self._reps]
        subsets = {"connected": connected, "all": np.ones(self._reps.size, dtype=bool)}
        chance = self._chance_threshold(metric)
        with np.errstate(invalid="ignore"):
            above = None if chance is None else values > chance["threshold"]  # NaN: False
        if above is not None:
            # per pair below: above chance in both of the pair's seeds (another seed's
            # gap must not drop an arch from this pair)
            subsets["above_chance"] = np.ones(self._reps.size, dtype=bool)
        pairs = []
        for a, b in itertools.combinations(range(self.n_seeds), 2):
            entry: dict[str, Any] = {"seeds": [int(self.seeds[a]), int(self.seeds[b])]}
            for label, mask in subsets.items():
                x, y = values[mask, a], values[mask, b]
                finite = np.isfinite(x) & np.isfinite(y)
                ok = finite & above[:, a] & above[:, b] if label == "above_chance" else finite
                tau = rho = math.nan
                if ok.sum() >= 2:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # constant input -> NaN
                        tau = float(stats.kendalltau(x[ok], y[ok], variant="b").statistic)
                        rho = float(stats.spearmanr(x[ok], y[ok]).statistic)
                entry[label] = {
                    "kendall_tau": tau,
                    "spearman_rho": rho,
                    "n": int(ok.sum()),
                    "n_excluded": int((~finite).sum()),  # left out for a NaN seed
                }
            pairs.append(entry)
        mean = {}
        for label in subsets:
            mean[label] = {
                stat: _mean_finite([p[label][stat] for p in pairs])
                for stat in ("kendall_tau", "spearman_rho")
            }
        out = {
            "metric": metric,
            "epoch": int(e) + 1,
            "n_unique": int(self._reps.size),
            "n_connected": int(connected.sum()),
            "pairs": pairs,
            "mean": mean,
        }
        if chance is not None:
            out["chance"] = chance
            # above chance at every seed it has a value for (and at least one)
            finite = np.isfinite(values)
            out["n_above_chance"] = int(((above | ~finite).all(axis=1) & finite.any(axis=1)).sum())
        return out

    def _chance_threshold(self, metric: str) -> dict | None:
        """Chance accuracy of the table's data set and the line above which an arch
        counts as trained (accuracy metrics only; None without a class count).

        Chance is ``100 / n_classes`` percent; the line is chance plus three
        binomial standard errors of a chance-level classifier on the split
        (``100 * sqrt(p (1 - p) / n)``, ``n`` the split size from the
        provenance's ``dataset.splits`` or ``dataset.split_sizes``, 1,000
        where it gives no number).
        """
        if metric not in schema.ACC_METRICS:
            return None
        try:
            p = 1.0 / self.n_classes
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

        def size(value: Any) -> int | None:
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return value if ok else None

        dataset = self.provenance.get("dataset", {})
        split = metric.split("_")[0]
        n = None
        for key in ("splits", "split_sizes"):  # sizes, or descriptions with sizes beside
            sizes = dataset.get(key) if isinstance(dataset, dict) else None
            n = n or (size(sizes.get(split)) if isinstance(sizes, dict) else None)
        n = n or 1000
        threshold = 100.0 * (p + 3.0 * math.sqrt(p * (1.0 - p) / n))
        return {"accuracy": 100.0 * p, "threshold": threshold, "split_size": n}

    def info(self) -> dict[str, Any]:
        """Summary for ``nasbench table info --json``."""
        shapes = {f"metrics/{m}": list(self._shape) for m in self.epoch_metric_names}
        shapes.update({f"arch_metrics/{m}": [self.n_archs] for m in self.arch_metric_names})
        shapes.update({f"proxies/{p}": list(a.shape) for p, a in self._proxy_data.items()})
        return {
            "path": str(self.path),
            "size_bytes": self._identity[2],
            "checksum": self.checksum,
            "encoding_type": schema.ENCODING_TYPE,
            "encoding_version": schema.ENCODING_VERSION,
            "space": self.space.name,
            "n_archs": self.n_archs,
            "n_unique": self.n_unique,
            "seeds": self.seeds.tolist(),
            "n_epochs": self.n_epochs,
            "epochs": [int(e) for e in self.epochs],  # the table's /epochs, 1..E
            "shapes": shapes,
            "metrics": list(self.epoch_metric_names),
            "arch_metrics": list(self.arch_metric_names),
            "proxies": {p: dict(a) for p, a in self.proxy_attrs.items()},
            "provenance": self.provenance,
            "noise_ceiling": self.noise_ceiling(),
        }


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the non-NaN values, in float64 (NaN where none)."""
    present = ~np.isnan(values)
    total = np.where(present, values, 0).sum(axis=axis, dtype=np.float64)
    count = present.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


#: Decimals (of a percentage point) that seed-mean accuracies are rounded to.
ACCURACY_DECIMALS = 4


def seed_mean_accuracy(values: np.ndarray, axis: int = 1) -> np.ndarray:
    """Seed-mean of accuracies in percent (NaNs left out), rounded so that equal means tie.

    Tables store accuracies as float32. Two archs whose seeds' accuracies have
    the same mean in exact arithmetic (97.0 and 97.1 against 97.05 twice) get
    means that differ in the last bits, and the rank statistics that treat
    ties specially (Kendall's tau-b, the top-10% cut-off) would see two
    values. Float32 error is below 1e-5 points for accuracies up to 100,
    while distinct means over a test set of N examples and S seeds differ by
    at least 100 / (N S) points (1e-3 up to N S = 100,000), so rounding to
    :data:`ACCURACY_DECIMALS` decimals merges exactly the equal ones.
    """
    return np.round(_nanmean(np.asarray(values), axis=axis), ACCURACY_DECIMALS)


def _mean_finite(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _decode_attr(value: Any) -> Any:
    value = _attr_str(value) if isinstance(value, (bytes, np.ndarray)) else value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
