"""The training recipe: one (architecture, seed) -> per-epoch curves and costs.

Everything but the measured times (``train_time_s``, ``eval_time_s``,
``latency_ms``) is bit-identical across runs on the CPU for the same seed,
recipe, splits and torch thread count: the model is initialised and the
batches are ordered by ``torch.Generator`` objects derived from the seed, and
no global random state is read or changed.

Curves, per epoch ``e`` (1-based, "after e epochs"):

- ``train_acc`` / ``train_loss``: running means over the epoch's minibatches,
  weighted by batch size, taken in train mode while the weights change (the
  training loss includes label smoothing when the recipe sets it);
- ``valid_*`` / ``test_*``: the whole split evaluated after the epoch in eval
  mode (BatchNorm running statistics), plain cross-entropy.

Accuracies are in percent (0-100).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nasbench_harness import models
from nasbench_harness.data import DATASETS, Splits, load_dataset
from nasbench_harness.errors import BuildError

__all__ = ["Recipe", "TrainResult", "describe_device", "torch_threads", "train_arch"]

LR_SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("none", "crop_flip")


@dataclass(frozen=True)
class Recipe:
    """How every architecture of a table is trained (stored in the table's provenance).

    The defaults are the small CPU recipe (MNIST-1D, C=8, N=2, light
    reductions, 10 epochs); :meth:`nb201` gives NAS-Bench-201's.

    Attributes
    ----------
    dataset, train_size, valid_size, test_size, split_seed
        Data set name and split (sizes None = the data set's defaults).
    channels, cells_per_stage, reduction
        ``C``, ``N`` and the reduction block of the skeleton.
    epochs, batch_size, eval_batch_size
        Training length; the evaluation batch size only affects the speed of a
        trained network's evaluation (eval-mode BN). A supernet path evaluated
        with BN on batch statistics (the one-shot proxy, weight-sharing
        methods) depends on it.
    lr, momentum, nesterov, weight_decay
        SGD; weight decay applies to every parameter (as in NB201).
    lr_schedule
        ``"cosine"``: per step ``lr * (1 + cos(pi * t / T)) / 2`` for step
        ``t = 0..T-1`` of ``T`` steps in all, so it falls to 0 at the end;
        ``"constant"``: ``lr`` throughout.
    label_smoothing
        Of the training loss.
    augmentation
        ``"none"``, or for 2-D inputs ``"crop_flip"`` (pad 4, random crop,
        random horizontal flip, drawn from the seed's generator).
    drop_last
        Drop the last, smaller minibatch of each epoch.
    """

    dataset: str = "mnist1d"
    train_size: int | None = None
    valid_size: int | None = None
    test_size: int | None = None
    split_seed: int = 0
    channels: int = 8
    cells_per_stage: int = 2
    reduction: str = "light"
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    label_smoothing: float = 0.0
    augmentation: str = "none"
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise BuildError(
                f"recipe dataset={self.dataset!r} is not known: use one of {sorted(DATASETS)}"
            )
        for name in ("channels", "epochs", "batch_size", "eval_batch_size"):
            models.check_int(f"recipe {name}", getattr(self, name), 1)
        models.check_int("recipe cells_per_stage", self.cells_per_stage, 0)
        models.check_int("recipe split_seed", self.split_seed, 0)
        for name in ("train_size", "valid_size", "test_size"):
            if getattr(self, name) is not None:
                models.check_int(f"recipe {name}", getattr(self, name), 1)
        for name in ("lr", "momentum", "weight_decay", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise BuildError(f"recipe {name}={value!r} is not valid: give a number >= 0")
            # one spelling per value (0 and 0.0), so that equal recipes fingerprint alike
            object.__setattr__(self, name, float(value))
        if self.label_smoothing >= 1:
            raise BuildError(f"recipe label_smoothing={self.label_smoothing!r}: give a value < 1")
        if self.nesterov and self.momentum == 0:
            raise BuildError(
                "recipe nesterov=True needs momentum > 0: set momentum or nesterov=False"
            )
        checks = (
            ("reduction", models.REDUCTIONS),
            ("lr_schedule", LR_SCHEDULES),
            ("augmentation", AUGMENTATIONS),
        )
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise BuildError(f"recipe {name}={getattr(self, name)!r}: use one of {allowed}")

    @classmethod
    def nb201(cls, dataset: str = "cifar10", **changes: Any) -> Recipe:
        """NAS-Bench-201's 200-epoch recipe (C=16, N=5, residual, batch 256, crop + flip)."""
        base = {
            "dataset": dataset,
            "channels": 16,
            "cells_per_stage": 5,
            "reduction": "residual",
            "epochs": 200,
            "batch_size": 256,
            "augmentation": "crop_flip",
        }
        return cls(**{**base, **changes})

    def split_sizes(self) -> dict[str, int]:
        """The split sizes this recipe sets, as ``load_dataset`` keywords."""
        sizes = {"train": self.train_size, "valid": self.valid_size, "test": self.test_size}
        return {name: value for name, value in sizes.items() if value is not None}

    def load_splits(self, root: Any = None) -> Splits:
        """Load this recipe's data set and splits (``root`` for local-disk data sets)."""
        return load_dataset(self.dataset, seed=self.split_seed, root=root, **self.split_sizes())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BuildError(
                f"unknown recipe field(s) {unknown}: known fields are {sorted(known)}; "
                "was the recipe written by another version?"
            )
        return cls(**values)


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Curves and costs of one trained (arch, seed); arrays have one entry per epoch.

    Accuracies are percent, losses mean cross-entropy, times wall seconds
    spent in that epoch (not cumulative). ``flops`` is per forward pass at
    batch size 1; ``latency_ms`` the median batch-1 forward time on ``device``.
    """

    arch: tuple[str, ...]
    seed: int
    train_acc: np.ndarray
    train_loss: np.ndarray
    valid_acc: np.ndarray
    valid_loss: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    train_time_s: np.ndarray
    eval_time_s: np.ndarray
    params: int
    flops: int
    latency_ms: float
    device: str

    @property
    def epochs(self) -> int:
        return len(self.train_acc)

    def curves(self) -> dict[str, np.ndarray]:
        """The per-epoch arrays by metric name."""
        names = ("train_acc", "train_loss", "valid_acc", "valid_loss", "test_acc", "test_loss")
        return {name: getattr(self, name) for name in (*names, "train_time_s", "eval_time_s")}


def _seed_generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Independent CPU generators for model initialisation and for batches/augmentation."""
    init_seed, data_seed = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return (
        torch.Generator().manual_seed(int(init_seed)),
        torch.Generator().manual_seed(int(data_seed)),
    )


def describe_device(device: torch.device) -> str:
    """A device string for provenance, e.g. ``cpu (x86_64, 1 thread, torch 2.4.0)``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{device} ({name}, torch {torch.__version__})"
    threads = torch.get_num_threads()
    machine = platform.processor() or platform.machine()
    return f"{device} ({machine}, {threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__})"


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads; the previous count is restored."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the duration; the previous global settings are restored.

    ``torch.use_deterministic_algorithms`` (warn-only) is switched on for the
    CPU, and on CUDA only when ``CUBLAS_WORKSPACE_CONFIG`` is set (cuBLAS needs
    it); on CUDA cuDNN is also made deterministic and its autotuner switched off.
    Torch's filling of every new tensor with NaN under deterministic mode
    (``torch.utils.deterministic.fill_uninitialized_memory``) is switched off:
    it changes no result of a correct program and cost ~7% of a CPU training.
    """
    import torch.utils.deterministic as deterministic

    saved_algorithms = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn
    saved_cudnn = (cudnn.deterministic, cudnn.benchmark)
    saved_fill = deterministic.fill_uninitialized_memory
    deterministic.fill_uninitialized_memory = False
    if device.type != "cuda" or os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved_algorithms[0], warn_only=saved_algorithms[1])
        cudnn.deterministic, cudnn.benchmark = saved_cudnn
        deterministic.fill_uninitialized_memory = saved_fill


def _crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and random horizontal flip, per sample."""
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    cropped = padded[batch, channels, rows, cols]
    return torch.where(flips[:, None, None, None], cropped.flip(-1), cropped)


def _evaluate(model, x, y, batch_size) -> tuple[float, float]:
    """Accuracy (percent) and mean cross-entropy over a whole split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            out = model(x[start : start + batch_size])
            target = y[start : start + batch_size]
            loss_sum += F.cross_entropy(out, target, reduction="sum").double()
            correct += (out.argmax(dim=1) == target).sum()
    model.train()
    n = max(len(y), 1)
    return 100.0 * correct.item() / n, loss_sum.item() / n


def _check_splits(recipe: Recipe, splits: Splits) -> None:
    if not isinstance(splits, Splits):
        raise BuildError(f"splits={splits!r} is not a Splits object: use recipe.load_splits()")
    info = splits.info
    if info.get("name") != recipe.dataset:
        raise BuildError(
            f"splits hold data set {info.get('name')!r} but the recipe trains on "
            f"{recipe.dataset!r}: load the splits with recipe.load_splits()"
        )
    wanted = recipe.split_sizes()
    have = info.get("splits", {})
    mismatch = {k: (v, have.get(k)) for k, v in wanted.items() if have.get(k) != v}
    if mismatch or info.get("split_seed") != recipe.split_seed:
        raise BuildError(
            f"splits (sizes {have}, seed {info.get('split_seed')}) do not match the recipe "
            f"(sizes {wanted}, seed {recipe.split_seed}): load them with recipe.load_splits()"
        )
    if recipe.augmentation == "crop_flip" and len(info.get("input_shape", ())) != 3:
        raise BuildError(
            f"augmentation 'crop_flip' needs 2-D images; {recipe.dataset!r} is not: use 'none'"
        )
    if len(splits.train_y) == 0:
        raise BuildError("the train split is empty: give a positive train size")


def train_arch(
    arch: Any,
    seed: int,
    recipe: Recipe,
    splits: Splits,
    *,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train one architecture with one seed and record its per-epoch curves and costs.

    Parameters
    ----------
    arch
        Tuple of 6 op names (or an arch string or index, see ``models.normalise_arch``).
    seed
        Non-negative training seed; it fixes initialisation and batch order.
    recipe
        The training recipe; ``splits`` must be the ones it names.
    splits
        Loaded data (``recipe.load_splits()``); moved to ``device`` once.
    device
        ``"cpu"`` or a CUDA device.
    """
    ops = models.normalise_arch(arch)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BuildError(f"seed={seed!r} is not valid: give a non-negative integer")
    if not isinstance(recipe, Recipe):
        raise BuildError(f"recipe={recipe!r} is not a Recipe: build one with Recipe(...)")
    _check_splits(recipe, splits)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BuildError(f"device {device} asked for but CUDA is not available: use device='cpu'")

    init_gen, data_gen = _seed_generators(int(seed))
    input_shape = tuple(splits.info["input_shape"])
    model = models.build_model(
        ops,
        input_shape=input_shape,
        n_classes=splits.info["n_classes"],
        channels=recipe.channels,
        cells_per_stage=recipe.cells_per_stage,
        reduction=recipe.reduction,
        generator=init_gen,
    ).to(device)
    params = models.count_params(model)
    flops = models.count_flops(model, input_shape)
    data = splits.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
        foreach=True,
    )

    n_train, batch_size = len(data.train_y), recipe.batch_size
    if recipe.drop_last and n_train >= batch_size:
        steps_per_epoch = n_train // batch_size
    else:
        steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    cosine = recipe.lr_schedule == "cosine"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    curves = {name: np.full(recipe.epochs, np.nan) for name in _CURVES}

    step = 0
    with _deterministic(device):
        model.train()
        for epoch in range(recipe.epochs):
            sync()
            start = time.perf_counter()
            order = torch.randperm(n_train, generator=data_gen).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for b in range(steps_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                xb = data.train_x.index_select(0, idx)
                yb = data.train_y.index_select(0, idx)
                if recipe.augmentation == "crop_flip":
                    xb = _crop_flip(xb, data_gen)
                if cosine:
                    lr = 0.5 * recipe.lr * (1.0 + math.cos(math.pi * step / total_steps))
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                out = model(xb)
                loss = F.cross_entropy(out, yb, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                n = len(yb)
                loss_sum += loss.detach().double() * n
                correct += (out.detach().argmax(dim=1) == yb).sum()
                seen += n
                step += 1
            train_acc, train_loss = 100.0 * correct.item() / seen, loss_sum.item() / seen
            sync()
            curves["train_time_s"][epoch] = time.perf_counter() - start

            start = time.perf_counter()
            bs = recipe.eval_batch_size
            valid_acc, valid_loss = _evaluate(model, data.valid_x, data.valid_y, bs)
            test_acc, test_loss = _evaluate(model, data.test_x, data.test_y, bs)
            sync()
            curves["eval_time_s"][epoch] = time.perf_counter() - start
            for name, value in (
                ("train_acc", train_acc),
                ("train_loss", train_loss),
                ("valid_acc", valid_acc),
                ("valid_loss", valid_loss),
                ("test_acc", test_acc),
                ("test_loss", test_loss),
            ):
                if name.endswith("_loss") and not math.isfinite(value):
                    value = math.inf  # diverged (NaN or inf in the sum): NaN means not measured
                curves[name][epoch] = value

    latency_ms = models.measure_latency_ms(model, input_shape, device)
    for array in curves.values():
        array.flags.writeable = False
    return TrainResult(
        arch=ops,
        seed=int(seed),
        **curves,
        params=params,
        flops=flops,
        latency_ms=latency_ms,
        device=describe_device(device),
    )


_CURVES = (
    "train_acc",
    "train_loss",
    "valid_acc",
    "valid_loss",
    "test_acc",
    "test_loss",
    "train_time_s",
    "eval_time_s",
)
