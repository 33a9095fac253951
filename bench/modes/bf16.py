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

from bench import atomic, formats
from bench.formats import Export
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
        weights="float32",
        activations="bfloat16",
        compute_precision="bf16",
        # The same file as float32: a size ratio of 1, which is the point, so no floor.
        default_size_floor=None,
        # Only OpenVINO runs the mode, so there is no second backend to agree with.
        agreement_floor=None,
        # bfloat16 keeps 8 bits of mantissa: OpenVINO measured -0.10 / -0.10 / -0.05 pp on smoke
        # (cnn, mobilenet, vgg16; at most 5 of 2,000 images changed), so 0.3 pp is 6 images of
        # margin; 0.02 / 0.01 pp on full (cnn, mobilenet; 10,000 images), where 0.2 pp stays tighter
        # than int8's 0.5: bf16 is the precision int8 must beat on CPUs that have it.
        drop_budget_pp={"smoke": 0.3, "full": 0.2},
    ),
)

formats.register("bf16", "openvino", Export(to_openvino))
formats.unsupported("bf16", "keras", "the keras backend runs the saved float32 model as it is; bfloat16 "
                    "compute is a Keras dtype policy the model is built with (TrainRecipe.precision), not a "
                    "load setting")
formats.unsupported("bf16", "tflite", "LiteRT's interpreter has no bfloat16 kernels (XNNPACK computes "
                    "float32, or float16 where forced)")
formats.unsupported("bf16", "onnx", "ONNX's Conv takes no bfloat16 tensors (opset 17: float16, float, "
                    "double) and ONNX Runtime's CPU provider has no setting that computes a float32 graph in "
                    "bfloat16 on x86")
