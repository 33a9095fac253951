"""Per-image evidence: which test images a case classified correctly, as packed bits.

A case's accuracy is one number; its evidence is the outcome on every test image, in test-set
order, so that two runs can be compared image by image (a paired test) instead of by their
totals. The bits are ``numpy.packbits`` (big-endian within a byte, the tail of the last byte zero)
encoded as base64: 250 bytes for the smoke tier's 2,000 images, 1,250 for the full tier's 10,000.

A case also keeps its top-1 prediction per image (:func:`pack_predictions`): two classes per byte
(a class index fits in 4 bits), base64, 1,000 bytes for 2,000 images. Agreement between two cases
(two backends, two testbeds, two shards' runs) is then computed from the results files alone.
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


# Classes a nibble holds: Fashion-MNIST's 10 fit.
MAX_CLASSES = 16


def pack_predictions(predicted: np.ndarray) -> str:
    """Top-1 class per image (ints in [0, 16)) -> base64 of two 4-bit codes per byte, first image
    in the high nibble, a zero nibble after an odd count.

    Raises:
        ValueError: A class is outside [0, 16).
    """
    codes = np.asarray(predicted, dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= MAX_CLASSES):
        raise ValueError(f"classes must lie in [0, {MAX_CLASSES}) to be packed in 4 bits")
    if len(codes) % 2:
        codes = np.append(codes, 0)
    pairs = codes.reshape(-1, 2)
    return base64.b64encode(((pairs[:, 0] << 4) | pairs[:, 1]).astype(np.uint8).tobytes()).decode("ascii")


def unpack_predictions(encoded: object, n: int) -> np.ndarray:
    """Base64 packed predictions -> ``n`` class indices (int64); the inverse of :func:`pack_predictions`.

    Raises:
        EvidenceError: Not base64, another number of bytes than ``n`` images need, or a non-zero
            padding nibble.
    """
    if not isinstance(encoded, str):
        raise EvidenceError(f"is {type(encoded).__name__}, not a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"is not valid base64 ({exc})") from None
    expected = (n + 1) // 2
    if len(raw) != expected:
        raise EvidenceError(f"holds {len(raw)} bytes, but the predictions of {n:,} images need {expected}")
    packed = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    codes = np.stack([packed >> 4, packed & 0x0F], axis=1).reshape(-1)
    if codes[n:].any():
        raise EvidenceError(f"has a prediction past image {n:,}: it is not a record of {n:,} images")
    return codes[:n]


def predictions(logits: np.ndarray) -> np.ndarray:
    """Each image's top-1 class."""
    return np.argmax(logits, axis=1)


def correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether each image's top-1 prediction is its label."""
    return np.argmax(logits, axis=1) == labels

