"""Accuracy, paired significance of a drop, backend agreement and artifact size."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

# Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


@dataclasses.dataclass(frozen=True)
class PairedDrop:
    """The accuracy drop of a quantized model against its float reference, image by image.

    Attributes:
        drop_pp: Float accuracy minus quantized accuracy, in percentage points.
        ci95_pp: 95 % interval of the drop (Wald interval for paired proportions, with
            McNemar's variance), in points.
        lost: Images the float model got right and the quantized one wrong.
        gained: Images the quantized model got right and the float one wrong.
        mcnemar_p: Exact two-sided McNemar p-value (binomial test on lost vs gained).
    """

    drop_pp: float
    ci95_pp: tuple[float, float]
    lost: int
    gained: int
    mcnemar_p: float


def paired_drop(float_logits: np.ndarray, quant_logits: np.ndarray, labels: np.ndarray) -> PairedDrop:
    """Compares two models on the same images.

    Only discordant images carry information about the difference: with ``b`` lost and ``c``
    gained out of ``n``, the drop is ``(b - c) / n`` and its variance ``(b + c - (b - c)^2 / n) / n^2``.
    """
    float_right = np.argmax(float_logits, axis=1) == labels
    quant_right = np.argmax(quant_logits, axis=1) == labels
    n = len(labels)
    lost = int(np.sum(float_right & ~quant_right))
    gained = int(np.sum(~float_right & quant_right))
    drop = (lost - gained) / n
    variance = max(0.0, (lost + gained - (lost - gained) ** 2 / n)) / n**2
    half = Z95 * math.sqrt(variance)
    return PairedDrop(
        drop_pp=100 * drop,
        ci95_pp=(100 * (drop - half), 100 * (drop + half)),
        lost=lost,
        gained=gained,
        mcnemar_p=mcnemar_exact(lost, gained),
    )


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar test: P(a split at least this uneven | no real difference)."""
    total = lost + gained
    if total == 0:
        return 1.0
    smaller = min(lost, gained)
    tail = sum(math.comb(total, k) for k in range(smaller + 1)) / 2**total
    return min(1.0, 2 * tail)


def mcnemar_one_sided(lost: int, gained: int) -> float:
    """Exact one-sided McNemar test for a loss: P(at least ``lost`` of the discordant images go
    against the new run | each discordant image is a fair coin). 1.0 when nothing differs."""
    total = lost + gained
    if total == 0:
        return 1.0
    return min(1.0, sum(math.comb(total, k) for k in range(lost, total + 1)) / 2**total)


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Fraction of images on which two models predict the same class."""
    return float(np.mean(np.argmax(logits_a, axis=1) == np.argmax(logits_b, axis=1)))


def max_abs_diff(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    return float(np.max(np.abs(logits_a.astype(np.float64) - logits_b.astype(np.float64))))


def size_bytes(path: Path) -> int:
    """Size of the artifact on disk."""
    return Path(path).stat().st_size
