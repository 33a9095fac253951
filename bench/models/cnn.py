"""``cnn``: a plain conv/pool/dense network under 25k parameters.

Four 3x3 convolutions with batch normalization, two max-pools, global average pooling and one
dense layer: 23,962 parameters. BatchNorm and global pooling are what let a ~20k-parameter
network pass 90 % on Fashion-MNIST (the reference report's 20,426-parameter CNN reached 88.4 %);
BatchNorm is folded into the convolutions at conversion, so it costs nothing at inference.
"""

from __future__ import annotations

from bench.models import MODELS, ModelSpec, set_batchnorm_momentum


def build():
    from bench.tfsetup import keras

    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = inputs
    for i, (filters, pool) in enumerate([(16, False), (32, True), (32, True), (32, False)]):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return set_batchnorm_momentum(keras.Model(inputs, outputs, name="cnn"))


SPEC = MODELS.register(
    "cnn",
    ModelSpec(
        name="cnn",
        input_shape=(28, 28, 1),
        build=build,
        description="plain CNN: 4 conv+BN, 2 max-pool, global pool, dense",
    ),
)
