"""``ptq_dynamic``: int8 weights, float activations (dynamic-range quantization).

LiteRT quantizes weights per channel and quantizes activations on the fly inside the hybrid
kernels. ONNX Runtime's ``quantize_dynamic`` does the same for MatMul/Gemm and, through
ConvInteger, for Conv; the achieved size ratio in the report shows what it really covered.
OpenVINO: NNCF's int8 weight compression of every Conv and MatMul (``_nncf.compress_weights``);
the CPU plugin decompresses Conv weights to float32 and runs MatMuls on the int8 weights.
"""

from __future__ import annotations

from pathlib import Path

from bench.modes import (
    INT8_DEFAULT_SIZE_FLOOR,
    INT8_SIZE_FLOOR,
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
        backends={
            "keras": "Keras runs float graphs only; dynamic-range kernels exist in LiteRT and ORT",
            "litert": to_tflite,
            "onnxruntime": to_onnx,
            "openvino": to_openvino,
        },
        # Measured (smoke cnn, 2,000 images): 84.90 % at batch 1, 85.00 % at 500, 85.10 % at 256
        # with a zero-padded tail. LiteRT's hybrid kernels quantize per row: batch-invariant.
        batch_dependent={
            "onnxruntime": "ORT's dynamic quantization takes each activation's range over the whole "
            "batch tensor (padding included), so an image's logits depend on its batch-mates",
        },
        weights="int8",
        activations="dynamic int8",
        # LiteRT's dynamic-range quantizer is per-channel; ORT's ConvInteger takes one weight scale.
        per_channel=("litert",),
        size_floor=INT8_SIZE_FLOOR,
        default_size_floor=INT8_DEFAULT_SIZE_FLOOR,
        # Measured on the smoke tier: >= 97.4 % (mobilenet: ORT quantizes activations per tensor
        # at run time, LiteRT per row); the floor sits below by about the measured spread.
        agreement_floor=0.96,
    ),
)
