"""Merge the rows of a build (directories, part files, row files) into one validated table."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.build.plan import (
    SETTINGS_FILE,
    Task,
    arch_order,
    plan_tasks,
    read_build_dir_settings,
)
from nasbench_harness.build.store import CURVES, RowIndex, build_files, read_rows
from nasbench_harness.errors import BuildError
from nasbench_harness.table.validate import HOLES_MARK


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge` wrote and what the table lacks.

    ``missing`` are planned (arch, seed) rows with no result (a partial
    build); ``problems`` are what :func:`~nasbench_harness.table.validate_table`
    found in the written table. ``path`` is the table written: the requested
    path, or, when the table fails validation for more than the holes of
    missing rows, :func:`rejected_path` of it (then the requested path was
    left as it was).
    """

    path: Path
    n_rows: int
    n_expected: int
    n_duplicates: int
    missing: tuple[Task, ...]
    problems: tuple[str, ...]
    provenance: dict

    @property
    def complete(self) -> bool:
        return not self.missing


def rejected_path(out_path: str | os.PathLike) -> Path:
    """Where a merged table that fails validation is put (``out_path`` is not replaced)."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.rejected{out_path.suffix}")


def _proxies_to_keep(old, provenance: Mapping[str, Any], out_path: Path) -> dict:
    """Stored proxies of ``old``, the table at ``out_path``, that stay valid for the new table.

    Proxy scores depend on the space, the data (their batches come from the
    training split) and the skeleton, not on which rows were trained: a
    re-merge of the same build (more rows, a latency sweep) keeps them. A
    table with proxies of another space, recipe or data set is refused rather
    than overwritten.
    """
    if old is None or not old.proxy_names:
        return {}
    from nasbench_harness.build.store import same_data

    before = old.provenance
    same = (
        before.get("space") == provenance["space"]
        and before.get("recipe") == provenance["recipe"]
        and same_data(before.get("dataset") or {}, provenance["dataset"])
    )
    if not same:
        raise BuildError(
            f"-o {out_path} holds stored proxies ({', '.join(old.proxy_names)}) of a table of "
            "another space, recipe or data set; the merge would drop them: give another -o, "
            "or move the file away first"
        )
    return {
        name: (np.asarray(old.array(f"proxy/{name}")), dict(old.proxy_attrs[name]))
        for name in old.proxy_names
    }


def _collect(inputs: Sequence[str | os.PathLike]) -> RowIndex:
    if not inputs:
        raise BuildError("nothing to merge: give build directories or part files")
    index = RowIndex()
    for item in map(Path, inputs):
        if item.is_dir():
            settings = read_build_dir_settings(item)
            if settings is None and not build_files(item):
                raise BuildError(
                    f"{item}: not a build directory (no {SETTINGS_FILE}, no part or row files); "
                    "give the --out directory of `nasbench build` or its part files"
                )
            if settings is not None:
                if index.settings is None:
                    index.settings, index.first_source = settings, str(item / SETTINGS_FILE)
                elif settings.fingerprint != index.settings.fingerprint:
                    raise BuildError(
                        f"{item / SETTINGS_FILE} is another build than {index.first_source}; "
                        "merge the directories of one build only"
                    )
            index.add_directory(item)
        elif item.is_file():
            index.add_file(read_rows(item))
        else:
            raise BuildError(
                f"{item}: no such directory or file; give build directories or part files"
            )
    if not index.rows:
        raise BuildError(
            f"no finished rows in {', '.join(map(str, inputs))}: run `nasbench build` first"
        )
    return index


def _joined(values: set[str]) -> str:
    return ", ".join(sorted(values))


def _iso(unix_time: float) -> str:
    stamp = datetime.datetime.fromtimestamp(unix_time, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


#: Where a merged table's ``latency_ms`` comes from.
LATENCY_SOURCES = ("rows", "sweep")
#: Missing rows named in the error of a merge without ``allow_partial``.
SHOW_MISSING = 20


def merge(
    inputs: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    latency: str = "rows",
    latency_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    allow_partial: bool = True,
) -> MergeResult:
    """Merge the rows of one build into the table ``out_path`` and validate it.

    Rows are de-duplicated by (arch, seed) (copies must agree); each canonical
    arch's row stands for all its isomorphic archs; what was not trained is
    NaN. With ``allow_partial`` (the default) the table is written even when
    rows are missing and the result lists them; without it, missing rows
    raise a :class:`BuildError` (exit code 1) before anything is measured or
    written, so that an existing ``out_path`` is left as it was.

    ``latency="rows"`` takes each arch's latency as the median over its rows
    (each measured by its worker right after training); ``"sweep"`` measures
    every trained arch again in this process with
    :func:`~nasbench_harness.build.latency.sweep_latency` (keyword arguments
    in ``latency_options``), so that all latencies come from one stretch of
    time on one device. The provenance key ``latency`` says which.

    The table is written beside ``out_path`` and validated there first; only
    a table that passes (holes of missing rows aside) replaces ``out_path``,
    and proxies stored in the table it replaces are carried over when that
    table has the same space, recipe and data set (otherwise the merge is
    refused once the rows are read, before a latency sweep or any writing; a
    file there that is not a table is refused before the rows are read).
    """
    if latency not in LATENCY_SOURCES:
        raise BuildError(f"latency={latency!r} is not known: use one of {LATENCY_SOURCES}")
    from nasbench_harness.space import get_space
    from nasbench_harness.table import validate_table, write_table
    from nasbench_harness.table.writer import existing_table

    out_path = Path(out_path)
    old = existing_table(out_path, doing="the merge", error=BuildError)  # before any long work
    index = _collect(inputs)
    settings = index.settings
    if settings is None:  # pragma: no cover - _collect only returns with rows, hence settings
        raise BuildError("no build settings found in the inputs")
    expected = plan_tasks(settings)
    missing = tuple(t for t in expected if t not in index.rows)
    if missing and not allow_partial:
        shown = "; ".join(f"arch {t.arch} seed {t.seed}" for t in missing[:SHOW_MISSING])
        more = f" and {len(missing) - SHOW_MISSING} more" if len(missing) > SHOW_MISSING else ""
        error = BuildError(
            f"{len(missing)} of {len(expected)} planned rows are missing ({shown}{more}); "
            f"nothing was written to {out_path}. Rerun `nasbench build` on the build directory "
            "to train them, or pass --allow-partial for a table with them NaN"
        )
        error.exit_code = 1
        raise error
    # the table at out_path and its proxies: refused or kept, before the long work
    kept = _proxies_to_keep(
        old,
        {
            "space": settings.space,
            "recipe": dict(settings.recipe),
            "dataset": dict(index.dataset_info or {}),
        },
        out_path,
    )
    space = get_space(settings.space)
    seeds = list(settings.seeds)
    seed_position = {seed: i for i, seed in enumerate(seeds)}
    n_archs, n_seeds, n_epochs = space.n_archs, len(seeds), settings.epochs
    canonical = np.asarray(space.canonical_ids)
    shape = (n_archs, n_seeds, n_epochs)
    metrics = {name: np.full(shape, np.nan, dtype=np.float32) for name in CURVES}
    params = np.full(n_archs, np.nan)
    flops = np.full(n_archs, np.nan)
    latencies: dict[int, list[float]] = {}
    for task, row in sorted(index.rows.items(), key=lambda item: (item[0].seed, item[0].arch)):
        if not 0 <= task.arch < n_archs or canonical[task.arch] != task.arch:
            raise BuildError(
                f"{index.sources[task]}: arch {task.arch} is not a canonical arch of "
                f"{settings.space}; the file was not written by `nasbench build`: remove it"
            )
        if task.seed not in seed_position:
            raise BuildError(
                f"{index.sources[task]}: seed {task.seed} is not among the build's seeds "
                f"{seeds}; remove the file"
            )
        for name in CURVES:
            metrics[name][task.arch, seed_position[task.seed]] = row.curves[name]
        params[task.arch], flops[task.arch] = row.params, row.flops
        latencies.setdefault(task.arch, []).append(row.latency_ms)
    latency_ms = np.full(n_archs, np.nan)
    for arch, values in latencies.items():
        latency_ms[arch] = float(np.median(values))

    rows = list(index.rows.values())
    dataset = dict(index.dataset_info or {})
    latency_info: dict[str, Any] = {
        "source": "rows",
        "how": "median over an arch's seeds of the latency its worker measured after training",
    }
    if latency == "sweep":
        from nasbench_harness.build.latency import sweep_latency

        if "input_shape" not in dataset or "n_classes" not in dataset:
            raise BuildError(
                "the rows do not record the data set's input_shape and n_classes, which a "
                "latency sweep needs to build the networks: merge with latency from the rows"
            )
        trained = np.asarray(sorted(latencies), dtype=np.int64)
        measured, latency_info = sweep_latency(
            trained,
            space=settings.space,
            recipe=settings.recipe,
            input_shape=dataset["input_shape"],
            n_classes=dataset["n_classes"],
            progress=progress,
            **dict(latency_options or {}),
        )
        latency_ms[trained] = measured
    provenance = {
        "space": settings.space,
        "dataset": dataset,
        "recipe": dict(settings.recipe),
        "seeds": seeds,
        "epochs": n_epochs,
        "code_version": _joined({r.code_version for r in rows}),
        "device": _joined({r.device for r in rows}),
        "build_time_s": float(sum(r.wall_time_s for r in rows)),
        "synthetic": settings.trainer == "fake",
        "n_rows": len(rows),
        "hosts": sorted({r.hostname for r in rows}),
        "torch_versions": sorted({r.torch_version for r in rows}),
        "latency": latency_info,
        "build": {
            "fingerprint": settings.fingerprint,
            "limit": settings.limit,
            "order_seed": settings.order_seed,
            "trainer": settings.trainer,
            "n_unique_archs": len({r.arch for r in rows}),
            "started": _iso(min(r.start_time for r in rows)),
            "finished": _iso(max(r.end_time for r in rows)),
        },
    }
    provenance["build"]["n_missing_rows"] = len(missing)
    if settings.limit is not None:  # a sample: archs outside it are NaN by design
        provenance["build"]["planned_archs"] = sorted(int(a) for a in arch_order(settings))
    if kept:
        provenance["kept_proxies"] = {
            "from": str(out_path),
            "names": sorted(kept),
            "why": "the table this merge replaced held them, of the same space, recipe and data",
        }
    # written and validated beside out_path; it replaces out_path only if it passes
    trial = out_path.with_name(f".{out_path.name}.merging")
    try:
        write_table(
            trial,
            space=space,
            metrics=metrics,
            arch_metrics={"params": params, "flops": flops, "latency_ms": latency_ms},
            seeds=seeds,
            provenance=provenance,
            proxies=kept,
        )
        problems = tuple(validate_table(trial))
        holes_expected = bool(missing)  # a partial merge: its missing rows are NaN by design
        if any(not (holes_expected and HOLES_MARK in p) for p in problems):
            path = rejected_path(out_path)
            os.replace(trial, path)  # kept for a look; out_path is left as it was
        else:
            os.replace(trial, out_path)
            path = out_path
    finally:
        trial.unlink(missing_ok=True)
    return MergeResult(
        path=path,
        n_rows=len(rows),
        n_expected=len(expected),
        n_duplicates=index.n_duplicates,
        missing=missing,
        problems=problems,
        provenance=provenance,
    )
