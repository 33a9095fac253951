"""``bf16``: the float32 model computed in bfloat16, where a runtime does so on this CPU.

bfloat16 keeps float32's exponent and 8 bits of mantissa: no calibration, no scales, half the
memory traffic of activations, and on CPUs with AVX512-BF16 or AMX the throughput of bfloat16
dot products. OpenVINO's CPU plugin computes a float32 graph in bfloat16 when told to (and, on
such CPUs, by default): the artifact is the float32 ONNX file itself, run with
``INFERENCE_PRECISION_HINT=bf16`` (``compute_precision``). On a CPU without those instructions
the plugin has no bfloat16 kernels and the case is a skip (``Backend.unsupported``).
"""

from __future__ import annotations

from pathlib import Path

from bench import atomic
from bench.modes import MODES, ExportContext, Mode, _onnx_names


def to_openvino(ctx: ExportContext, path: Path) -> None:
    """The float32 ONNX file as it is, with its names sidecar (the precision is a load setting)."""
    source = ctx.float_onnx()
    atomic.write_bytes(path, source.read_bytes())
    names = _onnx_names.names_path(source)
    if names.is_file():
        atomic.write_bytes(_onnx_names.names_path(path), names.read_bytes())


MODE = MODES.register(
    "bf16",
    Mode(
        name="bf16",
        description="float32 weights, bfloat16 compute (OpenVINO CPU plugin)",
        backends={
            "keras": "the keras backend runs the saved float32 model as it is; bfloat16 compute is a "
            "Keras dtype policy the model is built with (TrainRecipe.precision), not a load setting",
            "litert": "LiteRT's interpreter has no bfloat16 kernels (XNNPACK computes float32, or "
            "float16 where forced)",
            "onnxruntime": "ONNX's Conv takes no bfloat16 tensors (opset 17: float16, float, double) "
            "and ONNX Runtime's CPU provider has no setting that computes a float32 graph in bfloat16 on x86",
            "openvino": to_openvino,
        },
        weights="float32",
        activations="bfloat16",
        compute_precision="bf16",
        # The same file as float32: a size ratio of 1, which is the point, so no floor.
        default_size_floor=None,
        # Only OpenVINO runs the mode, so there is no second backend to agree with.
        agreement_floor=None,
    ),
)
