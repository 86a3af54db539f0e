"""Names, units and rules of the table format, version 1 (see ``docs/format.md``).

Everything the writer, the reader and the validator agree on lives here, so
that a format change is a change of this module and of the spec, nothing else.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Value of the root attribute ``encoding-type``.
ENCODING_TYPE = "nasbench-table"
#: Value of the root attribute ``encoding-version`` this code writes and reads.
ENCODING_VERSION = "1"
#: Root attribute names.
ATTR_TYPE = "encoding-type"
ATTR_VERSION = "encoding-version"
ATTR_PROVENANCE = "provenance"

#: Per-epoch metrics every table MUST have, stored as float32 ``(n_archs, S, E)``.
EPOCH_METRICS_MUST = (
    "train_acc",
    "train_loss",
    "valid_acc",
    "valid_loss",
    "test_acc",
    "test_loss",
    "train_time_s",
)
#: Per-epoch metrics a table MAY have.
EPOCH_METRICS_MAY = ("eval_time_s",)
EPOCH_METRICS = EPOCH_METRICS_MUST + EPOCH_METRICS_MAY
#: Per-arch metrics every table MUST have, stored as float64 ``(n_archs,)``.
ARCH_METRICS = ("params", "flops", "latency_ms")

#: Unit of every metric (HDF5 attribute ``units`` of its dataset).
UNITS = {
    "train_acc": "percent",
    "valid_acc": "percent",
    "test_acc": "percent",
    "train_loss": "nats",
    "valid_loss": "nats",
    "test_loss": "nats",
    "train_time_s": "s",
    "eval_time_s": "s",
    "params": "count",
    "flops": "flop",
    "latency_ms": "ms",
}
#: One-line meaning of every metric (HDF5 attribute ``description``).
DESCRIPTIONS = {
    "train_acc": "accuracy on the training split after the epoch",
    "valid_acc": "accuracy on the validation split after the epoch",
    "test_acc": "accuracy on the test split after the epoch",
    "train_loss": "mean cross-entropy on the training split after the epoch",
    "valid_loss": "mean cross-entropy on the validation split after the epoch",
    "test_loss": "mean cross-entropy on the test split after the epoch",
    "train_time_s": "wall time of training in this epoch alone (not cumulative)",
    "eval_time_s": "wall time of evaluating all splits after this epoch",
    "params": "number of trainable parameters",
    "flops": "floating-point operations of one forward pass of one sample",
    "latency_ms": "wall time of one forward pass of one sample (batch size 1) on the build device",
}
ACC_METRICS = ("train_acc", "valid_acc", "test_acc")
LOSS_METRICS = ("train_loss", "valid_loss", "test_loss")
TIME_METRICS = ("train_time_s", "eval_time_s")

#: Provenance keys every table MUST record (root attribute ``provenance``, JSON).
PROVENANCE_KEYS = (
    "space",
    "dataset",
    "recipe",
    "seeds",
    "epochs",
    "code_version",
    "device",
    "build_time_s",
    "created",
    "synthetic",
)
#: Keys of ``provenance["dataset"]``.
DATASET_KEYS = ("name", "splits", "split_seed", "n_classes", "input_shape")
#: Keys of ``provenance["dataset"]["splits"]``.
SPLIT_KEYS = ("train", "valid", "test")

#: Attributes of a ``/proxies/<name>`` dataset.
PROXY_ATTRS = ("definition", "seeds", "n_failures", "created")
#: Allowed proxy names (one HDF5 path component).
PROXY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
#: Prefix that turns a proxy name into a metric name (``proxy/<name>``).
PROXY_PREFIX = "proxy/"

#: Uncompressed bytes aimed at per chunk of an epoch-metric dataset.
#: About 1 MiB: reading a whole 200-epoch table measured fastest at 0.6 to
#: 2.5 MB per chunk (smaller chunks add per-chunk overhead, larger ones only
#: cost memory while inflating).
CHUNK_BYTES = 1 << 20
#: gzip level: levels above 4 barely shrink float data and write slower.
GZIP_LEVEL = 4


def now_iso() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_chunks(n_archs: int, n_seeds: int, n_epochs: int) -> tuple[int, int, int]:
    """Chunk shape of an epoch-metric dataset: whole (seed, epoch) planes of many archs."""
    rows = max(1, min(n_archs, CHUNK_BYTES // max(1, 4 * n_seeds * n_epochs)))
    return (rows, n_seeds, n_epochs)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def provenance_problems(prov: Any) -> list[str]:
    """Problems of a provenance mapping against the v1 rules (empty = fine)."""
    if not isinstance(prov, Mapping):
        return [f"provenance must be a JSON object, got {type(prov).__name__}"]
    problems = []
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    if missing:
        problems.append(f"provenance is missing key(s) {', '.join(missing)}")
    if "space" in prov and not isinstance(prov["space"], str):
        problems.append("provenance 'space' must be a space name such as 'nb201'")
    if "dataset" in prov:
        ds = prov["dataset"]
        if not isinstance(ds, Mapping):
            problems.append("provenance 'dataset' must be an object")
        else:
            miss = [k for k in DATASET_KEYS if k not in ds]
            if miss:
                problems.append(f"provenance 'dataset' is missing key(s) {', '.join(miss)}")
            if "name" in ds and not (isinstance(ds["name"], str) and ds["name"]):
                problems.append("provenance dataset 'name' must be a non-empty string")
            if "splits" in ds:
                splits = ds["splits"]
                if not isinstance(splits, Mapping):
                    problems.append("provenance dataset 'splits' must be an object")
                else:
                    miss = [k for k in SPLIT_KEYS if k not in splits]
                    if miss:
                        problems.append(
                            f"provenance dataset 'splits' is missing key(s) {', '.join(miss)}"
                        )
            if "split_seed" in ds and not _is_int(ds["split_seed"]):
                problems.append("provenance dataset 'split_seed' must be an integer")
            if "n_classes" in ds and not (_is_int(ds["n_classes"]) and ds["n_classes"] >= 2):
                problems.append("provenance dataset 'n_classes' must be an integer >= 2")
            if "input_shape" in ds:
                shape = ds["input_shape"]
                if not (
                    isinstance(shape, (list, tuple))
                    and shape
                    and all(_is_int(s) and s > 0 for s in shape)
                ):
                    problems.append(
                        "provenance dataset 'input_shape' must be a list of positive integers"
                    )
    if "recipe" in prov and not isinstance(prov["recipe"], Mapping):
        problems.append("provenance 'recipe' must be an object")
    if "seeds" in prov:
        seeds = prov["seeds"]
        if not (isinstance(seeds, (list, tuple)) and seeds and all(_is_int(s) for s in seeds)):
            problems.append("provenance 'seeds' must be a non-empty list of integers")
    if "epochs" in prov and not (_is_int(prov["epochs"]) and prov["epochs"] >= 1):
        problems.append("provenance 'epochs' must be an integer >= 1")
    for key in ("code_version", "device"):
        if key in prov and not isinstance(prov[key], str):
            problems.append(f"provenance '{key}' must be a string")
    if "build_time_s" in prov:
        value = prov["build_time_s"]
        if not (_is_number(value) and math.isfinite(value) and value >= 0):
            problems.append("provenance 'build_time_s' must be a number of seconds >= 0")
    if "created" in prov:
        created = prov["created"]
        if not isinstance(created, str) or not _is_iso_utc(created):
            problems.append(
                "provenance 'created' must be an ISO 8601 UTC time such as 2024-05-01T12:00:00Z"
            )
    if "synthetic" in prov and not isinstance(prov["synthetic"], bool):
        problems.append("provenance 'synthetic' must be true or false")
    return problems


def _is_iso_utc(text: str) -> bool:
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return stamp.utcoffset() == _dt.timedelta(0)


#: Optional provenance key declaring what the source of a table never recorded.
NOT_RECORDED = "not_recorded"


class NotRecorded:
    """What a table's source never recorded (provenance ``not_recorded``, see docs/format.md).

    An imported benchmark can lack whole metrics (NB201's ``cifar10`` has no
    validation split), evaluate only some epochs (NB101: half-way and final),
    or lack some training runs (an NB201 arch trained with two of three
    seeds). Declared gaps are NaN like any hole, but they are not *missing
    results*: the validator checks that they are NaN and does not count them.

    Attributes
    ----------
    epoch_metrics
        Metric name -> boolean mask over the epoch axis, true at the epochs
        the source never recorded for it (all true for ``"all"``).
    arch_metrics
        Arch metrics the source never recorded (wholly NaN).
    absent_runs
        Number of (representative arch, seed) runs the source does not have
        (every epoch metric NaN at every epoch), or None when undeclared.
    problems
        What is malformed in the declaration (empty = fine).
    """

    def __init__(self, prov: Any, n_epochs: int | None) -> None:
        self.epoch_metrics: dict[str, Any] = {}
        self.arch_metrics: tuple[str, ...] = ()
        self.absent_runs: int | None = None
        self.problems: list[str] = []
        value = prov.get(NOT_RECORDED) if isinstance(prov, Mapping) else None
        if value is None:
            return
        label = f"provenance {NOT_RECORDED}"
        if not isinstance(value, Mapping):
            self.problems.append(f"{label} must be an object (see docs/format.md)")
            return
        unknown = sorted(set(value) - {"epoch_metrics", "arch_metrics", "absent_runs", "why"})
        if unknown:
            self.problems.append(
                f"{label} has unknown key(s) {', '.join(unknown)}; "
                "allowed: epoch_metrics, arch_metrics, absent_runs, why"
            )
        self._parse_epoch_metrics(value.get("epoch_metrics", {}), n_epochs, label)
        names = value.get("arch_metrics", [])
        if not (isinstance(names, (list, tuple)) and all(n in ARCH_METRICS for n in names)):
            self.problems.append(
                f"{label}.arch_metrics must be a list of arch metrics ({', '.join(ARCH_METRICS)})"
            )
        else:
            self.arch_metrics = tuple(names)
        if "absent_runs" in value:
            runs = value["absent_runs"]
            if _is_int(runs) and runs >= 0:
                self.absent_runs = int(runs)
            else:
                self.problems.append(f"{label}.absent_runs must be an integer >= 0")

    def _parse_epoch_metrics(self, value: Any, n_epochs: int | None, label: str) -> None:
        if not isinstance(value, Mapping):
            self.problems.append(f"{label}.epoch_metrics must be an object: metric -> epochs")
            return
        for name, epochs in value.items():
            if name not in EPOCH_METRICS:
                self.problems.append(
                    f"{label}.epoch_metrics: {name!r} is not an epoch metric "
                    f"({', '.join(EPOCH_METRICS)})"
                )
                continue
            if n_epochs is None:
                continue
            mask = np.zeros(n_epochs, dtype=bool)
            if epochs == "all":
                mask[:] = True
            elif isinstance(epochs, (list, tuple)) and all(
                _is_int(e) and 1 <= e <= n_epochs for e in epochs
            ):
                mask[np.asarray(epochs, dtype=np.int64) - 1] = True
            else:
                self.problems.append(
                    f'{label}.epoch_metrics[{name!r}] must be "all" or a list of epochs '
                    f"in 1..{n_epochs}"
                )
                continue
            self.epoch_metrics[name] = mask

    def epoch_mask(self, metric: str, n_epochs: int):
        """Boolean ``(E,)``: true at the epochs ``metric`` was never recorded."""
        mask = self.epoch_metrics.get(metric)
        return np.zeros(n_epochs, dtype=bool) if mask is None else mask

    def never(self, metric: str) -> bool:
        """Whether ``metric`` was recorded at no epoch (or is a never-recorded arch metric)."""
        if metric in self.arch_metrics:
            return True
        mask = self.epoch_metrics.get(metric)
        return mask is not None and bool(mask.all())
