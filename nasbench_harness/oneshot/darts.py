"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot._common import OneShotMethod, _check_number, _Run
from nasbench_harness.oneshot.supernet import N_EDGES, N_OPS

__all__ = ["DARTS"]


class DARTS(OneShotMethod):
    """DARTS: softmax-relaxed supernet, weights and arch parameters trained in alternation.

    Every edge outputs ``sum_k softmax(alpha_e)_k * op_k(x)`` with one
    ``alpha`` (6 x 5, initialised ``1e-3 * N(0, 1)``) shared by all cells.
    Each step first takes an SGD step of the weights on a batch of the first
    half of the training split (gradient norm clipped at ``grad_clip``), then
    an Adam step of ``alpha`` on a batch of the second half (NAS-Bench-201's
    DARTS-V1 order). ``order=2`` replaces the arch gradient by DARTS'
    second-order (unrolled) approximation, taken before the weight step as
    in NAS-Bench-201's DARTS-V2: the gradient at the virtual weights
    ``w' = w - xi * (momentum buffer * momentum + grad_w L_train + wd * w)``
    (``xi`` = the current learning rate) minus ``xi`` times the
    finite-difference Hessian-vector product with ``eps = 0.01 / ||grad_w' L_val||``.
    The derived arch is the argmax of ``alpha`` per edge (ties: the first op
    in ``models.OPS`` order).

    Settings (NAS-Bench-201 ``configs/nas-benchmark/algos/DARTS.config`` and
    its search scripts; ``shared/reference/algorithms.md``): SGD Nesterov,
    momentum 0.9, lr 0.025 cosine to 0.001, weight decay 5e-4, batch 64,
    gradient clip 5, 50 epochs; Adam lr 3e-4, betas (0.5, 0.999), weight
    decay 1e-3 for ``alpha``; BN without affine parameters or running
    statistics in the candidate ops. The default ``epochs`` is the reduced
    CPU schedule (``docs/oneshot.md``); ``reference_epochs`` is the reference.

    Parameters
    ----------
    epochs
        Supernet epochs (one epoch = one pass over the weight half).
    batch_size, lr, lr_min, momentum, nesterov, weight_decay, grad_clip
        Weight optimiser (``grad_clip`` None: no clipping).
    arch_lr, arch_beta1, arch_beta2, arch_weight_decay
        Adam on ``alpha``.
    order
        1 (first-order DARTS) or 2 (second-order, about 2.6x the cost; docs/oneshot.md).
    eval_examples
        Validation examples used for the derived arch's inherited-weight
        accuracy (None: the whole split); the search does not use it.
    seed
        Seed of every draw (initialisation, batch order).
    """

    name = "darts"
    uses_arch_split = True
    #: Radius of the finite difference in weight space (DARTS' ``r = 0.01``; ``eps = r / ||v||``).
    fd_radius = 0.01
    reference_epochs = 50
    reference = (
        "Liu et al., DARTS, ICLR 2019; settings of NAS-Bench-201 (Dong & Yang, ICLR 2020) "
        "configs/nas-benchmark/algos/DARTS.config and DARTS-V1/V2 search scripts"
    )

    def __init__(
        self,
        *,
        epochs: int = 10,
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
        order: int = 1,
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
        self.order = order
        self.eval_examples = eval_examples
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        _check_arch_optimizer(self)
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise NasbenchError(f"order={self.order!r} is not valid: give 1 or 2")

    def _setup(self, run: _Run) -> None:
        _make_alpha(self, run)

    def _train_step(self, run: _Run, xb, yb, xa, ya) -> None:
        if self.order == 2:
            _arch_update(run, self._unrolled_arch_grad(run, xb, yb, xa, ya))
            with torch.no_grad():
                weights = F.softmax(run.alpha, dim=-1)
            self._weight_step(run, xb, yb, weights=weights)
            return
        with torch.no_grad():
            weights = F.softmax(run.alpha, dim=-1)
        self._weight_step(run, xb, yb, weights=weights)
        loss = F.cross_entropy(run.supernet(xa, weights=F.softmax(run.alpha, dim=-1)), ya)
        (grad,) = torch.autograd.grad(loss, [run.alpha])
        _arch_update(run, grad)

    def _unrolled_arch_grad(self, run: _Run, xb, yb, xa, ya) -> torch.Tensor:
        """DARTS' second-order arch gradient (Liu et al. 2019, eq. 7-8) at the current state."""
        net = run.supernet
        names = [n for n, p in net.named_parameters()]
        params = [p for _, p in net.named_parameters()]
        xi = run.lr
        alpha = run.alpha

        def loss_at(values, x, y, weights):
            mapping = dict(zip(names, values))
            return F.cross_entropy(functional_call(net, mapping, (x,), {"weights": weights}), y)

        weights = F.softmax(alpha, dim=-1)
        train_loss = loss_at(params, xb, yb, weights.detach())
        grads = torch.autograd.grad(train_loss, params, allow_unused=True)
        wd, mu = float(self.weight_decay), float(self.momentum)
        virtual = []
        with torch.no_grad():
            for p, g in zip(params, grads):
                g = torch.zeros_like(p) if g is None else g
                buf = run.w_optimizer.state.get(p, {}).get("momentum_buffer")
                moment = mu * buf if buf is not None else torch.zeros_like(p)
                virtual.append((p - xi * (moment + g + wd * p)).requires_grad_())
        valid_loss = loss_at(virtual, xa, ya, weights)
        grads = torch.autograd.grad(valid_loss, [alpha, *virtual], allow_unused=True)
        d_alpha = grads[0]
        d_w = [torch.zeros_like(v) if g is None else g for v, g in zip(virtual, grads[1:])]
        norm = torch.sqrt(sum((g * g).sum() for g in d_w))
        eps = self.fd_radius / max(float(norm), 1e-12)
        hessian = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = [p + sign * eps * g for p, g in zip(params, d_w)]
            loss = loss_at(shifted, xb, yb, F.softmax(alpha, dim=-1))
            (g_alpha,) = torch.autograd.grad(loss, [alpha])
            hessian.append(g_alpha)
        return d_alpha - xi * (hessian[0] - hessian[1]) / (2.0 * eps)

    def _derive(self, run: _Run) -> tuple[tuple[int, ...], float]:
        choice = tuple(int(k) for k in run.alpha.detach().argmax(dim=-1).tolist())
        return choice, run.accuracy(choice)

    def _arch_weights(self, run: _Run) -> np.ndarray:
        return F.softmax(run.alpha.detach(), dim=-1).double().cpu().numpy()


def _check_arch_optimizer(method: OneShotMethod) -> None:
    _check_number("arch_lr", method.arch_lr, minimum=0, open_=True)
    for name in ("arch_beta1", "arch_beta2"):
        value = _check_number(name, getattr(method, name), minimum=0)
        if value >= 1:
            raise NasbenchError(f"{name}={value!r} is not valid: give a number in [0, 1)")
    _check_number("arch_weight_decay", method.arch_weight_decay, minimum=0)


def _make_alpha(method: OneShotMethod, run: _Run) -> None:
    """``alpha`` = 1e-3 * N(0, 1) from the init generator, and its Adam optimiser."""
    values = 1e-3 * torch.randn(N_EDGES, N_OPS, generator=run.init_gen)
    run.alpha = values.to(run.device).requires_grad_()
    run.a_optimizer = torch.optim.Adam(
        [run.alpha],
        lr=float(method.arch_lr),
        betas=(float(method.arch_beta1), float(method.arch_beta2)),
        weight_decay=float(method.arch_weight_decay),
    )


def _arch_update(run: _Run, grad: torch.Tensor) -> None:
    run.alpha.grad = grad.detach()
    run.a_optimizer.step()
    run.alpha.grad = None
