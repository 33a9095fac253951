"""``ptq_int16x8``: int16 activations with int8 weights (LiteRT's 16x8 mode), calibrated.

For models whose activations are too wide for int8: 256x finer activation steps at the same weight
size. LiteRT's 16x8 kernels are reference implementations, so this mode is about accuracy, not
speed.
"""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.formats import Export
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
        uses_calibration=True,
        weights="int8",
        activations="int16",
        # As int8 (ModelSpec.size_floors holds each model's measured floor; 16x8 keeps biases in
        # int64, twice int8's int32).
        default_size_floor=2.0,
        # 256x finer activation steps than int8: a tighter budget than int8's.
        drop_budget_pp={"smoke": 0.5, "full": 0.3},
    ),
)

formats.register("ptq_int16x8", "tflite", Export(to_tflite, per_channel=True))
formats.unsupported("ptq_int16x8", "keras", "Keras cannot run integer kernels")
formats.unsupported("ptq_int16x8", "onnx", "not wired: ORT's QInt16 QDQ activations are a possible extension")
