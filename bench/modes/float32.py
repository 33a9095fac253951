"""``float32``: the trained model as it is; the reference every other mode is measured against."""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.formats import Export
from bench.modes import MODES, ExportContext, Mode, _keras, _onnx, _tflite


def to_keras(ctx: ExportContext, path: Path) -> None:
    _keras.save(ctx.float_model, path)


def to_tflite(ctx: ExportContext, path: Path) -> None:
    _tflite.convert(_tflite.converter_for(ctx.float_model), path, f"{ctx.model_name} float32")


def to_onnx(ctx: ExportContext, path: Path) -> None:
    _onnx.export_keras(ctx.float_model, ctx.input_shape, path, f"{ctx.model_name} float32")
    _onnx.package(path)


MODE = MODES.register(
    "float32",
    Mode(
        name="float32",
        description="float32 weights and activations (reference)",
        # Both backends run the same float32 graph; kernels differ only in summation order, which
        # moves logits by ~1e-5 relative: the residual 0.1 % allows ties broken differently.
        agreement_floor=0.999,
        # The reference itself: judged by the model's accuracy floor, never by a drop.
        drop_budget_pp={"smoke": 0.0, "full": 0.0},
    ),
)

formats.register("float32", "keras", Export(to_keras))
formats.register("float32", "tflite", Export(to_tflite))
formats.register("float32", "onnx", Export(to_onnx))
