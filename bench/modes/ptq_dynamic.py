"""``ptq_dynamic``: int8 weights, float activations (dynamic-range quantization).

LiteRT quantizes weights per channel and quantizes activations on the fly inside the hybrid
kernels. ONNX Runtime's ``quantize_dynamic`` does the same for MatMul/Gemm and, through
ConvInteger, for Conv; the achieved size ratio in the report shows what it really covered.
OpenVINO: NNCF's int8 weight compression of every Conv and MatMul (``_nncf.compress_weights``);
the CPU plugin decompresses Conv weights to float32 and runs MatMuls on the int8 weights.
"""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.formats import Export
from bench.modes import (
    INT8_DEFAULT_SIZE_FLOOR,
    INT8_DROP_BUDGET_PP,
    MODES,
    ExportContext,
    Mode,
    _nncf,
    _onnx,
    _tflite,
)


def to_tflite(ctx: ExportContext, path: Path) -> None:
    from bench.tfsetup import tf

    converter = _tflite.converter_for(ctx.float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    _tflite.convert(converter, path, f"{ctx.model_name} ptq_dynamic")


def to_onnx(ctx: ExportContext, path: Path) -> None:
    _onnx.quantize_dynamic(ctx.float_onnx(), path, f"{ctx.model_name} ptq_dynamic")
    _onnx.package(path)


def to_openvino(ctx: ExportContext, path: Path) -> None:
    _nncf.compress_weights(ctx.float_onnx(), path, f"{ctx.model_name} ptq_dynamic")


MODE = MODES.register(
    "ptq_dynamic",
    Mode(
        name="ptq_dynamic",
        description="int8 weights, float activations, no calibration",
        weights="int8",
        activations="dynamic int8",
        default_size_floor=INT8_DEFAULT_SIZE_FLOOR,
        # Measured on the smoke tier: >= 97.4 % (mobilenet: ORT quantizes activations per tensor
        # at run time, LiteRT per row); the floor sits below by about the measured spread.
        agreement_floor=0.96,
        drop_budget_pp=INT8_DROP_BUDGET_PP,
    ),
)

# LiteRT's dynamic-range quantizer is per-channel, and its hybrid kernels quantize activations
# per row: batch-invariant.
formats.register("ptq_dynamic", "tflite", Export(to_tflite, per_channel=True))
# ORT's ConvInteger takes one weight scale. Measured (smoke cnn, 2,000 images): 84.90 % at
# batch 1, 85.00 % at 500, 85.10 % at 256 with a zero-padded tail.
formats.register("ptq_dynamic", "onnx", Export(to_onnx, batch_dependent=(
    "ORT's dynamic quantization takes each activation's range over the whole batch tensor (padding "
    "included), so an image's logits depend on its batch-mates")))
formats.register("ptq_dynamic", "openvino", Export(to_openvino))
formats.unsupported("ptq_dynamic", "keras",
                    "Keras runs float graphs only; dynamic-range kernels exist in LiteRT and ORT")
