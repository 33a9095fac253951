"""Training precision as recipe data: hashing, the policy's scope, and the float32 twin."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import tiers, train
from bench.models import MODELS
from bench.tiers import FULL, SMOKE, TrainRecipe


def test_default_precision_leaves_existing_recipe_hashes_alone(monkeypatch):
    """Adding a field must not re-key every cached model: float32 (and the default two training
    threads) hash as if the fields were absent."""
    recipe = SMOKE.train_recipe("cnn")
    legacy = {k: v for k, v in dataclasses.asdict(recipe).items() if k not in ("precision", "threads")}
    assert recipe.precision == "float32" and recipe.threads == tiers.TRAINING_THREADS
    float32_hash = SMOKE.recipe_hash("cnn")
    assert float32_hash == tiers._hash({"seed": SMOKE.seed, "val_size": SMOKE.val_size, "train": legacy})
    spec = MODELS.get("cnn")
    bf16 = {**spec.recipes, "smoke": dataclasses.replace(recipe, precision="mixed_bfloat16")}
    monkeypatch.setitem(MODELS._entries, "cnn", dataclasses.replace(spec, recipes=bf16))
    assert SMOKE.recipe_hash("cnn") != float32_hash


def test_full_vgg16_trains_in_mixed_bfloat16():
    assert FULL.train_recipe("vgg16").precision == "mixed_bfloat16"


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown training precision 'float8'.*float32, mixed_bfloat16"), \
            train._precision("float8"):
        pass


def test_policy_is_float32_again_after_the_block_even_on_error():
    from bench.tfsetup import keras

    with pytest.raises(RuntimeError), train._precision("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError("training interrupted")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_float32_twin_holds_the_trained_weights_without_bfloat16_casts():
    spec = MODELS.get("cnn")
    with train._precision("mixed_bfloat16"):
        mixed = train.build_model(spec, seed=3)
    assert mixed.compute_dtype == "bfloat16"
    twin = train._float32_twin(mixed, spec, seed=3)
    assert twin.compute_dtype == "float32"
    for a, b in zip(mixed.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(0).random((4, *spec.input_shape)).astype(np.float32)
    assert twin(images).dtype.name == "float32"
    # A float32 model is its own twin: no rebuild.
    assert train._float32_twin(twin, spec, seed=3) is twin


def test_recipe_precision_defaults_to_float32():
    assert TrainRecipe(epochs=1, batch_size=1, learning_rate=1e-3).precision == "float32"
