"""Quantization modes, one file each, registered by name.

A mode module registers its :class:`Mode` (the facts gates and reports read) and, per file
format, how its file is made (:func:`bench.formats.register`: a function ``export(ctx, path)``)
or why no such file can exist (:func:`bench.formats.unsupported`: shown as a pytest skip with
that reason, never as a silent pass). It names formats, never backends: every backend running a
format runs the mode's file of it. Other packages register modes through the
``quantbench.modes`` entry point (see :mod:`bench.registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import formats, testbeds
from bench.registry import Registry, builtin_modules


@dataclasses.dataclass
class ExportContext:
    """What an exporter may use. Expensive things are callables, computed only when asked.

    Attributes:
        model_name: Registry name of the model.
        input_shape: The model's ``(height, width, channels)``.
        float_model: The trained float Keras model.
        qat_model: Returns the QAT fine-tuned Keras model (trains or loads it on first call).
        calibration: Calibration images, model input (float32), from the training split.
        float_onnx: Returns the path of the float32 ONNX export (converted on first call).
        calibration_method: ONNX Runtime calibration method (MinMax, Entropy, Percentile).
        testbed: The CPU class whose recipe the files follow (e.g. ONNX Runtime's int8 format,
            ``bench.backends.onnxruntime.int8_format``); this CPU's unless a build asks for
            another's (a VNNI host building the AVX2 recipe's files).
    """

    model_name: str
    input_shape: tuple[int, int, int]
    float_model: object
    qat_model: Callable[[], object]
    calibration: np.ndarray
    float_onnx: Callable[[], Path]
    calibration_method: str = "MinMax"
    testbed: testbeds.Testbed = dataclasses.field(default_factory=testbeds.current)


Exporter = formats.Exporter

# The mode every other is measured against: its accuracy is the case's "float" accuracy, its
# artifact the size reference, and it is judged by its own floor instead of a drop budget.
REFERENCE_MODE = "float32"

# Size floor of a mode with int8 weights (float32 size / artifact size) for a model that declares
# none of its own (ModelSpec.size_floors holds the measured ones): half the ideal 4x saving, far
# above an unquantized file's 1x.
INT8_DEFAULT_SIZE_FLOOR = 2.0
# Largest accepted accuracy drop against float32 of every int8 mode, per tier, in points.
# smoke: 2,000 test images, one flipped image is 0.05 pp. The smoke models are young, with many
# images near a decision boundary, so int8 noise flips more of them than on a converged model;
# 1 pp still catches a broken pipeline (those lose 5 pp and more). full: the project's target,
# int8 within half a point of float, both PTQ and QAT.
INT8_DROP_BUDGET_PP = {"smoke": 1.0, "full": 0.5}
# Top-1 agreement of two backends running static int8 (PTQ or QAT). They round differently
# (XNNPACK vs MLAS requantization, LiteRT's per-channel dense vs ORT's), so a few boundary images
# flip. Measured on the smoke tier (2,000 images): >= 99.55 % (vgg16 ptq_int8 99.75 % the lowest
# since mobilenet's BatchNorms are folded in the ONNX export). The floor sits below by about the
# measured spread, and far above a broken conversion (~10-50 %).
STATIC_INT8_AGREEMENT_FLOOR = 0.99


@dataclasses.dataclass(frozen=True)
class Mode:
    """A quantization mode and its facts, which the gates and reports read (never its name).

    Attributes:
        name: Registry key and pytest id.
        description: One line for reports.
        weights: What the artifact stores its weights as ("float32", "float16", "int8").
        activations: What it computes activations in ("float32", "int8", "int16", or
            "dynamic int8": quantized on the fly from each tensor's own range).
        integer: Whether the artifact runs integer kernels (int8 speed gates apply).
        uses_qat: Whether the artifact comes from the QAT model.
        uses_calibration: Whether calibration images shape the artifact.
        default_size_floor: Smallest accepted float32-size / artifact-size ratio for a model
            that declares none for the mode (``ModelSpec.size_floors``); None: no floor.
        agreement_floor: Smallest accepted top-1 agreement between two backends running the
            mode (None: recorded, not gated). A file from another quantizer than the others'
            may lower it for its pairs (``bench.formats.Export.agreement_floor``).
        drop_budget_pp: Tier name -> largest accepted accuracy drop against float32, in points.
        compute_precision: What the runtime is told to compute in ("f32"; "bf16" for a mode that
            measures bfloat16 inference): only backends that can honour it run the mode.

    What a mode's file promises in each format (per-channel scales, batch dependence) is said
    where the file's exporter is registered (:class:`bench.formats.Export`).
    """

    name: str
    description: str
    weights: str = "float32"
    activations: str = "float32"
    integer: bool = False
    uses_qat: bool = False
    uses_calibration: bool = False
    default_size_floor: float | None = None
    agreement_floor: float | None = None
    drop_budget_pp: dict[str, float] = dataclasses.field(default_factory=dict)
    compute_precision: str = "f32"

    # What a case of this mode on a backend gets: asked of the file the backend runs
    # (bench.formats), never of the backend's name.

    def pair_agreement_floor(self, a: str, b: str) -> float | None:
        """The agreement floor of backends ``a`` and ``b`` on this mode (the lower if both run
        files of other quantizers)."""
        exports = [formats.artifact_export(self.name, backend) for backend in (a, b)]
        special = [e.agreement_floor for e in exports if e and e.agreement_floor is not None]
        return min(special) if special else self.agreement_floor

    def min_size_ratio(self, model: str) -> float | None:
        """The size floor of ``model`` in this mode: the model's own, else the mode's default
        (None: none applies). A model not registered in this process (a results file of another
        project) gets the default."""
        from bench.models import MODELS

        declared = MODELS.get(model).size_floors if model in MODELS else {}
        return declared.get(self.name, self.default_size_floor)

    def eval_batch(self, backend: str) -> int:
        """Images per invoke when evaluating on ``backend``: 1 where outputs depend on the batch."""
        from bench.backends import EVAL_BATCH

        return 1 if self.batch_dependence(backend) else EVAL_BATCH

    def batch_dependence(self, backend: str) -> str | None:
        """Why an image's output from the file ``backend`` runs depends on its batch (None: it
        must not)."""
        export = formats.artifact_export(self.name, backend)
        return export.batch_dependent if export else None

    def per_channel_on(self, backend: str) -> bool:
        """Whether the file ``backend`` runs promises per-channel weight scales."""
        export = formats.artifact_export(self.name, backend)
        return bool(export and export.per_channel)

    def exporter(self, backend: str) -> Exporter | None:
        """The function making the file ``backend`` runs (None: there is none)."""
        export = formats.artifact_export(self.name, backend)
        return export.make if export else None

    def skip_reason(self, backend: str) -> str | None:
        """Why ``backend`` cannot run this mode, or None when it can."""
        return formats.skip_reason(self.name, backend)


# Built-ins in report order; importing one registers it.
MODES: Registry[Mode] = Registry("mode", "quantbench.modes", builtins=builtin_modules(
    __name__, ("float32", "bf16", "ptq_dynamic", "ptq_float16", "ptq_int8", "ptq_int16x8", "qat_int8")))
