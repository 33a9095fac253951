"""Quantization modes, one file each, registered by name.

A mode says, per backend, how to turn the trained model into that backend's artifact: a function
``export(ctx, path)`` that writes the file, or a string saying why the combination is not
supported (shown as a pytest skip with that reason, never as a silent pass). Other packages
register modes through the ``quantbench.modes`` entry point (see :mod:`bench.registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import testbeds
from bench.registry import Registry


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


Exporter = Callable[[ExportContext, Path], None]

# The mode every other is measured against: its accuracy is the case's "float" accuracy, its
# artifact the size reference, and it is judged by its own floor instead of a drop budget.
REFERENCE_MODE = "float32"

# Size floor of every mode with int8 weights (float32 size / artifact size). int8 stores 1 byte
# per weight against 4: the limit is 4x; per-channel scales, biases in int32 and the graph itself
# eat into it, most for the small cnn (24k weights, where the file's fixed cost is a large share),
# least for vgg16 (14.8M weights). The same floors hold on both runtimes (ONNX files get short
# tensor names, bench/modes/_onnx_names.py; without them tf2onnx's names alone held the cnn's ORT
# int8 file at 2.59x).
INT8_SIZE_FLOOR = {"cnn": 2.8, "mobilenet": 3.6, "vgg16": 3.9}
# A model of another package: half the ideal saving, far above an unquantized file's 1x.
INT8_DEFAULT_SIZE_FLOOR = 2.0
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
        backends: Backend name -> exporter, or the reason the backend is not supported.
        weights: What the artifact stores its weights as ("float32", "float16", "int8").
        activations: What it computes activations in ("float32", "int8", "int16", or
            "dynamic int8": quantized on the fly from each tensor's own range).
        integer: Whether the artifact runs integer kernels (int8 speed gates apply).
        uses_qat: Whether the artifact comes from the QAT model.
        uses_calibration: Whether calibration images shape the artifact.
        per_channel: Backends whose artifact promises per-channel weight scales in every layer
            (the weight checks hold it to that).
        size_floor: Model -> smallest accepted float32-size / artifact-size ratio.
        default_size_floor: The floor for a model ``size_floor`` does not list (a model of
            another package); None: no floor.
        agreement_floor: Smallest accepted top-1 agreement between two backends running the
            mode (None: recorded, not gated).
        agreement_floor_with: Backend -> the floor of every pair that includes it, where its
            artifact comes from another quantizer than the others' (e.g. NNCF on OpenVINO).
        drop_budget_pp: Tier name -> largest accepted drop against float32 in points, for a
            tier whose own table does not list the mode (a mode of another package).
        compute_precision: What the runtime is told to compute in ("f32"; "bf16" for a mode that
            measures bfloat16 inference): only backends that can honour it run the mode.
        batch_dependent: Backend -> why one image's output there depends on the other images of
            its batch. Such artifacts are evaluated one image at a time, as they are deployed;
            every other artifact is checked to be batch-invariant (``gates.batch_dependence_check``).
    """

    name: str
    description: str
    backends: dict[str, Exporter | str]
    weights: str = "float32"
    activations: str = "float32"
    integer: bool = False
    uses_qat: bool = False
    uses_calibration: bool = False
    per_channel: tuple[str, ...] = ()
    size_floor: dict[str, float] = dataclasses.field(default_factory=dict)
    default_size_floor: float | None = None
    agreement_floor: float | None = None
    agreement_floor_with: dict[str, float] = dataclasses.field(default_factory=dict)
    drop_budget_pp: dict[str, float] = dataclasses.field(default_factory=dict)
    compute_precision: str = "f32"
    batch_dependent: dict[str, str] = dataclasses.field(default_factory=dict)

    def pair_agreement_floor(self, a: str, b: str) -> float | None:
        """The agreement floor of backends ``a`` and ``b`` on this mode (the lower if both differ)."""
        special = [self.agreement_floor_with[x] for x in (a, b) if x in self.agreement_floor_with]
        return min(special) if special else self.agreement_floor

    def min_size_ratio(self, model: str) -> float | None:
        """The size floor of ``model`` in this mode (None: none applies)."""
        return self.size_floor.get(model, self.default_size_floor)

    def eval_batch(self, backend: str) -> int:
        """Images per invoke when evaluating on ``backend``: 1 where outputs depend on the batch."""
        from bench.backends import EVAL_BATCH

        return 1 if backend in self.batch_dependent else EVAL_BATCH

    def exporter(self, backend: str) -> Exporter | None:
        entry = self._entry(backend)
        return None if isinstance(entry, str) else entry

    def skip_reason(self, backend: str) -> str | None:
        """Why ``backend`` cannot run this mode, or None when it can."""
        entry = self._entry(backend)
        return entry if isinstance(entry, str) else None

    def artifact_backend(self, backend: str) -> str:
        """The backend whose exporter makes the file ``backend`` runs (itself, or what it reads)."""
        if backend in self.backends:
            return backend
        from bench.backends import BACKENDS

        return BACKENDS.get(backend).reads or backend

    def _entry(self, backend: str) -> Exporter | str:
        source = self.artifact_backend(backend)
        return self.backends.get(source, f"{self.name} has no {backend} implementation")


# Built-ins in report order; importing one registers it.
MODES: Registry[Mode] = Registry("mode", "quantbench.modes", builtins=tuple(
    f"bench.modes.{name}"
    for name in ("float32", "bf16", "ptq_dynamic", "ptq_float16", "ptq_int8", "ptq_int16x8", "qat_int8")
))
