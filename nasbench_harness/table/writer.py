"""Write tables and store proxy scores, atomically.

Every write goes to a temporary file in the destination directory, is flushed
to disk (fsync) and then renamed over the destination (``os.replace``): a
crash, a full disk or a bad argument leaves any existing file untouched and
never a half-written table at the destination.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nasbench_harness.errors import NasbenchError, TableFormatError
from nasbench_harness.table import schema


def write_table(
    path: str | os.PathLike,
    *,
    space: Any,
    metrics: Mapping[str, Any],
    arch_metrics: Mapping[str, Any],
    seeds: Any,
    provenance: Mapping[str, Any],
    proxies: Mapping[str, tuple[Any, Mapping[str, Any]]] | None = None,
    canonical: Any = None,
) -> Path:
    """Write a complete v1 table to ``path`` (atomically).

    Parameters
    ----------
    path
        Destination file; an existing file is replaced only once the new one
        is completely written.
    space
        The search space (a space object or its name, e.g. ``"nb201"``).
    metrics
        Per-epoch metrics, name -> array ``(n_archs, n_seeds, n_epochs)``; all
        of :data:`~nasbench_harness.table.schema.EPOCH_METRICS_MUST`, and MAY
        ``eval_time_s``. NaN marks what is missing.
    arch_metrics
        ``params``, ``flops`` and ``latency_ms``, each an array ``(n_archs,)``.
    seeds
        Training seeds, one per position of the seed axis.
    provenance
        Build record (see ``docs/format.md``). ``space``, ``seeds``, ``epochs``
        and ``created`` are filled in when absent and checked when given.
    proxies
        Optional proxy scores, name -> ``(scores, attrs)`` as for
        :func:`store_proxy`.
    canonical
        Representative index of each arch; default: the space's exact
        isomorphism classes (``space.canonical_ids``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    A table stores one result per isomorphism class: the row of every arch
    is replaced by the row of its representative (``canonical[i]``), so
    only representatives' rows need data; the others may be NaN.
    """
    path = Path(path)
    space = _resolve_space(space)
    n_archs = int(space.n_archs)
    seeds_arr = _check_seeds(seeds)
    canon = _check_canonical(canonical, space)
    epoch_arrays = _check_epoch_metrics(metrics, n_archs, seeds_arr, canon)
    n_epochs = next(iter(epoch_arrays.values())).shape[2]
    arch_arrays = _check_arch_metrics(arch_metrics, n_archs, canon)
    prov = _complete_provenance(provenance, space, seeds_arr, n_epochs)
    proxy_items = {}
    for name, item in (proxies or {}).items():
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TableFormatError(
                f"proxies[{name!r}] must be a pair (scores, attrs), got {type(item).__name__}"
            )
        proxy_items[name] = _prepare_proxy(name, item[0], item[1], n_archs, canon)
    strings = [space.to_string(i) for i in range(n_archs)]

    def fill(f: h5py.File) -> None:
        f.attrs[schema.ATTR_TYPE] = schema.ENCODING_TYPE
        f.attrs[schema.ATTR_VERSION] = schema.ENCODING_VERSION
        f.attrs[schema.ATTR_PROVENANCE] = json.dumps(prov, allow_nan=False)
        width = max(len(s.encode("utf-8")) for s in strings)
        string_type = h5py.string_dtype("utf-8", width)
        f.create_dataset(
            "archs/string",
            data=np.array([s.encode("utf-8") for s in strings], dtype=string_type),
            compression="gzip",
            compression_opts=schema.GZIP_LEVEL,
        )
        _create(f, "archs/canonical", canon, chunks=(min(n_archs, 1 << 16),))
        f["archs/canonical"].attrs["description"] = (
            "representative index of each arch; every arch's rows equal its representative's"
        )
        f.create_dataset("seeds", data=seeds_arr)
        f.create_dataset("epochs", data=np.arange(1, n_epochs + 1, dtype=np.int32))
        chunks = schema.epoch_chunks(n_archs, len(seeds_arr), n_epochs)
        for name, arr in epoch_arrays.items():
            _create(f, f"metrics/{name}", arr, chunks=chunks, metric=name)
        for name, arr in arch_arrays.items():
            _create(f, f"arch_metrics/{name}", arr, chunks=(min(n_archs, 1 << 16),), metric=name)
        if proxy_items:
            group = f.create_group("proxies")
            for name, (scores, attrs) in proxy_items.items():
                _write_proxy(group, name, scores, attrs)

    return _atomic_write(path, fill)


def store_proxy(path: str | os.PathLike, name: str, scores: Any, attrs: Mapping[str, Any]) -> Path:
    """Add or replace the proxy ``name`` in the table at ``path`` (atomically).

    Parameters
    ----------
    path
        An existing v1 table.
    name
        Proxy name (letters, digits, ``_ . -``); read back as metric
        ``proxy/<name>``.
    scores
        Array ``(n_archs,)`` or ``(n_archs, K)``: one column per proxy seed.
        NaN marks a failed evaluation. Rows of non-representative archs are
        replaced by their representative's row.
    attrs
        ``definition`` (what was computed, with its reference) and ``seeds``
        (list of K ints) are required; ``n_failures`` (default: NaN scores
        among representatives) and ``created`` (default: now) are optional;
        further JSON-able entries are stored as they are.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The table is copied object by object (compressed chunks as they are)
    into a temporary file, the proxy is written there, and the copy replaces
    the original: an interrupted call leaves the original intact. Calls on
    tables of the same folder hold an advisory lock on that folder (POSIX
    ``flock``) from the read to the replace, so concurrent calls storing
    different proxies keep both.
    """
    path = Path(path)
    if not path.is_file():
        raise TableFormatError(f"{path}: no such table file; write the table before its proxies")
    # Read, copy and replace under one lock, so that two processes storing
    # different proxies in the same table cannot lose each other's update.
    with _directory_lock(path.parent):
        return _store_proxy_locked(path, name, scores, attrs)


def _store_proxy_locked(path: Path, name: str, scores: Any, attrs: Mapping[str, Any]) -> Path:
    from nasbench_harness.table.reader import check_header

    try:
        src = h5py.File(path, "r")
    except OSError as exc:
        raise TableFormatError(f"{path}: not a readable HDF5 table ({_first_line(exc)})") from exc
    with src:
        check_header(src, path)
        if "archs/canonical" not in src:
            raise TableFormatError(
                f"{path}: missing dataset /archs/canonical; not a complete table"
            )
        canon = np.asarray(src["archs/canonical"][()], dtype=np.int64)
        prepared = _prepare_proxy(name, scores, attrs, canon.shape[0], canon)

        def fill(dst: h5py.File) -> None:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                if key == "proxies":
                    continue
                src.copy(src[key], dst, name=key)
            group = dst.create_group("proxies")
            if "proxies" in src:
                for other in src["proxies"]:
                    if other != name:
                        src.copy(src["proxies"][other], group, name=other)
            _write_proxy(group, name, *prepared)

        return _atomic_write(path, fill)


# -- checks -------------------------------------------------------------------


def _resolve_space(space: Any) -> Any:
    if isinstance(space, str):
        from nasbench_harness.space import get_space

        return get_space(space)
    if not hasattr(space, "n_archs") or not hasattr(space, "to_string"):
        raise TableFormatError(
            f"space must be a search space or its name (e.g. 'nb201'), got {type(space).__name__}"
        )
    return space


def _check_seeds(seeds: Any) -> np.ndarray:
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise TableFormatError(
            f"seeds must be a non-empty 1-D list of integers, got {np.asarray(seeds).tolist()!r}"
        )
    if len(np.unique(arr)) != arr.size:
        raise TableFormatError(f"seeds must be distinct, got {arr.tolist()}")
    return arr.astype(np.int64)


def _check_canonical(canonical: Any, space: Any) -> np.ndarray:
    n_archs = int(space.n_archs)
    if canonical is None:
        canon = np.asarray(space.canonical_ids, dtype=np.int64)
    else:
        canon = np.asarray(canonical)
        if canon.shape != (n_archs,) or canon.dtype.kind not in "iu":
            raise TableFormatError(
                f"canonical must be an integer array of shape ({n_archs},), "
                f"got {canon.dtype} {canon.shape}"
            )
        canon = canon.astype(np.int64)
    if canon.size and (canon.min() < 0 or canon.max() >= n_archs):
        raise TableFormatError(f"canonical ids must lie in 0..{n_archs - 1}")
    bad = np.flatnonzero(canon[canon] != canon)
    if bad.size:
        i = int(bad[0])
        raise TableFormatError(
            f"canonical is not a representative map: arch {i} points to {int(canon[i])}, "
            f"which points to {int(canon[canon[i]])} ({bad.size} such archs); "
            "every representative must point to itself"
        )
    if canonical is not None:
        exact = np.asarray(space.canonical_ids)
        wrong = np.flatnonzero(exact[canon] != exact)
        if wrong.size:
            i = int(wrong[0])
            raise TableFormatError(
                f"canonical groups archs that are not isomorphic: arch {i} shares the row of "
                f"arch {int(canon[i])} ({wrong.size} such archs); group only archs with equal "
                "space.canonical_ids (or pass canonical=None)"
            )
    return canon


def _as_float(name: str, value: Any, dtype: type) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TableFormatError(
            f"{name} must hold real numbers (NaN for missing), got dtype {arr.dtype}"
        )
    return arr.astype(dtype, copy=False)


def _check_epoch_metrics(
    metrics: Mapping[str, Any], n_archs: int, seeds: np.ndarray, canon: np.ndarray
) -> dict[str, np.ndarray]:
    if not isinstance(metrics, Mapping):
        raise TableFormatError("metrics must be a mapping of metric name -> array")
    unknown = sorted(set(metrics) - set(schema.EPOCH_METRICS))
    if unknown:
        raise TableFormatError(
            f"unknown epoch metric(s) {', '.join(map(repr, unknown))}; "
            f"format v1 has {', '.join(schema.EPOCH_METRICS)}"
        )
    missing = [m for m in schema.EPOCH_METRICS_MUST if m not in metrics]
    if missing:
        raise TableFormatError(f"metrics is missing required metric(s) {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    expected: tuple[int, ...] | None = None
    for name in schema.EPOCH_METRICS:
        if name not in metrics:
            continue
        arr = _as_float(f"metrics[{name!r}]", metrics[name], np.float32)
        if arr.ndim != 3 or arr.shape[0] != n_archs or arr.shape[1] != seeds.size:
            raise TableFormatError(
                f"metrics[{name!r}] must have shape (n_archs={n_archs}, n_seeds={seeds.size}, "
                f"n_epochs), got {arr.shape}"
            )
        if arr.shape[2] < 1:
            raise TableFormatError(f"metrics[{name!r}] has no epochs")
        if expected is None:
            expected = arr.shape
        elif arr.shape != expected:
            raise TableFormatError(
                f"metrics[{name!r}] has shape {arr.shape} but other metrics have {expected}"
            )
        arr = np.ascontiguousarray(arr[canon])
        _check_values(f"metrics[{name!r}]", name, arr, seeds)
        out[name] = arr
    return out


def _check_arch_metrics(
    arch_metrics: Mapping[str, Any], n_archs: int, canon: np.ndarray
) -> dict[str, np.ndarray]:
    if not isinstance(arch_metrics, Mapping):
        raise TableFormatError("arch_metrics must be a mapping of metric name -> array")
    unknown = sorted(set(arch_metrics) - set(schema.ARCH_METRICS))
    missing = [m for m in schema.ARCH_METRICS if m not in arch_metrics]
    if unknown or missing:
        raise TableFormatError(
            f"arch_metrics must have exactly {', '.join(schema.ARCH_METRICS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(map(repr, unknown))}" if unknown else "")
        )
    out = {}
    for name in schema.ARCH_METRICS:
        arr = _as_float(f"arch_metrics[{name!r}]", arch_metrics[name], np.float64)
        if arr.shape != (n_archs,):
            raise TableFormatError(
                f"arch_metrics[{name!r}] must have shape ({n_archs},), got {arr.shape}"
            )
        arr = np.ascontiguousarray(arr[canon])
        _check_values(f"arch_metrics[{name!r}]", name, arr, None)
        out[name] = arr
    return out


def _check_values(label: str, metric: str, arr: np.ndarray, seeds: np.ndarray | None) -> None:
    """Refuse infinities (except diverged losses), negative times/sizes and bad percents."""
    inf = np.isposinf(arr) if metric in schema.LOSS_METRICS else np.zeros(arr.shape, bool)
    checks = [
        (np.isinf(arr) & ~inf, "infinite value(s); use NaN for missing values"),
    ]
    if metric in schema.ACC_METRICS:
        checks.append(((arr < 0) | (arr > 100), "value(s) outside [0, 100] (accuracy in percent)"))
    elif metric in schema.LOSS_METRICS:
        checks.append((arr < 0, "negative loss(es)"))
    else:
        checks.append((arr < 0, f"negative value(s) ({schema.UNITS[metric]})"))
    for mask, what in checks:
        count = int(np.count_nonzero(mask))
        if count:
            pos = tuple(int(p) for p in np.argwhere(mask)[0])
            raise TableFormatError(
                f"{label} has {count} {what}; first at {_describe_position(pos, seeds)}: "
                f"{arr[pos]!r}"
            )


def _describe_position(pos: tuple[int, ...], seeds: np.ndarray | None) -> str:
    text = f"arch {pos[0]}"
    if len(pos) == 3 and seeds is not None:
        text += f", seed {int(seeds[pos[1]])}, epoch {pos[2] + 1}"
    elif len(pos) == 2:
        text += f", column {pos[1]}"
    return text


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _to_json_object(value: Any, label: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TableFormatError(f"{label} must be JSON-serialisable without NaN: {exc}") from exc


def _complete_provenance(
    provenance: Mapping[str, Any], space: Any, seeds: np.ndarray, n_epochs: int
) -> dict[str, Any]:
    if not isinstance(provenance, Mapping):
        raise TableFormatError("provenance must be a mapping (see docs/format.md)")
    prov = _to_json_object(dict(provenance), "provenance")
    derived = {"space": space.name, "seeds": seeds.tolist(), "epochs": int(n_epochs)}
    for key, value in derived.items():
        if key not in prov:
            prov[key] = value
        elif prov[key] != value:
            raise TableFormatError(
                f"provenance[{key!r}] is {prov[key]!r} but the arrays say {value!r}; "
                "leave it out to have it filled in"
            )
    prov.setdefault("created", schema.now_iso())
    problems = schema.provenance_problems(prov)
    if problems:
        raise TableFormatError("; ".join(problems))
    return prov


def _prepare_proxy(
    name: Any, scores: Any, attrs: Mapping[str, Any], n_archs: int, canon: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    if not isinstance(name, str) or not schema.PROXY_NAME.match(name):
        raise TableFormatError(
            f"proxy name {name!r} is not allowed; use letters, digits, '_', '.' and '-'"
        )
    arr = _as_float(f"proxy {name!r} scores", scores, np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n_archs or arr.shape[1] < 1:
        raise TableFormatError(
            f"proxy {name!r} scores must have shape ({n_archs},) or ({n_archs}, K), "
            f"got {np.shape(scores)}"
        )
    if np.isinf(arr).any():
        raise TableFormatError(f"proxy {name!r} has infinite scores; use NaN for failures")
    if not isinstance(attrs, Mapping):
        raise TableFormatError(f"proxy {name!r} attrs must be a mapping")
    attrs = _to_json_object(dict(attrs), f"proxy {name!r} attrs")
    definition = attrs.get("definition")
    if not (isinstance(definition, str) and definition.strip()):
        raise TableFormatError(
            f"proxy {name!r} needs attrs['definition']: what was computed and its reference"
        )
    seeds = attrs.get("seeds")
    if not (
        isinstance(seeds, list)
        and len(seeds) == arr.shape[1]
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise TableFormatError(
            f"proxy {name!r} needs attrs['seeds']: a list of {arr.shape[1]} integer(s), "
            f"one per score column, got {seeds!r}"
        )
    arr = np.ascontiguousarray(arr[canon])
    reps = np.unique(canon)
    attrs.setdefault("n_failures", int(np.isnan(arr[reps]).sum()))
    attrs.setdefault("created", schema.now_iso())
    return arr, attrs


# -- HDF5 helpers -------------------------------------------------------------


def _create(
    group: h5py.Group,
    name: str,
    data: np.ndarray,
    *,
    chunks: tuple[int, ...],
    metric: str | None = None,
) -> h5py.Dataset:
    ds = group.create_dataset(
        name,
        data=data,
        chunks=chunks,
        compression="gzip",
        compression_opts=schema.GZIP_LEVEL,
        shuffle=True,
    )
    if metric is not None:
        ds.attrs["units"] = schema.UNITS[metric]
        ds.attrs["description"] = schema.DESCRIPTIONS[metric]
    return ds


def _write_proxy(group: h5py.Group, name: str, scores: np.ndarray, attrs: dict[str, Any]) -> None:
    ds = _create(group, name, scores, chunks=(min(scores.shape[0], 1 << 14), scores.shape[1]))
    for key, value in attrs.items():
        if key == "seeds" or not isinstance(value, (str, int, float, bool)):
            value = json.dumps(value)
        ds.attrs[key] = value


def check_destination(
    path: str | os.PathLike, error: type[NasbenchError] = TableFormatError
) -> Path:
    """Refuse (``error``) a table destination that is a directory or lies in a missing one."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a directory; give a file name for the table")
    if not path.parent.is_dir():
        raise error(f"{path}: directory {path.parent} does not exist; create it first")
    return path


def existing_table(
    path: str | os.PathLike, *, doing: str, error: type[NasbenchError] = TableFormatError
):
    """The table already at destination ``path`` (None if there is none), before ``doing`` replaces it.

    Refused (``error``), before any work: what :func:`check_destination`
    refuses, and a file there that is not a readable table (replacing it
    would lose it). What the caller keeps or refuses of the table it gets
    (its stored proxies) is the caller's.
    """
    from nasbench_harness.table.reader import open_table

    path = check_destination(path, error)
    if not path.exists():
        return None
    try:
        return open_table(path)
    except NasbenchError as exc:
        raise error(
            f"{path} exists and is not a readable table ({exc}); {doing} would overwrite it: "
            "give another -o, or move the file away first"
        ) from None


def _atomic_write(path: Path, fill: Callable[[h5py.File], None]) -> Path:
    directory = check_destination(path).parent
    mode = (path.stat().st_mode & 0o777) if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)
    return path


@contextlib.contextmanager
def _directory_lock(directory: Path):
    """Hold an exclusive advisory lock on ``directory`` (a no-op without ``fcntl``).

    The lock is on the folder, not on the table: HDF5 takes its own ``flock``
    on the files it opens, and a lock on the table's inode would not survive
    the rename that replaces it.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
