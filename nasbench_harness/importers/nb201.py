"""Import NAS-Bench-201 / NATS-Bench topology results into a table of the ``nb201`` space.

Sources read (see ``docs/import.md``):

* the NAS-Bench-201 file (``NAS-Bench-201-v1_*.pth``), a ``torch.save`` of
  ``{"meta_archs": [...], "arch2infos": {index: {"less": ..., "full": ...}},
  "evaluated_indexes": ..., ...}``, in torch's legacy or zip format;
* a NATS-Bench topology archive directory (``NATS-tss-v1_0-3ffb9-*``):
  ``meta.pickle.pbz2`` and one ``{index:06d}.pickle.pbz2`` per arch, each a
  bz2 pickle of ``{"12": ..., "200": ...}``;
* a single bz2 pickle of the same dictionary as the ``.pth`` file.

Each schedule entry is an ``ArchResults`` state dictionary: ``arch_str``,
``all_results`` ``{(dataset, seed): ResultsCount state}``. A ResultsCount
state holds ``name``, ``seed``, ``epochs``, ``train_acc1es`` /
``train_losses`` / ``train_times`` (``{epoch: value}``, 0-based epochs),
``eval_acc1es`` / ``eval_losses`` / ``eval_times`` (``{"<split>@<epoch>":
value}``), ``params`` (millions), ``flop`` (millions of multiply-adds) and
``latency`` (a list of seconds).

The file is read as a stream (:mod:`._pickle`): each ResultsCount is reduced
to the few curves of the requested dataset as soon as it is read, and each
arch's results are copied into the output arrays and freed, so memory
depends on the output size, not on the file size.
"""

from __future__ import annotations

import bz2
import dataclasses
import math
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from nasbench_harness.errors import ArchError, NasbenchError
from nasbench_harness.importers._common import (
    ImportFormatError,
    ImportResult,
    check_output,
    count_holes,
    sha256_file,
    sha256_tree,
)
from nasbench_harness.importers._pickle import StreamingUnpickler

__all__ = ["DATASETS", "SCHEDULES", "import_nb201", "read_nb201"]

#: Schedule (epochs) -> the keys NB201 ("less"/"full") and NATS ("12"/"200") use.
SCHEDULES: dict[int, tuple[str, ...]] = {200: ("full", "200"), 12: ("less", "12")}
_HP_KEYS = frozenset(k for keys in SCHEDULES.values() for k in keys)

#: First bytes of torch's legacy format: PROTO 2, then the pickled magic number.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0a"
_NATS_ARCH_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")
_NATS_META = "meta.pickle.pbz2"
_COMPACT = "__nasbench_compact__"


@dataclasses.dataclass(frozen=True)
class Nb201Dataset:
    """How one NB201 dataset's evaluation splits map to the table's names.

    ``valid`` / ``test`` are NB201's evaluation names (``x-valid``,
    ``x-test``, ``ori-test``); ``valid=None`` means the dataset has no
    validation split and ``valid_*`` stay NaN (never filled from a test split).
    """

    valid: str | None
    test: str
    n_classes: int
    input_shape: tuple[int, ...]
    splits: dict[str, str]
    split_sizes: dict[str, int]  # examples per split (what the chance line needs)


DATASETS: dict[str, Nb201Dataset] = {
    "cifar10-valid": Nb201Dataset(
        valid="x-valid",
        test="ori-test",
        n_classes=10,
        input_shape=(3, 32, 32),
        splits={
            "train": "25,000 images: NB201's train half of the CIFAR-10 training set",
            "valid": "x-valid: the other 25,000 images of the CIFAR-10 training set",
            "test": "ori-test: the 10,000-image CIFAR-10 test set",
        },
        split_sizes={"train": 25_000, "valid": 25_000, "test": 10_000},
    ),
    "cifar10": Nb201Dataset(
        valid=None,
        test="ori-test",
        n_classes=10,
        input_shape=(3, 32, 32),
        splits={
            "train": "50,000 images: the whole CIFAR-10 training set",
            "valid": "none: NB201 trained cifar10 on all training images; valid_* are NaN "
            "(use --dataset cifar10-valid for a validation split)",
            "test": "ori-test: the 10,000-image CIFAR-10 test set",
        },
        split_sizes={"train": 50_000, "test": 10_000},
    ),
    "cifar100": Nb201Dataset(
        valid="x-valid",
        test="x-test",
        n_classes=100,
        input_shape=(3, 32, 32),
        splits={
            "train": "50,000 images: the whole CIFAR-100 training set",
            "valid": "x-valid: 5,000 images, NB201's half of the CIFAR-100 test set",
            "test": "x-test: the other 5,000 images of the CIFAR-100 test set",
        },
        split_sizes={"train": 50_000, "valid": 5_000, "test": 5_000},
    ),
    "ImageNet16-120": Nb201Dataset(
        valid="x-valid",
        test="x-test",
        n_classes=120,
        input_shape=(3, 16, 16),
        splits={
            "train": "151,700 images: the ImageNet16-120 training set",
            "valid": "x-valid: 3,000 images, NB201's half of the ImageNet16-120 test set",
            "test": "x-test: the other 3,000 images of the ImageNet16-120 test set",
        },
        split_sizes={"train": 151_700, "valid": 3_000, "test": 3_000},
    ),
}

#: Curves kept per run: table metric -> (source dict, split or None for training).
_CURVES = (
    ("train_acc", "train_acc1es", None),
    ("train_loss", "train_losses", None),
    ("train_time_s", "train_times", None),
    ("valid_acc", "eval_acc1es", "valid"),
    ("valid_loss", "eval_losses", "valid"),
    ("test_acc", "eval_acc1es", "test"),
    ("test_loss", "eval_losses", "test"),
)
EPOCH_METRICS = tuple(m for m, _, _ in _CURVES) + ("eval_time_s",)


@dataclasses.dataclass
class _Run:
    """One (arch, dataset, seed) result reduced to what the table stores."""

    name: str
    seed: int
    epochs: int
    curves: dict[str, np.ndarray]
    params_m: float
    flop_m: float
    latency_s: float
    #: evaluation seconds over the epochs where both splits were timed: valid, valid + test
    eval_valid_s: float = 0.0
    eval_all_s: float = 0.0


@dataclasses.dataclass
class Nb201Data:
    """Everything read from a source, in the table's layout."""

    n_archs: int
    epochs: int
    per_seed: dict[int, dict[str, np.ndarray]]
    arch_sums: dict[str, np.ndarray]
    arch_counts: dict[str, np.ndarray]
    present: np.ndarray
    source: dict[str, Any]
    #: seconds of the source's evaluations, summed over the epochs where both splits
    #: were timed: ``valid`` (the validation split's) and ``all`` (valid and test)
    eval_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def _number(value: Any, what: str, label: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImportFormatError(
            f"{label}: {what} is {type(value).__name__}, not a number; the file is not a "
            "NAS-Bench-201 results file"
        ) from None


class _Reader:
    """Consumes the stream of one source and fills the output arrays."""

    def __init__(self, dataset: str, epochs: int, label: str) -> None:
        from nasbench_harness.space import get_space

        if dataset not in DATASETS:
            raise ImportFormatError(
                f"unknown NB201 dataset {dataset!r}; choose one of {', '.join(DATASETS)}"
            )
        if epochs not in SCHEDULES:
            raise ImportFormatError(
                f"NB201 has schedules of {' and '.join(map(str, SCHEDULES))} epochs, not {epochs}"
            )
        self.space = get_space("nb201")
        self.dataset = dataset
        self.spec = DATASETS[dataset]
        self.epochs = epochs
        self.hp_keys = SCHEDULES[epochs]
        self.n_epochs: int | None = None  # epochs stored per run (E of the table)
        self.label = label
        n = int(self.space.n_archs)
        self.n = n
        self.per_seed: dict[int, dict[str, np.ndarray]] = {}
        self.arch_sums = {k: np.zeros(n) for k in ("params", "flops", "latency_ms")}
        self.arch_counts = {k: np.zeros(n, dtype=np.int64) for k in self.arch_sums}
        self.present = np.zeros(n, dtype=bool)
        self.source_keys: dict[int, int] = {}  # source index -> our index
        self.stored: set[tuple[int, int]] = set()  # (our index, seed)
        self.eval_seconds = {"valid": 0.0, "all": 0.0}  # of the stored runs
        self.unpickler: StreamingUnpickler | None = None

    # -- stream hooks -------------------------------------------------------------

    def hook(self, target: dict, items: list) -> bool:
        keys = items[0::2]
        if "eval_acc1es" in keys and "train_acc1es" in keys:
            state = dict(zip(keys, items[1::2]))
            run = self._compact(state) if state.get("name") == self.dataset else None
            target[_COMPACT] = run
            self.unpickler.release_items()
            return True
        values = items[1::2]
        if keys and all(type(k) is int for k in keys) and all(_is_arch_entry(v) for v in values):
            for key, value in zip(keys, values):
                self.consume(key, value)
            self.unpickler.release_items()
            return True
        return False

    def _compact(self, state: dict) -> _Run:
        label = f"{self.label}: result {state.get('name')!r} seed {state.get('seed')!r}"
        epochs = state.get("epochs")
        if type(epochs) is not int or epochs < 1:
            raise ImportFormatError(f"{label}: 'epochs' is {epochs!r}, not a positive integer")
        names = {"valid": self.spec.valid, "test": self.spec.test}
        curves: dict[str, np.ndarray] = {}
        for metric, field, split in _CURVES:
            source = state.get(field)
            out = np.full(epochs, np.nan, dtype=np.float32)
            curves[metric] = out
            if split is not None and names[split] is None:
                continue  # no such split: NaN, never another split's values
            if not isinstance(source, dict):
                continue  # e.g. train_times None: not recorded
            prefix = "" if split is None else f"{names[split]}@"
            for e in range(epochs):
                value = source.get(e) if split is None else source.get(f"{prefix}{e}")
                if value is not None:
                    out[e] = _number(value, f"{field}[{prefix}{e}]", label)
        eval_time = np.full(epochs, np.nan, dtype=np.float32)
        eval_valid_s = eval_all_s = 0.0
        times = state.get("eval_times")
        if isinstance(times, dict) and times:
            parts = [
                [times.get(f"{name}@{e}") for e in range(epochs)]
                for name in (self.spec.valid, self.spec.test)
                if name is not None
            ]
            for e in range(epochs):
                column = [p[e] for p in parts]
                if all(v is not None for v in column):
                    seconds = [_number(v, "eval_times", label) for v in column]
                    eval_time[e] = sum(seconds)
                    if self.spec.valid is not None and np.isfinite(eval_time[e]):
                        eval_valid_s += seconds[0]
                        eval_all_s += sum(seconds)
        curves["eval_time_s"] = eval_time
        latency = state.get("latency")
        if isinstance(latency, (int, float)) and not isinstance(latency, bool):
            latency = [latency]
        if isinstance(latency, (list, tuple)) and latency:
            values = [_number(v, "latency", label) for v in latency]
            latency_s = sum(values) / len(values)
            if latency_s < 0:  # NB201 writes -1 for "not measured"
                latency_s = math.nan
        else:
            latency_s = math.nan
        return _Run(
            name=str(state.get("name")),
            seed=_seed(state.get("seed"), label),
            epochs=epochs,
            curves=curves,
            params_m=_number(state.get("params"), "params", label),
            flop_m=_number(state.get("flop"), "flop", label),
            latency_s=latency_s,
            eval_valid_s=eval_valid_s,
            eval_all_s=eval_all_s,
        )

    def consume(self, key: int, entry: dict) -> None:
        """Copy one arch's results (``{schedule key: ArchResults state}``) into the arrays."""
        state = next((entry[k] for k in self.hp_keys if k in entry), None)
        if state is None:
            return  # this arch has no run of the requested schedule
        if not isinstance(state, dict):
            raise ImportFormatError(f"{self.label}: arch {key}: schedule entry is not a dict")
        arch_str = state.get("arch_str")
        try:
            index = self.space.index(arch_str) if isinstance(arch_str, str) else None
        except ArchError as exc:
            raise ImportFormatError(
                f"{self.label}: arch {key} has arch_str {arch_str!r}, not an NB201 "
                f"topology-space arch ({exc})"
            ) from None
        if index is None:
            raise ImportFormatError(f"{self.label}: arch {key} has no arch_str")
        if key in self.source_keys:
            raise ImportFormatError(f"{self.label}: arch {key} appears twice")
        self.source_keys[key] = index
        results = state.get("all_results")
        if not isinstance(results, dict):
            raise ImportFormatError(f"{self.label}: arch {key} has no all_results dict")
        for result_key, holder in results.items():
            if not (isinstance(result_key, tuple) and len(result_key) == 2):
                raise ImportFormatError(
                    f"{self.label}: arch {key}: all_results key {result_key!r} is not "
                    "(dataset, seed)"
                )
            if result_key[0] != self.dataset:
                continue
            run = holder.get(_COMPACT) if isinstance(holder, dict) else None
            if run is None:
                raise ImportFormatError(
                    f"{self.label}: arch {key}: result {result_key!r} is not a ResultsCount "
                    "state (no train_acc1es / eval_acc1es)"
                )
            if run.seed != _seed(result_key[1], self.label) or run.name != self.dataset:
                raise ImportFormatError(
                    f"{self.label}: arch {key}: result stored under {result_key!r} says "
                    f"dataset {run.name!r} seed {run.seed}"
                )
            if self.n_epochs is None:
                self.n_epochs = run.epochs
            elif run.epochs != self.n_epochs:
                raise ImportFormatError(
                    f"{self.label}: arch {key}: result {result_key!r} has {run.epochs} epochs, "
                    f"earlier results of this schedule have {self.n_epochs}"
                )
            self._store(index, run)

    def _store(self, index: int, run: _Run) -> None:
        arrays = self.per_seed.get(run.seed)
        if arrays is None:
            arrays = {
                m: np.full((self.n, self.n_epochs), np.nan, dtype=np.float32) for m in EPOCH_METRICS
            }
            self.per_seed[run.seed] = arrays
        if (index, run.seed) in self.stored:
            raise ImportFormatError(
                f"{self.label}: arch {self.space.to_string(index)} seed {run.seed} appears twice"
            )
        self.stored.add((index, run.seed))
        self.eval_seconds["valid"] += run.eval_valid_s
        self.eval_seconds["all"] += run.eval_all_s
        for metric, curve in run.curves.items():
            arrays[metric][index] = curve
        self.present[index] = True
        for name, value in (
            ("params", run.params_m * 1e6),
            ("flops", run.flop_m * 2e6),
            ("latency_ms", run.latency_s * 1e3),
        ):
            if not math.isnan(value):
                self.arch_sums[name][index] += value
                self.arch_counts[name][index] += 1

    # -- sources ----------------------------------------------------------------------

    def run_pickle(self, stream: IO[bytes], label: str, initial: bytes = b"") -> Any:
        self.unpickler = StreamingUnpickler(stream, hook=self.hook, label=label, initial=initial)
        return self.unpickler.load()

    def check_meta(self, meta_archs: Any) -> None:
        """Check that every source index names the arch its entry says (when listed)."""
        if not isinstance(meta_archs, list):
            return
        for key, index in self.source_keys.items():
            if 0 <= key < len(meta_archs) and isinstance(meta_archs[key], str):
                if self.space.index(meta_archs[key]) != index:
                    raise ImportFormatError(
                        f"{self.label}: arch {key} is {meta_archs[key]!r} in meta_archs but its "
                        f"entry says {self.space.to_string(index)!r}"
                    )


def _is_arch_entry(value: Any) -> bool:
    return isinstance(value, dict) and any(type(k) is str and k in _HP_KEYS for k in value)


def _seed(value: Any, label: str) -> int:
    if type(value) is int or (isinstance(value, float) and value.is_integer()):
        return int(value)
    raise ImportFormatError(f"{label}: seed {value!r} is not an integer")


def _read_single(reader: _Reader, path: Path) -> dict[str, Any]:
    """Read the one-file layouts; returns the source description."""
    label = path.name
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(members) != 1:
                raise ImportFormatError(
                    f"{path}: a zip file without one data.pkl; not a torch.save file"
                )
            with archive.open(members[0]) as stream:
                top = reader.run_pickle(stream, label)
        layout = "torch.save zip"
    else:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head.startswith(b"BZh"):
                with bz2.open(fh) as stream:
                    top = reader.run_pickle(stream, label)
                layout = "bz2 pickle"
            elif head == _TORCH_LEGACY_PREFIX:
                top = _read_torch_legacy(reader, fh, label)
                layout = "torch.save legacy"
            elif head[:1] == b"\x80":
                top = reader.run_pickle(fh, label)
                layout = "pickle"
            elif head == b"PK\x03\x04":  # a zip (torch.save) whose end is missing
                raise ImportFormatError(
                    f"{path}: a zip file (torch.save) that is truncated or damaged (no central "
                    "directory at its end); download it again"
                )
            else:
                raise ImportFormatError(
                    f"{path}: not a NAS-Bench-201 file (neither a torch.save file, a pickle "
                    "nor a bz2 pickle); pass the .pth file, the NATS archive directory or its "
                    ".pickle.pbz2 file"
                )
    if not isinstance(top, dict) or "arch2infos" not in top:
        raise ImportFormatError(
            f"{path}: holds no 'arch2infos' dictionary; not a NAS-Bench-201 / NATS-Bench "
            "topology file"
        )
    left = top["arch2infos"]
    if isinstance(left, dict):  # entries the stream hook did not take (an unusual layout)
        for key, entry in left.items():
            if not (type(key) is int and _is_arch_entry(entry)):
                raise ImportFormatError(
                    f"{path}: arch2infos[{key!r}] is not {{schedule: results}} with schedule "
                    f"keys {sorted(_HP_KEYS)}"
                )
            reader.consume(key, entry)
    reader.check_meta(top.get("meta_archs"))
    return {"layout": layout, "file": path.name, "size_bytes": path.stat().st_size}


def _read_torch_legacy(reader: _Reader, fh: IO[bytes], label: str) -> Any:
    """torch's legacy format: magic number, protocol, sys info, then the object."""
    leftover = b""
    header = []
    for _ in range(3):
        small = StreamingUnpickler(fh, label=label, initial=leftover)
        header.append(small.load())
        leftover = small.unread
    if header[0] != _TORCH_LEGACY_MAGIC:
        raise ImportFormatError(f"{label}: torch legacy file with a wrong magic number")
    return reader.run_pickle(fh, label, initial=leftover)


def _read_nats_dir(reader: _Reader, root: Path, progress: Callable[[int, int], None] | None):
    files = sorted(p for p in root.iterdir() if _NATS_ARCH_FILE.match(p.name))
    if not files:
        raise ImportFormatError(
            f"{root}: a directory without {{index:06d}}.pickle.pbz2 files; not a NATS-Bench "
            "topology archive (pass the directory that holds meta.pickle.pbz2)"
        )
    meta_path = root / _NATS_META
    meta_archs = None
    if meta_path.is_file():
        with bz2.open(meta_path) as stream:
            meta = StreamingUnpickler(stream, label=meta_path.name).load()
        meta_archs = meta.get("meta_archs") if isinstance(meta, dict) else None
    for done, path in enumerate(files, 1):
        key = int(_NATS_ARCH_FILE.match(path.name).group(1))
        try:
            with bz2.open(path) as stream:
                entry = reader.run_pickle(stream, f"{root.name}/{path.name}")
        except (OSError, EOFError) as exc:
            raise ImportFormatError(
                f"{path}: cannot decompress ({exc}); download it again"
            ) from None
        if not _is_arch_entry(entry):
            raise ImportFormatError(
                f"{path}: holds {type(entry).__name__} {list(entry)[:4] if isinstance(entry, dict) else ''}, "
                f"not {{schedule: results}} with schedule keys {sorted(_HP_KEYS)}"
            )
        reader.consume(key, entry)
        if progress is not None:
            progress(done, len(files))
    reader.check_meta(meta_archs)
    listed = ([meta_path] if meta_path.is_file() else []) + files
    return {
        "layout": "NATS-Bench archive directory",
        "file": root.name,
        "files": len(listed),
        "size_bytes": sum(p.stat().st_size for p in listed),
    }, listed


def read_nb201(
    path: str | Path,
    dataset: str,
    *,
    epochs: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> Nb201Data:
    """Read one dataset and schedule of a NAS-Bench-201 / NATS-Bench topology source.

    Parameters
    ----------
    path
        The ``.pth`` file, a bz2 pickle of the same dictionary, or a NATS
        archive directory (``meta.pickle.pbz2`` + ``{index:06d}.pickle.pbz2``).
    dataset
        ``cifar10-valid``, ``cifar10``, ``cifar100`` or ``ImageNet16-120``.
    epochs
        Schedule: 200 (NB201 ``full``, NATS ``200``) or 12 (``less`` / ``12``).
        The table's epoch axis is the runs' own ``epochs`` (equal for all runs).
    progress
        Optional ``progress(done, total)`` for directory sources.
    """
    path = Path(path)
    if not path.exists():
        raise ImportFormatError(f"{path}: no such file or directory")
    reader = _Reader(dataset, epochs, path.name)
    try:
        if path.is_dir():
            source, listed = _read_nats_dir(reader, path, progress)
            source["sha256"] = sha256_tree(listed, path)
            source["sha256_of"] = "sha256 over (relative name, sha256 of content) of each file"
        else:
            source = _read_single(reader, path)
            source["sha256"] = sha256_file(path)
    except NasbenchError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ImportFormatError(f"{path}: cannot be read ({exc}); download it again") from None
    if not reader.present.any():
        raise ImportFormatError(
            f"{path}: has no {epochs}-epoch results for dataset {dataset!r}; check --dataset "
            f"(NB201 names: {', '.join(DATASETS)}) and --epochs"
        )
    source.update(
        {
            "benchmark": "NAS-Bench-201 / NATS-Bench topology search space",
            "dataset": dataset,
            "schedule_epochs": epochs,
            "schedule_keys": list(reader.hp_keys),
            "split_names": {"valid": reader.spec.valid, "test": reader.spec.test},
        }
    )
    return Nb201Data(
        n_archs=reader.n,
        epochs=reader.n_epochs,
        per_seed=reader.per_seed,
        arch_sums=reader.arch_sums,
        arch_counts=reader.arch_counts,
        present=reader.present,
        source=source,
        eval_seconds=dict(reader.eval_seconds),
    )


def _recipe(epochs: int) -> dict[str, Any]:
    return {
        "source": "NAS-Bench-201 (Dong & Yang, ICLR 2020) / NATS-Bench (TPAMI 2021)",
        "optimizer": "SGD, Nesterov momentum 0.9, weight decay 5e-4",
        "lr_schedule": "0.1, cosine annealing to 0",
        "batch_size": 256,
        "epochs": epochs,
        "augmentation": "random crop and horizontal flip",
        "channels": 16,
        "cells_per_stage": 5,
    }


def _not_recorded(
    metrics: dict[str, np.ndarray],
    arch_metrics: dict[str, np.ndarray],
    rows: np.ndarray,
    split_names: dict,
) -> dict:
    """Provenance ``not_recorded``: a missing validation split, arch metrics the source
    never measured (NB201's latency -1 on every imported arch) and the absent runs."""
    has_value = np.zeros(metrics["train_time_s"].shape[:2], dtype=bool)
    for values in metrics.values():
        has_value |= ~np.isnan(values).all(axis=2)
    absent = int((~has_value[rows]).sum())
    never = [name for name, values in arch_metrics.items() if np.isnan(values[rows]).all()]
    out: dict[str, Any] = {"epoch_metrics": {}, "arch_metrics": never, "absent_runs": absent}
    why = [f"{absent} (arch, seed) run(s) are not in the source"]
    if split_names.get("valid") is None:
        out["epoch_metrics"] = {"valid_acc": "all", "valid_loss": "all"}
        why.insert(0, "the dataset has no validation split in NB201")
    if never:
        why.append(f"the source has no {', '.join(never)}")
    out["why"] = "; ".join(why)
    return out


def import_nb201(
    path: str | Path,
    output: str | Path,
    dataset: str,
    *,
    epochs: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import one dataset of a NAS-Bench-201 / NATS-Bench source into a table.

    Rows of archs the source lacks, seeds an arch was not trained with and
    epochs not evaluated are NaN; ``valid_*`` come only from the dataset's
    validation split (NaN for ``cifar10``, which has none). Every arch is its
    own representative (NB201 trained each one), so the table answers each
    arch's own source values. Arch metrics are converted: ``params`` from
    millions to a count, ``flops`` from millions of multiply-adds to flop
    (2 per multiply-add), ``latency_ms`` from the mean of NB201's seconds.
    """
    from nasbench_harness.table import schema
    from nasbench_harness.table.writer import write_table

    start = time.perf_counter()
    check_output(output, path)
    data = read_nb201(path, dataset, epochs=epochs, progress=progress)
    seeds = sorted(data.per_seed)
    metrics = {}
    for metric in EPOCH_METRICS:
        stacked = np.empty((data.n_archs, len(seeds), data.epochs), dtype=np.float32)
        for i, seed in enumerate(seeds):
            stacked[:, i, :] = data.per_seed[seed].pop(metric)
        metrics[metric] = stacked
    data.per_seed.clear()
    arch_metrics = {}
    for name, sums in data.arch_sums.items():
        counts = data.arch_counts[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            arch_metrics[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    arch_metrics["params"] = np.round(arch_metrics["params"])
    rows = np.flatnonzero(data.present)
    spec = DATASETS[dataset]
    provenance: dict[str, Any] = {
        "dataset": {
            "name": dataset,
            "splits": dict(spec.splits),
            "split_sizes": dict(spec.split_sizes),
            "split_seed": 0,
            "split_note": "NB201 splits come from its published split files, not from a seed",
            "n_classes": spec.n_classes,
            "input_shape": list(spec.input_shape),
        },
        "recipe": _recipe(epochs),
        "code_version": "trained by the NAS-Bench-201 / NATS-Bench authors (xautodl)",
        "device": "NAS-Bench-201 build GPUs; train times are NB201's per-epoch records "
        "(estimates, identical across seeds)",
        "build_time_s": 0.0,
        "build_time_note": "unknown for imported tables (0 = not recorded)",
        "synthetic": False,
        "created": schema.now_iso(),
        "source": data.source,
        "conversions": {
            "params": "NB201 params (millions) * 1e6",
            "flops": "NB201 flop (millions of multiply-adds) * 2e6",
            "latency_ms": "mean of NB201 latency list (seconds) * 1e3; -1 (not measured) -> NaN",
            "arch_metrics_over_seeds": "mean over the seeds that have a value",
            "eval_time_s": "sum of NB201 eval_times of the valid and test splits",
            "epochs": "NB201 epoch i (0-based) -> table epoch i + 1",
        },
    }
    if data.eval_seconds.get("valid", 0) > 0 and data.eval_seconds.get("all", 0) > 0:
        # the validation part of eval_time_s, for a simulator that charges evaluation
        provenance["eval_time_valid_share"] = data.eval_seconds["valid"] / data.eval_seconds["all"]
    if rows.size < data.n_archs:
        provenance["build"] = {"planned_archs": rows.tolist()}
    provenance[schema.NOT_RECORDED] = _not_recorded(
        metrics, arch_metrics, rows, data.source["split_names"]
    )
    write_table(
        output,
        space="nb201",
        metrics=metrics,
        arch_metrics=arch_metrics,
        seeds=seeds,
        provenance=provenance,
        canonical=np.arange(data.n_archs, dtype=np.int64),
    )
    holes = count_holes(metrics, rows)
    return ImportResult(
        table=Path(output),
        space="nb201",
        n_imported=int(rows.size),
        seeds=tuple(int(s) for s in seeds),
        epochs=data.epochs,
        holes=holes,
        source=data.source,
        wall_s=time.perf_counter() - start,
    )
