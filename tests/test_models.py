"""Tests for nasbench_harness.models: shapes, init, disconnected cells, costs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasbench_harness.errors import ArchError, BuildError, NasbenchError
from nasbench_harness.models import (
    OPS,
    AvgPool3,
    HalfPool,
    build_model,
    count_flops,
    count_params,
    measure_latency_ms,
    normalise_arch,
)

ARCH = (
    "nor_conv_3x3",
    "skip_connect",
    "nor_conv_1x1",
    "avg_pool_3x3",
    "nor_conv_3x3",
    "skip_connect",
)
DISCONNECTED = ("nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "none", "none", "none")
ALL_CONV3 = ("nor_conv_3x3",) * 6


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _build(arch=ARCH, shape=(1, 40), seed=0, **kwargs):
    kwargs = {"n_classes": 10, "channels": 4, "cells_per_stage": 1, **kwargs}
    return build_model(arch, input_shape=shape, generator=_gen(seed), **kwargs)


@pytest.mark.parametrize("reduction", ["residual", "light"])
@pytest.mark.parametrize("shape", [(1, 40), (2, 15), (1, 8, 8), (3, 7, 9)])
def test_output_shape(shape, reduction):
    model = _build(shape=shape, reduction=reduction, n_classes=7)
    x = torch.randn(3, *shape, generator=_gen(1))
    assert model(x).shape == (3, 7)
    conv = nn.Conv1d if len(shape) == 2 else nn.Conv2d
    assert any(isinstance(m, conv) for m in model.modules())


def test_disconnected_cell_output_does_not_depend_on_input():
    model = _build(DISCONNECTED, cells_per_stage=2)
    x1 = torch.randn(5, 1, 40, generator=_gen(1))
    x2 = torch.randn(5, 1, 40, generator=_gen(2)) * 3
    assert torch.equal(model(x1), model(x2))
    model.eval()
    assert torch.equal(model(x1), model(x2))


def test_all_none_cell_is_legal():
    model = _build(("none",) * 6)
    out = model(torch.randn(2, 1, 40, generator=_gen(1)))
    assert out.shape == (2, 10)
    assert torch.equal(out[0], out[1])


def test_same_generator_seed_gives_identical_parameters():
    a, b, c = _build(seed=3), _build(seed=3), _build(seed=4)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


def test_build_leaves_global_rng_alone():
    before = torch.random.get_rng_state()
    model = _build()
    count_flops(model, (1, 40))
    measure_latency_ms(model, (1, 40), "cpu", repeats=2, warmup=1)
    assert torch.equal(before, torch.random.get_rng_state())


def test_init_values():
    model = _build(ALL_CONV3, channels=8)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1)
        if isinstance(module, nn.Linear):
            bound = 1 / module.in_features**0.5
            assert module.weight.abs().max() <= bound
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nb201_cifar_size_matches_published():
    # NB201 reports 1.53 M parameters and 220 M FLOPs (multiply-adds) for all-conv3x3 at C=16, N=5.
    model = build_model(
        ALL_CONV3, input_shape=(3, 32, 32), n_classes=10, generator=_gen(), reduction="residual"
    )
    assert count_params(model) == 1_531_546
    assert count_flops(model, (3, 32, 32)) / 2e6 == pytest.approx(220.1, abs=0.1)


def test_params_count_sanity():
    empty = count_params(_build(("none",) * 6))
    skips = count_params(_build(("skip_connect",) * 6))
    conv1 = count_params(_build(("nor_conv_1x1",) * 6))
    conv3 = count_params(_build(ALL_CONV3))
    assert empty == skips < conv1 < conv3
    # one cell per stage at C=4, 8, 16: 6 convs k x C x C plus 6 BNs (2C each) per cell.
    per_cell = sum(6 * (3 * c * c + 2 * c) for c in (4, 8, 16))
    assert conv3 - empty == per_cell
    assert count_params(_build(reduction="residual")) > count_params(_build(reduction="light"))


def test_dead_edges_are_not_built():
    # Node 1 has no path to the output: edge 0->1 is dead, the model equals the one without it.
    dead = ("nor_conv_3x3", "nor_conv_1x1", "none", "none", "none", "skip_connect")
    alive = ("none", "nor_conv_1x1", "none", "none", "none", "skip_connect")
    assert count_params(_build(dead)) == count_params(_build(alive))


def test_flops_positive_and_ordered():
    f_skip = count_flops(_build(("skip_connect",) * 6), (1, 40))
    f_conv = count_flops(_build(ALL_CONV3), (1, 40))
    assert 0 < f_skip < f_conv


def test_count_flops_keeps_training_mode():
    model = _build()
    count_flops(model, (1, 40))
    assert model.training


def test_latency_positive():
    model = _build()
    latency = measure_latency_ms(model, (1, 40), "cpu", repeats=3, warmup=1)
    assert latency > 0
    assert model.training


@pytest.mark.parametrize("shape", [(2, 40), (2, 1), (2, 8, 8), (2, 5, 7), (2, 1, 1)])
def test_pools_match_torch(shape):
    x = torch.randn(3, *shape, generator=_gen(5))
    dims = len(shape) - 1
    pool = nn.AvgPool1d if dims == 1 else nn.AvgPool2d
    reference3 = pool(3, stride=1, padding=1, count_include_pad=False)(x)
    torch.testing.assert_close(AvgPool3(dims)(x), reference3)
    reference2 = pool(2, stride=2, ceil_mode=True)(x)
    torch.testing.assert_close(HalfPool(dims)(x), reference2)


def test_normalise_arch_accepts_tuples_and_lists():
    assert normalise_arch(list(ARCH)) == ARCH
    assert normalise_arch(ARCH) == ARCH
    assert set(ARCH) <= set(OPS)


def test_normalise_arch_accepts_what_the_space_accepts():
    from nasbench_harness.space import get_space

    space = get_space("nb201")
    assert normalise_arch(space.to_string(ARCH)) == ARCH
    assert normalise_arch(space.index(ARCH)) == ARCH
    with pytest.raises(ArchError):
        normalise_arch("|conv5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")


@pytest.mark.parametrize(
    "bad", [("nor_conv_3x3",) * 5, ("conv5x5",) + ("none",) * 5, ("none",) * 7]
)
def test_bad_arch_raises(bad):
    with pytest.raises(ArchError, match="op names"):
        _build(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (40,)},
        {"shape": (1, 2, 3, 4)},
        {"shape": (0, 40)},
        {"reduction": "heavy"},
        {"channels": 0},
        {"n_classes": 0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(BuildError):
        _build(**kwargs)


def test_generator_is_required():
    with pytest.raises(NasbenchError, match="torch.Generator"):
        build_model(ARCH, input_shape=(1, 40), n_classes=10, generator=0)
