"""Import NAS-Bench-101 (``nasbench_full.tfrecord`` / ``nasbench_only108.tfrecord``).

Each TFRecord record (read by :mod:`.tfrecord`, no TensorFlow) is the UTF-8
JSON list ``[module_hash, epochs, raw_adjacency, raw_operations,
raw_metrics]``: ``raw_adjacency`` is the row-major 0/1 string of the
(pruned) adjacency matrix, ``raw_operations`` the comma-separated ops, and
``raw_metrics`` a base64 ``ModelMetrics`` protobuf (``model_metrics.proto``)::

    message EvaluationData {            message ModelMetrics {
      double current_epoch = 1;           repeated EvaluationData evaluation_data = 1;
      double training_time = 2;           int32 trainable_parameters = 2;
      double train_accuracy = 3;          double total_time = 3;
      double validation_accuracy = 4;   }
      double test_accuracy = 5;
      string checkpoint_path = 6;
    }

One record is one training run (one repeat) of one cell at one epoch budget
(4, 12, 36 or 108). ``evaluation_data`` holds the evaluations at the start,
halfway and end of training; ``training_time`` is cumulative seconds,
accuracies are fractions.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.errors import ArchError
from nasbench_harness.importers._common import (
    ImportFormatError,
    ImportResult,
    check_output,
    count_holes,
    sha256_file,
)
from nasbench_harness.importers.tfrecord import fast_crc32c, iter_records
from nasbench_harness.table import schema

__all__ = ["BUDGETS", "Nb101Run", "decode_model_metrics", "import_nb101", "parse_record"]

#: Epoch budgets NAS-Bench-101 trained with.
BUDGETS = (4, 12, 36, 108)
#: Repeats per (cell, budget) in NAS-Bench-101.
REPEATS = 3
_DOUBLE = struct.Struct("<d")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One ``EvaluationData``: epoch, cumulative training seconds, accuracies (fractions)."""

    epoch: float = math.nan
    training_time: float = math.nan
    train_accuracy: float = math.nan
    validation_accuracy: float = math.nan
    test_accuracy: float = math.nan


@dataclasses.dataclass(frozen=True)
class Nb101Run:
    """One record: one training run of one cell at one budget."""

    module_hash: str
    epochs: int
    matrix: np.ndarray
    ops: list[str]
    evaluations: tuple[Evaluation, ...]
    trainable_parameters: int | None
    total_time: float


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes):
    """Yield ``(field_number, wire_type, value)`` of a protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value = data[pos : pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        elif wire == 5:
            value = data[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


_EVAL_FIELDS = {
    1: "epoch",
    2: "training_time",
    3: "train_accuracy",
    4: "validation_accuracy",
    5: "test_accuracy",
}


def decode_model_metrics(data: bytes) -> tuple[tuple[Evaluation, ...], int | None, float]:
    """Decode a serialized ``ModelMetrics``: (evaluations, trainable params, total time)."""
    evaluations = []
    params = None
    total = math.nan
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            values = {}
            for sub, sub_wire, sub_value in _fields(value):
                if sub in _EVAL_FIELDS and sub_wire == 1:
                    values[_EVAL_FIELDS[sub]] = _DOUBLE.unpack(sub_value)[0]
            evaluations.append(Evaluation(**values))
        elif number == 2 and wire == 0:
            params = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3 and wire == 1:
            total = _DOUBLE.unpack(value)[0]
    return tuple(evaluations), params, total


def parse_record(data: bytes, label: str = "record") -> Nb101Run:
    """Parse one NAS-Bench-101 record (see the module docstring)."""
    try:
        module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(
            data.decode("utf-8")
        )
        dim = math.isqrt(len(raw_adjacency))
        if dim * dim != len(raw_adjacency) or set(raw_adjacency) - {"0", "1"}:
            raise ValueError(f"adjacency {raw_adjacency!r} is not a square 0/1 matrix")
        matrix = np.array([int(c) for c in raw_adjacency], dtype=np.int64).reshape(dim, dim)
        ops = raw_operations.split(",")
        evaluations, params, total = decode_model_metrics(base64.b64decode(raw_metrics))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
        raise ImportFormatError(
            f"{label}: not a NAS-Bench-101 record ([module_hash, epochs, adjacency, "
            f"operations, base64 metrics]): {exc}"
        ) from None
    if not isinstance(epochs, int) or not isinstance(module_hash, str):
        raise ImportFormatError(f"{label}: epochs {epochs!r} / hash {module_hash!r} malformed")
    return Nb101Run(module_hash, epochs, matrix, ops, evaluations, params, total)


#: Table metric -> EvaluationData field (accuracies are fractions in NB101).
_ACCURACIES = {
    "train_acc": "train_accuracy",
    "valid_acc": "validation_accuracy",
    "test_acc": "test_accuracy",
}
#: The per-epoch metrics every table must have (NB101 records no eval times).
EPOCH_METRICS = schema.EPOCH_METRICS_MUST


def import_nb101(
    path: str | Path,
    output: str | Path,
    *,
    epochs: int = 108,
    verify_data: bool | None = None,
) -> ImportResult:
    """Import the runs of one epoch budget of a NAS-Bench-101 TFRecord file.

    The table's epoch axis is ``1..epochs``; NAS-Bench-101 evaluated each run
    halfway and at the end, so accuracies are set at epochs ``epochs // 2``
    and ``epochs`` and are NaN elsewhere; losses are NaN (not recorded). The
    seed axis is the repeat (0, 1, 2: NB101 records no seeds; order of the
    file). ``train_time_s`` spreads each measured span evenly over its
    epochs (the sums to the halfway and final epochs are NB101's
    cumulative ``training_time``). ``params`` is ``trainable_parameters``;
    ``flops`` and ``latency_ms`` are NaN (not in NB101).
    """
    from nasbench_harness.space import get_space
    from nasbench_harness.table import schema
    from nasbench_harness.table.writer import write_table

    start = time.perf_counter()
    check_output(output, path)
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(
            f"{path}: no such file; pass nasbench_only108.tfrecord or nasbench_full.tfrecord"
        )
    if epochs not in BUDGETS:
        raise ImportFormatError(f"NAS-Bench-101 budgets are {BUDGETS}, not {epochs}")
    space = get_space("nb101")
    n = int(space.n_archs)
    half = epochs // 2
    metrics = {m: np.full((n, REPEATS, epochs), np.nan, dtype=np.float32) for m in EPOCH_METRICS}
    params = np.full(n, np.nan)
    repeats = np.zeros(n, dtype=np.int8)
    n_records = 0
    for i, data in enumerate(iter_records(path, verify_data=verify_data)):
        n_records += 1
        run = parse_record(data, f"{path.name}: record {i}")
        if run.epochs != epochs:
            continue
        try:
            index = space.index_of_hash(run.module_hash)
        except ArchError as exc:
            raise ImportFormatError(f"{path.name}: record {i}: {exc}") from None
        r = int(repeats[index])
        if r >= REPEATS:
            raise ImportFormatError(
                f"{path.name}: record {i}: more than {REPEATS} runs of {run.module_hash} at "
                f"{epochs} epochs"
            )
        repeats[index] = r + 1
        if len(run.evaluations) < 3:
            raise ImportFormatError(
                f"{path.name}: record {i}: {len(run.evaluations)} evaluations, expected 3 "
                "(start, halfway, end)"
            )
        halfway, final = run.evaluations[1], run.evaluations[2]
        for metric, field in _ACCURACIES.items():
            metrics[metric][index, r, half - 1] = getattr(halfway, field) * 100.0
            metrics[metric][index, r, epochs - 1] = getattr(final, field) * 100.0
        t_half, t_final = halfway.training_time, final.training_time
        metrics["train_time_s"][index, r, :half] = t_half / half
        metrics["train_time_s"][index, r, half:] = (t_final - t_half) / (epochs - half)
        if run.trainable_parameters is not None:
            params[index] = run.trainable_parameters
    present = np.flatnonzero(repeats > 0)
    if present.size == 0:
        raise ImportFormatError(
            f"{path}: {n_records} records but none at {epochs} epochs; pick --epochs from "
            f"{BUDGETS} (nasbench_only108.tfrecord has 108 only)"
        )
    source = {
        "benchmark": "NAS-Bench-101",
        "layout": "TFRecord",
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "records": n_records,
        "schedule_epochs": epochs,
        "data_crc_checked": bool(fast_crc32c is not None if verify_data is None else verify_data),
    }
    provenance: dict[str, Any] = {
        "dataset": {
            "name": "cifar10",
            "splits": {
                "train": "40,000 images of the CIFAR-10 training set (train_acc on a fixed "
                "10,000 of them)",
                "valid": "the other 10,000 images of the CIFAR-10 training set",
                "test": "the 10,000-image CIFAR-10 test set",
            },
            "split_sizes": {"train": 40_000, "valid": 10_000, "test": 10_000},
            "split_seed": 0,
            "split_note": "NB101's split is fixed by its data files, not by a seed",
            "n_classes": 10,
            "input_shape": [3, 32, 32],
        },
        "recipe": {
            "source": "NAS-Bench-101 (Ying et al., ICML 2019)",
            "optimizer": "RMSProp, momentum 0.9, weight decay 1e-4",
            "lr_schedule": "0.1, cosine decay",
            "batch_size": 256,
            "epochs": epochs,
        },
        "code_version": "trained by the NAS-Bench-101 authors",
        "device": "TPU v2 (NAS-Bench-101)",
        "build_time_s": 0.0,
        "build_time_note": "unknown for imported tables (0 = not recorded)",
        "synthetic": False,
        "created": schema.now_iso(),
        "source": source,
        "seed_axis": "repeat index 0..2 in file order (NB101 records no seeds)",
        "conversions": {
            "accuracies": "NB101 fractions * 100, at epochs epochs//2 and epochs only",
            "train_time_s": "NB101 cumulative training_time spread evenly within each half",
            "losses, flops, latency_ms": "not recorded by NB101: NaN",
        },
    }
    if present.size < n:
        provenance["build"] = {"planned_archs": present.tolist()}
    unevaluated = [e for e in range(1, epochs + 1) if e not in (half, epochs)]
    has_value = ~np.isnan(metrics["train_time_s"][present]).all(axis=2)
    provenance[schema.NOT_RECORDED] = {
        "epoch_metrics": {
            **{m: unevaluated for m in ("train_acc", "valid_acc", "test_acc")},
            **{m: "all" for m in ("train_loss", "valid_loss", "test_loss")},
        },
        "arch_metrics": ["flops", "latency_ms"],
        "absent_runs": int((~has_value).sum()),
        "why": "NB101 evaluated each run half-way and at the end, and records no losses, "
        "FLOPs or latencies",
    }
    write_table(
        output,
        space="nb101",
        metrics=metrics,
        arch_metrics={
            "params": params,
            "flops": np.full(n, np.nan),
            "latency_ms": np.full(n, np.nan),
        },
        seeds=list(range(REPEATS)),
        provenance=provenance,
    )
    return ImportResult(
        table=Path(output),
        space="nb101",
        n_imported=int(present.size),
        seeds=tuple(range(REPEATS)),
        epochs=epochs,
        holes=count_holes(metrics, present),
        source=source,
        wall_s=time.perf_counter() - start,
    )
