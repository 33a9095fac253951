"""``ptq_int16x8``: int16 activations with int8 weights (LiteRT's 16x8 mode), calibrated.

For models whose activations are too wide for int8: 256x finer activation steps at the same weight
size. LiteRT's 16x8 kernels are reference implementations, so this mode is about accuracy, not
speed.
"""

from __future__ import annotations

from pathlib import Path

from bench.modes import MODES, ExportContext, Mode, _tflite


def to_tflite(ctx: ExportContext, path: Path) -> None:
    from bench.tfsetup import tf

    converter = _tflite.converter_for(ctx.float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _tflite.representative(ctx.calibration)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = False
    _tflite.convert(converter, path, f"{ctx.model_name} ptq_int16x8")


MODE = MODES.register(
    "ptq_int16x8",
    Mode(
        name="ptq_int16x8",
        description="int16 activations, int8 weights (LiteRT 16x8)",
        backends={
            "keras": "Keras cannot run integer kernels",
            "litert": to_tflite,
            "onnxruntime": "not wired: ORT's QInt16 QDQ activations are a possible extension",
        },
        uses_calibration=True,
        weights="int8",
        activations="int16",
        per_channel=("litert",),
        # As int8, but 16x8 keeps biases in int64 (twice int8's int32): measured 3.51x on mobilenet.
        size_floor={"cnn": 2.8, "mobilenet": 3.4, "vgg16": 3.9},
        default_size_floor=2.0,
    ),
)
