"""Check a table file against the v1 rules and list every problem found.

:func:`validate_table` never raises for a bad file: a file that cannot be
read at all gives one problem line. NaN holes are legal data (missing
results; :func:`~nasbench_harness.table.open_table` opens such a table) but
are reported here for the MUST metrics, so that an incomplete build is seen.
A table of a sample of the space (a ``--limit`` build, whose provenance lists
``build.planned_archs``) is checked for holes in the planned archs only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nasbench_harness.errors import NasbenchError, TableFormatError
from nasbench_harness.table import schema
from nasbench_harness.table.reader import _attr_str, _decode_attr, _first_line, _h5_open

#: Every problem about NaN holes (missing results) contains this text.
HOLES_MARK = "(missing results)"

#: Positions listed per problem before "...".
MAX_LISTED = 5


def validate_table(path: str | os.PathLike) -> list[str]:
    """Problems of the table at ``path`` (an empty list means valid).

    Checks the format version, required groups, attributes and provenance
    keys, shapes and dtypes, NaN holes in MUST metrics (count and first
    positions), canonical ids against the space, equality of isomorphic
    archs' rows with their representative's, negative times and sizes,
    accuracies outside [0, 100] and infinities.
    """
    path = Path(path)
    try:
        f = _h5_open(path)
    except TableFormatError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001 - never raise for a bad file
        return [f"{path}: cannot open ({_first_line(exc)})"]
    problems: list[str] = []
    try:
        with f:
            _Validator(f, path, problems).run()
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail anywhere
        problems.append(
            f"{path}: validation stopped, the file is damaged ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        )
    return problems


class _Validator:
    def __init__(self, f: h5py.File, path: Path, problems: list[str]) -> None:
        self.f = f
        self.path = path
        self.problems = problems
        self.space: Any = None
        self.n: int | None = None
        self.seeds: np.ndarray | None = None
        self.n_epochs: int | None = None
        self.canon: np.ndarray | None = None
        self._result_rows: np.ndarray | None = None

    def add(self, text: str) -> None:
        self.problems.append(text)

    def dataset(self, name: str) -> h5py.Dataset | None:
        obj = self.f.get(name)
        if obj is None:
            self.add(f"/{name}: missing (required by format v{schema.ENCODING_VERSION})")
            return None
        if not isinstance(obj, h5py.Dataset):
            self.add(f"/{name}: must be a dataset, found a group")
            return None
        return obj

    def run(self) -> None:
        if not self.header():
            return
        self.check_provenance()
        self.check_index()
        self.not_recorded = schema.NotRecorded(self.prov, self.n_epochs)
        for text in self.not_recorded.problems:
            self.add(text)
        self.check_epoch_metrics()
        self.check_arch_metrics()
        self.check_proxies()

    # -- header and provenance -------------------------------------------------

    def header(self) -> bool:
        kind = _attr_str(self.f.attrs.get(schema.ATTR_TYPE))
        version = _attr_str(self.f.attrs.get(schema.ATTR_VERSION))
        if kind != schema.ENCODING_TYPE:
            self.add(
                f"root attribute {schema.ATTR_TYPE} is {kind!r}, expected "
                f"{schema.ENCODING_TYPE!r}: not a nasbench table"
            )
            return False
        if version != schema.ENCODING_VERSION:
            self.add(
                f"root attribute {schema.ATTR_VERSION} is {version!r}; this validator checks "
                f"version {schema.ENCODING_VERSION} (see docs/format.md, 'Versioning')"
            )
            return False
        return True

    def check_provenance(self) -> None:
        raw = _attr_str(self.f.attrs.get(schema.ATTR_PROVENANCE))
        if raw is None:
            self.add(f"root attribute {schema.ATTR_PROVENANCE} is missing")
            self.prov: dict[str, Any] = {}
            return
        try:
            prov = json.loads(raw)
        except ValueError as exc:
            self.add(f"root attribute {schema.ATTR_PROVENANCE} is not JSON ({exc})")
            self.prov = {}
            return
        for text in schema.provenance_problems(prov):
            self.add(text)
        self.prov = prov if isinstance(prov, dict) else {}
        name = self.prov.get("space")
        if isinstance(name, str):
            try:
                from nasbench_harness.space import get_space

                self.space = get_space(name)
                self.n = int(self.space.n_archs)
            except NasbenchError as exc:
                self.add(f"provenance space {name!r} is not known: {exc}")

    # -- index -------------------------------------------------------------------

    def check_index(self) -> None:
        seeds = self.dataset("seeds")
        if seeds is not None:
            if seeds.ndim != 1 or seeds.dtype != np.int64:
                self.add(f"/seeds: must be int64 (S,), got {seeds.dtype} {seeds.shape}")
            if seeds.dtype.kind in "iu" and seeds.ndim == 1:
                values = seeds[()].astype(np.int64)
                if values.size == 0 or len(np.unique(values)) != values.size:
                    self.add(f"/seeds: must be distinct and non-empty, got {values.tolist()}")
                else:
                    self.seeds = values
                if "seeds" in self.prov and self.prov["seeds"] != values.tolist():
                    self.add(
                        f"provenance seeds {self.prov['seeds']} differ from /seeds {values.tolist()}"
                    )
        epochs = self.dataset("epochs")
        if epochs is not None:
            if epochs.ndim != 1 or epochs.dtype != np.int32:
                self.add(f"/epochs: must be int32 (E,), got {epochs.dtype} {epochs.shape}")
            if epochs.dtype.kind in "iu" and epochs.ndim == 1:
                values = epochs[()]
                if values.size == 0 or not np.array_equal(values, np.arange(1, values.size + 1)):
                    self.add("/epochs: must be 1, 2, ..., E")
                else:
                    self.n_epochs = int(values.size)
                if "epochs" in self.prov and self.prov["epochs"] != int(values.size):
                    self.add(
                        f"provenance epochs {self.prov['epochs']} differ from /epochs "
                        f"(E = {values.size})"
                    )
        canon = self.dataset("archs/canonical")
        if canon is not None:
            self.check_canonical(canon)
        strings = self.dataset("archs/string")
        if strings is not None:
            self.check_strings(strings)

    def check_canonical(self, ds: h5py.Dataset) -> None:
        if ds.dtype != np.int64 or ds.ndim != 1:
            self.add(f"/archs/canonical: must be int64 (n_archs,), got {ds.dtype} {ds.shape}")
            if ds.dtype.kind not in "iu" or ds.ndim != 1:
                return
        canon = ds[()].astype(np.int64)
        n = self.n if self.n is not None else canon.size
        if canon.size != n:
            self.add(f"/archs/canonical: has {canon.size} archs, the space has {n}")
            return
        if canon.size and (canon.min() < 0 or canon.max() >= n):
            self.add(f"/archs/canonical: ids must lie in 0..{n - 1}")
            return
        bad = np.flatnonzero(canon[canon] != canon)
        if bad.size:
            self.add(
                f"/archs/canonical: {bad.size} arch(s) point to a non-representative, first "
                + ", ".join(f"{i} -> {canon[i]}" for i in bad[:MAX_LISTED])
            )
            return
        self.canon = canon
        if self.space is not None:
            exact = np.asarray(self.space.canonical_ids)
            wrong = np.flatnonzero(exact[canon] != exact)
            if wrong.size:
                self.add(
                    f"/archs/canonical: {wrong.size} arch(s) share a row with an arch that is "
                    "not isomorphic to them (space.canonical_ids), first "
                    + ", ".join(f"{i} -> {canon[i]}" for i in wrong[:MAX_LISTED])
                )

    def check_strings(self, ds: h5py.Dataset) -> None:
        if ds.dtype.kind not in "SOU" or ds.ndim != 1:
            self.add(f"/archs/string: must be utf-8 strings (n_archs,), got {ds.dtype}")
            return
        if self.space is None:
            return
        if ds.shape != (self.n,):
            self.add(f"/archs/string: has shape {ds.shape}, the space has {self.n} archs")
            return
        values = ds.asstr()[()]
        wrong = [i for i, text in enumerate(values) if text != self.space.to_string(i)]
        if wrong:
            self.add(
                f"/archs/string: {len(wrong)} string(s) differ from the space's arch at that "
                f"index, first at arch {wrong[0]}: {values[wrong[0]]!r}"
            )

    # -- data --------------------------------------------------------------------

    def expected_shape(self) -> tuple[int, int, int] | None:
        if self.n is None or self.seeds is None or self.n_epochs is None:
            return None
        return (self.n, int(self.seeds.size), self.n_epochs)

    def check_units(self, ds: h5py.Dataset, metric: str) -> None:
        units = _attr_str(ds.attrs.get("units"))
        if units != schema.UNITS[metric]:
            self.add(f"{ds.name}: attribute units is {units!r}, must be {schema.UNITS[metric]!r}")

    def check_epoch_metrics(self) -> None:
        group = self.f.get("metrics")
        present = set(group) if isinstance(group, h5py.Group) else set()
        for extra in sorted(present - set(schema.EPOCH_METRICS)):
            self.add(
                f"/metrics/{extra}: not a metric of format v1 ({', '.join(schema.EPOCH_METRICS)})"
            )
        shape = self.expected_shape()
        datasets = {}
        for metric in schema.EPOCH_METRICS:
            if metric not in schema.EPOCH_METRICS_MUST and metric not in present:
                continue
            ds = self.dataset(f"metrics/{metric}")
            if ds is None:
                continue
            if ds.dtype != np.float32:
                self.add(f"{ds.name}: must be float32, got {ds.dtype}")
            if shape is not None and ds.shape != shape:
                self.add(f"{ds.name}: shape {ds.shape}, expected {shape} (archs, seeds, epochs)")
                continue
            if ds.ndim != 3 or ds.dtype.kind != "f":
                continue
            self.check_units(ds, metric)
            datasets[metric] = ds
        absent = self.absent_runs(datasets)
        for metric, ds in datasets.items():
            gaps = self.not_recorded.epoch_mask(metric, ds.shape[2])[None, None, :]
            if absent is not None:
                gaps = gaps | absent[:, :, None]
            self.check_values(
                ds.name, metric, ds[()], must=metric in schema.EPOCH_METRICS_MUST, gaps=gaps
            )

    def absent_runs(self, datasets: dict[str, h5py.Dataset]) -> np.ndarray | None:
        """``(n_archs, S)`` runs with no value at all, when the provenance declares absent runs.

        The declared count must match the result rows' runs without any value,
        and every result row needs at least one run.
        """
        declared = self.not_recorded.absent_runs
        if declared is None or not datasets:
            return None
        has_value = None
        for ds in datasets.values():
            seen = ~np.isnan(ds[()]).all(axis=2)
            has_value = seen if has_value is None else has_value | seen
        absent = ~has_value
        rows = self.result_rows(absent.shape[0])
        found = int(absent[rows].sum())
        if found != declared:
            self.add(
                f"provenance {schema.NOT_RECORDED}.absent_runs is {declared}, but {found} "
                f"(arch, seed) run(s) of representative archs have no value {HOLES_MARK}"
            )
        empty = rows[absent[rows].all(axis=1)]
        if empty.size:
            self.add(
                f"/metrics: {empty.size} arch(s) have no run at all {HOLES_MARK}, first "
                + ", ".join(f"arch {int(a)}" for a in empty[:MAX_LISTED])
            )
        return absent

    def check_arch_metrics(self) -> None:
        group = self.f.get("arch_metrics")
        present = set(group) if isinstance(group, h5py.Group) else set()
        for extra in sorted(present - set(schema.ARCH_METRICS)):
            self.add(
                f"/arch_metrics/{extra}: not an arch metric of format v1 "
                f"({', '.join(schema.ARCH_METRICS)})"
            )
        for metric in schema.ARCH_METRICS:
            ds = self.dataset(f"arch_metrics/{metric}")
            if ds is None:
                continue
            if ds.dtype != np.float64:
                self.add(f"{ds.name}: must be float64, got {ds.dtype}")
            if self.n is not None and ds.shape != (self.n,):
                self.add(f"{ds.name}: shape {ds.shape}, expected ({self.n},)")
                continue
            if ds.ndim != 1 or ds.dtype.kind != "f":
                continue
            self.check_units(ds, metric)
            never = metric in self.not_recorded.arch_metrics
            gaps = np.ones(ds.shape, dtype=bool) if never else None
            self.check_values(ds.name, metric, ds[()], must=True, gaps=gaps)

    def check_proxies(self) -> None:
        group = self.f.get("proxies")
        if group is None:
            return
        if not isinstance(group, h5py.Group):
            self.add("/proxies: must be a group")
            return
        for name in group:
            ds = group[name]
            label = f"/proxies/{name}"
            if not schema.PROXY_NAME.match(name):
                self.add(f"{label}: name not allowed (letters, digits, '_', '.', '-')")
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.dtype != np.float64:
                self.add(f"{label}: must be a float64 dataset (n_archs, K)")
                continue
            if self.n is not None and ds.shape[0] != self.n:
                self.add(f"{label}: has {ds.shape[0]} rows, the space has {self.n} archs")
                continue
            attrs = {k: _decode_attr(v) for k, v in ds.attrs.items()}
            missing = [k for k in schema.PROXY_ATTRS if k not in attrs]
            if missing:
                self.add(f"{label}: missing attribute(s) {', '.join(missing)}")
            seeds = attrs.get("seeds")
            if "seeds" in attrs and not (
                isinstance(seeds, list)
                and len(seeds) == ds.shape[1]
                and all(isinstance(s, int) for s in seeds)
            ):
                self.add(f"{label}: attribute seeds must be a JSON list of {ds.shape[1]} ints")
            scores = ds[()]
            if np.isinf(scores).any():
                self.add(f"{label}: {int(np.isinf(scores).sum())} infinite score(s)")
            self.check_isomorphic(label, scores)

    def check_values(
        self,
        label: str,
        metric: str,
        values: np.ndarray,
        *,
        must: bool,
        gaps: np.ndarray | None = None,
    ) -> None:
        """Holes, ranges and isomorphic rows of one metric.

        ``gaps`` (broadcastable to ``values``) marks what the source declares
        it never recorded: it must be NaN there, and those NaNs are no holes.
        """
        if gaps is not None and gaps.any():
            gaps = np.broadcast_to(gaps, values.shape)
            filled = gaps & ~np.isnan(values)
            if filled.any():
                self.add(
                    f"{label}: {int(filled.sum())} value(s) where provenance "
                    f"{schema.NOT_RECORDED} declares nothing recorded, first at "
                    + self.positions(filled)
                )
        else:
            gaps = None
        if must:
            # holes are counted where results live: the representatives' rows
            reps = self.result_rows(len(values))
            nan = np.isnan(values[reps])
            if gaps is not None:
                nan &= ~gaps[reps]
            if nan.any():
                where = "of representative archs " if self.canon is not None else ""
                self.add(
                    f"{label}: {int(nan.sum())} NaN value(s) {where}{HOLES_MARK}, first at "
                    + self.positions(nan, reps)
                )
        loss = metric in schema.LOSS_METRICS
        inf = np.isinf(values) & ~(loss & np.isposinf(values))
        if inf.any():
            self.add(f"{label}: {int(inf.sum())} infinite value(s), first at {self.positions(inf)}")
        if metric in schema.ACC_METRICS:
            bad = (values < 0) | (values > 100)
            what = "accuracy value(s) outside [0, 100] percent"
        else:
            bad = values < 0
            what = "negative time(s)" if metric in schema.TIME_METRICS else "negative value(s)"
        if bad.any():
            self.add(f"{label}: {int(bad.sum())} {what}, first at {self.positions(bad)}")
        self.check_isomorphic(label, values)

    def result_rows(self, n_rows: int) -> np.ndarray:
        """Rows that must hold results: the representatives, of the planned archs only
        when the table is a sample (``provenance.build.planned_archs``, a ``--limit`` build)."""
        if self._result_rows is None:
            self._result_rows = self._find_result_rows(n_rows)
        return self._result_rows

    def _find_result_rows(self, n_rows: int) -> np.ndarray:
        reps = np.unique(self.canon) if self.canon is not None else np.arange(n_rows)
        build = self.prov.get("build") if isinstance(getattr(self, "prov", None), dict) else None
        planned = build.get("planned_archs") if isinstance(build, dict) else None
        if planned is None:
            return reps
        ok = isinstance(planned, list) and all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a < n_rows for a in planned
        )
        if not ok:
            self.add(
                f"provenance build.planned_archs must be a list of arch indices in [0, {n_rows})"
            )
            return reps
        planned_rows = np.asarray(planned, dtype=np.int64)
        if self.canon is not None:
            planned_rows = np.unique(self.canon[planned_rows])
        return np.intersect1d(reps, planned_rows)

    def check_isomorphic(self, label: str, values: np.ndarray) -> None:
        if self.canon is None or values.shape[0] != self.canon.size:
            return
        members = np.flatnonzero(self.canon != np.arange(self.canon.size))
        if members.size == 0:
            return
        mine, theirs = values[members], values[self.canon[members]]
        same = (mine == theirs) | (np.isnan(mine) & np.isnan(theirs))
        differ = members[~same.reshape(members.size, -1).all(axis=1)]
        if differ.size:
            self.add(
                f"{label}: {differ.size} arch(s) differ from their representative's row "
                "(isomorphic archs must share it), first "
                + ", ".join(f"{i} vs {self.canon[i]}" for i in differ[:MAX_LISTED])
            )

    def positions(self, mask: np.ndarray, rows: np.ndarray | None = None) -> str:
        where = np.argwhere(mask)[:MAX_LISTED]
        parts = []
        for pos in where:
            arch = int(rows[pos[0]]) if rows is not None else int(pos[0])
            if len(pos) == 3:
                seed = int(self.seeds[pos[1]]) if self.seeds is not None else int(pos[1])
                parts.append(f"(arch {arch}, seed {seed}, epoch {pos[2] + 1})")
            else:
                parts.append(f"(arch {arch})")
        more = ", ..." if int(mask.sum()) > MAX_LISTED else ""
        return ", ".join(parts) + more
