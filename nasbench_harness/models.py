"""Architectures of the NB201 cell space as ``torch.nn.Module`` objects.

The macro skeleton is NAS-Bench-201's: a stem (conv3x3 + BN), three stages of
``cells_per_stage`` cells at ``C``, ``2C`` and ``4C`` channels separated by two
stride-2 reduction blocks, then BN, ReLU, global average pooling and a linear
classifier. Inputs shaped ``(C_in, L)`` get 1-D layers, ``(C_in, H, W)`` 2-D
ones.

Every parameter is initialised from the ``torch.Generator`` passed to
:func:`build_model`; the global torch RNG is neither read nor advanced (the
modules are created on the meta device and materialised afterwards).

Only the edges that can influence the cell output are built: an edge whose
target node has no path of non-``none`` edges to the output node would get no
gradient and change nothing, so leaving it out changes neither the function nor
training (SGD skips parameters without a gradient), only the parameter count.
Edges out of a node that receives nothing are kept: a conv on an all-zero input
outputs its BatchNorm shift, a trained constant.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasbench_harness.errors import ArchError, BuildError

__all__ = [
    "EDGES",
    "OPS",
    "REDUCTIONS",
    "AvgPool3",
    "Cell",
    "HalfPool",
    "LightReduction",
    "Network",
    "ResidualReduction",
    "build_model",
    "count_flops",
    "count_params",
    "live_edges",
    "measure_latency_ms",
    "normalise_arch",
]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
REDUCTIONS = ("residual", "light")

_LAYERS = {
    1: {"conv": nn.Conv1d, "bn": nn.BatchNorm1d},
    2: {"conv": nn.Conv2d, "bn": nn.BatchNorm2d},
}


def normalise_arch(arch: Any) -> tuple[str, ...]:
    """Return ``arch`` as a tuple of 6 op names in ``EDGES`` order.

    A tuple or list of op names is checked here; anything else (an arch
    string, an index) is resolved through ``get_space("nb201")``.
    """
    if isinstance(arch, (tuple, list)) and all(isinstance(op, str) for op in arch):
        ops = tuple(arch)
        bad = [op for op in ops if op not in OPS]
        if len(ops) != len(EDGES) or bad:
            raise ArchError(
                f"arch {arch!r} is not an NB201 cell: give {len(EDGES)} op names in the edge "
                f"order {EDGES}, each one of {OPS}" + (f" (unknown: {bad})" if bad else "")
            )
        return ops
    from nasbench_harness.space import get_space  # an arch string or an index

    space = get_space("nb201")
    return tuple(space.arch(space.index(arch)))


class AvgPool3(nn.Module):
    """Average over a 3 (1-D) or 3x3 (2-D) window, stride 1, zero padding 1, padding not counted.

    The same function as ``AvgPool{1,2}d(3, stride=1, padding=1,
    count_include_pad=False)`` (up to float rounding), computed as sums of
    shifted copies, which is 2-3 times faster for small tensors on the CPU.
    """

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims
        self._inverse_counts: dict[tuple, torch.Tensor] = {}

    def _inverse_count(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape[2:]), x.device, x.dtype)
        if key not in self._inverse_counts:
            total = None
            for size in x.shape[2:]:
                count = torch.full((size,), 3.0, dtype=torch.float64)
                count[0] -= 1
                count[-1] -= 1
                total = count if total is None else total[:, None] * count[None, :]
            self._inverse_counts[key] = (1.0 / total).to(device=x.device, dtype=x.dtype)
        return self._inverse_counts[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for d in range(self.dims):
            dim = x.ndim - 1 - d
            padded = F.pad(y, (0, 0) * d + (1, 1))
            size = y.shape[dim]
            y = (
                padded.narrow(dim, 0, size)
                + padded.narrow(dim, 1, size)
                + padded.narrow(dim, 2, size)
            )
        return y * self._inverse_count(x)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, window=3, stride=1, padding=1, count_include_pad=False"


class HalfPool(nn.Module):
    """Average pooling with window 2 and stride 2; odd sizes round up (``ceil_mode``)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if all(size % 2 == 0 for size in x.shape[2:]):  # fast path: a reshape and a mean
            if self.dims == 1:
                return x.unflatten(2, (x.shape[2] // 2, 2)).mean(3)
            n, c, h, w = x.shape
            return x.reshape(n, c, h // 2, 2, w // 2, 2).mean((3, 5))
        pool = F.avg_pool1d if self.dims == 1 else F.avg_pool2d
        return pool(x, 2, stride=2, ceil_mode=True)


class _ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, stride, padding k//2, no bias) -> BatchNorm (affine)."""

    def __init__(self, dims: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        layers = _LAYERS[dims]
        super().__init__(
            nn.ReLU(),
            layers["conv"](c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            layers["bn"](c_out),
        )


def _make_op(op: str, dims: int, channels: int) -> nn.Module | None:
    """The module of one edge; ``None`` stands for the identity (skip_connect)."""
    if op == "skip_connect":
        return None
    if op == "nor_conv_1x1":
        return _ReLUConvBN(dims, channels, channels, 1)
    if op == "nor_conv_3x3":
        return _ReLUConvBN(dims, channels, channels, 3)
    if op == "avg_pool_3x3":
        return AvgPool3(dims)
    raise ArchError(f"op {op!r} has no module; ops are {OPS}")


def live_edges(arch: tuple[str, ...]) -> list[bool]:
    """Which edges can influence node 3 (non-none, target reaches node 3); a cell runs only these."""
    op = dict(zip(EDGES, arch))
    reaches = {3: True}
    reaches[2] = op[(2, 3)] != "none"
    reaches[1] = op[(1, 3)] != "none" or (op[(1, 2)] != "none" and reaches[2])
    return [arch[k] != "none" and reaches[j] for k, (_, j) in enumerate(EDGES)]


class Cell(nn.Module):
    """One NB201 cell: node j = sum over i < j of op_ij(node i); output = node 3.

    A node that receives no edge is all zeros (shape-preserving), so a cell
    with no path from input to output outputs zeros or trained constants.
    """

    def __init__(self, arch: tuple[str, ...], channels: int, dims: int) -> None:
        super().__init__()
        self.arch = arch
        live = live_edges(arch)
        self.edges = nn.ModuleDict()
        incoming: dict[int, list[tuple[int, nn.Module | None]]] = {1: [], 2: [], 3: []}
        for k, ((i, j), op) in enumerate(zip(EDGES, arch)):
            if not live[k]:
                continue
            module = _make_op(op, dims, channels)
            if module is not None:
                self.edges[f"{i}_{j}"] = module
            incoming[j].append((i, module))
        needed = {3} | {i for k, (i, _) in enumerate(EDGES) if live[k]}
        # plan[j - 1] lists node j's incoming (source, module) or None when node j is unused.
        self._plan = [incoming[j] if j in needed else None for j in (1, 2, 3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for incoming in self._plan:
            if incoming is None:
                nodes.append(None)
                continue
            total = None
            for i, module in incoming:
                value = nodes[i] if module is None else module(nodes[i])
                total = value if total is None else total + value
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]

    def extra_repr(self) -> str:
        return f"arch={self.arch}"


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block, C -> 2C at stride 2.

    ``ReLU-conv3x3(stride 2)-BN -> ReLU-conv3x3-BN`` plus the shortcut
    ``avgpool(2, stride 2) -> conv1x1`` (no BN, no final ReLU).
    """

    def __init__(self, dims: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _ReLUConvBN(dims, c_in, c_out, 3, stride=2)
        self.conv_b = _ReLUConvBN(dims, c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            HalfPool(dims),
            _LAYERS[dims]["conv"](c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class LightReduction(nn.Sequential):
    """A cheap reduction, C -> 2C at stride 2: ``avgpool(2, stride 2) -> conv1x1 -> BN``.

    No ReLU: the next cell's convs start with one. Pooling uses ``ceil_mode``
    so odd lengths round up, as a stride-2 conv3x3 would.
    """

    def __init__(self, dims: int, c_in: int, c_out: int) -> None:
        layers = _LAYERS[dims]
        super().__init__(
            HalfPool(dims),
            layers["conv"](c_in, c_out, 1, bias=False),
            layers["bn"](c_out),
        )


class Network(nn.Module):
    """NB201 macro skeleton around one cell architecture."""

    def __init__(
        self,
        arch: tuple[str, ...],
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: int,
        cells_per_stage: int,
        reduction: str,
    ) -> None:
        super().__init__()
        dims = len(input_shape) - 1
        layers = _LAYERS[dims]
        reduction_cls = ResidualReduction if reduction == "residual" else LightReduction
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.stem = nn.Sequential(
            layers["conv"](input_shape[0], channels, 3, padding=1, bias=False),
            layers["bn"](channels),
        )
        blocks: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                blocks.append(reduction_cls(dims, c, 2 * c))
                c *= 2
            blocks.extend(Cell(arch, c, dims) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*blocks)
        self.head_bn = layers["bn"](c)
        self.head_act = nn.ReLU()
        self.classifier = nn.Linear(c, n_classes)
        self._pool_dims = tuple(range(2, 2 + dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(self.stem(x))
        x = self.head_act(self.head_bn(x)).mean(dim=self._pool_dims)
        return self.classifier(x)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is a whole number >= ``minimum`` (not a bool), else BuildError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BuildError(f"{name}={value!r} is not valid: give an integer >= {minimum}")
    return int(value)


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise BuildError(
            f"input_shape={input_shape!r} is not valid: give (channels, length) for 1-D "
            "or (channels, height, width) for 2-D inputs, without the batch dimension"
        )
    return shape


def _init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Initialise every parameter and buffer, drawing only from ``generator``."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_in", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.reset_running_stats()
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / module.in_features**0.5  # torch's default for both
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def build_model(
    arch: Any,
    *,
    input_shape: Sequence[int],
    n_classes: int,
    channels: int = 16,
    cells_per_stage: int = 5,
    reduction: str = "residual",
    generator: torch.Generator,
) -> nn.Module:
    """Build the NB201 network of one cell architecture, on the CPU, in train mode.

    Parameters
    ----------
    arch
        Tuple of 6 op names in ``EDGES`` order, or anything ``get_space("nb201")``
        accepts (arch string, index).
    input_shape
        ``(C_in, L)`` for 1-D inputs or ``(C_in, H, W)`` for 2-D ones.
    n_classes
        Outputs of the linear classifier.
    channels, cells_per_stage
        ``C`` and ``N`` of the skeleton (NB201 published C=16, N=5).
    reduction
        ``"residual"`` (NB201's ResNet basic block) or ``"light"``
        (avgpool + conv1x1 + BN).
    generator
        The only source of randomness: conv weights are Kaiming-normal
        (fan-in, ReLU gain), the linear layer uniform in
        ``+-1/sqrt(fan_in)`` (weight and bias), BatchNorm weight 1, bias 0.
    """
    ops = normalise_arch(arch)
    shape = _check_input_shape(input_shape)
    check_int("n_classes", n_classes, 1)
    check_int("channels", channels, 1)
    check_int("cells_per_stage", cells_per_stage, 0)
    if reduction not in REDUCTIONS:
        raise BuildError(f"reduction={reduction!r} is not known: use one of {REDUCTIONS}")
    if not isinstance(generator, torch.Generator):
        raise BuildError(
            f"generator={generator!r} is not a torch.Generator: pass "
            "torch.Generator().manual_seed(seed)"
        )
    if generator.device.type != "cpu":
        raise BuildError(
            f"generator is on {generator.device}: models are initialised on the CPU, pass a CPU "
            "torch.Generator and move the model afterwards"
        )
    with torch.device("meta"):  # no allocation and no draw from the global RNG
        model = Network(
            ops,
            input_shape=shape,
            n_classes=n_classes,
            channels=channels,
            cells_per_stage=cells_per_stage,
            reduction=reduction,
        )
    model.to_empty(device="cpu")
    _init_parameters(model, generator)
    return model


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (built modules only, see the module docstring)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def kept_modes(model: nn.Module):
    """Restore every submodule's train/eval mode on exit.

    ``model.train(was_training)`` alone would put a model whose modules were
    in mixed modes all in one mode.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def kept_state(model: nn.Module, *, parameters: bool = True):
    """Restore ``model``'s buffers (and, by default, its parameters) and every mode on exit.

    For code that changes a model in place for a while (re-drawn weights,
    batch-norm running statistics): the values are saved and copied back
    bitwise, also when the body fails; cheaper than a deep copy, as no module
    object is copied.
    """
    tensors = (*model.parameters(), *model.buffers()) if parameters else tuple(model.buffers())
    saved = [(t, t.detach().clone()) for t in tensors]
    with kept_modes(model):
        try:
            yield model
        finally:
            with torch.no_grad():
                for t, value in saved:
                    t.copy_(value)


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass at batch size 1, in eval mode.

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: 2 per
    multiply-add of convolutions and matrix products; BatchNorm, pooling,
    ReLU and additions are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = _check_input_shape(input_shape)
    with kept_modes(model):
        model.eval()
        x = torch.zeros((1, *shape), device=_model_device(model))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    return int(counter.get_total_flops())


def measure_latency_ms(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    *,
    repeats: int = 30,
    warmup: int = 5,
) -> float:
    """Median wall time in milliseconds of a batch-1 forward pass (eval mode, no grad).

    The model is copied when it is not already on ``device``; it is never
    modified. On CUDA every pass is synchronised.
    """
    shape = _check_input_shape(input_shape)
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    device = torch.device(device)
    if _model_device(model).type != device.type:
        model = copy.deepcopy(model).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with kept_modes(model):
        model.eval()
        x = torch.zeros((1, *shape), device=device)
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
