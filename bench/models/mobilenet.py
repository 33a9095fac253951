"""``mobilenet``: Keras MobileNet v1 (alpha 1.0), untrained, on 32x32x3 input, with a 10-way head.

Built with ``input_tensor=`` so its layers sit directly in the outer model (tfmot's
``quantize_model`` refuses a nested model). 32x32 is the smallest input Keras allows.
"""

from __future__ import annotations

from bench.models import MODELS, ModelSpec, set_batchnorm_momentum


def build():
    from bench.tfsetup import keras

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    base = keras.applications.MobileNet(
        input_tensor=inputs, include_top=False, weights=None, alpha=1.0
    )
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return set_batchnorm_momentum(keras.Model(inputs, outputs, name="mobilenet"))


SPEC = MODELS.register(
    "mobilenet",
    ModelSpec(
        name="mobilenet",
        input_shape=(32, 32, 3),
        build=build,
        description="Keras MobileNet v1 (alpha 1.0), global pool, dense",
    ),
)
