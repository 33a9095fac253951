"""``tiny``: the project's own model, registered under the ``quantbench.models`` entry point.

Two strided 3x3 convolutions and a dense layer (16,330 parameters). Three epochs on 3,000
images train it in seconds to 79.80 % on the smoke tier's 2,000 test images (float32; 79.85 %
as LiteRT int8), so the example's whole bench, latency included, runs in about 25 s on two
cores from a cold model cache. A model of another package brings what quantbench's tiers do not
know about it: its training and QAT recipes and its float floor, per tier.
"""

from __future__ import annotations

from bench.models import MODELS, ModelSpec
from bench.tiers import QatRecipe, TrainRecipe


def build():
    """A fresh, untrained Keras model (quantbench seeds before calling it)."""
    from bench.tfsetup import keras

    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Conv2D(16, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


SPEC = MODELS.register("tiny", ModelSpec(
    name="tiny",
    input_shape=(28, 28, 1),
    build=build,
    description="the fashion-toy example's model: 2 strided convs, dense",
    recipes={
        # Small enough that training is a few seconds of the example's run.
        "smoke": TrainRecipe(epochs=3, batch_size=32, learning_rate=3e-3, train_size=3000),
        "full": TrainRecipe(epochs=10, batch_size=128, learning_rate=3e-3, warmup_epochs=1),
    },
    qat_recipes={
        "smoke": QatRecipe(epochs=1, batch_size=32, learning_rate=1e-4, train_size=1000),
        "full": QatRecipe(epochs=1, batch_size=128, learning_rate=1e-4, train_size=10000),
    },
    # Chance is 10 %: these say the model learned, with room below what the recipes reach.
    min_float_accuracy={"smoke": 0.60, "full": 0.85},
))
