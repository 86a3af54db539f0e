"""Tests for nasbench_harness.train: determinism, curves, recipe round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasbench_harness.data import load_dataset
from nasbench_harness.errors import BuildError
from nasbench_harness.train import Recipe, TrainResult, train_arch

ARCH = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect")
CURVES = ("train_acc", "train_loss", "valid_acc", "valid_loss", "test_acc", "test_loss")
TINY = Recipe(
    dataset="mnist1d",
    train_size=300,
    valid_size=100,
    test_size=100,
    channels=4,
    cells_per_stage=1,
    epochs=2,
    batch_size=64,
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def splits():
    return TINY.load_splits()


@pytest.fixture(scope="module")
def result(splits) -> TrainResult:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_arch(ARCH, 0, TINY, splits)
    finally:
        torch.set_num_threads(threads)


def test_curves_shapes_and_ranges(result):
    assert result.arch == ARCH and result.seed == 0 and result.epochs == 2
    for name, curve in result.curves().items():
        assert curve.shape == (2,), name
        assert np.all(np.isfinite(curve)), name
    for name in ("train_acc", "valid_acc", "test_acc"):
        assert np.all((0 <= getattr(result, name)) & (getattr(result, name) <= 100))
    assert np.all(result.train_time_s > 0) and np.all(result.eval_time_s > 0)
    assert result.params > 0 and result.flops > 0 and result.latency_ms > 0
    assert result.device.startswith("cpu")
    # learns something in two epochs: the loss falls and accuracy is 3 SE above chance (10%)
    assert result.train_loss[-1] < result.train_loss[0] and result.train_acc[-1] > 15


def test_same_seed_identical_except_times(result, splits):
    again = train_arch(ARCH, 0, TINY, splits)
    for name in CURVES:
        np.testing.assert_array_equal(getattr(result, name), getattr(again, name))
    assert (result.params, result.flops) == (again.params, again.flops)


def test_other_seed_differs(result, splits):
    other = train_arch(ARCH, 1, TINY, splits)
    assert not np.array_equal(result.train_loss, other.train_loss)


def test_global_state_untouched(splits):
    before = torch.random.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    train_arch(("none",) * 6, 0, TINY, splits)
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_disconnected_arch_trains_to_chance(splits):
    res = train_arch(("nor_conv_1x1", "none", "none", "none", "none", "none"), 0, TINY, splits)
    assert res.valid_acc[-1] < 25  # ten balanced-ish classes, a constant prediction


def test_a_diverged_run_records_infinite_losses_not_missing_ones(splits):
    # NaN in a table means "not measured"; a run whose loss blew up was measured
    diverged = train_arch(ARCH, 0, Recipe(**{**TINY.to_dict(), "lr": 1e6}), splits)
    losses = np.stack([diverged.train_loss, diverged.valid_loss, diverged.test_loss])
    assert not np.isnan(losses).any() and np.isposinf(losses).any()
    assert np.isfinite(np.stack([diverged.train_acc, diverged.valid_acc])).all()


def test_result_arrays_are_read_only(result):
    with pytest.raises(ValueError):
        result.valid_acc[0] = 0.0


def test_recipe_round_trip():
    recipe = Recipe(channels=4, epochs=3, label_smoothing=0.1)
    as_json = json.loads(json.dumps(recipe.to_dict()))
    assert Recipe.from_dict(as_json) == recipe
    assert Recipe.nb201().to_dict()["channels"] == 16
    with pytest.raises(BuildError, match="unknown recipe field"):
        Recipe.from_dict({**as_json, "learning_rate": 0.1})


@pytest.mark.parametrize(
    "changes",
    [
        {"reduction": "heavy"},
        {"dataset": "imagenet"},
        {"epochs": 0},
        {"batch_size": 1.5},
        {"lr": -0.1},
        {"lr_schedule": "step"},
        {"augmentation": "mixup"},
        {"label_smoothing": 1.0},
    ],
)
def test_bad_recipe_raises(changes):
    with pytest.raises(BuildError):
        Recipe(**changes)


def test_splits_must_match_recipe(splits):
    with pytest.raises(BuildError, match="do not match"):
        train_arch(ARCH, 0, Recipe(**{**TINY.to_dict(), "train_size": 200}), splits)
    with pytest.raises(BuildError, match="recipe trains on"):
        train_arch(ARCH, 0, Recipe(**{**TINY.to_dict(), "dataset": "digits"}), splits)
    with pytest.raises(BuildError, match="seed"):
        train_arch(ARCH, -1, TINY, splits)


def test_crop_flip_is_a_padded_shift_then_maybe_a_flip():
    from nasbench_harness.train import _crop_flip

    x = torch.randn(64, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    out = _crop_flip(x, torch.Generator().manual_seed(1), pad=4)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(
                out[i],
                padded[i, :, dy : dy + 8, dx : dx + 8].flip(-1)
                if flip
                else padded[i, :, dy : dy + 8, dx : dx + 8],
            )
        ]
        assert matches, i  # every sample is a crop of its own padded image, maybe flipped
        seen.add(matches[0])
    assert {flip for _, _, flip in seen} == {False, True} and len(seen) > 30


def test_crop_flip_on_images():
    recipe = Recipe(
        dataset="digits",
        train_size=100,
        valid_size=50,
        test_size=50,
        channels=4,
        cells_per_stage=1,
        epochs=1,
        batch_size=50,
        augmentation="crop_flip",
    )
    splits = load_dataset("digits", train=100, valid=50, test=50)
    first = train_arch(ARCH, 0, recipe, splits)
    second = train_arch(ARCH, 0, recipe, splits)
    np.testing.assert_array_equal(first.train_loss, second.train_loss)
    with pytest.raises(BuildError, match="2-D"):
        train_arch(
            ARCH, 0, Recipe(**{**TINY.to_dict(), "augmentation": "crop_flip"}), TINY.load_splits()
        )
