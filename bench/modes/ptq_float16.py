"""``ptq_float16``: float16 weights, dequantized to float32 at load time (half the size)."""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.formats import Export
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
        weights="float16",
        # float16 halves the weights: limit 2x (ModelSpec.size_floors holds each model's
        # measured floor). A model declaring none gets 1.5x: half the ideal saving.
        default_size_floor=1.5,
        # float16 weights keep 11 bits of mantissa: a few boundary images at most.
        drop_budget_pp={"smoke": 0.2, "full": 0.1},
    ),
)

formats.register("ptq_float16", "tflite", Export(to_tflite))
formats.unsupported("ptq_float16", "keras", "Keras runs the float32 model; float16 weights are a converter feature")
formats.unsupported("ptq_float16", "onnx", "ONNX float16 conversion needs onnxconverter-common, not a "
                    "dependency of this harness")
