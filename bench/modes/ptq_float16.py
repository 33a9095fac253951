"""``ptq_float16``: float16 weights, dequantized to float32 at load time (half the size)."""

from __future__ import annotations

from pathlib import Path

from bench.modes import MODES, ExportContext, Mode, _tflite


def to_tflite(ctx: ExportContext, path: Path) -> None:
    from bench.tfsetup import tf

    converter = _tflite.converter_for(ctx.float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    _tflite.convert(converter, path, f"{ctx.model_name} ptq_float16")


MODE = MODES.register(
    "ptq_float16",
    Mode(
        name="ptq_float16",
        description="float16 weights, float32 compute",
        backends={
            "keras": "Keras runs the float32 model; float16 weights are a converter feature",
            "litert": to_tflite,
            "onnxruntime": "ONNX float16 conversion needs onnxconverter-common, not a dependency "
            "of this harness",
        },
        weights="float16",
        # float16 halves the weights: limit 2x; the cnn's fixed graph cost leaves it at 1.88x. A
        # model of another package gets 1.5x: half the ideal saving.
        size_floor={"cnn": 1.8, "mobilenet": 1.9, "vgg16": 1.95},
        default_size_floor=1.5,
    ),
)
