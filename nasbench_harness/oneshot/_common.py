"""What the weight-sharing methods share: parameters, data, the epoch loop, evaluation.

A method is one small class (:class:`OneShotMethod` subclass): the
constructor stores keyword arguments unchanged and nothing else;
:meth:`OneShotMethod.search` validates them, trains a supernet on the
recipe's data and returns a :class:`SearchRun`. Every random draw comes from
generators made from ``seed`` (initialisation, batch order, path sampling),
and training runs under :func:`nasbench_harness.train._deterministic`, so the
same seed, recipe, splits and torch thread count give the same run bit for
bit on the CPU (all but the measured times).

Inherited-weight evaluation (the accuracy of one arch with the supernet's
weights) takes the chosen path only and normalises every BN layer with the
statistics of the evaluated batch (the candidate ops keep no running
statistics, and the running statistics of the stem, reduction and head BN
layers are averages over other paths); the supernet is left unchanged.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algorithms.base import StoredParams
from nasbench_harness.data import Splits
from nasbench_harness.errors import NasbenchError
from nasbench_harness.models import kept_state
from nasbench_harness.oneshot.supernet import (
    N_EDGES,
    N_OPS,
    Supernet,
    build_supernet,
    choice_to_index,
)

__all__ = ["OneShotMethod", "SearchRun", "evaluate_path", "oneshot_generators"]

#: Label of every cost a weight-sharing run reports.
CLOCK = "real wall-clock seconds (supernet training), not simulated"


def oneshot_generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent CPU generators (init, batch order, path sampling) of ``seed``.

    The first two are :func:`nasbench_harness.train._seed_generators`'s, the
    third comes from a separate stream of the same seed.
    """
    from nasbench_harness.train import _seed_generators

    init_gen, data_gen = _seed_generators(int(seed))
    (sample_state,) = np.random.SeedSequence([int(seed), 0x0A5]).generate_state(1, np.uint64)
    return init_gen, data_gen, torch.Generator().manual_seed(int(sample_state))


@dataclass(frozen=True, eq=False)
class SearchRun:
    """One weight-sharing search: the arch derived at each derivation point and its costs.

    Arrays have one entry per derivation point (``epochs``, 1-based supernet
    epochs). ``oneshot_valid_acc`` is the derived arch's inherited-weight
    accuracy (percent) on the first ``eval_examples`` validation examples;
    ``time_s`` cumulative and ``cost_s`` per-point real wall seconds;
    ``arch_weights`` the softmax of the architecture parameters per edge
    (``(n, 6, 5)``; empty for methods without them).
    """

    method: str
    seed: int
    params: dict
    epochs: np.ndarray
    choices: np.ndarray
    archs: np.ndarray
    oneshot_valid_acc: np.ndarray
    time_s: np.ndarray
    cost_s: np.ndarray
    arch_weights: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def final_arch(self) -> int:
        return int(self.archs[-1])


def _check_number(
    name: str, value: Any, *, minimum: float, integer: bool = False, open_: bool = False
):
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(
        value, (int, np.integer) if integer else (int, float, np.integer, np.floating)
    )
    if ok:
        ok = value > minimum if open_ else value >= minimum
        ok = ok and math.isfinite(float(value))
    if not ok:
        bound = f"> {minimum}" if open_ else f">= {minimum}"
        raise NasbenchError(f"{name}={value!r} is not valid: give {kind} {bound}")
    return int(value) if integer else float(value)


class OneShotMethod(StoredParams):
    """Base class of the weight-sharing methods (see the module docstring).

    Subclasses list their hyperparameters as keyword-only arguments of
    ``__init__``, store each unchanged under its own name, and implement
    :meth:`_setup`, :meth:`_train_step` and :meth:`_derive`.
    """

    #: Name used by ``nasbench search --algorithm NAME``.
    name: str = ""
    #: True: weights train on the first half of the training split, architecture
    #: parameters on the second (DARTS, GDAS); False: weights use all of it.
    uses_arch_split: bool = False
    #: Supernet epochs of the reference setting (the defaults are a reduced schedule).
    reference_epochs: int = 0
    #: Where the settings come from.
    reference: str = ""

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    # -- validation -------------------------------------------------------------

    def _check_params(self) -> None:
        """Raise :class:`NasbenchError` naming the first bad hyperparameter."""
        if (
            self.seed is None
            or isinstance(self.seed, bool)
            or not isinstance(self.seed, (int, np.integer))
            or self.seed < 0
        ):
            raise NasbenchError(
                f"{self.name}: seed={self.seed!r} is not valid: give a non-negative integer "
                "(weight-sharing runs are always seeded)"
            )
        _check_number("epochs", self.epochs, minimum=1, integer=True)
        _check_number("batch_size", self.batch_size, minimum=1, integer=True)
        _check_number("lr", self.lr, minimum=0, open_=True)
        _check_number("lr_min", self.lr_min, minimum=0)
        if self.lr_min > self.lr:
            raise NasbenchError(f"lr_min={self.lr_min!r} exceeds lr={self.lr!r}: give lr_min <= lr")
        _check_number("momentum", self.momentum, minimum=0)
        if not isinstance(self.nesterov, bool):
            raise NasbenchError(f"nesterov={self.nesterov!r}: give true or false")
        if self.nesterov and self.momentum == 0:
            raise NasbenchError("nesterov=true needs momentum > 0: set momentum or nesterov=false")
        _check_number("weight_decay", self.weight_decay, minimum=0)
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, minimum=0, open_=True)
        if self.eval_examples is not None:
            _check_number("eval_examples", self.eval_examples, minimum=1, integer=True)

    # -- the run ----------------------------------------------------------------

    def search(
        self, recipe: Any, splits: Splits, *, device: str | torch.device = "cpu"
    ) -> SearchRun:
        """Train the supernet on ``splits`` in ``recipe``'s skeleton; derive an arch per epoch.

        Parameters
        ----------
        recipe
            The table's :class:`~nasbench_harness.train.Recipe`: its data set,
            split sizes and skeleton (``channels``, ``cells_per_stage``,
            ``reduction``); its training schedule is not used.
        splits
            ``recipe.load_splits()``. Test data is never touched.
        device
            ``"cpu"`` or a CUDA device.
        """
        from nasbench_harness.train import _check_splits, _deterministic, describe_device

        self._check_params()
        _check_splits(recipe, splits)
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise NasbenchError(f"device {device} asked for but CUDA is not available: use cpu")
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        run = _Run(self, recipe, splits, device)
        derive_at = set(self._derivation_epochs())
        rows: list[tuple] = []
        clock = 0.0
        with _deterministic(device):
            sync()
            start = time.perf_counter()
            run.build()
            self._setup(run)
            for epoch in range(1, self.epochs + 1):
                self._train_epoch(run)
                if epoch in derive_at:
                    choice, acc = self._derive(run)
                    sync()
                    now = time.perf_counter() - start
                    rows.append((epoch, choice, acc, now, now - clock, self._arch_weights(run)))
                    clock = now
        choices = np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, N_EDGES)
        weights = [r[5] for r in rows if r[5] is not None]
        return SearchRun(
            method=self.name,
            seed=int(self.seed),
            params=self.get_params(),
            epochs=np.array([r[0] for r in rows], dtype=np.int64),
            choices=choices,
            archs=np.array([choice_to_index(c) for c in choices], dtype=np.int64),
            oneshot_valid_acc=np.array([r[2] for r in rows], dtype=np.float64),
            time_s=np.array([r[3] for r in rows], dtype=np.float64),
            cost_s=np.array([r[4] for r in rows], dtype=np.float64),
            arch_weights=np.array(weights, dtype=np.float64).reshape(-1, N_EDGES, N_OPS),
            info={
                "device": describe_device(device),
                "steps_per_epoch": run.steps_per_epoch,
                "weight_examples": int(run.n_weight),
                "arch_examples": int(run.n_arch),
                "eval_examples_used": int(run.valid_y.numel()),
                "n_supernet_params": int(sum(p.numel() for p in run.supernet.parameters())),
            },
        )

    def _derivation_epochs(self) -> Sequence[int]:
        return range(1, self.epochs + 1)

    def _train_epoch(self, run: _Run) -> None:
        for xb, yb, xa, ya in run.epoch_batches():
            run.set_lr()
            self._train_step(run, xb, yb, xa, ya)
            run.step += 1

    def _weight_step(self, run: _Run, xb, yb, **forward) -> None:
        """One SGD step of the supernet weights on ``(xb, yb)`` (gradient clipped)."""
        out = run.supernet(xb, **forward)
        loss = F.cross_entropy(out, yb)
        run.w_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(run.supernet.parameters(), float(self.grad_clip))
        run.w_optimizer.step()

    # -- hooks ------------------------------------------------------------------

    def _setup(self, run: _Run) -> None:  # noqa: B027 - optional hook
        """Create architecture parameters and their optimizer (if any) on ``run``."""

    def _train_step(self, run: _Run, xb, yb, xa, ya) -> None:
        raise NotImplementedError

    def _derive(self, run: _Run) -> tuple[tuple[int, ...], float]:
        raise NotImplementedError

    def _arch_weights(self, run: _Run) -> np.ndarray | None:
        return None


class _Run:
    """Mutable state of one search: supernet, optimizers, data, generators, step counter."""

    def __init__(self, method: OneShotMethod, recipe: Any, splits: Splits, device) -> None:
        self.method = method
        self.recipe = recipe
        self.device = device
        self.init_gen, self.data_gen, self.sample_gen = oneshot_generators(int(method.seed))
        data = splits
        n = len(data.train_y)
        if method.uses_arch_split:
            if n < 2:
                raise NasbenchError(
                    f"{method.name} splits the training split into halves; it has {n} example(s)"
                )
            self.n_weight = (n + 1) // 2
        else:
            self.n_weight = n
        self.n_arch = n - self.n_weight
        self.splits = data
        self.input_shape = tuple(data.info["input_shape"])
        self.n_classes = int(data.info["n_classes"])
        n_eval = len(data.valid_y) if method.eval_examples is None else int(method.eval_examples)
        if len(data.valid_y) == 0:
            raise NasbenchError("the validation split is empty: give a positive valid size")
        n_eval = min(n_eval, len(data.valid_y))
        self.train_x = data.train_x.to(device)
        self.train_y = data.train_y.to(device)
        self.valid_x = data.valid_x[:n_eval].to(device)
        self.valid_y = data.valid_y[:n_eval].to(device)
        self.batch_size = int(method.batch_size)
        self.steps_per_epoch = math.ceil(self.n_weight / self.batch_size)
        self.total_steps = self.steps_per_epoch * int(method.epochs)
        self.step = 0
        self.eval_batch_size = int(recipe.eval_batch_size)

    def build(self) -> None:
        recipe = self.recipe
        self.supernet: Supernet = build_supernet(
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            channels=recipe.channels,
            cells_per_stage=recipe.cells_per_stage,
            reduction=recipe.reduction,
            generator=self.init_gen,
        ).to(self.device)
        m = self.method
        self.w_optimizer = torch.optim.SGD(
            self.supernet.parameters(),
            lr=float(m.lr),
            momentum=float(m.momentum),
            nesterov=bool(m.nesterov),
            weight_decay=float(m.weight_decay),
            foreach=True,
        )

    def set_lr(self) -> None:
        """Cosine from ``lr`` to ``lr_min`` over every step: NB201's ``cos`` schedule, per step."""
        m = self.method
        t = self.step / self.total_steps
        lr = float(m.lr_min) + (float(m.lr) - float(m.lr_min)) * 0.5 * (1.0 + math.cos(math.pi * t))
        for group in self.w_optimizer.param_groups:
            group["lr"] = lr
        self.lr = lr

    def epoch_batches(self) -> Iterator[tuple]:
        """Minibatches of one epoch: ``(x_w, y_w, x_a, y_a)``; the arch half cycles (DARTS, GDAS).

        With the recipe's ``crop_flip`` augmentation (CIFAR), both halves are
        augmented as in training, as NB201's search loaders do.
        """
        from nasbench_harness.train import _crop_flip

        augment = getattr(self.recipe, "augmentation", "none") == "crop_flip"
        bs = self.batch_size
        order = torch.randperm(self.n_weight, generator=self.data_gen).to(self.device)
        arch_order = None
        if self.n_arch:
            arch_order = torch.randperm(self.n_arch, generator=self.data_gen).to(self.device)
        for b in range(self.steps_per_epoch):
            idx = order[b * bs : (b + 1) * bs]
            xb = self.train_x.index_select(0, idx)
            yb = self.train_y.index_select(0, idx)
            xa = ya = None
            if arch_order is not None:
                pos = torch.arange(b * bs, b * bs + len(idx), device=self.device) % self.n_arch
                a_idx = arch_order[pos] + self.n_weight
                xa = self.train_x.index_select(0, a_idx)
                ya = self.train_y.index_select(0, a_idx)
            if augment:
                xb = _crop_flip(xb, self.data_gen)
                if xa is not None:
                    xa = _crop_flip(xa, self.data_gen)
            yield xb, yb, xa, ya

    def accuracy(self, choice: Sequence[int]) -> float:
        """Inherited-weight validation accuracy (percent) of one path."""
        return evaluate_path(
            self.supernet, choice, self.valid_x, self.valid_y, batch_size=self.eval_batch_size
        )


@contextlib.contextmanager
def _kept_bn_statistics(model: nn.Module) -> Iterator[None]:
    """Train-mode BN (batch statistics) for the duration; running statistics restored after."""
    with kept_state(model, parameters=False):  # the buffers: BN running statistics
        model.train()
        yield


def evaluate_path(
    supernet: Supernet,
    choice: Sequence[int],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 1024,
) -> float:
    """Accuracy (percent) of one path of ``supernet`` on ``(x, y)`` with inherited weights.

    Every BN layer normalises with the statistics of its batch of
    ``batch_size`` examples (see the module docstring); no gradient, and the
    supernet's parameters and buffers are unchanged afterwards.
    """
    correct = 0
    with torch.no_grad(), _kept_bn_statistics(supernet):
        for start in range(0, len(y), batch_size):
            out = supernet(x[start : start + batch_size], choice=choice)
            correct += int((out.argmax(dim=1) == y[start : start + batch_size]).sum())
    return 100.0 * correct / max(len(y), 1)
