"""Quantization modes, one file each, registered by name.

A mode says, per backend, how to turn the trained model into that backend's artifact: a function
``export(ctx, path)`` that writes the file, or a string saying why the combination is not
supported (shown as a pytest skip with that reason, never as a silent pass).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

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
    """

    model_name: str
    input_shape: tuple[int, int, int]
    float_model: object
    qat_model: Callable[[], object]
    calibration: np.ndarray
    float_onnx: Callable[[], Path]
    calibration_method: str = "MinMax"


Exporter = Callable[[ExportContext, Path], None]


@dataclasses.dataclass(frozen=True)
class Mode:
    """A quantization mode.

    Attributes:
        name: Registry key and pytest id.
        description: One line for reports.
        backends: Backend name -> exporter, or the reason the backend is not supported.
        integer: Whether the artifact runs integer kernels (int8 speed gates apply).
        uses_qat: Whether the artifact comes from the QAT model.
        uses_calibration: Whether calibration images shape the artifact.
        batch_dependent: Backend -> why one image's output there depends on the other images of
            its batch. Such artifacts are evaluated one image at a time, as they are deployed;
            every other artifact is checked to be batch-invariant (``gates.batch_dependence_fails``).
    """

    name: str
    description: str
    backends: dict[str, Exporter | str]
    integer: bool = False
    uses_qat: bool = False
    uses_calibration: bool = False
    batch_dependent: dict[str, str] = dataclasses.field(default_factory=dict)

    def eval_batch(self, backend: str) -> int:
        """Images per invoke when evaluating on ``backend``: 1 where outputs depend on the batch."""
        from bench.backends import EVAL_BATCH

        return 1 if backend in self.batch_dependent else EVAL_BATCH

    def exporter(self, backend: str) -> Exporter | None:
        entry = self.backends.get(backend, f"{self.name} has no {backend} implementation")
        return None if isinstance(entry, str) else entry

    def skip_reason(self, backend: str) -> str | None:
        """Why ``backend`` cannot run this mode, or None when it can."""
        entry = self.backends.get(backend, f"{self.name} has no {backend} implementation")
        return entry if isinstance(entry, str) else None


MODES: Registry[Mode] = Registry("mode")

from bench.modes import (  # noqa: E402,F401  (registration order = report order)
    float32,
    ptq_dynamic,
    ptq_float16,
    ptq_int8,
    ptq_int16x8,
    qat_int8,
)
