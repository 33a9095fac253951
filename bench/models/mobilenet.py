"""``mobilenet``: Keras MobileNet v1 (alpha 1.0), untrained, on 32x32x3 input, with a 10-way head.

Built with ``input_tensor=`` so its layers sit directly in the outer model (tfmot's
``quantize_model`` refuses a nested model). 32x32 is the smallest input Keras allows.
"""

from __future__ import annotations

from bench.models import MODELS, ModelSpec, set_batchnorm_momentum
from bench.recipes import QatRecipe, TrainRecipe


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
        display_name="MobileNet",
        recipes={
            "smoke": TrainRecipe(epochs=3, batch_size=64, learning_rate=2e-3, train_size=10000),
            # 20 epochs without label smoothing measured 91.83 % (val 92.46 %): 0.17 pp short of the
            # target; a longer cosine schedule and label smoothing are the usual last half point.
            "full": TrainRecipe(epochs=30, batch_size=128, learning_rate=2e-3, warmup_epochs=1,
                                augment=True, label_smoothing=0.1),
        },
        qat_recipes={
            "smoke": QatRecipe(epochs=1, batch_size=64, learning_rate=1e-4, train_size=2000),
            "full": QatRecipe(epochs=2, batch_size=128, learning_rate=5e-5, train_size=20000),
        },
        # smoke: it must really learn in a few epochs (chance is 10 %). full: the project's target
        # (the reference report's MobileNet reached 85.7 %).
        min_float_accuracy={"smoke": 0.70, "full": 0.92},
        # int8 stores 1 byte per weight against 4 (limit 4x); per-channel scales, int32 biases and
        # the graph eat into it. 16x8 keeps biases in int64: measured 3.51x. float16: limit 2x.
        size_floors={"ptq_dynamic": 3.6, "ptq_int8": 3.6, "qat_int8": 3.6, "ptq_int16x8": 3.4,
                     "ptq_float16": 1.9},
        # Measured on an AMD EPYC over ten runs: LiteRT 2.07-2.29x, ORT 1.51-1.75x (see
        # bench.gates.SPEEDUP_KEPT_FRACTION).
        speedup_gated=True,
        # The guide's goals (reported beside the measurement).
        speedup_targets={"litert": 2.5, "onnxruntime": 1.7},
    ),
)
