"""A toy mode registered the way another package would: ``quantbench.modes`` entry point.

``int8_per_tensor``: LiteRT full-integer quantization with one scale per weight tensor instead
of per channel (the converter's private switch): a real mode, coarser than ``ptq_int8``.
"""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.formats import Export
from bench.modes import MODES, ExportContext, Mode


def to_tflite(ctx: ExportContext, path: Path) -> None:
    from bench.modes import _tflite

    converter = _tflite.converter_for(ctx.float_model)
    _tflite.full_integer(converter, ctx.calibration)
    converter._experimental_disable_per_channel = True
    _tflite.convert(converter, path, f"{ctx.model_name} int8_per_tensor")


MODE = MODES.register("int8_per_tensor", Mode(
    name="int8_per_tensor",
    description="toy mode of the plugin-API test: full integer int8, per-tensor weights",
    weights="int8",
    activations="int8",
    integer=True,
    uses_calibration=True,
    # Measured 3.57x on the toy model (15.8 KB against 56.3 KB); 2x is half the ideal saving.
    default_size_floor=2.0,
    agreement_floor=0.99,
    # Measured 0.20 pp on the toy model; 10 pp is loose on purpose (a toy), and still far below the
    # ~60 pp a broken file loses (chance is 10 %).
    drop_budget_pp={"smoke": 10.0},
))

# The mode names formats, never backends: every backend running LiteRT's files runs this one.
formats.register("int8_per_tensor", "tflite", Export(to_tflite))
formats.unsupported("int8_per_tensor", "keras", "Keras cannot run integer kernels")
