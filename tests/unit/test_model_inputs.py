"""Tests of bench.data.ModelInputs: a tier's images converted once per input shape, bit for bit
what converting them at each stage gave (training, QAT range initialization, evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import data

SHAPES = [(28, 28, 1), (32, 32, 3)]


@pytest.fixture
def splits() -> data.Splits:
    rng = np.random.default_rng(3)
    dataset = data.FashionMNIST(
        x_train=rng.integers(0, 256, (600, 28, 28), dtype=np.uint8), y_train=np.arange(600) % 10,
        x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8), y_test=np.arange(100) % 10,
        sha256="x", source="synthetic",
    )
    return data.split(dataset, val_size=100, train_size=None, test_size=40, calibration_size=50, seed=7)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_split_is_converted_once_and_bit_identical(splits, shape):
    inputs = data.ModelInputs(splits, shape)
    for field in ("x_val", "x_calib", "x_test"):
        got = getattr(inputs, field)
        want = data.to_model_input(getattr(splits, field), shape)
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), field
        assert getattr(inputs, field) is got, f"{field} converted again"


@pytest.mark.parametrize("shape", SHAPES)
def test_an_epoch_of_shuffled_converted_images_is_the_converted_shuffled_images(splits, shape):
    inputs = data.ModelInputs(splits, shape)
    for n, seed in ((300, 0), (120, 1)):  # a float recipe's prefix, then QAT's shorter one
        order = np.random.default_rng(seed).permutation(n)
        epoch = inputs.train(n)[order]
        before = data.to_model_input(splits.x_train[:n][order], shape)  # what training converted
        assert epoch.shape == before.shape and epoch.tobytes() == before.tobytes()
        assert epoch.flags.c_contiguous


def test_a_shorter_prefix_is_a_view_and_a_longer_one_is_converted(splits, monkeypatch):
    inputs = data.ModelInputs(splits, (28, 28, 1))
    calls = []
    convert = inputs.convert
    monkeypatch.setattr(inputs, "convert", lambda images: calls.append(len(images)) or convert(images))
    longer = inputs.train(300)
    assert np.shares_memory(inputs.train(120), longer) and calls == [300]
    assert len(inputs.train(None)) == len(splits.x_train) and calls == [300, len(splits.x_train)]
    assert len(inputs.train(10**6)) == len(splits.x_train)  # a recipe asking for more gets all


def test_augmented_images_are_converted_like_any_other(splits):
    inputs = data.ModelInputs(splits, (32, 32, 3))
    images = splits.x_train[:8]
    assert inputs.convert(images).tobytes() == data.to_model_input(images, (32, 32, 3)).tobytes()
