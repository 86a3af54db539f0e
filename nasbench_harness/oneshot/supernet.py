"""The NB201 supernet: every candidate op on every edge of the cell, in the table's skeleton.

The macro skeleton is :class:`nasbench_harness.models.Network`'s, built from
the same modules (stem conv + BN, :class:`~nasbench_harness.models.LightReduction`
or :class:`~nasbench_harness.models.ResidualReduction`, BN + ReLU + global
average pooling + linear head) with the same module names, so a supernet and
a standalone network of one arch share their parameter names outside the
cells. Inside each cell, edge ``i -> j`` holds one module per parametrised
candidate op (``nor_conv_1x1``, ``nor_conv_3x3``: ReLU -> conv -> BN; and the
parameter-free ``avg_pool_3x3``); ``skip_connect`` is the identity and
``none`` adds nothing. One set of architecture weights is shared by every
cell, as in NAS-Bench-201's search models.

Batch normalisation of the candidate ops is, by default, the references'
(DARTS, GDAS and the NAS-Bench-201 search scripts): no affine parameters and
no running statistics (``affine=False, track_running_stats=False``), so it
always normalises with the statistics of the current batch. The stem,
reduction and head BN layers are the standalone network's (affine, running
statistics). ``op_bn_affine=True, op_bn_running_stats=True`` builds cells
whose ops are exactly the standalone network's ops (used to test that the
supernet with one-hot weights *is* the standalone network).

Forward modes (``weights`` is ``(6, 5)`` in ``models.EDGES`` x ``models.OPS``
order, ``choice`` six op indices):

- ``weights`` only: the continuous relaxation of DARTS, edge output
  ``sum_k weights[e, k] * op_k(x)`` (the ``none`` term is zero and skipped);
- ``choice`` only: one path, edge output ``op_{choice[e]}(x)``, computing only
  the chosen op (random-sampling one-shot, evaluation with inherited weights);
- both: GDAS, edge output ``weights[e, choice[e]] * op_{choice[e]}(x)`` with
  ``weights`` the straight-through one-hot, so the value is the one path's
  and the gradient reaches the architecture parameters through
  ``weights[e, choice[e]]``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasbench_harness import models
from nasbench_harness.errors import ArchError, BuildError

__all__ = [
    "N_EDGES",
    "N_OPS",
    "MixedCell",
    "Supernet",
    "arch_to_choice",
    "build_supernet",
    "choice_to_index",
    "extract_network",
    "onehot_weights",
]

N_EDGES = len(models.EDGES)
N_OPS = len(models.OPS)
_NONE = models.OPS.index("none")
_SKIP = models.OPS.index("skip_connect")
_PARAMETRISED = ("nor_conv_1x1", "nor_conv_3x3")
_LAYERS = {1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d)}
#: Incoming edges of nodes 1, 2, 3 as (edge position, source node), in ``models.EDGES`` order.
_INCOMING = tuple(
    tuple((e, i) for e, (i, j) in enumerate(models.EDGES) if j == node) for node in (1, 2, 3)
)


def _relu_conv_bn(
    dims: int, channels: int, kernel: int, affine: bool, running_stats: bool
) -> nn.Sequential:
    """ReLU -> conv(k, stride 1, padding k//2, no bias) -> BN: ``models._ReLUConvBN``'s layout."""
    conv, bn = _LAYERS[dims]
    return nn.Sequential(
        nn.ReLU(),
        conv(channels, channels, kernel, padding=kernel // 2, bias=False),
        bn(channels, affine=affine, track_running_stats=running_stats),
    )


class MixedCell(nn.Module):
    """One NB201 cell with every candidate op on every edge (see the module docstring)."""

    def __init__(self, channels: int, dims: int, *, affine: bool, running_stats: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        for i, j in models.EDGES:
            self.edges[f"{i}_{j}"] = nn.ModuleDict(
                {
                    "nor_conv_1x1": _relu_conv_bn(dims, channels, 1, affine, running_stats),
                    "nor_conv_3x3": _relu_conv_bn(dims, channels, 3, affine, running_stats),
                    "avg_pool_3x3": models.AvgPool3(dims),
                }
            )
        self._ops = [self.edges[f"{i}_{j}"] for i, j in models.EDGES]

    def _op(self, e: int, k: int, x: torch.Tensor) -> torch.Tensor:
        return x if k == _SKIP else self._ops[e][models.OPS[k]](x)

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None = None,
        choice: Sequence[int] | None = None,
    ) -> torch.Tensor:
        nodes = [x]
        for incoming in _INCOMING:
            total = None
            for e, i in incoming:
                if choice is not None:
                    k = choice[e]
                    if k == _NONE:
                        continue
                    value = self._op(e, k, nodes[i])
                    if weights is not None:
                        value = weights[e, k] * value
                else:
                    value = None
                    for k in range(N_OPS):
                        if k == _NONE:
                            continue
                        term = weights[e, k] * self._op(e, k, nodes[i])
                        value = term if value is None else value + term
                total = value if total is None else total + value
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class Supernet(nn.Module):
    """NB201 macro skeleton around :class:`MixedCell` cells (see the module docstring).

    Call as ``supernet(x, weights=..., choice=...)``; at least one of the two
    must be given.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: int,
        cells_per_stage: int,
        reduction: str,
        op_bn_affine: bool = False,
        op_bn_running_stats: bool = False,
    ) -> None:
        super().__init__()
        dims = len(input_shape) - 1
        conv, bn = _LAYERS[dims]
        reduction_cls = (
            models.ResidualReduction if reduction == "residual" else models.LightReduction
        )
        self.input_shape = tuple(input_shape)
        self.skeleton = {
            "input_shape": list(input_shape),
            "n_classes": n_classes,
            "channels": channels,
            "cells_per_stage": cells_per_stage,
            "reduction": reduction,
            "op_bn_affine": op_bn_affine,
            "op_bn_running_stats": op_bn_running_stats,
        }
        self.stem = nn.Sequential(
            conv(input_shape[0], channels, 3, padding=1, bias=False), bn(channels)
        )
        blocks: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                blocks.append(reduction_cls(dims, c, 2 * c))
                c *= 2
            blocks.extend(
                MixedCell(c, dims, affine=op_bn_affine, running_stats=op_bn_running_stats)
                for _ in range(cells_per_stage)
            )
        self.cells = nn.Sequential(*blocks)
        self.head_bn = bn(c)
        self.head_act = nn.ReLU()
        self.classifier = nn.Linear(c, n_classes)
        self._pool_dims = tuple(range(2, 2 + dims))

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None = None,
        choice: Sequence[int] | None = None,
    ) -> torch.Tensor:
        if weights is None and choice is None:
            raise ArchError(
                "the supernet needs architecture weights (weights=, shape (6, 5)) or a path "
                "(choice=, six op indices); give one or both"
            )
        if choice is not None:
            choice = _live_choice(tuple(int(k) for k in choice))
        x = self.stem(x)
        for block in self.cells:
            x = block(x, weights, choice) if isinstance(block, MixedCell) else block(x)
        x = self.head_act(self.head_bn(x)).mean(dim=self._pool_dims)
        return self.classifier(x)


@functools.lru_cache(maxsize=4096)
def _live_choice(choice: tuple[int, ...]) -> tuple[int, ...]:
    """``choice`` with every edge that cannot reach the output set to ``none``.

    Such an edge changes neither the output nor any gradient; skipping it is
    what ``models.Cell`` does (it builds only live edges).
    """
    if len(choice) != N_EDGES or any(not 0 <= k < N_OPS for k in choice):
        raise ArchError(
            f"path {choice!r} is not valid: give {N_EDGES} op indices in 0..{N_OPS - 1} "
            f"(order {models.OPS})"
        )
    live = models.live_edges(tuple(models.OPS[k] for k in choice))
    return tuple(k if alive else _NONE for k, alive in zip(choice, live))


def _init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """``models.build_model``'s initialisation, also for BN layers without affine parameters.

    Conv weights Kaiming-normal (fan-in, ReLU gain), linear weight and bias
    uniform in ``+-1/sqrt(fan_in)``, BN weight 1 and bias 0, running
    statistics reset; every draw comes from ``generator``, in module order.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_in", nonlinearity="relu", generator=generator
                )
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.reset_running_stats()
                if module.affine:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / module.in_features**0.5
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def build_supernet(
    *,
    input_shape: Sequence[int],
    n_classes: int,
    channels: int,
    cells_per_stage: int,
    reduction: str,
    generator: torch.Generator,
    op_bn_affine: bool = False,
    op_bn_running_stats: bool = False,
) -> Supernet:
    """Build a supernet on the CPU, in train mode, initialised from ``generator`` only.

    Parameters
    ----------
    input_shape, n_classes, channels, cells_per_stage, reduction
        As for :func:`nasbench_harness.models.build_model` (the table's recipe).
    generator
        The only source of randomness (a CPU ``torch.Generator``).
    op_bn_affine, op_bn_running_stats
        BN of the candidate ops; the default (both False) is the references'.
    """
    shape = models._check_input_shape(input_shape)
    models.check_int("n_classes", n_classes, 1)
    models.check_int("channels", channels, 1)
    models.check_int("cells_per_stage", cells_per_stage, 0)
    if reduction not in models.REDUCTIONS:
        raise BuildError(f"reduction={reduction!r} is not known: use one of {models.REDUCTIONS}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise BuildError(
            f"generator={generator!r} is not a CPU torch.Generator: pass "
            "torch.Generator().manual_seed(seed)"
        )
    with torch.device("meta"):  # no allocation and no draw from the global RNG
        net = Supernet(
            input_shape=shape,
            n_classes=n_classes,
            channels=channels,
            cells_per_stage=cells_per_stage,
            reduction=reduction,
            op_bn_affine=bool(op_bn_affine),
            op_bn_running_stats=bool(op_bn_running_stats),
        )
    net.to_empty(device="cpu")
    _init_parameters(net, generator)
    return net


def arch_to_choice(arch: Any) -> tuple[int, ...]:
    """Six op indices (``models.OPS`` order) of an arch (index, NB201 string or op names)."""
    return tuple(models.OPS.index(op) for op in models.normalise_arch(arch))


def choice_to_index(choice: Sequence[int]) -> int:
    """The NB201 space index of a path given as six op indices."""
    from nasbench_harness.space import get_space

    return get_space("nb201").index(tuple(models.OPS[int(k)] for k in choice))


def onehot_weights(arch: Any, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(6, 5)`` one-hot architecture weights of an arch."""
    weights = torch.zeros(N_EDGES, N_OPS, dtype=dtype)
    for e, k in enumerate(arch_to_choice(arch)):
        weights[e, k] = 1.0
    return weights


def extract_network(supernet: Supernet, arch: Any) -> nn.Module:
    """The standalone ``models.Network`` of ``arch`` with the supernet's (inherited) weights.

    Every parameter and buffer of the standalone network is copied from the
    supernet: stem, reductions and head as they are, and each built edge from
    the supernet's module of the chosen op on that edge. Where the
    supernet's op BN has no affine parameters, the standalone BN gets weight 1
    and bias 0 (the same function on batch statistics); where it keeps no
    running statistics, the standalone BN keeps its fresh ones (mean 0,
    variance 1), so the copy equals the supernet in train mode only.
    """
    ops = models.normalise_arch(arch)
    skeleton = supernet.skeleton
    net = models.build_model(
        ops,
        input_shape=tuple(skeleton["input_shape"]),
        n_classes=skeleton["n_classes"],
        channels=skeleton["channels"],
        cells_per_stage=skeleton["cells_per_stage"],
        reduction=skeleton["reduction"],
        generator=torch.Generator().manual_seed(0),  # every value is overwritten below
    )
    device = next(supernet.parameters()).device
    dtype = next(supernet.parameters()).dtype
    net = net.to(device=device, dtype=dtype)
    source = supernet.state_dict()
    edge_of = {f"{i}_{j}": e for e, (i, j) in enumerate(models.EDGES)}
    with torch.no_grad():
        for key, tensor in net.state_dict().items():
            parts = key.split(".")
            if parts[0] == "cells" and len(parts) > 3 and parts[2] == "edges":
                op = ops[edge_of[parts[3]]]
                src_key = ".".join([*parts[:4], op, *parts[4:]])
            else:
                src_key = key
            if src_key in source:
                tensor.copy_(source[src_key])
            elif key.endswith(".weight"):  # a BN without affine parameters in the supernet
                tensor.fill_(1.0)
            elif key.endswith(".bias"):
                tensor.zero_()
            # running statistics the supernet does not keep stay fresh
    return net
