"""Training-free proxies: closed-form values on tiny networks, determinism, NaN, CLI end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch import nn

from nasbench_harness.errors import NasbenchError
from nasbench_harness.models import build_model, count_flops, count_params
from nasbench_harness.proxies import (
    PROXIES,
    ProxyError,
    compute_proxy,
    get_proxy,
    naswot_kernel,
)
from nasbench_harness.proxies.score import ScoreConfig, score_arch
from nasbench_harness.train import Recipe

torch.set_num_threads(1)

DATA = Path(__file__).parent / "data" / "nb201-synthetic-v1.h5"
ALL = (
    "grad_norm snip grasp fisher synflow jacob_cov naswot zen zico l2_norm plain params flops"
).split()
TINY_RECIPE = {"train_size": 64, "valid_size": 32, "test_size": 32, "batch_size": 16}


def _linear_net(seed=0, bn=False):
    gen = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(3, 4, bias=False)]
    if bn:
        layers.append(nn.BatchNorm1d(4))
    layers += [nn.ReLU(), nn.Linear(4, 2, bias=False)]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
    return net


def _single_layer(seed=0):
    net = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net[0].weight.copy_(torch.randn((2, 3), generator=gen, dtype=torch.float64))
    return net


def _batch(n=5, d=3, classes=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    return x, y


def _manual_grads(net, x, y):
    """Cross-entropy gradients of the Linear-ReLU-Linear net, by hand (numpy)."""
    w1 = net[0].weight.detach().numpy()
    w2 = net[-1].weight.detach().numpy()
    xn, yn = x.numpy(), y.numpy()
    h = xn @ w1.T
    a = np.maximum(h, 0)
    z = a @ w2.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(z.shape[1])[yn]) / len(yn)
    dw2 = dz.T @ a
    dh = (dz @ w2) * (h > 0)
    dw1 = dh.T @ xn
    return (w1, dw1), (w2, dw2)


def test_registry_has_every_proxy_with_a_definition():
    for name in ALL:
        spec = get_proxy(name)
        assert spec.definition and len(spec.definition) > 30
    assert set(ALL) <= set(PROXIES)
    with pytest.raises(ProxyError, match="unknown proxy"):
        get_proxy("nope")


def test_gradient_proxies_match_manual_gradients():
    net = _linear_net()
    x, y = _batch()
    (w1, g1), (w2, g2) = _manual_grads(net, x, y)
    snip = np.abs(w1 * g1).sum() + np.abs(w2 * g2).sum()
    plain = (w1 * g1).sum() + (w2 * g2).sum()
    gnorm = np.linalg.norm(g1) + np.linalg.norm(g2)
    assert compute_proxy("snip", _linear_net(), (x, y)) == pytest.approx(snip, rel=1e-10)
    assert compute_proxy("plain", _linear_net(), (x, y)) == pytest.approx(plain, rel=1e-10)
    assert compute_proxy("grad_norm", _linear_net(), (x, y)) == pytest.approx(gnorm, rel=1e-10)


def test_l2_norm_and_params():
    net = _linear_net()
    expected = float(net[0].weight.detach().norm() + net[-1].weight.detach().norm())
    assert compute_proxy("l2_norm", net, _batch()) == pytest.approx(expected)
    assert compute_proxy("params", net, _batch()) == 12 + 8


def test_synflow_closed_form_and_bn_bypass():
    net = _linear_net()
    a1 = net[0].weight.detach().abs().numpy()
    a2 = net[-1].weight.detach().abs().numpy()
    # d(sum out)/dW1[j,k] = colsum(|W2|)[j] (all-ones input); d/dW2[i,j] = rowsum(|W1|)[j]
    expected = (a1 * a2.sum(0)[:, None]).sum() + (a2 * a1.sum(1)[None, :]).sum()
    # a bias-free ReLU net with abs weights is linear: each layer contributes 1^T|W2||W1|1
    assert expected == pytest.approx(2 * a2.sum(0) @ a1.sum(1))
    x, y = _batch()
    assert compute_proxy("synflow", net, (x, y)) == pytest.approx(expected, rel=1e-12)
    # batch norm is bypassed, and the model itself is left unchanged
    bn_net = _linear_net(bn=True)
    before = [p.clone() for p in bn_net.parameters()]
    assert compute_proxy("synflow", bn_net, (x.float(), y)) == pytest.approx(expected, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, bn_net.parameters()))


def test_fisher_single_layer_closed_form():
    net = _single_layer()
    x, y = _batch()
    a = (x @ net[0].weight.T).detach().numpy()
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(2)[y.numpy()]) / len(y)
    expected = 0.5 * ((a * g) ** 2).mean(0).sum()
    assert compute_proxy("fisher", net, (x, y)) == pytest.approx(expected, rel=1e-10)


def test_grasp_matches_explicit_hessian():
    net = _single_layer()
    x, y = _batch()
    w0 = net[0].weight.detach().clone()

    def loss(flat):
        return nn.functional.cross_entropy(x @ flat.view(2, 3).T, y)

    flat = w0.flatten().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(flat), flat)
    hess = torch.autograd.functional.hessian(loss, w0.flatten())
    expected = float(-(w0.flatten() * (hess @ g)).sum())
    assert compute_proxy("grasp", net, (x, y)) == pytest.approx(expected, rel=1e-8)


def test_zico_two_halves_closed_form():
    net = _single_layer()
    x, y = _batch(n=6)
    grads = []
    for sl in (slice(0, 3), slice(3, 6)):
        net.zero_grad()
        nn.functional.cross_entropy(net(x[sl]), y[sl]).backward()
        grads.append(net[0].weight.grad.detach().numpy().copy())
    g = np.stack(grads)
    std = g.std(0)
    nz = std != 0
    expected = math.log((np.abs(g).mean(0)[nz] / std[nz]).sum())
    assert compute_proxy("zico", net, (x, y)) == pytest.approx(expected, rel=1e-10)


def test_jacob_cov_closed_form_and_nan():
    class Half(nn.Module):  # f(x) = sum(x^2)/2, so the Jacobian of example n is x_n
        def forward(self, x):
            return 0.5 * (x * x).sum(1, keepdim=True)

    x, y = _batch(n=4, d=6)
    v = np.linalg.eigvalsh(np.corrcoef(x.numpy()))
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert compute_proxy("jacob_cov", Half(), (x, y)) == pytest.approx(expected, rel=1e-8)
    # more examples than input values: only the first D - 1 = 5 (rank-complete) are used
    x, y = _batch(n=12, d=6)
    v = np.linalg.eigvalsh(np.corrcoef(x[:5].numpy()))
    assert v.min() > 1e-8 and np.linalg.matrix_rank(np.corrcoef(x.numpy())) == 5
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert compute_proxy("jacob_cov", Half(), (x, y)) == pytest.approx(expected, rel=1e-8)

    class Const(nn.Module):  # output independent of the input: constant Jacobian
        def forward(self, x):
            return 0.0 * x.sum(1, keepdim=True)

    assert math.isnan(compute_proxy("jacob_cov", Const(), (x, y)))


def test_naswot_kernel_on_known_relu_codes():
    codes = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=float)
    x = torch.tensor(np.where(codes > 0, 1.0, -1.0))
    net = nn.Sequential(nn.ReLU(), nn.Identity())
    kernel = naswot_kernel(net, x).numpy()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(2)
    expected = codes.shape[1] - hamming  # K_ij = units - Hamming distance
    np.testing.assert_array_equal(kernel, expected)
    _, logdet = np.linalg.slogdet(expected)
    assert compute_proxy("naswot", net, (x, None)) == pytest.approx(logdet)
    # two ReLUs add their kernels
    net2 = nn.Sequential(nn.ReLU(), nn.ReLU())
    np.testing.assert_array_equal(naswot_kernel(net2, x).numpy(), 2 * expected)


def test_naswot_singular_kernel_is_nan():
    x = torch.tensor([[1.0, -1.0], [1.0, -1.0]])  # identical codes: K singular
    assert math.isnan(compute_proxy("naswot", nn.Sequential(nn.ReLU()), (x, None)))


def _network(arch, seed=0):
    return build_model(
        arch,
        input_shape=(1, 12),
        n_classes=3,
        channels=4,
        cells_per_stage=1,
        reduction="light",
        generator=torch.Generator().manual_seed(seed),
    )


def _net_batch(seed=5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 1, 12, generator=gen), torch.randint(0, 3, (8,), generator=gen)


@pytest.mark.parametrize("name", ALL)
def test_every_proxy_is_deterministic_on_a_network(name):
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    batch = _net_batch()
    values = [
        compute_proxy(name, _network(arch), batch, {"generator": torch.Generator().manual_seed(7)})
        for _ in range(2)
    ]
    assert math.isfinite(values[0])
    assert values[0] == values[1]


def test_flops_and_params_match_models():
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    net = _network(arch)
    assert compute_proxy("flops", net, _net_batch()) == count_flops(net, (1, 12))
    assert compute_proxy("params", net, _net_batch()) == count_params(net)


def test_disconnected_cell_gives_nan_not_a_sentinel():
    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    cfg = {"generator": torch.Generator().manual_seed(0)}
    for name in ("naswot", "jacob_cov", "zen"):
        assert math.isnan(compute_proxy(name, _network(arch), _net_batch(), cfg))


class _LinearBN(torch.nn.Module):
    """features = BN(W x): zen's value is then a short computation by hand."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(d, k, bias=False).double()
        self.bn = torch.nn.BatchNorm1d(k).double()
        self.head = torch.nn.Linear(k, 2).double()

    def forward_features(self, x):
        return self.bn(self.linear(x))

    def forward(self, x):
        return self.head(self.forward_features(x))


def test_zen_on_a_linear_bn_net_by_hand():
    n, d, k = 16, 5, 4
    model = _LinearBN(d, k)
    batch = (torch.zeros(n, d, dtype=torch.float64), torch.zeros(n, dtype=torch.int64))
    value = compute_proxy("zen", model, batch, {"generator": torch.Generator().manual_seed(7)})
    # by hand, drawing from the same generator in the same order: weights of every
    # Linear in module order, then x, then eps
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(k, d, generator=gen, dtype=torch.float64)
    torch.randn(2, k, generator=gen, dtype=torch.float64)  # the head's weight (unused)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, d, generator=gen, dtype=torch.float64)

    def bn_train(h):  # batch statistics, biased variance, eps 1e-5, affine 1/0
        return (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)

    h1, h2 = x @ w.T, (x + 0.01 * eps) @ w.T
    diff = (bn_train(h1) - bn_train(h2)).abs().mean()
    # running variance from 1 after two train-mode passes, momentum 0.1, unbiased
    running = 0.9 * (0.9 * 1.0 + 0.1 * h1.var(0)) + 0.1 * h2.var(0)
    expected = math.log(diff) + math.log(math.sqrt(running.mean()))
    assert value == pytest.approx(expected, rel=1e-9)


def test_zen_needs_a_generator():
    with pytest.raises(ProxyError, match="generator"):
        compute_proxy("zen", _network(15624), _net_batch())


def test_score_arch_deterministic_and_leaves_global_rng_alone():
    recipe = Recipe(**TINY_RECIPE, channels=4, cells_per_stage=1)
    config = ScoreConfig(recipe, 16)
    splits = recipe.load_splits()
    state = torch.random.get_rng_state()
    a = score_arch(1234, 0, ["snip", "zen", "naswot"], config, splits)
    b = score_arch(1234, 0, ["snip", "zen", "naswot"], config, splits)
    c = score_arch(1234, 1, ["snip", "zen", "naswot"], config, splits)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == b
    assert [r["score"] for r in a] != [r["score"] for r in c]


def test_cli_proxies_and_correlate_end_to_end(tmp_path, capsys):
    from nasbench_harness.cli import main
    from nasbench_harness.table import open_table

    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    recipe = json.dumps({**TINY_RECIPE, "channels": 4, "cells_per_stage": 1})
    # a synthetic table has no training recipe: a clear error, exit code 2
    assert main(["proxies", str(path), "--proxies", "snip", "--no-progress"]) == 2
    assert "--recipe-json" in capsys.readouterr().err
    argv = ["proxies", str(path), "--proxies", "snip,naswot", "--seeds", "2", "--limit", "3"]
    argv += ["--recipe-json", recipe, "--no-progress", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)["proxies"]
    side = path.with_name(path.name + ".proxies.jsonl")
    n_lines = len(side.read_text().splitlines())
    assert n_lines == 3 * 2 * 2
    table = open_table(path)
    assert set(table.proxy_names) == {"snip", "naswot"}
    snip = table.array("proxy/snip")
    assert snip.shape == (table.n_archs, 2)
    reps = np.unique(table.canonical)[:3]
    assert np.isfinite(snip[reps]).all()
    # naswot on the first (disconnected) archs fails: NaN, counted, never a sentinel
    naswot = table.array("proxy/naswot")
    n_nan = int(np.isnan(naswot[reps]).sum())
    assert n_nan == 6  # the first 3 representatives (0, 2, 12) are disconnected, x 2 seeds
    assert table.proxy_attrs["naswot"]["n_failures"] == n_nan == summary["naswot"]["n_failures"]
    # isomorphic archs share their representative's row
    np.testing.assert_array_equal(snip, snip[table.canonical])
    # a second run resumes: nothing recomputed
    assert main(argv) == 0
    capsys.readouterr()
    assert len(side.read_text().splitlines()) == n_lines

    assert main(["correlate", str(path), "--json", "--resamples", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"snip", "naswot", "valid_acc@1", f"valid_acc@{table.n_epochs}"} <= set(out["proxies"])
    assert {"valid_acc", "test_acc"} <= set(out["noise_ceiling"])
    # the low-fidelity row agrees with scipy on the table's own data
    all_reps = np.unique(table.canonical)
    truth = np.nanmean(table.array("test_acc")[all_reps, :, -1], axis=1)
    score = np.nanmean(table.array("valid_acc")[all_reps, :, 0], axis=1)
    block = out["proxies"]["valid_acc@1"]["test_acc"]["all"]["seed_mean"]
    assert block["spearman_rho"]["estimate"] == pytest.approx(sps.spearmanr(truth, score)[0])
    assert block["kendall_tau_b"]["estimate"] == pytest.approx(sps.kendalltau(truth, score)[0])
    per_seed = out["proxies"]["snip"]["test_acc"]["all"]["per_seed"]
    assert len(per_seed["values"]) == 2


def test_cli_proxies_list(capsys):
    from nasbench_harness.cli import main

    assert main(["proxies", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["proxies"]
    assert sorted(r["name"] for r in rows[:-1]) == sorted(ALL) and rows[-1]["name"] == "oneshot"
    assert all(r["definition"] for r in rows)
    assert [r["in_all"] for r in rows] == [True] * len(ALL) + [False]
    assert main(["proxies", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ALL) + 1 and any(line.startswith("naswot ") for line in lines)
    assert "`" not in "".join(lines)
    assert main(["proxies", "x.h5"]) == 2
    assert "--proxies" in capsys.readouterr().err


def test_cli_proxies_refuses_bad_names_before_opening_the_table(tmp_path, capsys):
    from nasbench_harness.cli import main

    missing = str(tmp_path / "not-there.h5")  # names are checked first
    assert main(["proxies", missing, "--proxies", "all,oneshot"]) == 2
    err = capsys.readouterr().err
    assert "'all' stands alone" in err and err.count("\n") == 1
    assert main(["proxies", missing, "--proxies", "snip,synflw"]) == 2
    err = capsys.readouterr().err
    assert "unknown proxy 'synflw'" in err and "oneshot" in err and "'all'" in err
    assert not (tmp_path / "not-there.h5.proxies.jsonl").exists()


def test_cli_proxies_leave_untrained_archs_out_unless_asked(tmp_path, capsys):
    import h5py

    from nasbench_harness.cli import main
    from nasbench_harness.table import open_table

    path = tmp_path / "partial.h5"
    shutil.copy(DATA, path)
    reps = np.unique(open_table(path).canonical)
    trained = reps[[40, 41, 42]]  # a table still being built: 3 trained distinct archs
    keep = np.isin(np.asarray(open_table(DATA).canonical), trained)
    with h5py.File(path, "r+") as f:
        for metric in ("train_acc", "valid_acc", "test_acc"):
            values = f[f"metrics/{metric}"][...]
            values[~keep] = np.nan
            f[f"metrics/{metric}"][...] = values
    recipe = json.dumps({**TINY_RECIPE, "channels": 4, "cells_per_stage": 1})
    argv = ["proxies", str(path), "--proxies", "params", "--seeds", "1"]
    argv += ["--recipe-json", recipe, "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{reps.size - 3:,} distinct archs have no training result" in out
    scores = open_table(path).array("proxy/params")[:, 0]
    assert np.isfinite(scores[trained]).all()
    assert np.isnan(np.delete(scores[reps], [40, 41, 42])).all()
    assert main([*argv, "--all-archs", "--limit", "45", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_untrained_left_out"] == 0
    scores = open_table(path).array("proxy/params")[:, 0]
    assert np.isfinite(scores[reps[:45]]).all() and np.isnan(scores[reps[45:]]).all()


def test_a_table_without_validation_accuracy_is_still_scored():
    # NB201 `cifar10` has no validation split; its archs are trained all the same
    from nasbench_harness.proxies.score import archs_to_score
    from nasbench_harness.table import open_table

    table = open_table(DATA)

    class NoValidation:
        canonical = table.canonical

        def array(self, metric):
            values = table.array(metric)
            return np.full_like(values, np.nan) if metric == "valid_acc" else values

    np.testing.assert_array_equal(archs_to_score(NoValidation()), np.unique(table.canonical))


def test_scores_of_an_older_proxy_revision_are_scored_again(tmp_path, capsys):
    from nasbench_harness.cli import main
    from nasbench_harness.proxies import get_proxy
    from nasbench_harness.table import open_table

    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    recipe = json.dumps({**TINY_RECIPE, "channels": 4, "cells_per_stage": 1})
    argv = ["proxies", str(path), "--proxies", "snip,jacob_cov", "--seeds", "1", "--limit", "6"]
    argv += ["--recipe-json", recipe, "--no-progress", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    side = path.with_name(path.name + ".proxies.jsonl")
    records = [json.loads(line) for line in side.read_text().splitlines()]
    assert {r["revision"] for r in records if r["proxy"] == "jacob_cov"} == {2}
    fresh = open_table(path).array("proxy/jacob_cov").copy()
    # a side file written before jacob_cov's revision 2: its scores must not be reused
    for r in records:
        if r["proxy"] == "jacob_cov":
            del r["revision"]
            r["score"] = 1.0
    side.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(argv) == 0
    capsys.readouterr()
    lines = side.read_text().splitlines()
    assert len(lines) == len(records) + 6  # jacob_cov again for the 6 archs, snip reused
    np.testing.assert_array_equal(open_table(path).array("proxy/jacob_cov"), fresh)
    assert open_table(path).proxy_attrs["jacob_cov"]["revision"] == get_proxy("jacob_cov").revision


ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def _state(net):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        [(n, type(m), m.training) for n, m in net.named_modules()],
    )


def _assert_same_state(net, before, *, running_stats_may_move=False):
    tensors, modules = before
    after = net.state_dict()
    assert [(n, type(m), m.training) for n, m in net.named_modules()] == modules
    assert all(p.dtype == torch.float32 for p in net.parameters())
    moved = {k for k in tensors if not torch.equal(tensors[k], after[k])}
    if running_stats_may_move:  # train-mode forwards move them; nothing else may change
        moved = {k for k in moved if not k.endswith(RUNNING_STATS)}
    assert not moved


RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.mark.parametrize("name", ALL)
def test_every_proxy_leaves_the_model_as_it_was(name):
    net = _network(ARCH)
    next(iter(net.cells[0].edges.values())).eval()  # a module in another mode stays so
    before = _state(net)
    compute_proxy(name, net, _net_batch(), {"generator": torch.Generator().manual_seed(7)})
    # synflow and zen change the model for the call and put everything back
    _assert_same_state(net, before, running_stats_may_move=name not in ("synflow", "zen"))


@pytest.mark.parametrize("name", ["synflow", "zen"])
def test_synflow_and_zen_put_the_model_back_when_they_fail(name, monkeypatch):
    from nasbench_harness.proxies import zero_cost

    def fail(*_args, **_kwargs):
        raise RuntimeError("out of memory (simulated)")

    if name == "zen":
        monkeypatch.setattr(zero_cost, "_pre_pool_features", fail)
    else:
        monkeypatch.setattr(torch.func, "functional_call", fail)
    net = _network(ARCH)
    before = _state(net)
    with pytest.raises(RuntimeError, match="simulated"):
        compute_proxy(name, net, _net_batch(), {"generator": torch.Generator().manual_seed(7)})
    _assert_same_state(net, before)


def _synflow_models():
    """Models synflow's substitution does not cover: each must take the copy's way."""

    def seq(*layers):
        torch.manual_seed(0)
        return nn.Sequential(*layers)

    tied = seq(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    tied[2].weight = tied[0].weight
    frozen = seq(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    frozen[0].weight.requires_grad_(False)
    normed = seq(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    torch.nn.utils.parametrizations.weight_norm(normed[0])

    class Counter(nn.Module):  # a float buffer a forward updates in place
        def __init__(self):
            super().__init__()
            self.register_buffer("n", torch.zeros(()))

        def forward(self, x):
            self.n += 1
            return x

    class Flip(nn.Module):  # an integer buffer
        def __init__(self):
            super().__init__()
            self.register_buffer("idx", torch.arange(5, -1, -1))

        def forward(self, x):
            return x.index_select(1, self.idx)

    return {
        "tied": tied,
        "frozen": frozen,
        "weight_norm": normed,
        "float64": seq(Counter(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).double(),
        "int_buffer": seq(Flip(), nn.Linear(6, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)),
        "no_weight_layer": seq(nn.PReLU()),
    }


def test_synflow_substitution_equals_the_deep_copy():
    from nasbench_harness.proxies import zero_cost

    x, y = _net_batch()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    for arch in (ARCH, 0, 1234, 15624):
        net = _network(arch)
        assert compute_proxy("synflow", net, (x, y)) == zero_cost._synflow_on_copy(net, ones)
    batch = (torch.randn(10, 6, generator=torch.Generator().manual_seed(3)), None)
    ones = torch.ones((1, 6), dtype=torch.float64)
    for name, net in _synflow_models().items():
        before = _state(net)
        expected = zero_cost._synflow_on_copy(net, ones)
        value = zero_cost.synflow(net, batch, {})
        assert value == expected, name
        tensors, modules = before
        assert [(n, type(m), m.training) for n, m in net.named_modules()] == modules, name
        assert all(torch.equal(tensors[k], v) for k, v in net.state_dict().items()), name


def test_gradient_proxies_share_one_forward_and_backward():
    from nasbench_harness.proxies.zero_cost import shared_state

    net, batch = _network(ARCH), _net_batch()
    names = ["naswot", "grad_norm", "snip", "plain", "grasp", "fisher", "zico", "zen", "synflow"]
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    config = {"shared": shared_state(names), "generator": torch.Generator().manual_seed(7)}
    shared = [compute_proxy(n, net, batch, config) for n in names]
    # one shared pass, grasp's second forward, zico's two halves, synflow's one (zen runs
    # the trunk without the classifier, which this hook does not see)
    assert len(calls) == 1 + 1 + 2 + 1
    alone = [
        compute_proxy(n, _network(ARCH), batch, {"generator": torch.Generator().manual_seed(7)})
        for n in names
    ]
    assert shared == alone  # bit for bit
    # proxies that read one part share it too
    calls.clear()
    config = {"shared": shared_state(["grad_norm", "snip", "plain"])}
    assert [compute_proxy(n, net, batch, config) for n in ("grad_norm", "snip", "plain")] == [
        compute_proxy(n, _network(ARCH), batch) for n in ("grad_norm", "snip", "plain")
    ]
    assert len(calls) == 1
    # another batch on the same state is not served from the cache
    other = _net_batch(seed=6)
    assert compute_proxy("grad_norm", net, other, config) == compute_proxy(
        "grad_norm", _network(ARCH), other
    )


def test_naswot_needs_no_loss_when_sharing_a_pass():
    from nasbench_harness.proxies.zero_cost import shared_state

    x, y = _net_batch()
    bad = (x, y + 100)  # labels out of range: the loss of the shared pass fails
    alone = compute_proxy("naswot", _network(ARCH), bad)
    config = {"shared": shared_state(["grad_norm", "naswot"])}
    net = _network(ARCH)
    with pytest.raises(IndexError):
        compute_proxy("grad_norm", net, bad, config)
    assert compute_proxy("naswot", net, bad, config) == alone
    assert math.isfinite(alone)


def test_score_arch_does_not_depend_on_proxy_order():
    recipe = Recipe(**TINY_RECIPE, channels=4, cells_per_stage=1)
    config = ScoreConfig(recipe, 16)
    splits = recipe.load_splits()
    together = score_arch(4321, 2, ALL, config, splits)
    alone = [score_arch(4321, 2, [n], config, splits)[0] for n in reversed(ALL)][::-1]
    assert together == alone


def test_pow3_extrapolation_recovers_an_exact_curve():
    from nasbench_harness.commands.correlate import POW3_ALPHAS, pow3_extrapolate

    e = np.arange(1, 13, dtype=float)
    alpha = POW3_ALPHAS[20]
    curves = np.stack([90 - 40 * e**-alpha, 70 - 10 * e**-alpha])
    curves_nan = curves.copy()
    curves_nan[1, 1] = np.nan
    pred = pow3_extrapolate(curves_nan, 4, 12)
    assert pred[0] == pytest.approx(curves[0, -1], rel=1e-9)
    assert math.isnan(pred[1])
    # no look-ahead: epochs after k, however far off the model, do not move the prediction
    later = curves.copy()
    later[:, 4:] += 50.0
    np.testing.assert_array_equal(pow3_extrapolate(later, 4, 12), pow3_extrapolate(curves, 4, 12))


def test_smaller_limit_keeps_earlier_scores(tmp_path, capsys):
    from nasbench_harness.cli import main
    from nasbench_harness.table import open_table

    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    recipe = json.dumps({**TINY_RECIPE, "channels": 4, "cells_per_stage": 1})
    base = ["proxies", str(path), "--proxies", "params", "--seeds", "1", "--no-progress"]
    assert main([*base, "--limit", "3", "--recipe-json", recipe]) == 0
    assert main([*base, "--limit", "1", "--recipe-json", recipe]) == 0
    capsys.readouterr()
    table = open_table(path)
    reps = np.unique(table.canonical)
    assert np.isfinite(table.array("proxy/params")[reps[:3]]).all()
    assert table.proxy_attrs["params"]["n_unscored"] == reps.size - 3
    assert table.proxy_attrs["params"]["n_failures"] == 0


def test_stored_scores_survive_a_trial_run_without_the_side_file(tmp_path):
    from nasbench_harness.proxies.score import score_table, side_file
    from nasbench_harness.table import open_table

    recipe = Recipe(**TINY_RECIPE, channels=4, cells_per_stage=1)
    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    score_table(path, ["params"], seeds=1, limit=20, recipe=recipe, progress=False)
    reps = np.unique(open_table(path).canonical)
    before = open_table(path).array("proxy/params")[reps[:20]].copy()
    side_file(path).unlink()  # stored in the table, then the side file deleted
    summary = score_table(path, ["params"], seeds=1, limit=2, recipe=recipe, progress=False)
    after = open_table(path).array("proxy/params")[reps[:20]]
    np.testing.assert_array_equal(after, before)
    assert summary["params"]["n_scored"] == 20
    # a smaller --seeds keeps the stored seeds too
    score_table(path, ["snip"], seeds=2, limit=3, recipe=recipe, progress=False)
    snip = open_table(path).array("proxy/snip")[reps[:3]].copy()
    score_table(path, ["snip"], seeds=1, limit=3, recipe=recipe, progress=False)
    table = open_table(path)
    assert table.proxy_attrs["snip"]["seeds"] == [0, 1]
    np.testing.assert_array_equal(table.array("proxy/snip")[reps[:3]], snip)
    # other settings (a batch size) are other scores: refused, unless asked to replace them
    with pytest.raises(NasbenchError, match="scored with other settings.*--replace"):
        score_table(path, ["params"], seeds=1, limit=2, recipe=recipe, batch_size=8)
    np.testing.assert_array_equal(open_table(path).array("proxy/params")[reps[:20]], before)
    score_table(
        path,
        ["params"],
        seeds=1,
        limit=2,
        recipe=recipe,
        batch_size=8,
        progress=False,
        replace=True,
    )
    assert np.isfinite(open_table(path).array("proxy/params")[reps]).sum() == 2


def test_bad_options_and_tables_are_refused_before_scoring(tmp_path, capsys):
    from nasbench_harness.cli import main
    from nasbench_harness.proxies.score import side_file

    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    recipe = json.dumps({**TINY_RECIPE, "channels": 4, "cells_per_stage": 1})
    base = ["proxies", str(path), "--seeds", "1", "--limit", "2", "--recipe-json", recipe]
    for extra, message in (
        (["--proxies", "params", "--batch-size", "0"], "--batch-size 0"),
        (["--proxies", "params,oneshot", "--device", "foo"], "--device 'foo'"),
        (["--proxies", "params,oneshot", "--oneshot-param", "tau=1"], "unknown schedule"),
    ):
        assert main([*base, *extra, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not side_file(path).exists()  # refused before any scoring
    from types import SimpleNamespace

    from nasbench_harness.proxies.score import check_scorable

    check_scorable(SimpleNamespace(space=SimpleNamespace(name="nb201")), "t.h5")
    with pytest.raises(NasbenchError, match="nb101 table.*nb201 cells only"):
        check_scorable(SimpleNamespace(space=SimpleNamespace(name="nb101")), "t101.h5")


def test_workers_give_the_same_scores(tmp_path):
    from nasbench_harness.proxies.score import score_table
    from nasbench_harness.table import open_table

    recipe = Recipe(**TINY_RECIPE, channels=4, cells_per_stage=1)
    out = {}
    for workers in (1, 2):
        path = tmp_path / f"w{workers}.h5"
        shutil.copy(DATA, path)
        score_table(
            path, ["snip"], seeds=2, workers=workers, limit=40, recipe=recipe, progress=False
        )
        out[workers] = open_table(path).array("proxy/snip")
    np.testing.assert_array_equal(out[1], out[2])
    table = open_table(tmp_path / "w2.h5")
    reps = np.unique(table.canonical)[:40]
    connected = np.asarray(table.space.connected)[reps]
    assert np.isfinite(out[2][reps[connected]]).all()  # scored, not failed alike
    # column k holds proxy seed k, row a arch a (one torch thread, as the scorer uses)
    config, splits = ScoreConfig(recipe, recipe.batch_size), recipe.load_splits()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for arch in reps[connected][:3]:
            for k in (0, 1):
                direct = score_arch(int(arch), k, ["snip"], config, splits)[0]["score"]
                assert out[2][arch, k] == direct
    finally:
        torch.set_num_threads(threads)


def test_cli_proxies_read_a_cifar_table_from_data_root(tmp_path, cifar_root, capsys):
    from nasbench_harness.cli import main
    from nasbench_harness.table import open_table

    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    recipe = Recipe(
        dataset="cifar10",
        train_size=60,
        valid_size=20,
        test_size=20,
        batch_size=16,
        channels=4,
        cells_per_stage=1,
    )
    argv = ["proxies", str(path), "--proxies", "params", "--seeds", "1", "--limit", "2"]
    argv += ["--no-progress", "--recipe-json", json.dumps(recipe.to_dict())]
    assert main(argv) == 2  # CIFAR is read from disk: the error names the option
    assert "--data-root" in capsys.readouterr().err
    assert main([*argv, "--data-root", str(cifar_root)]) == 0
    capsys.readouterr()
    table = open_table(path)
    stored = table.array("proxy/params")
    for arch in np.unique(table.canonical)[:2]:
        net = build_model(
            int(arch),
            input_shape=(3, 32, 32),
            n_classes=10,
            channels=4,
            cells_per_stage=1,
            reduction=recipe.reduction,
            generator=torch.Generator().manual_seed(0),
        )
        assert stored[arch, 0] == count_params(net)  # the 2-D CIFAR skeleton, not MNIST-1D's


def test_seed_independent_proxies_are_computed_once_and_stored_for_every_seed(tmp_path):
    from nasbench_harness.proxies.score import score_table, side_file
    from nasbench_harness.table import open_table

    assert {n for n, spec in PROXIES.items() if spec.seed_independent} == {"params", "flops"}
    recipe = Recipe(**TINY_RECIPE, channels=4, cells_per_stage=1)
    path = tmp_path / "t.h5"
    shutil.copy(DATA, path)
    names = ["params", "flops", "snip"]
    score_table(path, names, seeds=1, limit=6, recipe=recipe, progress=False)
    score_table(path, names, seeds=3, limit=6, recipe=recipe, progress=False)
    records = [json.loads(line) for line in side_file(path).read_text().splitlines()]
    copied = [r for r in records if "from_seed" in r]
    # seeds 1 and 2 of params and flops are copies of seed 0; snip is computed per seed
    assert {(r["proxy"], r["seed"]) for r in copied} == {
        (n, s) for n in ("params", "flops") for s in (1, 2)
    }
    assert len(records) == 6 * 3 * 3
    table = open_table(path)
    reps = np.unique(table.canonical)[:6]
    config = ScoreConfig(recipe, recipe.batch_size)
    splits = recipe.load_splits()
    for name in ("params", "flops"):
        scores = table.array(f"proxy/{name}")[reps]
        assert np.isfinite(scores).all() and (scores == scores[:, :1]).all()
        assert table.proxy_attrs[name]["seed_independent"]
        # the claim behind the copy: computing at another seed gives the same value
        direct = score_arch(int(reps[3]), 2, [name], config, splits)[0]["score"]
        assert direct == scores[3, 2]
    assert not table.proxy_attrs["snip"]["seed_independent"]


def test_default_proxy_seeds_are_five_draws_and_three_supernets():
    from nasbench_harness.cli import build_parser
    from nasbench_harness.oneshot.proxy import DEFAULT_SEEDS as ONESHOT_SEEDS
    from nasbench_harness.proxies.score import DEFAULT_SEEDS

    assert (DEFAULT_SEEDS, ONESHOT_SEEDS) == (5, 3)
    args = build_parser().parse_args(["proxies", "t.h5", "--proxies", "snip"])
    assert args.seeds is None  # resolved per kind of proxy in the command


def test_side_file_append_starts_a_new_line_after_a_cut_one(tmp_path):
    from nasbench_harness.proxies.score import SideAppender

    side = tmp_path / "t.h5.proxies.jsonl"
    side.write_text('{"arch": 1, "score": 0.5}\n{"arch": 2, "sco')  # killed mid-line
    with SideAppender(side) as out:
        out.write('{"arch": 3}\n')
        out.write('{"arch": 4}\n')
    assert side.read_text().splitlines()[1:] == ['{"arch": 2, "sco', '{"arch": 3}', '{"arch": 4}']
    with SideAppender(side) as out:  # a file that ends in a newline gets no blank line
        out.write('{"arch": 5}\n')
    assert side.read_text().endswith('{"arch": 4}\n{"arch": 5}\n')
