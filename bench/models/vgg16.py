"""``vgg16``: Keras VGG16 without its top, plus Dense(128) and Dense(10), on 32x32x3 input.

14,781,642 parameters, the reference report's count. No BatchNorm (as Keras builds VGG16), which
is why its activations are unbounded and int8 calibration matters most here.
"""

from __future__ import annotations

from bench.models import MODELS, ModelSpec


def build():
    from bench.tfsetup import keras

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    base = keras.applications.VGG16(input_tensor=inputs, include_top=False, weights=None)
    x = keras.layers.Flatten(name="flatten")(base.output)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg16")


SPEC = MODELS.register(
    "vgg16",
    ModelSpec(
        name="vgg16",
        input_shape=(32, 32, 3),
        build=build,
        description="Keras VGG16 (no top) + Dense(128) + Dense(10)",
    ),
)
