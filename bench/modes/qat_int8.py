"""``qat_int8``: quantization-aware training, then a full-integer model.

The converged float model is wrapped with tensorflow-model-optimization's ``quantize_model``
(per-channel weights, fake-quant activations) and fine-tuned at a small learning rate with
BatchNorm statistics frozen, for the tier's QAT epochs. The fake-quant ranges it learned become the
int8 model's ranges, so no calibration set is involved.

Backends: ``litert`` runs the converted integer-only model; ``onnxruntime`` the tf2onnx export, in which activation fake-quant nodes become
QuantizeLinear/DequantizeLinear pairs and the (already int8-grid) weights are stored as int8
with DequantizeLinear nodes (see ``_onnx.store_weights_as_int8``): U8S8, or U8U8 (the same
grid stored as uint8) on a testbed whose int8 sums saturate
(``bench.backends.onnxruntime.int8_format``).
"""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.backends import onnxruntime as ort_backend
from bench.formats import Export
from bench.modes import (
    INT8_DEFAULT_SIZE_FLOOR,
    INT8_DROP_BUDGET_PP,
    MODES,
    STATIC_INT8_AGREEMENT_FLOOR,
    ExportContext,
    Mode,
    _onnx,
    _tflite,
)


def to_tflite(ctx: ExportContext, path: Path) -> None:
    converter = _tflite.converter_for(ctx.qat_model())
    _tflite.full_integer(converter, None)
    _tflite.convert(converter, path, f"{ctx.model_name} qat_int8")
    _tflite.check_integer_only(path, f"{ctx.model_name} qat_int8")


def to_onnx(ctx: ExportContext, path: Path) -> None:
    _onnx.export_keras(ctx.qat_model(), ctx.input_shape, path, f"{ctx.model_name} qat_int8")
    fmt = ort_backend.int8_format(ctx.testbed, "qat_int8")
    _onnx.store_weights_as_int8(path, f"{ctx.model_name} qat_int8", weight_type=fmt.weight_type)
    _onnx.package(path)


MODE = MODES.register(
    "qat_int8",
    Mode(
        name="qat_int8",
        description="quantization-aware training (tfmot), then full integer int8",
        integer=True,
        uses_qat=True,
        weights="int8",
        activations="int8",
        default_size_floor=INT8_DEFAULT_SIZE_FLOOR,
        agreement_floor=STATIC_INT8_AGREEMENT_FLOOR,
        drop_budget_pp=INT8_DROP_BUDGET_PP,
    ),
)


def onnx_int8_format(testbed) -> str | None:
    """The int8 format (U8S8 or U8U8) the testbed's recipe gives the QAT file's weights."""
    fmt = ort_backend.int8_format(testbed, "qat_int8")
    return fmt.name if fmt else None


# Neither file is per-channel: tfmot's QAT Dense weights are per-tensor.
formats.register("qat_int8", "tflite", Export(to_tflite))
formats.register("qat_int8", "onnx", Export(to_onnx, variant=onnx_int8_format))
formats.unsupported("qat_int8", "keras", "tfmot 0.8.1's QAT wrappers do not load back from a saved Keras file "
                    "(quantize_layer expects 5 variables, the file holds 3), so no real artifact exists")
