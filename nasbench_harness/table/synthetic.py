"""Deterministic synthetic tables over the whole NB201 space, for tests and benchmarks.

The numbers look like a real build but come from a formula, not training:
the final accuracy grows with the number and kind of convolutions (with a
fixed random effect per edge and op), learning curves saturate at an
arch-dependent speed, every seed adds its own noise, test accuracy stays
close to validation accuracy, epoch times grow with the convolutions, and
archs without an input-to-output path sit at chance (10 %). Isomorphic archs
share their representative's rows (the writer enforces it). Accuracies are
multiples of 100/split size, as counted over a split; losses and times are
rounded to the resolution a log would keep. The provenance says
``synthetic: true`` and the dataset is called ``"synthetic"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.errors import TableFormatError
from nasbench_harness.table import schema

#: Split sizes of the synthetic dataset (accuracies are counts over these).
SPLITS = {"train": 4000, "valid": 1000, "test": 1000}
N_CLASSES = 10
CHANCE = 100.0 / N_CLASSES
# op order: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3
_OP_QUALITY = np.array([0.0, 0.35, 0.6, 1.0, 0.15])
_OP_TIME_S = np.array([0.0, 0.03, 0.25, 0.7, 0.12])
_CHANNELS = (16, 32, 64)
_SIDES = (32, 16, 8)
_CELLS_PER_STAGE = 5


def synthetic_data(
    *,
    n_seeds: int = 3,
    n_epochs: int = 12,
    seed: int = 0,
    seeds: Any = None,
    eval_time: bool = True,
    splits: dict[str, int] | None = None,
    loss_step: float | None = 1e-3,
    time_step: float | None = 1e-2,
    created: str | None = None,
    space: Any = None,
) -> dict[str, Any]:
    """The keyword arguments of :func:`~nasbench_harness.table.write_table` for a synthetic table.

    Parameters
    ----------
    n_seeds, n_epochs
        Shape of the seed and epoch axes.
    seed
        Seed of the generator: same seed, same numbers.
    seeds
        Training-seed values (default 777, 888, 999, then steps of 111).
    eval_time
        Include the optional ``eval_time_s`` metric.
    splits
        Sizes of the train/valid/test splits (default :data:`SPLITS`):
        accuracies are counts over them, so small splits give coarse values.
    loss_step, time_step
        Resolution of the recorded losses (nats) and times (seconds), None
        for full float32. Powers of two (e.g. ``2**-8``) are exact in float32
        and compress best (small committed fixtures).
    created
        Creation time to record (default: now); fix it for byte-stable files.
    space
        The space (default: NB201).

    Returns
    -------
    dict
        ``space``, ``metrics``, ``arch_metrics``, ``seeds``, ``provenance``.
    """
    from nasbench_harness import __version__
    from nasbench_harness.space import get_space

    if space is None:
        space = get_space("nb201")
    if n_seeds < 1 or n_epochs < 1:
        raise TableFormatError("n_seeds and n_epochs must be at least 1")
    splits = dict(SPLITS if splits is None else splits)
    if sorted(splits) != sorted(SPLITS) or min(splits.values()) < 1:
        raise TableFormatError(f"splits must give train, valid and test sizes >= 1, got {splits}")
    if seeds is None:
        seeds = [777 + 111 * k for k in range(n_seeds)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != n_seeds:
        raise TableFormatError(f"seeds has {len(seeds)} values but n_seeds is {n_seeds}")
    rng = np.random.default_rng(seed)
    n, s_, e_ = int(space.n_archs), n_seeds, n_epochs
    place = 5 ** np.arange(space.n_edges - 1, -1, -1)
    ops = np.arange(n)[:, None] // place[None, :] % 5  # (n, 6) op ids in EDGES order
    connected = np.asarray(space.connected)
    counts = np.stack([(ops == k).sum(axis=1) for k in range(5)], axis=1)  # (n, 5)

    # final accuracy: op quality plus a fixed random effect per (edge, op)
    effect = _OP_QUALITY[None, :] + rng.normal(0.0, 0.12, size=(space.n_edges, 5))
    effect[:, 0] = 0.0
    quality = effect[np.arange(space.n_edges)[None, :], ops].sum(axis=1)
    quality += 0.25 * (ops[:, 3] == 1)  # a skip from input to output helps
    final = 97.0 - 52.0 * np.exp(-0.6 * quality) + rng.normal(0.0, 0.8, n)
    final = np.where(connected, np.clip(final, CHANCE + 2.0, 99.0), CHANCE)
    speed = 2.5 + 0.8 * counts[:, 1] + 0.3 * counts[:, 4] - 0.2 * counts[:, 3]
    speed = np.clip(speed + rng.normal(0.0, 0.3, n), 1.0, None)

    t = np.arange(1, e_ + 1) / e_
    progress = (1 - np.exp(-speed[:, None] * t[None, :])) / (1 - np.exp(-speed[:, None]))
    seed_final = final[:, None] + rng.normal(0.0, 0.45, (n, s_)) * connected[:, None]
    jitter = rng.normal(0.0, 1.0, (n, s_, e_)) * (1.2 - 0.9 * t)[None, None, :]
    valid = CHANCE + (seed_final[:, :, None] - CHANCE) * progress[:, None, :]
    valid = valid + jitter * connected[:, None, None]
    test = valid - 0.3 + rng.normal(0.0, 0.35, (n, s_, e_)) * connected[:, None, None]
    capacity = counts[:, 2] + 2 * counts[:, 3]
    gap = (0.8 + 0.6 * capacity)[:, None, None] * progress[:, None, :] ** 2
    train = valid + gap * connected[:, None, None]
    chance_noise = rng.normal(0.0, 0.6, (n, s_, e_))
    disconnected = ~connected[:, None, None]
    valid = np.where(disconnected, CHANCE + chance_noise, valid)
    test = np.where(disconnected, CHANCE + 0.7 * chance_noise, test)
    train = np.where(disconnected, CHANCE + 0.3 * chance_noise, train)

    metrics = {
        "train_acc": _counted(train, splits["train"]),
        "valid_acc": _counted(valid, splits["valid"]),
        "test_acc": _counted(test, splits["test"]),
    }
    for split in ("train", "valid", "test"):
        acc = metrics[f"{split}_acc"].astype(np.float64)
        wobble = rng.lognormal(0.0, 0.04, (n, s_, 1))  # loss follows accuracy, per-run scale
        loss = (np.log(N_CLASSES) * ((100.0 - acc) / (100.0 - CHANCE)) ** 1.6 + 0.02) * wobble
        metrics[f"{split}_loss"] = _rounded(np.clip(loss, 0.0, None), loss_step)

    epoch_time = 0.6 + (counts * _OP_TIME_S[None, :]).sum(axis=1)
    seed_factor = rng.lognormal(0.0, 0.03, (n, s_, 1))
    epoch_factor = rng.lognormal(0.0, 0.04, (n, s_, e_))
    train_time = epoch_time[:, None, None] * seed_factor * epoch_factor
    train_time[:, :, 0] += 0.4  # first epoch: warm-up of data loading and kernels
    metrics["train_time_s"] = _rounded(train_time, time_step)
    if eval_time:
        eval_s = (0.1 + 0.15 * epoch_time)[:, None, None] * rng.lognormal(0.0, 0.05, (n, s_, e_))
        metrics["eval_time_s"] = _rounded(eval_s, time_step)

    params, flops = _params_flops(counts)
    latency = 0.4 + flops / 2.5e7 + rng.normal(0.0, 0.02, n)
    arch_metrics = {
        "params": params,
        "flops": flops,
        "latency_ms": np.round(np.clip(latency, 0.05, None), 3),
    }
    provenance = {
        "space": space.name,
        "dataset": {
            "name": "synthetic",
            "splits": splits,
            "split_seed": int(seed),
            "n_classes": N_CLASSES,
            "input_shape": [1, 40],
        },
        "recipe": {
            "generator": "nasbench_harness.table.synthetic",
            "generator_seed": int(seed),
            "epochs": int(n_epochs),
            "note": "synthetic learning curves from a formula; nothing was trained",
        },
        "seeds": seeds,
        "epochs": int(n_epochs),
        "code_version": __version__,
        "device": "none (synthetic)",
        "build_time_s": 0.0,
        "created": created or schema.now_iso(),
        "synthetic": True,
    }
    return {
        "space": space,
        "metrics": metrics,
        "arch_metrics": arch_metrics,
        "seeds": np.asarray(seeds, dtype=np.int64),
        "provenance": provenance,
    }


def make_synthetic_table(
    path: str | os.PathLike,
    *,
    n_seeds: int = 3,
    n_epochs: int = 12,
    seed: int = 0,
    seeds: Any = None,
    eval_time: bool = True,
    splits: dict[str, int] | None = None,
    loss_step: float | None = 1e-3,
    time_step: float | None = 1e-2,
    created: str | None = None,
) -> Path:
    """Write a deterministic synthetic table over the full NB201 space to ``path``.

    See :func:`synthetic_data` for the parameters. Returns ``path``.
    """
    from nasbench_harness.table.writer import write_table

    data = synthetic_data(
        n_seeds=n_seeds,
        n_epochs=n_epochs,
        seed=seed,
        seeds=seeds,
        eval_time=eval_time,
        splits=splits,
        loss_step=loss_step,
        time_step=time_step,
        created=created,
    )
    return write_table(path, **data)


def _counted(acc: np.ndarray, n_examples: int) -> np.ndarray:
    """Accuracy in percent as a count of correct examples out of ``n_examples``."""
    correct = np.rint(np.clip(acc, 0.0, 100.0) / 100.0 * n_examples)
    return (correct * (100.0 / n_examples)).astype(np.float32)


def _rounded(values: np.ndarray, step: float | None) -> np.ndarray:
    if step is None:
        return values.astype(np.float32)
    return (np.rint(values / step) * step).astype(np.float32)


def _params_flops(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameters and FLOPs of the NB201 macro skeleton (C=16, N=5, 32x32 input)."""
    params = np.full(counts.shape[0], 3 * 16 * 9 + 2 * 16, dtype=np.float64)  # stem
    flops = np.full(counts.shape[0], 2.0 * 3 * 16 * 9 * 32 * 32)
    for c, side in zip(_CHANNELS, _SIDES):
        conv3 = c * c * 9 + 2 * c
        conv1 = c * c + 2 * c
        cell_params = counts[:, 3] * conv3 + counts[:, 2] * conv1
        cell_flops = 2.0 * side * side * (counts[:, 3] * c * c * 9 + counts[:, 2] * c * c)
        cell_flops += side * side * c * (9 * counts[:, 4] + counts[:, 1])
        params += _CELLS_PER_STAGE * cell_params
        flops += _CELLS_PER_STAGE * cell_flops
    for c_in, c_out, side in ((16, 32, 16), (32, 64, 8)):  # residual reduction blocks
        params += c_in * c_out * 9 + c_out * c_out * 9 + c_in * c_out + 6 * c_out
        flops += 2.0 * side * side * (c_in * c_out * 9 + c_out * c_out * 9 + c_in * c_out)
    params += 2 * 64 + 64 * N_CLASSES + N_CLASSES  # last BN and classifier
    flops += 2.0 * 64 * N_CLASSES
    return params, flops
