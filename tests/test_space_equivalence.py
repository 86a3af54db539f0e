"""The equivalence test: archs that the exact rule merges are the same network.

For merged pairs, both cells are built as small real torch modules (1-D, float64),
the live parameters of one are copied onto the other through the labels of the
rule's canonical form, and outputs, gradients (input and mapped parameters),
a few identical SGD steps and then evaluation mode (running statistics) must
agree. Dead parameters must get no gradient. Pairs the rule keeps apart must
differ. The cell here is test-local on purpose: it is the op semantics the rule
is about (ReLU-Conv-BN with affine BN, identity, avg pool with
``count_include_pad=False``, zero), independent of the project's models.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasbench_harness.space import EDGES, OPS, _exact_form, get_space

CHANNELS, LENGTH, BATCH = 4, 16, 8
DTYPE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ReLUConvBN(nn.Module):
    def __init__(self, kernel: int, affine: bool):
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, CHANNELS, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(CHANNELS, affine=affine)

    def forward(self, x):
        return self.bn(self.conv(torch.relu(x)))


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def make_op(name: str, affine: bool) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False)
    return ReLUConvBN(1 if name == "nor_conv_1x1" else 3, affine)


class Cell(nn.Module):
    """NB201 cell: node j sums op_e(node i) over its incoming edges e = (i, j)."""

    def __init__(self, arch, affine: bool = True):
        super().__init__()
        self.edge_ops = nn.ModuleList(make_op(op, affine) for op in arch)

    def forward(self, x):
        nodes = [x]
        for node in (1, 2, 3):
            incoming = [self.edge_ops[e](nodes[s]) for e, (s, t) in enumerate(EDGES) if t == node]
            nodes.append(sum(incoming))
        return nodes[3]


def random_cell(arch, generator, affine=True) -> Cell:
    cell = Cell(arch, affine).to(DTYPE)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=DTYPE))
    return cell


def op_ids(arch) -> tuple[int, ...]:
    return tuple(OPS.index(op) for op in arch)


def map_parameters(cell_a, arch_a, cell_b, arch_b, affine=True):
    """Copy a's live parameters onto b along the canonical labels; return the pairs."""
    key_a, labels_a = _exact_form(op_ids(arch_a), affine)
    key_b, labels_b = _exact_form(op_ids(arch_b), affine)
    assert key_a == key_b, "the rule does not merge these archs"
    edge_b = {label: e for e, label in labels_b.items()}
    pairs = []
    with torch.no_grad():
        for e, label in labels_a.items():
            shift_only = key_a[1][label] == (0,)  # conv on zero: only beta is live
            names = (
                ["bn.bias"] if shift_only else ["conv.weight"] + ["bn.weight", "bn.bias"] * affine
            )
            for name in names:
                p = cell_a.edge_ops[e].get_parameter(name)
                q = cell_b.edge_ops[edge_b[label]].get_parameter(name)
                q.copy_(p)
                pairs.append((p, q))
    return pairs


def forward_backward(cell, x, weight):
    cell.zero_grad()
    x.grad = None
    out = cell(x)
    (out * weight).sum().backward()
    return out.detach(), x.grad.clone()


def assert_same_network(arch_a, arch_b, seed=0, affine=True, steps=2):
    gen = torch.Generator().manual_seed(seed)
    cell_a, cell_b = random_cell(arch_a, gen, affine), random_cell(arch_b, gen, affine)
    pairs = map_parameters(cell_a, arch_a, cell_b, arch_b, affine)
    live = {id(p) for pair in pairs for p in pair}
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE, requires_grad=True)
    weight = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    for _ in range(steps):
        out_a, grad_a = forward_backward(cell_a, x, weight)
        out_b, grad_b = forward_backward(cell_b, x, weight)
        assert torch.allclose(out_a, out_b), (arch_a, arch_b)
        assert torch.allclose(grad_a, grad_b), (arch_a, arch_b)
        for p, q in pairs:
            gp = p.grad if p.grad is not None else torch.zeros_like(p)
            gq = q.grad if q.grad is not None else torch.zeros_like(q)
            assert torch.allclose(gp, gq, atol=1e-9), (arch_a, arch_b)
        for cell in (cell_a, cell_b):
            for p in cell.parameters():
                if id(p) not in live and p.grad is not None:
                    assert p.grad.abs().max() < 1e-9, (arch_a, arch_b)
        with torch.no_grad():  # the same plain SGD step on both
            for cell in (cell_a, cell_b):
                for p in cell.parameters():
                    if p.grad is not None:
                        p -= 0.05 * p.grad
    cell_a.eval()
    cell_b.eval()
    with torch.no_grad():
        assert torch.allclose(cell_a(x), cell_b(x)), (arch_a, arch_b)


def arch_of(*ops: str) -> tuple[str, ...]:
    short = {"-": "none", "s": "skip_connect", "c1": "nor_conv_1x1", "c3": "nor_conv_3x3"}
    return tuple(short.get(op, "avg_pool_3x3" if op == "p" else op) for op in ops)


# (EDGES order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)
TRICKY_MERGES = {
    # pool(x + conv(x)) == pool(x) + pool(conv(x))
    "pool is linear": (
        arch_of("s", "c3", "s", "-", "-", "p"),
        arch_of("c3", "-", "-", "p", "p", "-"),
    ),
    # conv_1x1(0) == conv_3x3(0) == beta
    "conv on zero": (
        arch_of("-", "-", "-", "-", "c1", "-"),
        arch_of("-", "-", "-", "-", "-", "c3"),
    ),
    # pool(beta) == beta (count_include_pad=False)
    "shift through pool": (
        arch_of("-", "-", "-", "-", "c3", "-"),
        arch_of("-", "-", "c3", "-", "-", "p"),
    ),
    # x + pool(x) + conv(x), grouped differently
    "reordered sums": (
        arch_of("s", "p", "s", "c3", "-", "s"),
        arch_of("p", "s", "s", "c3", "-", "s"),
    ),
    "dead conv node": (
        arch_of("c3", "-", "-", "s", "-", "-"),
        arch_of("-", "-", "-", "s", "-", "-"),
    ),
    "shift plus input": (
        arch_of("-", "-", "c1", "s", "-", "s"),
        arch_of("-", "s", "-", "-", "c3", "s"),
    ),
    # conv_a(x) + pool(conv_a(x)): one parameter set used twice
    "shared conv": (arch_of("c3", "-", "p", "-", "s", "s"), arch_of("c3", "-", "s", "-", "p", "s")),
    "conv of conv": (
        arch_of("c3", "-", "c1", "-", "-", "s"),
        arch_of("c3", "-", "-", "-", "c1", "-"),
    ),
    # pool(conv(x) + beta_3x3) == pool(conv(x)) + beta_1x1
    "shift in a pooled sum": (
        arch_of("-", "c3", "c3", "-", "p", "p"),
        arch_of("-", "c3", "c1", "-", "-", "p"),
    ),
}


@pytest.mark.parametrize("name", sorted(TRICKY_MERGES))
def test_tricky_merges_are_the_same_network(name):
    arch_a, arch_b = TRICKY_MERGES[name]
    space = get_space()
    assert space.canonical(arch_a) == space.canonical(arch_b)
    assert_same_network(arch_a, arch_b)
    assert_same_network(arch_b, arch_a, seed=1)


def test_sampled_merges_are_the_same_network():
    space = get_space()
    ids = space.canonical_ids
    members = np.flatnonzero(ids != np.arange(space.n_archs))
    rng = np.random.default_rng(0)
    for k, i in enumerate(rng.choice(members, size=300, replace=False)):
        assert_same_network(space.arch(int(ids[i])), space.arch(int(i)), seed=k)
    # two non-representative members of one class
    sizes = np.bincount(ids, minlength=space.n_archs)
    for k, rep in enumerate(rng.choice(np.flatnonzero(sizes >= 3), size=80, replace=False)):
        a, b = rng.choice(np.flatnonzero(ids == rep)[1:], size=2, replace=False)
        assert_same_network(space.arch(int(a)), space.arch(int(b)), seed=k)


def test_nonaffine_rule_merges_are_the_same_network():
    space = get_space()
    ids = space.canonical_ids_for("exact_nonaffine")
    members = np.flatnonzero(ids != np.arange(space.n_archs))
    rng = np.random.default_rng(1)
    for k, i in enumerate(rng.choice(members, size=150, replace=False)):
        assert_same_network(space.arch(int(ids[i])), space.arch(int(i)), seed=k, affine=False)


def tied_cell(arch, seed: int) -> Cell:
    """A cell whose convs of one kernel size share one weight and whose BNs share one
    affine pair: under every parameter correspondence that the rule could use between
    two archs (conv to conv of its size; a shift-only conv's beta to another beta), the
    two cells then hold the same values."""
    gen = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn(CHANNELS, CHANNELS, k, generator=gen, dtype=DTYPE) for k in (1, 3)}
    gamma, beta = (torch.randn(CHANNELS, generator=gen, dtype=DTYPE) for _ in range(2))
    cell = Cell(arch).to(DTYPE)
    with torch.no_grad():
        for op in cell.edge_ops:
            if isinstance(op, ReLUConvBN):
                op.conv.weight.copy_(weights[op.conv.kernel_size[0]])
                op.bn.weight.copy_(gamma)
                op.bn.bias.copy_(beta)
    return cell


def at_most_one_live_conv_per_size(arch) -> bool:
    _, labels = _exact_form(op_ids(arch))
    sizes = [arch[e] for e in labels]
    return sizes.count("nor_conv_3x3") <= 1 and sizes.count("nor_conv_1x1") <= 1


def same_output(arch_a, arch_b, seed: int) -> bool:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    with torch.no_grad():
        out_a, out_b = tied_cell(arch_a, seed)(x), tied_cell(arch_b, seed)(x)
    # equivalent cells differ by float64 rounding (~1e-15); BN's eps alone makes ~1e-6
    return torch.allclose(out_a, out_b, rtol=1e-9, atol=1e-12)


def test_sampled_splits_compute_different_functions():
    # With at most one live conv of each size, the only correspondence the rule could
    # use maps that conv to that conv; tied weights give both cells exactly those values.
    # So a pair split by the rule although equivalent would give the same output here.
    space = get_space()
    ids = space.canonical_ids
    rng = np.random.default_rng(2)
    kept = [int(a) for a in range(space.n_archs) if at_most_one_live_conv_per_size(space.arch(a))]
    checked = 0
    while checked < 200:
        a, b = (int(v) for v in rng.choice(kept, size=2))
        if ids[a] == ids[b]:
            continue
        assert not same_output(space.arch(a), space.arch(b), seed=checked), (a, b)
        checked += 1
    # control: merged pairs (a member and its representative) give the same output
    members = [a for a in kept if ids[a] != a and int(ids[a]) in set(kept)]
    for k, a in enumerate(rng.choice(members, size=200, replace=False)):
        assert same_output(space.arch(int(ids[a])), space.arch(int(a)), seed=k), int(a)


def live_parameter_count(arch) -> int:
    _, labels = _exact_form(op_ids(arch))
    return len(labels)


def test_one_conv_twice_is_not_two_convs():
    # 2 * conv_a(x) versus conv_a(x) + conv_b(x): equal at one point, not as networks
    shared = arch_of("c1", "-", "s", "-", "s", "s")
    separate = arch_of("-", "s", "-", "c1", "-", "c1")
    space = get_space()
    assert space.canonical(shared) != space.canonical(separate)
    assert (live_parameter_count(shared), live_parameter_count(separate)) == (1, 2)
    gen = torch.Generator().manual_seed(0)
    cell_a, cell_b = random_cell(shared, gen), random_cell(separate, gen)
    with torch.no_grad():  # give both of b's convs a's parameters
        for e in (3, 5):
            cell_b.edge_ops[e].load_state_dict(cell_a.edge_ops[0].state_dict())
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE, requires_grad=True)
    weight = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    out_a, _ = forward_backward(cell_a, x, weight)
    out_b, _ = forward_backward(cell_b, x, weight)
    assert torch.allclose(out_a, out_b)
    # a's single conv gets twice the gradient of each of b's: training diverges
    grad_a = cell_a.edge_ops[0].conv.weight.grad
    assert torch.allclose(grad_a, 2 * cell_b.edge_ops[3].conv.weight.grad)
    with torch.no_grad():
        for cell in (cell_a, cell_b):
            for p in cell.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad
        assert not torch.allclose(cell_a(x), cell_b(x))


def test_conv1x1_of_a_shift_is_a_shift_only_on_batch_statistics():
    # conv_1x1(beta_a) versus beta_b: equal in train mode, not with running stats
    conv_of_shift = arch_of("-", "-", "c3", "-", "-", "c1")
    shift = arch_of("-", "-", "-", "-", "c1", "-")
    space = get_space()
    assert space.canonical(conv_of_shift) != space.canonical(shift)
    gen = torch.Generator().manual_seed(0)
    cell_a, cell_b = random_cell(conv_of_shift, gen), random_cell(shift, gen)
    with torch.no_grad():
        cell_a.edge_ops[2].bn.bias.copy_(torch.rand(CHANNELS, generator=gen, dtype=DTYPE) + 0.5)
        cell_b.edge_ops[4].bn.bias.copy_(cell_a.edge_ops[5].bn.bias)
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    for _ in range(3):
        assert torch.allclose(cell_a(x), cell_b(x))
    cell_a.eval()
    cell_b.eval()
    with torch.no_grad():
        assert not torch.allclose(cell_a(x), cell_b(x))


def test_conv_of_2x_is_not_conv_of_x():
    # BN's eps makes BN(2y) != BN(y); visible when the batch variance is near eps
    double = arch_of("s", "s", "s", "-", "-", "c3")
    single = arch_of("-", "-", "-", "c3", "-", "-")
    assert get_space().canonical(double) != get_space().canonical(single)
    gen = torch.Generator().manual_seed(0)
    cell_a, cell_b = random_cell(double, gen), random_cell(single, gen)
    with torch.no_grad():
        cell_a.edge_ops[5].conv.weight.mul_(1e-3)
        cell_b.edge_ops[3].load_state_dict(cell_a.edge_ops[5].state_dict())
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    assert not torch.allclose(cell_a(x), cell_b(x), rtol=1e-3)


@pytest.mark.parametrize(
    ("arch_a", "arch_b"),
    [
        (arch_of("-", "-", "-", "s", "-", "-"), arch_of("s", "-", "-", "s", "s", "-")),  # x, 2x
        (arch_of("p", "-", "-", "-", "p", "-"), arch_of("-", "-", "-", "p", "-", "-")),  # pool^2
        (arch_of("-", "-", "-", "c1", "-", "-"), arch_of("-", "-", "-", "c3", "-", "-")),
    ],
)
def test_parameter_free_splits_differ(arch_a, arch_b):
    assert get_space().canonical(arch_a) != get_space().canonical(arch_b)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen, dtype=DTYPE)
    assert not torch.allclose(random_cell(arch_a, gen)(x), random_cell(arch_b, gen)(x))


def test_string_rule_behind_6055_is_not_exact():
    # 'nb201_dropzero' (6,055 classes) merges non-equivalent archs and splits equivalent ones
    space = get_space()
    ids = space.canonical_ids_for("nb201_dropzero")
    shared = space.index(arch_of("c1", "-", "s", "-", "s", "s"))
    separate = space.index(arch_of("-", "s", "-", "c1", "-", "c1"))
    assert ids[shared] == ids[separate]  # see test_one_conv_twice_is_not_two_convs
    arch_a, arch_b = TRICKY_MERGES["pool is linear"]
    assert ids[space.index(arch_a)] != ids[space.index(arch_b)]
    assert_same_network(arch_a, arch_b)
