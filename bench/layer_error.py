"""Per-layer quantization error: every intermediate tensor of a quantized model against float.

A small batch runs through the float32 artifact and the quantized artifact of the same backend;
each op output of the quantized graph that has a counterpart in the float graph is dequantized
and compared with ``quantmath.snr_db`` and ``quantmath.relative_error``. How outputs are exposed
and paired is the backend's business: each backend that can registers a
``layer_errors(float_path, quantized_path, images)`` (:class:`bench.backends.Backend`), and says
in its module what its numbers are (real integer kernels, or a float simulation of them).

For ``qat_int8`` the float reference is the float32 artifact of the original model, so the
error includes what QAT fine-tuning changed besides quantization.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import quantmath
from bench.backends import BACKENDS
from bench.modes import REFERENCE_MODE


@dataclasses.dataclass
class LayerErrors:
    """Per-layer errors of one quantized artifact.

    Attributes:
        rows: ``{"layer", "op", "snr_db", "rel_error"}`` per paired op output, in graph order.
        unmatched: One line per quantized-graph op output without a float counterpart.
        unpaired: Why the two graphs could not be paired at all (then ``rows`` is empty); None
            when they could.
    """

    rows: list[dict]
    unmatched: list[str]
    unpaired: str | None = None


def error_row(layer: str, op: str, reference: np.ndarray, approx: np.ndarray) -> dict:
    """One row of :attr:`LayerErrors.rows`: ``approx``'s SNR and relative error against ``reference``."""
    return {
        "layer": layer,
        "op": op,
        "snr_db": quantmath.snr_db(reference, approx),
        "rel_error": quantmath.relative_error(reference, approx),
    }


def layer_errors(build, model: str, mode: str, backend: str, images: np.ndarray) -> LayerErrors:
    """Per-layer errors of ``model`` in ``mode`` on ``backend`` against its float32 artifact.

    Raises:
        ValueError: ``backend`` exposes no per-layer outputs (its ``layer_errors`` is None).
    """
    measure = BACKENDS.get(backend).layer_errors
    if measure is None:
        capable = [name for name, spec in BACKENDS.items() if spec.layer_errors]
        raise ValueError(f"{backend} exposes no per-layer outputs; backends that do: {', '.join(capable)}")
    float_path = build.artifact(model, REFERENCE_MODE, backend)
    return measure(float_path, build.artifact(model, mode, backend), images)
