"""GDAS: gradient-based search with a differentiable sampler (Dong & Yang, CVPR 2019)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot._common import OneShotMethod, _check_number, _Run
from nasbench_harness.oneshot.darts import _arch_update, _check_arch_optimizer, _make_alpha

__all__ = ["GDAS", "gumbel_one_hot"]


def gumbel_one_hot(
    alpha: torch.Tensor, tau: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one op per edge by Gumbel-max; return the straight-through one-hot and the choice.

    ``p = softmax((log_softmax(alpha) + g) / tau)`` with ``g`` standard
    Gumbel noise (``-log E``, ``E ~ Exp(1)``, drawn on the CPU from
    ``generator``; redrawn if any value is infinite); ``choice = argmax p`` per
    edge. The returned weights are ``one_hot(choice) + (p - p.detach())``: in
    the forward pass exactly the one-hot (the added term is exactly zero), in
    the backward pass the gradient of ``p`` (straight-through estimator).

    Parameters
    ----------
    alpha
        Architecture parameters ``(n_edges, n_ops)``.
    tau
        Softmax temperature (> 0).
    generator
        CPU ``torch.Generator``, the only source of randomness.
    """
    while True:
        exponential = torch.empty(alpha.shape, dtype=alpha.dtype).exponential_(generator=generator)
        gumbel = -exponential.log()
        if torch.isfinite(gumbel).all():
            break
    logits = (F.log_softmax(alpha, dim=-1) + gumbel.to(alpha.device)) / tau
    probs = F.softmax(logits, dim=-1)
    choice = probs.detach().argmax(dim=-1)
    hard = F.one_hot(choice, alpha.shape[-1]).to(probs.dtype)
    return hard + (probs - probs.detach()), choice


class GDAS(OneShotMethod):
    """GDAS: one Gumbel-max sampled path per forward pass, temperature annealed 10 -> 0.1.

    Architecture parameters ``alpha`` (6 x 5, ``1e-3 * N(0, 1)``, shared by
    all cells). Every forward pass draws a new path with
    :func:`gumbel_one_hot` and runs only the sampled op of each edge, scaled
    by its straight-through weight (value 1): ``w[e, k] * op_k(x)`` with
    ``k`` the sampled op, so ``alpha`` gets the gradient
    ``dL/dw[e, k] * dp[e, k]/dalpha``. (NAS-Bench-201's code also adds the
    other ops' weights as constants, which adds a gradient that does not
    depend on their ops; this implementation leaves it out.) Each step: an
    SGD step of the weights on a batch of the first half of the training
    split, then an Adam step of ``alpha`` on a batch of the second half, each
    with its own sample. ``tau`` is ``tau_max - (tau_max - tau_min) * t / (E - 1)``
    in epoch ``t = 0..E-1``. The derived arch is the argmax of ``alpha``.

    Settings (NAS-Bench-201 ``configs/nas-benchmark/algos/GDAS.config``, its
    GDAS search script, ``shared/reference/algorithms.md``): SGD Nesterov,
    momentum 0.9, lr 0.025 cosine to 0.001, weight decay 5e-4, batch 64,
    gradient clip 5, 240 epochs; Adam lr 3e-4, betas (0.5, 0.999), weight
    decay 1e-3; tau 10 -> 0.1; candidate-op BN without affine parameters or
    running statistics. The default ``epochs`` is the reduced CPU schedule.

    Parameters
    ----------
    epochs, batch_size, lr, lr_min, momentum, nesterov, weight_decay, grad_clip
        As for :class:`~nasbench_harness.oneshot.darts.DARTS`.
    arch_lr, arch_beta1, arch_beta2, arch_weight_decay
        Adam on ``alpha``.
    tau_max, tau_min
        Gumbel-softmax temperature at the first and last epoch.
    eval_examples
        Validation examples for the derived arch's inherited-weight accuracy.
    seed
        Seed of every draw (initialisation, batch order, Gumbel noise).
    """

    name = "gdas"
    uses_arch_split = True
    reference_epochs = 240
    reference = (
        "Dong & Yang, Searching for a Robust Neural Architecture in Four GPU Hours (GDAS), "
        "CVPR 2019; settings of NAS-Bench-201 configs/nas-benchmark/algos/GDAS.config and its "
        "GDAS search script"
    )

    def __init__(
        self,
        *,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 0.025,
        lr_min: float = 0.001,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        grad_clip: float | None = 5.0,
        arch_lr: float = 3e-4,
        arch_beta1: float = 0.5,
        arch_beta2: float = 0.999,
        arch_weight_decay: float = 1e-3,
        tau_max: float = 10.0,
        tau_min: float = 0.1,
        eval_examples: int | None = 512,
        seed: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_min = lr_min
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.arch_lr = arch_lr
        self.arch_beta1 = arch_beta1
        self.arch_beta2 = arch_beta2
        self.arch_weight_decay = arch_weight_decay
        self.tau_max = tau_max
        self.tau_min = tau_min
        self.eval_examples = eval_examples
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        _check_arch_optimizer(self)
        _check_number("tau_max", self.tau_max, minimum=0, open_=True)
        _check_number("tau_min", self.tau_min, minimum=0, open_=True)
        if self.tau_min > self.tau_max:
            raise NasbenchError(
                f"tau_min={self.tau_min!r} exceeds tau_max={self.tau_max!r}: the temperature "
                "is annealed from tau_max down to tau_min"
            )

    def tau(self, epoch: int) -> float:
        """Temperature in epoch ``epoch`` (0-based)."""
        if self.epochs <= 1:
            return float(self.tau_max)
        fraction = epoch / (self.epochs - 1)
        return float(self.tau_max) - (float(self.tau_max) - float(self.tau_min)) * fraction

    def _setup(self, run: _Run) -> None:
        _make_alpha(self, run)

    def _train_epoch(self, run: _Run) -> None:
        run.tau = self.tau(run.step // run.steps_per_epoch)
        super()._train_epoch(run)

    def _train_step(self, run: _Run, xb, yb, xa, ya) -> None:
        with torch.no_grad():
            _, choice = gumbel_one_hot(run.alpha, run.tau, run.sample_gen)
        self._weight_step(run, xb, yb, choice=choice.tolist())
        weights, choice = gumbel_one_hot(run.alpha, run.tau, run.sample_gen)
        loss = F.cross_entropy(run.supernet(xa, weights=weights, choice=choice.tolist()), ya)
        (grad,) = torch.autograd.grad(loss, [run.alpha], allow_unused=True)
        if grad is None:  # every sampled op is `none` or cannot reach the output
            grad = torch.zeros_like(run.alpha)
        _arch_update(run, grad)

    def _derive(self, run: _Run) -> tuple[tuple[int, ...], float]:
        choice = tuple(int(k) for k in run.alpha.detach().argmax(dim=-1).tolist())
        return choice, run.accuracy(choice)

    def _arch_weights(self, run: _Run) -> np.ndarray:
        return F.softmax(run.alpha.detach(), dim=-1).double().cpu().numpy()
