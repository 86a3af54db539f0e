"""Weight-sharing NAS (nasbench_harness.oneshot): supernet equivalence, GDAS sampler, seeds, CLI."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_harness import models
from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot import (
    DARTS,
    GDAS,
    RSPS,
    arch_to_choice,
    build_supernet,
    evaluate_path,
    extract_network,
    gumbel_one_hot,
    make_method,
    onehot_weights,
    run_oneshot,
    table_recipe,
)
from nasbench_harness.simulator import Simulator
from nasbench_harness.table import open_table
from nasbench_harness.train import Recipe

FIXTURE = Path(__file__).parent / "data" / "nb201-synthetic-v1.h5"
#: The fixture table is synthetic (no training recipe): a tiny real recipe stands in for it.
TINY = {
    "dataset": "digits",
    "train_size": 96,
    "valid_size": 48,
    "test_size": 48,
    "channels": 4,
    "cells_per_stage": 1,
}
FAST = {"epochs": 2, "batch_size": 32, "eval_examples": 32}
#: Cells with dead edges, none-only nodes, convs on zero inputs, pools and skips.
ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "|none~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    recipe = Recipe(**TINY)
    return recipe, recipe.load_splits()


@pytest.fixture(scope="module")
def table():
    return open_table(FIXTURE)


def _supernet(input_shape, reduction, *, affine, seed=0, dtype=torch.float64):
    net = build_supernet(
        input_shape=input_shape,
        n_classes=5,
        channels=3,
        cells_per_stage=1,
        reduction=reduction,
        generator=torch.Generator().manual_seed(seed),
        op_bn_affine=affine,
        op_bn_running_stats=affine,
    ).to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move every BN affine parameter off its identity initialisation
        for p in net.parameters():
            if p.ndim == 1:  # BN scales and shifts, the classifier's bias
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return net


def _grads(module):
    """Gradients by parameter name; a parameter that got none counts as a zero gradient."""
    return {
        n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for n, p in module.named_parameters()
    }


def _supernet_key(key: str, ops) -> str:
    parts = key.split(".")
    if parts[0] == "cells" and len(parts) > 3 and parts[2] == "edges":
        edge = [f"{i}_{j}" for i, j in models.EDGES].index(parts[3])
        return ".".join([*parts[:4], ops[edge], *parts[4:]])
    return key


# -- the supernet ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_shape", "reduction"), [((2, 12), "light"), ((1, 6, 6), "residual")]
)
def test_one_hot_supernet_is_the_standalone_network(input_shape, reduction):
    """Float64, cell-op BN affine with running statistics (the standalone's ops): outputs in
    train and eval mode and every gradient agree; unused supernet parameters get none."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(7, *input_shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (7,), generator=gen)
    for arch in ARCHS:
        ops = models.normalise_arch(arch)
        supernet = _supernet(input_shape, reduction, affine=True)
        supernet(x, choice=arch_to_choice(arch))  # running statistics away from their start
        net = extract_network(supernet, arch)
        assert net.arch == ops
        weights = onehot_weights(arch, dtype=torch.float64)
        for mode in ("eval", "train"):  # eval first: train-mode passes move running statistics
            supernet.train(mode == "train")
            net.train(mode == "train")
            expected = net(x)
            dense = supernet(x, weights=weights)
            path = supernet(x, choice=arch_to_choice(arch))
            torch.testing.assert_close(dense, expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(path, expected, rtol=1e-12, atol=1e-12)
        supernet.train()
        net.train()
        for forward in ({"weights": weights}, {"choice": arch_to_choice(arch)}):
            supernet.zero_grad(set_to_none=True)
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            F.cross_entropy(supernet(x, **forward), y).backward()
            super_grads = _grads(supernet)
            used = set()
            for name, grad in _grads(net).items():
                key = _supernet_key(name, ops)
                used.add(key)
                torch.testing.assert_close(super_grads[key], grad, rtol=1e-10, atol=1e-12)
            for key, grad in super_grads.items():
                if key not in used:
                    assert not grad.any(), key


def test_reference_bn_supernet_matches_standalone_in_train_mode():
    """Reference mode (cell-op BN without affine or running statistics): the same function as the
    standalone network whose cell-op BN scale is 1 and shift 0, on batch statistics."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, 10, generator=gen, dtype=torch.float64)
    for arch in ARCHS:
        supernet = _supernet((2, 10), "light", affine=False)
        net = extract_network(supernet, arch)
        for name, p in net.named_parameters():
            if ".edges." in name and name.endswith(("2.weight", "2.bias")):
                assert torch.all(p == (1.0 if name.endswith("weight") else 0.0))
        torch.testing.assert_close(
            supernet(x, weights=onehot_weights(arch, dtype=torch.float64)),
            net(x),
            rtol=1e-12,
            atol=1e-12,
        )


def test_supernet_needs_weights_or_a_path_and_checks_paths():
    supernet = _supernet((1, 8), "light", affine=False, dtype=torch.float32)
    x = torch.zeros(2, 1, 8)
    with pytest.raises(NasbenchError, match="weights=.*choice="):
        supernet(x)
    with pytest.raises(NasbenchError, match="op indices"):
        supernet(x, choice=(0, 1, 7, 0, 0, 0))


def test_inherited_weight_evaluation_leaves_the_supernet_unchanged(tiny):
    recipe, splits = tiny
    supernet = build_supernet(
        input_shape=(1, 8, 8),
        n_classes=10,
        channels=4,
        cells_per_stage=1,
        reduction="light",
        generator=torch.Generator().manual_seed(0),
    )
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    choice = arch_to_choice(ARCHS[0])
    a = evaluate_path(supernet, choice, splits.valid_x, splits.valid_y, batch_size=16)
    b = evaluate_path(supernet, choice, splits.valid_x, splits.valid_y, batch_size=16)
    assert a == b and 0 <= a <= 100
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, before[key]), key


# -- GDAS' sampler ----------------------------------------------------------------------


def test_gdas_sampler_is_a_hard_one_hot_with_a_straight_through_gradient():
    alpha = (0.5 * torch.randn(6, 5, generator=torch.Generator().manual_seed(3))).double()
    alpha.requires_grad_()
    weights, choice = gumbel_one_hot(alpha, 0.7, torch.Generator().manual_seed(9))
    hard = F.one_hot(choice, 5).double()
    assert torch.equal(weights.detach(), hard)  # exactly one-hot in the forward pass
    # the gradient is that of p = softmax((log_softmax(alpha) + g) / tau), same noise
    gumbel = (
        -torch.empty(6, 5, dtype=torch.float64)
        .exponential_(generator=torch.Generator().manual_seed(9))
        .log()
    )
    probs = F.softmax((F.log_softmax(alpha, -1) + gumbel) / 0.7, -1)
    assert torch.equal(probs.detach().argmax(-1), choice)
    upstream = torch.randn(6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    (got,) = torch.autograd.grad((weights * upstream).sum(), [alpha])
    (want,) = torch.autograd.grad((probs * upstream).sum(), [alpha])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_gdas_forward_runs_only_the_sampled_path_and_reaches_alpha():
    supernet = _supernet((1, 8), "light", affine=False)
    x = torch.randn(4, 1, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alpha = torch.zeros(6, 5, dtype=torch.float64)
    alpha[:, models.OPS.index("nor_conv_3x3")] = 8.0  # a path of convs: nodes with several inputs
    alpha.requires_grad_()
    weights, choice = gumbel_one_hot(alpha, 1.0, torch.Generator().manual_seed(1))
    out = supernet(x, weights=weights, choice=choice.tolist())
    assert torch.equal(out, supernet(x, choice=choice.tolist()))  # the value of one path
    # d out / d weights[e, k] flows only through the sampled op of each live edge
    leaf = weights.detach().clone().requires_grad_()
    (w_grad,) = torch.autograd.grad(supernet(x, weights=leaf, choice=choice.tolist()).sum(), [leaf])
    assert torch.all(w_grad[hard_mask(choice).logical_not()] == 0)
    target = torch.arange(4) % 5
    loss = F.cross_entropy(supernet(x, weights=weights, choice=choice.tolist()), target)
    (a_grad,) = torch.autograd.grad(loss, [alpha])
    assert a_grad.abs().sum() > 0


def hard_mask(choice):
    return F.one_hot(choice, 5).bool()


def test_gumbel_max_draws_follow_the_softmax():
    alpha = torch.tensor([[1.0, 0.0, -1.0, 0.5, -2.0]]).repeat(400, 1)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(5, dtype=torch.float64)
    for _ in range(50):  # 20,000 draws
        _, choice = gumbel_one_hot(alpha, 10.0, gen)  # argmax does not depend on tau
        counts += torch.bincount(choice, minlength=5)
    n = float(counts.sum())
    p = F.softmax(alpha[0].double(), -1)
    # each op within 4 standard errors of its softmax probability (the rarest is 0.023)
    assert ((counts / n - p).abs() < 4 * torch.sqrt(p * (1 - p) / n)).all(), (counts / n, p)


def test_gdas_temperature_is_annealed_linearly_from_tau_max_to_tau_min():
    method = GDAS(epochs=5)
    assert [method.tau(e) for e in range(5)] == pytest.approx([10, 7.525, 5.05, 2.575, 0.1])


# -- runs: seeds, parameters, table ------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "extra"),
    [
        (DARTS, {}),
        (DARTS, {"order": 2, "epochs": 1}),
        (GDAS, {}),
        (RSPS, {"n_candidates": 6, "derive_every": 1}),
    ],
)
def test_same_seed_same_run_bit_for_bit_other_seed_differs(tiny, cls, extra):
    recipe, splits = tiny
    params = {**FAST, **extra}
    a = cls(seed=0, **params).search(recipe, splits)
    b = cls(seed=0, **params).search(recipe, splits)
    c = cls(seed=1, **params).search(recipe, splits)
    for name in ("epochs", "choices", "archs", "oneshot_valid_acc", "arch_weights"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert len(a.archs) == params["epochs"]
    assert np.all(np.diff(a.time_s) > 0) and np.all(a.cost_s > 0)
    if cls is RSPS:
        assert not np.array_equal(a.oneshot_valid_acc, c.oneshot_valid_acc) or not np.array_equal(
            a.archs, c.archs
        )
    else:
        assert not np.array_equal(a.arch_weights, c.arch_weights)
        np.testing.assert_allclose(a.arch_weights.sum(-1), 1.0)


def test_darts_second_order_differs_from_first_order(tiny):
    recipe, splits = tiny
    first = DARTS(seed=0, **{**FAST, "epochs": 1}).search(recipe, splits)
    second = DARTS(seed=0, order=2, **{**FAST, "epochs": 1}).search(recipe, splits)
    assert not np.array_equal(first.arch_weights, second.arch_weights)


def test_darts_second_order_gradient_matches_the_exact_unrolled_gradient(tiny):
    """Float64: DARTS' eq. 7-8 against autograd through the virtual step
    ``w' = w - xi * (grad_w L_train(w, alpha) + wd * w)``. DARTS' own finite-difference radius
    (0.01) is coarse on this tiny net; a small one checks the formula, not the radius."""
    from torch.func import functional_call

    from nasbench_harness.oneshot._common import _Run

    recipe, splits = tiny
    method = DARTS(seed=0, order=2, batch_size=16, lr=0.5, weight_decay=5e-4)
    method.fd_radius = 1e-5
    run = _Run(method, recipe, splits, torch.device("cpu"))
    run.build()
    run.supernet.double()
    method._setup(run)
    run.alpha = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).double()
    run.alpha.requires_grad_()
    run.set_lr()
    xb, yb, xa, ya = next(run.epoch_batches())
    xb, xa = xb.double(), xa.double()
    approx = method._unrolled_arch_grad(run, xb, yb, xa, ya)

    names, params = zip(*run.supernet.named_parameters())
    alpha = run.alpha

    def loss(values, x, y):
        out = functional_call(
            run.supernet, dict(zip(names, values)), (x,), {"weights": F.softmax(alpha, -1)}
        )
        return F.cross_entropy(out, y)

    grads = torch.autograd.grad(loss(params, xb, yb), params, create_graph=True)
    virtual = [p - run.lr * (g + method.weight_decay * p) for p, g in zip(params, grads)]
    (exact,) = torch.autograd.grad(loss(virtual, xa, ya), [alpha])
    first_order = torch.autograd.grad(loss(params, xa, ya), [alpha])[0]
    assert (exact - first_order).abs().max() > 1e-6  # the second-order term matters here
    torch.testing.assert_close(approx, exact, rtol=1e-3, atol=1e-6)


def test_constructors_store_arguments_and_make_method_checks_names():
    method = make_method("gdas", seed=3, tau_max=5.0, epochs=2)
    assert method.get_params()["tau_max"] == 5.0 and method.seed == 3 and method.epochs == 2
    assert DARTS(lr="x").lr == "x"  # stored unchanged; checked when the search starts
    with pytest.raises(NasbenchError, match="unknown hyperparameter.*population_size.*accepted"):
        make_method("darts", seed=0, population_size=3)
    with pytest.raises(NasbenchError, match="unknown weight-sharing method 'enas'"):
        make_method("enas")


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (DARTS, {"epochs": 0}, "epochs=0"),
        (DARTS, {"order": 3}, "order=3"),
        (DARTS, {"lr": 0.001, "lr_min": 0.01}, "lr_min"),
        (GDAS, {"tau_min": 20.0}, "tau_min"),
        (RSPS, {"n_candidates": 0}, "n_candidates"),
        (DARTS, {"arch_beta1": 1.0}, "arch_beta1"),
    ],
)
def test_bad_parameters_are_clear_errors(tiny, cls, params, match):
    recipe, splits = tiny
    with pytest.raises(NasbenchError, match=match):
        cls(seed=0, **params).search(recipe, splits)
    with pytest.raises(NasbenchError, match="seed=None"):
        cls().search(recipe, splits)


def test_tables_without_nb201_space_or_recipe_are_refused(table):
    with pytest.raises(NasbenchError, match="--recipe-json"):
        table_recipe(table)  # the synthetic fixture has no training recipe
    nb101 = types.SimpleNamespace(space=types.SimpleNamespace(name="nb101"), path="nb101.h5")
    with pytest.raises(NasbenchError, match="nb201 cell space.*'nb101'"):
        table_recipe(nb101, TINY)


@pytest.mark.parametrize("name", ["darts", "gdas", "rsps"])
def test_weight_sharing_never_sees_test_data_or_global_random_state(table, tiny, name):
    import dataclasses
    import random

    recipe, splits = tiny
    extra = {"n_candidates": 4, "derive_every": 1} if name == "rsps" else {}
    gen = torch.Generator().manual_seed(9)
    scrambled = dataclasses.replace(
        splits,
        test_x=torch.randn(splits.test_x.shape, generator=gen),
        test_y=torch.randint(0, 10, splits.test_y.shape, generator=gen),
    )
    states = (np.random.get_state(), random.getstate(), torch.get_rng_state())  # noqa: NPY002
    runs = []
    for data in (splits, scrambled):
        _, run = run_oneshot(table, name, seed=0, recipe=recipe, splits=data, **FAST, **extra)
        runs.append(run)
        np.random.seed(123)  # noqa: NPY002 - a run must not depend on the global state
        random.seed(123)
        torch.manual_seed(123)
    a, b = runs
    np.testing.assert_array_equal(a.archs, b.archs)
    np.testing.assert_array_equal(a.oneshot_valid_acc, b.oneshot_valid_acc)
    np.testing.assert_array_equal(a.arch_weights, b.arch_weights)
    np.random.set_state(states[0])  # noqa: NPY002
    random.setstate(states[1])
    torch.set_rng_state(states[2])


@pytest.mark.parametrize("name", ["darts", "gdas", "rsps"])
def test_end_to_end_on_the_fixture_table(table, tiny, name):
    recipe, splits = tiny
    extra = {"n_candidates": 4, "derive_every": 1} if name == "rsps" else {}
    trace, run = run_oneshot(table, name, seed=0, recipe=recipe, splits=splits, **FAST, **extra)
    assert trace.algorithm == name and trace.n_queries == FAST["epochs"]
    assert trace.params["clock"].startswith("real wall-clock seconds")
    assert trace.params["epochs"] == 2 and trace.params["recipe"]["dataset"] == "digits"
    np.testing.assert_array_equal(trace.arch, run.archs)
    np.testing.assert_array_equal(trace.incumbent, run.archs)
    np.testing.assert_array_equal(trace.valid_acc, run.oneshot_valid_acc)
    assert np.all(trace.epoch == table.epochs[-1]) and np.all(trace.train_seed == -1)
    for k, arch in enumerate(trace.arch):
        assert trace.incumbent_test_acc[k] == pytest.approx(
            table.query(int(arch), metric="test_acc")
        )
        assert trace.incumbent_valid_acc[k] == pytest.approx(
            table.query(int(arch), metric="valid_acc")
        )
    np.testing.assert_allclose(trace.regret, trace.best_test_acc - trace.incumbent_test_acc)
    assert trace.budget_s == trace.time_s[-1]
    json.dumps(trace.to_dict())


class _NoValidation:
    """The fixture table as a table without a validation split (NB201 ``cifar10``)."""

    _simulator_view = None  # its own view, never the wrapped table's cached one

    def __init__(self, table):
        self._table = table

    def __getattr__(self, name):
        return getattr(self._table, name)

    def array(self, metric):
        values = self._table.array(metric)
        return np.full_like(values, np.nan) if metric.startswith("valid_") else values


def test_weight_sharing_scores_on_a_table_without_validation(table, tiny):
    # A one-shot method selects on its own data; the table only scores its answer, so a
    # table without validation accuracy (refused for a tabular search) must still work.
    recipe, splits = tiny
    no_valid = _NoValidation(table)
    with pytest.raises(NasbenchError, match="no validation accuracy"):
        Simulator(no_valid, budget_s=1e4)
    trace, run = run_oneshot(no_valid, "darts", seed=0, recipe=recipe, splits=splits, **FAST)
    assert np.isnan(trace.incumbent_valid_acc).all()
    for k, arch in enumerate(trace.arch):
        assert trace.incumbent_test_acc[k] == table.query(int(arch), metric="test_acc")
    json.dumps(trace.to_dict(), allow_nan=True)


def test_cli_search_list_run_and_errors(tmp_path, capsys):
    from nasbench_harness.cli import main

    assert main(["search", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed["weight_sharing"]) == {"darts", "gdas", "rsps"}
    assert all("weight-sharing" in d for d in listed["weight_sharing"].values())
    recipe = json.dumps(TINY)
    argv = ["search", str(FIXTURE), "-a", "gdas", "--seed", "1", "--recipe-json", recipe]
    argv += ["--param", "epochs=2", "--param", "batch_size=32", "--param", "eval_examples=16"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "weight-sharing" and "not simulated" in out["clock"]
    assert out["incumbent"]["arch_string"].startswith("|") and len(out["trace"]["arch"]) == 2
    assert np.asarray(out["arch_weights"]).shape == (6, 5)
    assert main([*argv, "--budget", "100"]) == 2
    assert "--budget" in capsys.readouterr().err
    assert main([*argv, "--param", "pop=3"]) == 2
    assert "unknown hyperparameter(s) pop" in capsys.readouterr().err
    assert main([*argv, "--param", "device=cpu"]) == 2  # an option of the run, not the method
    assert "unknown hyperparameter(s) device" in capsys.readouterr().err
    assert main([*argv, "--param", "seed=2"]) == 2
    assert "give it with --seed" in capsys.readouterr().err
    assert main(["search", str(FIXTURE), "-a", "rsps"]) == 2
    assert "--recipe-json" in capsys.readouterr().err


def test_cli_search_reads_a_cifar_recipe_from_data_root(cifar_root, capsys):
    from nasbench_harness.cli import main

    recipe = {**TINY, "dataset": "cifar10", "train_size": 64, "valid_size": 32, "test_size": 16}
    argv = ["search", str(FIXTURE), "-a", "rsps", "--recipe-json", json.dumps(recipe)]
    argv += ["--param", "epochs=1", "--param", "batch_size=32", "--param", "eval_examples=16"]
    argv += ["--param", "n_candidates=4", "--json"]
    assert main(argv) == 2  # CIFAR is read from disk: the error names the option
    assert "--data-root" in capsys.readouterr().err
    assert main([*argv, "--data-root", str(cifar_root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["recipe"]["dataset"] == "cifar10"
    assert main(["search", str(FIXTURE), "-a", "random", "--data-root", str(cifar_root)]) == 2
    assert "--data-root are for the weight-sharing methods" in capsys.readouterr().err


# -- the one-shot proxy ------------------------------------------------------------------


def test_oneshot_proxy_is_stored_resumed_and_correlated(tmp_path, capsys):
    from nasbench_harness.cli import main

    path = tmp_path / "t.h5"
    shutil.copy(FIXTURE, path)
    argv = ["proxies", str(path), "--proxies", "oneshot", "--seeds", "2", "--limit", "12"]
    argv += ["--recipe-json", json.dumps(TINY), "--no-progress", "--json"]
    argv += ["--oneshot-param", "epochs=1", "--oneshot-param", "eval_examples=24"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(argv) == 0
        assert torch.get_num_threads() == 2  # scored with one thread, the caller's count restored
    finally:
        torch.set_num_threads(threads)
    summary = json.loads(capsys.readouterr().out)["proxies"]["oneshot"]
    assert summary["n_scored"] == 24 and summary["n_failures"] == 0
    side = path.with_name(path.name + ".proxies.jsonl")
    n_lines = len(side.read_text().splitlines())
    assert n_lines == 24
    table = open_table(path)
    scores = table.array("proxy/oneshot")
    assert scores.shape == (table.n_archs, 2)
    reps = np.unique(table.canonical)[:12]
    assert np.isfinite(scores[reps]).all() and ((scores[reps] >= 0) & (scores[reps] <= 100)).all()
    np.testing.assert_array_equal(scores, scores[table.canonical])  # isomorphs share the score
    attrs = table.proxy_attrs["oneshot"]
    assert attrs["kind"].startswith("one-shot") and attrs["seeds"] == [0, 1]
    assert attrs["schedule"]["epochs"] == 1 and attrs["eval_examples"] == 24
    assert main(argv) == 0  # resumes: nothing recomputed, the same scores
    capsys.readouterr()
    assert len(side.read_text().splitlines()) == n_lines
    np.testing.assert_array_equal(open_table(path).array("proxy/oneshot"), scores)
    side.unlink()  # stored, the side file deleted: a smaller trial run keeps the stored scores
    assert main([*argv[:7], "2", *argv[8:]]) == 0  # --limit 2
    capsys.readouterr()
    assert not side.exists() or not side.read_text()  # nothing needed scoring
    np.testing.assert_array_equal(open_table(path).array("proxy/oneshot"), scores)
    assert main([*argv[:5], "1", *argv[6:]]) == 0  # --seeds 1: the stored seed 1 is kept
    capsys.readouterr()
    np.testing.assert_array_equal(open_table(path).array("proxy/oneshot"), scores)
    assert open_table(path).proxy_attrs["oneshot"]["seeds"] == [0, 1]
    assert (
        main(
            [
                "proxies",
                str(path),
                "--proxies",
                "oneshot",
                "--oneshot-param",
                "tau=1",
                "--recipe-json",
                json.dumps(TINY),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "unknown schedule parameter(s) tau" in capsys.readouterr().err
    argv = ["correlate", str(path), "--json", "--resamples", "0", "--no-low-fidelity"]
    assert main([*argv, "--no-progress"]) == 0
    entry = json.loads(capsys.readouterr().out)["proxies"]["oneshot"]
    assert entry["kind"].startswith("one-shot") and entry["n_seeds"] == 2


def test_supernet_batches_take_the_recipes_augmentation(tiny):
    from nasbench_harness.oneshot._common import _Run
    from nasbench_harness.train import _crop_flip, _seed_generators

    _, splits = tiny
    for augmentation in ("none", "crop_flip"):
        recipe = Recipe(**TINY, augmentation=augmentation)
        run = _Run(DARTS(seed=3, batch_size=16), recipe, splits, torch.device("cpu"))
        run.build()
        xb, yb, xa, ya = next(run.epoch_batches())
        # the same draws by hand: the weight half's order, the arch half's, then the crops
        _, data_gen = _seed_generators(3)
        order = torch.randperm(run.n_weight, generator=data_gen)
        arch_order = torch.randperm(run.n_arch, generator=data_gen)
        want_w = run.train_x.index_select(0, order[:16])
        want_a = run.train_x.index_select(0, arch_order[:16] + run.n_weight)
        if augmentation == "crop_flip":
            want_w, want_a = _crop_flip(want_w, data_gen), _crop_flip(want_a, data_gen)
            assert not torch.equal(want_w, run.train_x.index_select(0, order[:16]))
        assert torch.equal(xb, want_w) and torch.equal(xa, want_a)
        assert torch.equal(yb, run.train_y.index_select(0, order[:16]))


def test_an_rsps_default_given_explicitly_is_the_same_proxy_schedule():
    from nasbench_harness.oneshot.proxy import DEFAULT_SCHEDULE, _fingerprint, check_options

    plain, _ = check_options(None, 512, "cpu")
    explicit, _ = check_options({"lr": 0.025, "grad_clip": 5, "nesterov": True}, 512, "cpu")
    other, _ = check_options({"lr": 0.05, "nesterov": 1}, 512, "cpu")
    assert plain == explicit == DEFAULT_SCHEDULE
    assert other == {**DEFAULT_SCHEDULE, "lr": 0.05, "nesterov": 1}  # 1 is not a bool setting
    recipe = Recipe(**TINY)
    assert _fingerprint(recipe, plain, 512) == _fingerprint(recipe, explicit, 512)
    assert _fingerprint(recipe, other, 512) != _fingerprint(recipe, plain, 512)


def test_the_default_recipes_one_shot_fingerprint_is_the_shipped_side_files():
    """benchmark_data's one-shot scores count as done only under this fingerprint."""
    from nasbench_harness.build.defaults import DEFAULT_RECIPE
    from nasbench_harness.oneshot.proxy import DEFAULT_SCHEDULE, _fingerprint

    recipe = Recipe.from_dict(dict(DEFAULT_RECIPE))
    assert _fingerprint(recipe, dict(DEFAULT_SCHEDULE), 512) == "0f49e2004acfcaaf"
