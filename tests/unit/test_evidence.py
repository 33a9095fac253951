"""Tests of bench.evidence: per-image outcomes packed as base64 bits, and every way a record is refused."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import evidence

# Derandomized and without the example database: the same inputs every run, nothing written
# into the checkout (the property tests' profile lives in tests/property/conftest.py only).
QUICK = settings(max_examples=200, deadline=None, derandomize=True, database=None)


@QUICK
@given(st.lists(st.booleans(), min_size=0, max_size=300))
def test_pack_unpack_round_trip(outcomes):
    correct = np.array(outcomes, dtype=bool)
    encoded = evidence.pack(correct)
    assert isinstance(encoded, str)
    assert len(base64.b64decode(encoded)) == (len(outcomes) + 7) // 8
    back = evidence.unpack(encoded, len(outcomes))
    assert back.dtype == bool and back.shape == (len(outcomes),)
    assert back.tolist() == outcomes


@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 17, 2000, 2001, 10_000])
def test_round_trip_of_lengths_around_byte_boundaries(n):
    correct = np.random.default_rng(n).random(n) < 0.5
    correct[-1] = True  # the last image is the one a wrong tail would lose
    assert np.array_equal(evidence.unpack(evidence.pack(correct), n), correct)


def test_bits_are_big_endian_in_test_set_order():
    """Image 0 is the high bit of the first byte; the tail of the last byte is zero."""
    assert base64.b64decode(evidence.pack(np.array([True] + [False] * 8))) == bytes([0x80, 0x00])
    assert base64.b64decode(evidence.pack(np.array([False, True, True]))) == bytes([0x60])
    assert evidence.pack(np.ones(10, dtype=bool)) == base64.b64encode(bytes([0xFF, 0xC0])).decode()


def test_pack_accepts_any_truthy_array():
    assert evidence.pack(np.array([1, 0, 2, 0])) == evidence.pack(np.array([True, False, True, False]))


def test_smoke_and_full_tier_record_sizes():
    assert len(base64.b64decode(evidence.pack(np.zeros(2000, bool)))) == 250
    assert len(base64.b64decode(evidence.pack(np.zeros(10_000, bool)))) == 1250


# --- corruption ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 12, b"gA==", ["gA=="], {"bits": "gA=="}])
def test_unpack_refuses_what_is_not_a_string(value):
    with pytest.raises(evidence.EvidenceError, match="not a base64 string") as info:
        evidence.unpack(value, 8)
    assert type(value).__name__ in str(info.value)


@pytest.mark.parametrize("text", ["not base64!", "gA=", "g@==", "gA==\n", "***"])
def test_unpack_refuses_invalid_base64(text):
    with pytest.raises(evidence.EvidenceError, match="not valid base64"):
        evidence.unpack(text, 8)


@pytest.mark.parametrize(("raw", "n"), [(b"", 1), (b"\x00", 9), (b"\x00\x00", 8), (b"\x00" * 251, 2000),
                                        (b"\x00" * 249, 2000)])
def test_unpack_refuses_the_wrong_number_of_bytes(raw, n):
    with pytest.raises(evidence.EvidenceError) as info:
        evidence.unpack(base64.b64encode(raw).decode(), n)
    assert f"holds {len(raw)} bytes" in str(info.value)
    assert f"need {(n + 7) // 8}" in str(info.value)


@pytest.mark.parametrize(("byte", "n"), [(0x01, 7), (0x01, 1), (0x40, 1), (0xFF, 5)])
def test_unpack_refuses_bits_set_past_the_last_image(byte, n):
    with pytest.raises(evidence.EvidenceError, match=f"bits set past image {n}"):
        evidence.unpack(base64.b64encode(bytes([byte])).decode(), n)


def test_unpack_accepts_a_full_last_byte():
    assert evidence.unpack(base64.b64encode(bytes([0xFF])).decode(), 8).all()


def test_evidence_error_is_a_value_error():
    assert issubclass(evidence.EvidenceError, ValueError)


def test_correct_compares_the_top1_prediction_with_the_label():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    assert evidence.correct(logits, np.array([1, 1, 1])).tolist() == [True, False, True]


@pytest.mark.parametrize("n", [0, 1, 2, 7, 2000])
def test_predictions_round_trip(n):
    predicted = np.random.default_rng(n).integers(0, 10, n)
    encoded = evidence.pack_predictions(predicted)
    assert len(base64.b64decode(encoded)) == (n + 1) // 2
    np.testing.assert_array_equal(evidence.unpack_predictions(encoded, n), predicted)


def test_predictions_refuse_records_of_another_length_or_padding():
    encoded = evidence.pack_predictions(np.array([3, 9, 1]))
    with pytest.raises(evidence.EvidenceError, match="need"):
        evidence.unpack_predictions(encoded, 5)
    odd_tail = base64.b64encode(bytes([0x39, 0x17])).decode()  # a class where padding must be 0
    with pytest.raises(evidence.EvidenceError, match="past image 3"):
        evidence.unpack_predictions(odd_tail, 3)
    with pytest.raises(ValueError, match="4 bits"):
        evidence.pack_predictions(np.array([16]))
