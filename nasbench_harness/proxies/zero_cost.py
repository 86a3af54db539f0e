"""Training-free (zero-cost) proxies and their registry.

Every proxy is a function ``fn(model, batch, config) -> float`` registered
with :func:`register_proxy`; ``batch`` is ``(x, y)`` (inputs and int64
labels), ``config`` a mapping with optional keys ``generator`` (a
``torch.Generator``, the only source of randomness: zen draws from it) and
``loss`` (a callable ``loss(logits, y)``, default cross-entropy).

Definitions follow ``shared/reference/proxies.md`` and the papers cited in each
docstring. Rules common to all of them:

- the network is scored in train mode (batch norm uses batch statistics), as
  freshly initialised; no proxy leaves its weights changed (synflow
  substitutes float64 absolute values for the call and swaps the batch
  norms out of the model while it runs, zen re-draws the weights and copies
  the originals back), they only leave ``.grad`` and batch-norm running
  statistics behind (build a fresh model per proxy to keep them
  independent);
- grad_norm, snip, plain, grasp's first pass, fisher and naswot read one
  forward and backward of the loss when ``config["shared"]`` holds a
  :func:`shared_state` (as :mod:`.score` passes), each its own otherwise:
  the values are the same either way;
- "weight layers" are ``Conv1d``, ``Conv2d`` and ``Linear``; their weights
  (not biases) enter the gradient-based sums;
- a batch is never split to save memory: an out-of-memory error propagates
  and :func:`compute_proxy` records it as a failure (NaN);
- :func:`compute_proxy` turns a non-finite value (-inf from a singular naswot
  kernel, NaN from a constant Jacobian, overflow) into NaN; no sentinel values.

How the pitfalls listed in ``shared/reference/proxies.md`` are handled: the
real architecture is scored (``build_model`` builds only the edges that reach
the output, no supernet); scores come from several (init, batch) seeds
(:mod:`.score`, ``--seeds``); batches are never split; synflow runs in
float64; NaN is stored and counted, never replaced; correlations are signed;
scoring is CPU-only (no TF32); ``nasbench correlate`` reports with and
without disconnected cells.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasbench_harness.errors import NasbenchError
from nasbench_harness.models import kept_state

__all__ = [
    "PROXIES",
    "ProxyError",
    "ProxySpec",
    "compute_proxy",
    "get_proxy",
    "proxy_names",
    "register_proxy",
]

_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_BN_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


class ProxyError(NasbenchError):
    """A proxy that is unknown or cannot be computed for this model."""


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy: its function and its one-paragraph definition.

    ``seed_independent``: the value depends on the architecture and the input
    shape only (not on weights, batch or draws), so it is computed at proxy
    seed 0 and the same value is stored for every seed. ``revision`` counts
    changes of the definition: scores saved under another revision are not
    reused.
    """

    name: str
    fn: Callable[[nn.Module, tuple[torch.Tensor, torch.Tensor], Mapping[str, Any]], float]
    definition: str
    seed_independent: bool = False
    revision: int = 1


#: Registered proxies by name, in registration order.
PROXIES: dict[str, ProxySpec] = {}


def register_proxy(name: str, *, seed_independent: bool = False, revision: int = 1) -> Callable:
    """Decorator registering ``fn(model, batch, config) -> float`` as proxy ``name``.

    The docstring (definition and reference) is required; it is stored in the
    table with the scores. ``seed_independent=True`` declares a value that
    depends on the architecture and input shape only (see :class:`ProxySpec`).
    """

    def decorate(fn: Callable) -> Callable:
        doc = inspect.cleandoc(fn.__doc__ or "")
        if not doc:
            raise ProxyError(f"proxy {name!r} needs a docstring with its definition and reference")
        if name in PROXIES:
            raise ProxyError(f"proxy {name!r} is registered twice; pick another name")
        PROXIES[name] = ProxySpec(
            name, fn, " ".join(doc.split()), bool(seed_independent), int(revision)
        )
        return fn

    return decorate


def proxy_names() -> list[str]:
    """Names of every registered proxy."""
    return list(PROXIES)


def get_proxy(name: str) -> ProxySpec:
    """The registered proxy ``name`` (:class:`ProxyError` naming the known ones if absent)."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ProxyError(f"unknown proxy {name!r}; known proxies: {', '.join(PROXIES)}") from None


def compute_proxy(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], config=None
) -> float:
    """Score ``model`` with proxy ``name``; non-finite results come back as NaN.

    Exceptions (including out-of-memory) propagate: the caller decides
    whether a failure is recorded (see :mod:`nasbench_harness.proxies.score`).
    """
    value = float(get_proxy(name).fn(model, batch, dict(config or {})))
    return value if math.isfinite(value) else math.nan


# -- helpers -------------------------------------------------------------------


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _WEIGHT_LAYERS)]


def _loss(config: Mapping[str, Any]) -> Callable:
    return config.get("loss") or F.cross_entropy


#: What each proxy reads from the shared pass (:func:`_shared_pass`).
_SHARED_PART = {
    "grad_norm": "grads",
    "snip": "grads",
    "plain": "grads",
    "grasp": "grads",
    "fisher": "fisher",
    "naswot": "naswot",
}


def shared_state(names) -> dict[str, Any]:
    """A fresh ``config["shared"]`` for scoring one model with the proxies ``names``.

    The first proxy that needs the shared pass computes every part the others
    of ``names`` will read, in one forward (and one backward of the loss if a
    gradient part is among them).
    """
    return {"parts": {_SHARED_PART[n] for n in names if n in _SHARED_PART}}


def _shared_pass(model: nn.Module, batch, config, part: str) -> dict[str, Any]:
    """One forward of ``batch`` (in the model's mode: train, as scored) and one backward of its loss.

    Parts: ``grads`` (the weights and their gradients, zeros if unused:
    grad_norm, snip, plain and grasp's first pass), ``fisher`` (its sum, from
    the weight layers' outputs and their gradients) and ``naswot`` (its
    kernel, from the ReLU inputs; without ``grads`` or ``fisher`` the pass
    runs without a graph and without a loss). With a dict ``config["shared"]``
    (see :func:`shared_state`) the pass runs once per model, batch tensors
    and loss, and every part it lists comes out of it: forward hooks and
    ``retain_grad`` only read the tensors, so each part has the value its own
    pass would give. The batch must not be changed in place between the
    proxies that share it. If the shared pass fails (a loss that cannot be
    computed, out of memory), each proxy runs its own pass instead, so that
    naswot, which needs no loss, still gets its value.
    """
    x, y = batch
    shared = config.get("shared")
    key = (model, x, y, config.get("loss"))
    if shared is not None:
        cached = shared.get("pass")
        if cached is not None and _same_key(cached["key"], key) and part in cached["parts"]:
            return cached
        failed = shared.get("failed")
        if failed is None or not _same_key(failed, key):
            parts = {part} | set(shared.get("parts", ()))
            try:
                result = _run_pass(model, x, y, config, parts)
            except Exception:
                if parts == {part}:
                    raise
                shared["failed"] = key  # each proxy on its own from here (below)
            else:
                result["key"] = key
                shared["pass"] = result
                return result
    return _run_pass(model, x, y, config, {part})


def _same_key(a: tuple, b: tuple) -> bool:
    return all(u is v for u, v in zip(a, b))


def _run_pass(model: nn.Module, x, y, config, parts: set[str]) -> dict[str, Any]:
    layers = _weight_layers(model)
    acts: list[torch.Tensor] = []
    kernel = None
    handles = []

    def fisher_hook(_module, _inputs, output):
        if output.requires_grad:
            output.retain_grad()
            acts.append(output)

    if "fisher" in parts:
        handles += [m.register_forward_hook(fisher_hook) for m in layers]
    if "naswot" in parts:
        kernel = torch.zeros((x.shape[0], x.shape[0]), dtype=torch.float64)
        hook = _naswot_hook(kernel)
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        handles += [m.register_forward_pre_hook(hook) for m in relus]
    try:
        model.zero_grad(set_to_none=True)
        if parts & {"grads", "fisher"}:
            _loss(config)(model(x), y).backward()
        else:
            with torch.no_grad():
                model(x)
    finally:
        for h in handles:
            h.remove()
    result: dict[str, Any] = {"parts": parts}
    if "grads" in parts:  # copies: a later backward would overwrite .grad
        weights = [m.weight for m in layers]
        result["weights"] = weights
        result["grads"] = [
            torch.zeros_like(w) if w.grad is None else w.grad.detach().clone() for w in weights
        ]
    if "fisher" in parts:
        total = 0.0
        for a in acts:
            if a.grad is None:
                continue
            per_channel = (
                (a.detach() * a.grad).flatten(2).sum(2) if a.ndim > 2 else a.detach() * a.grad
            )
            total += float(0.5 * per_channel.pow(2).mean(0).sum())
        result["fisher"] = total
    if kernel is not None:
        result["naswot"] = kernel
    return result


def _weight_grads(model: nn.Module, batch, config) -> tuple[list[torch.Tensor], list]:
    """The weights of the weight layers and their loss gradients (see :func:`_shared_pass`)."""
    done = _shared_pass(model, batch, config, "grads")
    return done["weights"], done["grads"]


def _sum(values) -> float:
    return float(sum(float(v) for v in values))


# -- gradient-based proxies ----------------------------------------------------


@register_proxy("grad_norm")
def grad_norm(model, batch, config) -> float:
    """Sum over weight layers of the L2 norm of dLoss/dW (cross-entropy, one backward).

    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
    """
    _, grads = _weight_grads(model, batch, config)
    return _sum(g.norm() for g in grads)


@register_proxy("snip")
def snip(model, batch, config) -> float:
    """Sum over weight layers of abs(W * dLoss/dW) (connection sensitivity).

    Lee et al., "SNIP: Single-shot Network Pruning based on Connection
    Sensitivity", ICLR 2019; as a NAS proxy Abdelfattah et al., ICLR 2021.
    """
    weights, grads = _weight_grads(model, batch, config)
    return _sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads))


@register_proxy("plain")
def plain(model, batch, config) -> float:
    """Sum over weight layers of W * dLoss/dW, sign kept.

    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
    """
    weights, grads = _weight_grads(model, batch, config)
    return _sum((w.detach() * g).sum() for w, g in zip(weights, grads))


@register_proxy("grasp")
def grasp(model, batch, config) -> float:
    """Sum over weight layers of -(W * Hg), Hg the Hessian-gradient product.

    g = dLoss/dW from a first pass (constant); Hg = d(sum(g * dLoss/dW))/dW
    from a second pass with a graph; the minus sign is intended (GraSP
    removes weights whose removal least reduces gradient flow). Wang et al.,
    "Picking Winning Tickets Before Training by Preserving Gradient Flow",
    ICLR 2020; as a NAS proxy Abdelfattah et al., ICLR 2021.
    """
    x, y = batch
    weights, g = _weight_grads(model, batch, config)  # the first pass
    g2 = torch.autograd.grad(
        _loss(config)(model(x), y), weights, create_graph=True, allow_unused=True
    )
    z = sum((a * b).sum() for a, b in zip(g2, g) if a is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return _sum(-(w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None)


@register_proxy("fisher")
def fisher(model, batch, config) -> float:
    """Sum over the channels of every weight layer's output a of 0.5 * mean_n (sum_pos a * dL/da)^2.

    The activation is each Conv/Linear output; positions are its spatial
    positions (none for Linear). Theis et al., "Faster gaze prediction with
    dense networks and Fisher pruning", 2018; Turner et al., BlockSwap, ICLR
    2020; as a NAS proxy Abdelfattah et al., ICLR 2021.
    """
    return _shared_pass(model, batch, config, "fisher")["fisher"]


@register_proxy("synflow")
def synflow(model, batch, config) -> float:
    """Sum over weight layers of abs(W * d(sum of output)/dW) on an all-ones input.

    Computed in float64 with every batch norm replaced by the identity and
    every parameter replaced by its absolute value, for the call only: the
    model's batch norms are swapped out while it runs and put back, and its
    parameters are left as they were. The input is one all-ones example of
    the batch's shape. Tanaka et al., "Pruning neural networks without any
    data by iteratively conserving synaptic flow", NeurIPS 2020; as a NAS
    proxy Abdelfattah et al., ICLR 2021.
    """
    x, _ = batch
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    bns = [
        (parent, child_name, child)
        for parent in list(model.modules())
        for child_name, child in list(parent.named_children())
        if isinstance(child, _BN_LAYERS)
    ]
    try:
        for parent, child_name, _ in bns:
            setattr(parent, child_name, nn.Identity())
        fast = _synflow_substituted(model, ones)
    finally:
        for parent, child_name, child in bns:
            setattr(parent, child_name, child)
    return fast if fast is not None else _synflow_on_copy(model, ones)


def _synflow_substituted(model: nn.Module, ones: torch.Tensor) -> float | None:
    """synflow without copying the module tree: float64 absolute values substituted
    for the parameters with ``torch.func.functional_call`` (batch norms already
    swapped out). None for a model this does not cover (frozen, tied through
    parametrizations, not float32, no weight layer): then the copy is used."""
    from torch.nn.utils import parametrize

    named = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    layers = _weight_layers(model)
    by_id = {id(p): n for n, p in named.items()}
    if (
        not layers
        or any(p.dtype != torch.float32 or not p.requires_grad for p in named.values())
        or any(b.dtype != torch.float32 for b in buffers.values())
        or any(parametrize.is_parametrized(m) for m in model.modules())
        or any(id(m.weight) not in by_id for m in layers)
    ):
        return None
    params = {n: p.detach().double().abs().requires_grad_(True) for n, p in named.items()}
    doubles = {n: b.detach().double() for n, b in buffers.items()}  # copies (float32 before)
    out = torch.func.functional_call(model, {**params, **doubles}, (ones,))
    weights = [params[by_id[id(m.weight)]] for m in layers]
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    total = 0.0
    for w, g in zip(weights, grads):
        if g is not None:
            total += float((w.detach() * g).abs().sum())
    return total


def _synflow_on_copy(model: nn.Module, ones: torch.Tensor) -> float:
    """synflow on a float64 deep copy of ``model`` without its batch norms."""
    net = copy.deepcopy(model).double()
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, _BN_LAYERS):
                setattr(parent, child_name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    total = 0.0
    for m in _weight_layers(net):
        w = m.weight  # a parametrized weight is computed (no leaf, no .grad): not counted
        if w.is_leaf and w.grad is not None:
            total += float((w.detach() * w.grad).abs().sum())
    return total


@register_proxy("jacob_cov", revision=2)
def jacob_cov(model, batch, config) -> float:
    """-sum(log(v + k) + 1/(v + k)), v the eigenvalues of the correlation matrix of the input Jacobians.

    J_n = d(sum of outputs of example n)/d(x_n), flattened; c = corrcoef of
    the rows J_n; k = 1e-5. A constant Jacobian gives NaN. Only the first
    min(B, D - 1) examples of the batch are used (D input values per
    example): corrcoef centres each row, so B rows of D values have rank at
    most D - 1, and with B >= D every missing rank adds a constant
    -(log k + 1/k) ~ -1e5 that swamps the spectrum (on MNIST-1D, D = 40 and
    B = 128 left 89 such eigenvalues); with B < D, as in the reference
    (CIFAR, D = 3072, B = 128), nothing changes. Mellor et al., "Neural
    Architecture Search without Training", arXiv 2006.04647v1 (2020);
    Abdelfattah et al., ICLR 2021.
    """
    x, _ = batch
    x = x[: max(2, min(len(x), x[0].numel() - 1))]
    x = x.detach().clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x)
    (jac,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if jac is None:  # the output does not depend on the input: constant Jacobian
        return math.nan
    rows = jac.detach().flatten(1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(rows)
    if not np.all(np.isfinite(corr)):
        return math.nan
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    with np.errstate(all="ignore"):
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def naswot_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """NASWOT's kernel K = sum over ReLUs of c c^T + (1-c)(1-c)^T, c = (ReLU input > 0) per example."""
    return _run_pass(model, x, None, {}, {"naswot"})["naswot"]


def _naswot_hook(kernel: torch.Tensor) -> Callable:
    """A ReLU forward pre-hook that adds its input's binary-code kernel to ``kernel``."""

    def hook(_module, inputs):
        c = (inputs[0].detach() > 0).flatten(1).double()
        r = c.sum(1)
        # c c^T + (1-c)(1-c)^T = 2 c c^T - r_i - r_j + units (one product instead of two)
        kernel.add_((2 * (c @ c.T) - r[:, None] - r[None, :] + c.shape[1]).cpu())

    return hook


@register_proxy("naswot")
def naswot(model, batch, config) -> float:
    """log|det K| (slogdet) of the binary-code kernel K over the ReLUs (see :func:`naswot_kernel`).

    A singular K gives NaN. Mellor et al., "Neural Architecture Search
    without Training", ICML 2021 (batch 128 in the paper).
    """
    kernel = _shared_pass(model, batch, config, "naswot")["naswot"]
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0 else math.nan


def _pre_pool_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Features before global pooling of a :class:`~nasbench_harness.models.Network`."""
    if hasattr(model, "forward_features"):
        return model.forward_features(x)
    if all(hasattr(model, a) for a in ("stem", "cells", "head_bn", "head_act")):
        return model.head_act(model.head_bn(model.cells(model.stem(x))))
    raise ProxyError(
        f"zen needs the pre-pooling features of {type(model).__name__}: give the model a "
        "forward_features(x) method"
    )


@register_proxy("zen")
def zen(model, batch, config) -> float:
    """log mean |f(x) - f(x + 0.01 eps)| + sum over BNs of log sqrt(mean running var).

    With the Conv/Linear weights re-drawn N(0, 1) (biases 0), batch-norm
    affine set to 1/0 and running statistics reset, in place for the call
    (the model's parameters, buffers and modes are copied back after it,
    also when it fails); x and eps are N(0, 1) of the batch's shape,
    drawn from ``config["generator"]``; f is the pre-pooling feature map
    (mean over all its elements: ZenNAS sums over the feature dimensions, a
    shift by the same constant log(feature size) for every arch of a
    skeleton); both forwards in train mode, then the BN
    running variances (default momentum) enter the sum. Lin et al.,
    "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021.
    """
    gen = config.get("generator")
    if not isinstance(gen, torch.Generator):
        raise ProxyError("zen draws random inputs: pass config['generator'] = torch.Generator()")
    x0, _ = batch
    with kept_state(model) as net, torch.no_grad():
        net.train()
        for m in net.modules():
            if isinstance(m, _WEIGHT_LAYERS):
                w = torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, _BN_LAYERS):
                m.reset_running_stats()
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        x = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
        f1 = _pre_pool_features(net, x)
        f2 = _pre_pool_features(net, x + 0.01 * eps)
        diff = float((f1 - f2).abs().double().mean())
        if not diff > 0:  # output independent of the input (disconnected cell)
            return math.nan
        score = math.log(diff)
        for m in net.modules():
            if isinstance(m, _BN_LAYERS) and m.running_var is not None:
                score += math.log(math.sqrt(float(m.running_var.double().mean())))
    return score


@register_proxy("zico")
def zico(model, batch, config) -> float:
    """Sum over weight layers of log(sum over weights of mean|g| / std(g)), across two minibatches.

    The two minibatches are the two halves of the batch (first half, second
    half; a documented rule, not an out-of-memory split); std is the
    population std over the two gradients; weights with std 0 are skipped, and
    so is a layer whose sum is 0. Li et al., "ZiCo: Zero-shot NAS via Inverse
    Coefficient of Variation on Gradients", ICLR 2023.
    """
    x, y = batch
    if x.shape[0] < 2:
        raise ProxyError("zico needs a batch of at least 2 examples (two halves)")
    half = x.shape[0] // 2
    per_batch = []
    alone = {**config, "shared": None}  # half batches: not the pass the other proxies share
    for sl in (slice(0, half), slice(half, None)):
        _, grads = _weight_grads(model, (x[sl], y[sl]), alone)
        per_batch.append([g.detach().double().clone() for g in grads])
    total = 0.0
    for g_a, g_b in zip(*per_batch):
        stacked = torch.stack([g_a.flatten(), g_b.flatten()])
        std = stacked.std(0, unbiased=False)
        mean_abs = stacked.abs().mean(0)
        nz = std != 0
        s = float((mean_abs[nz] / std[nz]).sum())
        if s != 0:
            total += math.log(s)
    return total


# -- data-independent proxies --------------------------------------------------


@register_proxy("l2_norm")
def l2_norm(model, batch, config) -> float:
    """Sum over weight layers of the L2 norm of the weights (at initialisation).

    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
    """
    return _sum(m.weight.detach().norm() for m in _weight_layers(model))


@register_proxy("params", seed_independent=True)
def params(model, batch, config) -> float:
    """Number of trainable parameters of the real architecture (only the built edges).

    A classic baseline (e.g. Krishnakumar et al., NAS-Bench-Suite-Zero, NeurIPS 2022).
    """
    from nasbench_harness.models import count_params

    return float(count_params(model))


@register_proxy("flops", seed_independent=True)
def flops(model, batch, config) -> float:
    """Forward FLOPs at batch size 1 (``models.count_flops``: 2 per multiply-add).

    A classic baseline (e.g. Krishnakumar et al., NAS-Bench-Suite-Zero, NeurIPS 2022).
    """
    from nasbench_harness.models import count_flops

    return float(count_flops(model, tuple(batch[0].shape[1:])))
