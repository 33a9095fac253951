"""``ptq_int8``: full-integer post-training quantization, per-channel weights, calibrated.

LiteRT: int8 kernels throughout with int8 input and output, activation ranges from the tier's
calibration images (training split only). ONNX Runtime: static QDQ, S8S8 (signed activations and
weights, which avoids the U8S8 saturation of AVX-512 VNNI kernels), per-channel weights, calibrated
on the same images with the chosen method.
"""

from __future__ import annotations

from pathlib import Path

from bench.modes import (
    INT8_DEFAULT_SIZE_FLOOR,
    INT8_SIZE_FLOOR,
    MODES,
    STATIC_INT8_AGREEMENT_FLOOR,
    ExportContext,
    Mode,
    _onnx,
    _tflite,
)


def to_tflite(ctx: ExportContext, path: Path) -> None:
    converter = _tflite.converter_for(ctx.float_model)
    _tflite.full_integer(converter, ctx.calibration)
    _tflite.convert(converter, path, f"{ctx.model_name} ptq_int8")
    _tflite.check_integer_only(path, f"{ctx.model_name} ptq_int8")


def to_onnx(ctx: ExportContext, path: Path) -> None:
    _onnx.quantize_static(
        ctx.float_onnx(), path, ctx.calibration, ctx.calibration_method, f"{ctx.model_name} ptq_int8"
    )
    _onnx.package(path)


MODE = MODES.register(
    "ptq_int8",
    Mode(
        name="ptq_int8",
        description="full integer int8, per-channel weights, calibrated activations",
        backends={
            "keras": "Keras cannot run integer kernels; see litert and onnxruntime",
            "litert": to_tflite,
            "onnxruntime": to_onnx,
        },
        integer=True,
        uses_calibration=True,
        weights="int8",
        activations="int8",
        per_channel=("litert", "onnxruntime"),
        size_floor=INT8_SIZE_FLOOR,
        default_size_floor=INT8_DEFAULT_SIZE_FLOOR,
        agreement_floor=STATIC_INT8_AGREEMENT_FLOOR,
    ),
)
