"""Per-image evidence: which test images a case classified correctly, as packed bits.

A case's accuracy is one number; its evidence is the outcome on every test image, in test-set
order, so that two runs can be compared image by image (a paired test) instead of by their
totals. The bits are ``numpy.packbits`` (big-endian within a byte, the tail of the last byte zero)
encoded as base64: 250 bytes for the smoke tier's 2,000 images, 1,250 for the full tier's 10,000.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np


class EvidenceError(ValueError):
    """Stored bits that cannot be the outcomes of ``n`` images (the caller names the file)."""


def pack(correct: np.ndarray) -> str:
    """Boolean outcomes per image -> base64 of their packed bits."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack(encoded: object, n: int) -> np.ndarray:
    """Base64 packed bits -> ``n`` boolean outcomes.

    Raises:
        EvidenceError: ``encoded`` is not a base64 string, holds another number of bytes than
            ``n`` images need, or has bits set past the ``n``-th image.
    """
    if not isinstance(encoded, str):
        raise EvidenceError(f"is {type(encoded).__name__}, not a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"is not valid base64 ({exc})") from None
    expected = (n + 7) // 8
    if len(raw) != expected:
        raise EvidenceError(f"holds {len(raw)} bytes, but {n:,} images need {expected}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():
        raise EvidenceError(f"has bits set past image {n:,}: it is not a record of {n:,} images")
    return bits[:n].astype(bool)


def correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether each image's top-1 prediction is its label."""
    return np.argmax(logits, axis=1) == labels

