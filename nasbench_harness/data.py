"""Datasets with fixed, recorded train/valid/test splits, held in memory as tensors.

Three kinds of data set:

- generated offline: ``mnist1d`` (the MNIST-1D generator, fixed generation
  seed; all samples pooled, then split),
- bundled: ``digits`` (scikit-learn's 8x8 digits; pooled, then split),
- local disk: ``cifar10`` and ``cifar100`` in the standard CIFAR "python"
  pickle format under ``root`` (never downloaded). ``cifar10`` takes its
  validation split from the training set (NB201's cifar10-valid style: train
  on part of the 50k, validate on the rest, test on the official 10k);
  ``cifar100`` keeps all 50k for training and splits the official test set
  into disjoint valid and test parts (NB201 style; here by the split seed).

Every split is drawn by a ``numpy.random.Generator`` seeded with ``seed``
and recorded in :attr:`Splits.info`. Inputs are standardised per channel
with the mean and standard deviation of the training split only.
"""

from __future__ import annotations

import functools
import os
import pickle
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasbench_harness.errors import BuildError

__all__ = ["DATASETS", "DatasetSpec", "Splits", "dataset_info", "load_dataset"]

SPLITS = ("train", "valid", "test")
MNIST1D_GENERATION_SEED = 42  # the generator's published default


@dataclass(frozen=True, eq=False)
class Splits:
    """A data set split three ways: float32 inputs ``(n, *input_shape)``, int64 labels ``(n,)``.

    ``info`` records what is needed to rebuild the same splits: ``name``,
    ``splits`` (sizes), ``split_seed``, ``input_shape``, ``n_classes``,
    ``source``, ``valid_from`` and the ``standardisation`` statistics.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> Splits:
        """The same splits with every tensor on ``device`` (self when already there)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        tensors = {name: getattr(self, name).to(device) for name in _TENSOR_FIELDS}
        return Splits(**tensors, info=self.info)


_TENSOR_FIELDS = ("train_x", "train_y", "valid_x", "valid_y", "test_x", "test_y")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its shape, classes, default split sizes and loader."""

    name: str
    input_shape: tuple[int, ...]
    n_classes: int
    default_sizes: dict[str, int]
    source: str
    valid_from: str
    needs_root: bool
    loader: Callable[..., tuple[dict[str, np.ndarray], dict[str, Any]]] = field(repr=False)


def _resolve_sizes(spec: DatasetSpec, sizes: dict[str, Any]) -> dict[str, int]:
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise BuildError(
            f"unknown split size(s) {unknown} for data set {spec.name!r}: "
            f"give sizes as train=, valid=, test="
        )
    resolved = dict(spec.default_sizes)
    for name, value in sizes.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BuildError(
                f"{name}={value!r} for data set {spec.name!r}: give a positive integer"
            )
        resolved[name] = int(value)
    return resolved


def _check_capacity(name: str, what: str, wanted: int, available: int) -> None:
    if wanted > available:
        raise BuildError(
            f"data set {name!r}: {what} splits need {wanted} samples but only {available} "
            "exist; give smaller split sizes"
        )


# --- generated and bundled data -------------------------------------------


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$NASBENCH_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nasbench-harness``, else ``~/.cache/nasbench-harness``."""
    explicit = os.environ.get("NASBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nasbench-harness"


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``num_samples`` MNIST-1D samples (train and test parts of the generator together).

    Generation takes seconds, paid by every build worker at start-up, so the
    result is cached on disk (:func:`cache_dir`), keyed by size, seed and the
    mnist1d version; an unreadable cache file is regenerated, an unwritable
    cache directory is skipped.
    """
    import importlib.metadata

    version = importlib.metadata.version("mnist1d")
    path = cache_dir() / f"mnist1d-{version}-n{num_samples}-seed{MNIST1D_GENERATION_SEED}.npz"
    try:
        with np.load(path, allow_pickle=False) as cached:
            x, y = cached["x"], cached["y"]
        if x.shape == (num_samples, 40) and y.shape == (num_samples,):
            x.flags.writeable = False
            y.flags.writeable = False
            return x, y
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # missing or damaged: generate it again
    x, y = _run_mnist1d_generator(num_samples)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, x=x, y=y)
        os.replace(tmp, path)  # whole or not at all, also with workers writing at once
    except OSError:
        pass  # a read-only home: run without the cache
    return x, y


def _run_mnist1d_generator(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = MNIST1D_GENERATION_SEED
    args.train_split = 1.0
    # The generator seeds and draws from numpy's and Python's global RNGs: leave no trace.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        generated = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x = np.concatenate([generated["x"], generated["x_test"]]).astype(np.float32)
    y = np.concatenate([generated["y"], generated["y_test"]]).astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _load_mnist1d(sizes: dict[str, int], seed: int, root: Path | None):
    total = sum(sizes.values())
    num_samples = -(-total // 10) * 10  # the generator makes num_samples // 10 per class
    x, y = _generate_mnist1d(num_samples)
    order = np.random.default_rng(seed).permutation(len(y))
    parts = _split_pool(order, sizes)
    arrays = {}
    for name in SPLITS:
        arrays[f"{name}_x"] = x[parts[name]][:, None, :]
        arrays[f"{name}_y"] = y[parts[name]]
    extra = {
        "generator": {
            "package": "mnist1d",
            "num_samples": num_samples,
            "seed": MNIST1D_GENERATION_SEED,
            "final_seq_length": 40,
            "other_args": "mnist1d.data.get_dataset_args() defaults",
        }
    }
    return arrays, extra


def _load_digits(sizes: dict[str, int], seed: int, root: Path | None):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # pixel values 0..16
    y = bunch.target.astype(np.int64)
    _check_capacity("digits", "train+valid+test", sum(sizes.values()), len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    parts = _split_pool(order, sizes)
    arrays = {}
    for name in SPLITS:
        arrays[f"{name}_x"] = x[parts[name]]
        arrays[f"{name}_y"] = y[parts[name]]
    return arrays, {"scaling": "pixel / 16, then standardised"}


def _split_pool(order: np.ndarray, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Consecutive, disjoint slices of a permutation: train, then valid, then test."""
    parts, start = {}, 0
    for name in SPLITS:
        parts[name] = order[start : start + sizes[name]]
        start += sizes[name]
    return parts


# --- CIFAR from a local directory -----------------------------------------

_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train_files": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_files": ("test_batch",),
        "label_key": b"labels",
        "archive": "cifar-10-python.tar.gz",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train_files": ("train",),
        "test_files": ("test",),
        "label_key": b"fine_labels",
        "archive": "cifar-100-python.tar.gz",
    },
}


def _cifar_folder(name: str, root: Path | None) -> Path:
    layout = _CIFAR[name]
    wanted = ", ".join(layout["train_files"] + layout["test_files"])
    how = (
        f"extract {layout['archive']} (the 'python version' from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html) into a directory and pass it as root "
        f"(--data-root DIR of nasbench build, search and proxies), "
        f"so that root/{layout['folder']}/ holds {wanted}; nothing is downloaded"
    )
    if root is None:
        raise BuildError(f"data set {name!r} is read from local disk but no root was given: {how}")
    root = Path(root).expanduser()
    folder = root if root.name == layout["folder"] else root / layout["folder"]
    missing = [
        f for f in layout["train_files"] + layout["test_files"] if not (folder / f).is_file()
    ]
    if missing:
        raise BuildError(f"data set {name!r}: {folder / missing[0]} not found: {how}")
    return folder


def _read_cifar_files(name: str, folder: Path, files: tuple[str, ...]):
    label_key = _CIFAR[name]["label_key"]
    xs, ys = [], []
    for file_name in files:
        path = folder / file_name
        try:
            with open(path, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")  # the format is a pickle
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[label_key], dtype=np.int64)
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
            raise BuildError(
                f"{path} is not a CIFAR python batch ({exc!r}): expected a pickled dict with "
                f"b'data' (uint8, N x 3072) and {label_key!r}; re-extract the original archive"
            ) from exc
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise BuildError(
                f"{path}: b'data' has shape {data.shape} and {len(labels)} labels; expected "
                "(N, 3072) and N labels; re-extract the original archive"
            )
        xs.append(data)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _cifar_images(data: np.ndarray) -> np.ndarray:
    return (data.reshape(-1, 3, 32, 32).astype(np.float32)) / np.float32(255.0)


def _load_cifar(name: str, sizes: dict[str, int], seed: int, root: Path | None):
    folder = _cifar_folder(name, root)
    layout = _CIFAR[name]
    train_data, train_labels = _read_cifar_files(name, folder, layout["train_files"])
    test_data, test_labels = _read_cifar_files(name, folder, layout["test_files"])
    rng = np.random.default_rng(seed)
    if name == "cifar10":  # valid from train; test from the official test set
        _check_capacity(name, "train+valid", sizes["train"] + sizes["valid"], len(train_labels))
        _check_capacity(name, "test", sizes["test"], len(test_labels))
        order = rng.permutation(len(train_labels))
        train_idx = order[: sizes["train"]]
        valid_idx = order[sizes["train"] : sizes["train"] + sizes["valid"]]
        test_idx = rng.permutation(len(test_labels))[: sizes["test"]]
        pick = {
            "train": (train_data, train_labels, train_idx),
            "valid": (train_data, train_labels, valid_idx),
            "test": (test_data, test_labels, test_idx),
        }
    else:  # cifar100: valid and test are disjoint parts of the official test set
        _check_capacity(name, "train", sizes["train"], len(train_labels))
        _check_capacity(name, "valid+test", sizes["valid"] + sizes["test"], len(test_labels))
        train_idx = rng.permutation(len(train_labels))[: sizes["train"]]
        order = rng.permutation(len(test_labels))
        pick = {
            "train": (train_data, train_labels, train_idx),
            "valid": (test_data, test_labels, order[: sizes["valid"]]),
            "test": (
                test_data,
                test_labels,
                order[sizes["valid"] : sizes["valid"] + sizes["test"]],
            ),
        }
    arrays = {}
    for split, (data, labels, idx) in pick.items():
        arrays[f"{split}_x"] = _cifar_images(data[idx])
        arrays[f"{split}_y"] = labels[idx]
    return arrays, {"files": str(folder), "scaling": "pixel / 255, then standardised"}


# --- registry and entry point ----------------------------------------------

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mnist1d",
            input_shape=(1, 40),
            n_classes=10,
            default_sizes={"train": 4000, "valid": 2000, "test": 2000},
            source="MNIST-1D (Greydanus 2020), generated offline by the mnist1d package",
            valid_from="pool",
            needs_root=False,
            loader=_load_mnist1d,
        ),
        DatasetSpec(
            name="digits",
            input_shape=(1, 8, 8),
            n_classes=10,
            default_sizes={"train": 1000, "valid": 397, "test": 400},
            source="scikit-learn load_digits (UCI optical digits, 1,797 8x8 images), bundled",
            valid_from="pool",
            needs_root=False,
            loader=_load_digits,
        ),
        DatasetSpec(
            name="cifar10",
            input_shape=(3, 32, 32),
            n_classes=10,
            default_sizes={"train": 25000, "valid": 25000, "test": 10000},
            source="CIFAR-10 python batches from a local directory (cifar-10-batches-py)",
            valid_from="train",
            needs_root=True,
            loader=functools.partial(_load_cifar, "cifar10"),
        ),
        DatasetSpec(
            name="cifar100",
            input_shape=(3, 32, 32),
            n_classes=100,
            default_sizes={"train": 50000, "valid": 5000, "test": 5000},
            source="CIFAR-100 python files from a local directory (cifar-100-python)",
            valid_from="test",
            needs_root=True,
            loader=functools.partial(_load_cifar, "cifar100"),
        ),
    )
}

_VALID_FROM = {
    "pool": "train, valid and test are disjoint slices of one seeded shuffle of all samples",
    "train": "valid is a disjoint seeded part of the official training set; test is the official test set",
    "test": "train is the official training set; valid and test are disjoint seeded parts of the official test set",
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise BuildError(f"unknown data set {name!r}: use one of {sorted(DATASETS)}")
    return DATASETS[name]


def dataset_info(name: str) -> dict[str, Any]:
    """What a registered data set is, without loading it (JSON-ready)."""
    spec = _spec(name)
    return {
        "name": spec.name,
        "input_shape": list(spec.input_shape),
        "n_classes": spec.n_classes,
        "default_splits": dict(spec.default_sizes),
        "source": spec.source,
        "valid_from": spec.valid_from,
        "split_rule": _VALID_FROM[spec.valid_from],
        "needs_root": spec.needs_root,
    }


def _channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation in float64 (two passes, in chunks)."""
    axes = (0, *range(2, x.ndim))
    count = x.shape[0] * int(np.prod(x.shape[2:]))
    total = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        total += x[start : start + chunk].sum(axis=axes, dtype=np.float64)
    mean = total / count
    squares = np.zeros(x.shape[1])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    for start in range(0, len(x), chunk):
        deviation = x[start : start + chunk].astype(np.float64) - mean.reshape(shape)
        squares += (deviation**2).sum(axis=axes)
    std = np.sqrt(squares / count)
    return mean, np.where(std > 0, std, 1.0)


def load_dataset(
    name: str, *, seed: int = 0, root: str | Path | None = None, **sizes: int | None
) -> Splits:
    """Load a registered data set and split it with ``seed``.

    Parameters
    ----------
    name
        One of :data:`DATASETS` (``mnist1d``, ``digits``, ``cifar10``, ``cifar100``).
    seed
        Split seed: the same seed and sizes give the same splits, bit for bit.
    root
        Directory holding the CIFAR files (only for ``cifar10``/``cifar100``).
    **sizes
        ``train=``, ``valid=``, ``test=`` sample counts; omitted or None ones
        take the data set's defaults (see :func:`dataset_info`).
    """
    spec = _spec(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BuildError(f"seed={seed!r} is not valid: give a non-negative integer split seed")
    resolved = _resolve_sizes(spec, sizes)
    arrays, extra = spec.loader(resolved, int(seed), None if root is None else Path(root))
    mean, std = _channel_stats(arrays["train_x"])
    shape = (1, -1) + (1,) * (len(spec.input_shape) - 1)
    mean32 = mean.astype(np.float32).reshape(shape)
    std32 = std.astype(np.float32).reshape(shape)
    tensors = {}
    for split in SPLITS:
        x = (arrays[f"{split}_x"] - mean32) / std32
        tensors[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        tensors[f"{split}_y"] = torch.from_numpy(
            np.ascontiguousarray(arrays[f"{split}_y"], dtype=np.int64)
        )
    info = {
        "name": spec.name,
        "splits": {split: int(len(tensors[f"{split}_y"])) for split in SPLITS},
        "split_seed": int(seed),
        "input_shape": list(spec.input_shape),
        "n_classes": spec.n_classes,
        "source": spec.source,
        "valid_from": spec.valid_from,
        "split_rule": _VALID_FROM[spec.valid_from],
        "standardisation": {
            "statistic": "per-channel mean and std of the train split",
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        },
        **extra,
    }
    return Splits(**tensors, info=info)
