"""Error metrics for per-layer reports: how far an approximation is from its reference.

Used to compare a quantized model's layer outputs with the float model's (:mod:`bench.layer_error`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _paired(reference: ArrayLike, approx: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    app = np.asarray(approx, dtype=np.float64)
    if ref.shape != app.shape:
        raise ValueError(f"reference has shape {ref.shape} but approx has shape {app.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(app))):
        raise ValueError("reference and approx must be finite")
    return ref, app


def _normalized(ref: np.ndarray, app: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divides both by their largest magnitude, which the ratio metrics cancel.

    Without it, squaring 1e200-sized values would overflow to infinity.
    """
    magnitude = max(float(np.max(np.abs(ref), initial=0.0)), float(np.max(np.abs(app), initial=0.0)))
    if magnitude == 0.0:
        return ref, app
    return ref / magnitude, app / magnitude


def snr_db(reference: ArrayLike, approx: ArrayLike) -> float:
    """Signal-to-noise ratio ``10 log10(sum(ref^2) / sum((ref - approx)^2))`` in dB.

    Higher is better; each extra bit of precision adds about 6 dB. ``inf`` when ``approx``
    equals ``reference`` (including both all-zero); ``-inf`` when the reference is all zero and
    the approximation is not.

    Raises:
        ValueError: Shapes differ, or an input holds NaN/infinity.
    """
    ref, app = _normalized(*_paired(reference, approx))
    signal = float(np.sum(ref**2))
    noise = float(np.sum((ref - app) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def relative_error(reference: ArrayLike, approx: ArrayLike) -> float:
    """``||ref - approx||_2 / ||ref||_2``; 0 for equal inputs, ``inf`` if only ref is all zero.

    Raises:
        ValueError: Shapes differ, or an input holds NaN/infinity.
    """
    ref, app = _normalized(*_paired(reference, approx))
    diff = float(np.linalg.norm((ref - app).ravel()))
    if diff == 0.0:
        return 0.0
    base = float(np.linalg.norm(ref.ravel()))
    return float("inf") if base == 0.0 else diff / base
