"""Tests of bench.gates: None when passing, a message with case, value, limit and tolerance when not."""

from __future__ import annotations

import pytest

from bench import gates
from bench.tiers import MIN_SIZE_RATIO, SMOKE

CASE = "cnn-ptq_int8-litert"


# --- drop budget -------------------------------------------------------------------------------


def test_drop_within_and_at_the_budget_passes():
    assert gates.drop_fails(CASE, 0.3, (0.1, 0.5), 1.0, 0.90, 0.897) is None
    assert gates.drop_fails(CASE, 1.0, (0.5, 1.5), 1.0, 0.90, 0.89) is None
    # As computed from counts: 20 images of 2000 is 1.0 pp up to float rounding.
    assert gates.drop_fails(CASE, 100 * 20 / 2000, (0.5, 1.5), 1.0, 0.9, 0.89) is None
    assert gates.drop_fails(CASE, -0.5, (-1.0, 0.0), 0.0, 0.90, 0.905) is None


def test_drop_over_the_budget_fails_with_the_numbers():
    message = gates.drop_fails(CASE, 1.05, (0.61, 1.49), 1.0, 0.9012, 0.8906)
    assert message is not None
    assert message.startswith(CASE)
    assert "1.05 pp" in message and "budget of 1.00 pp" in message
    assert "90.12 %" in message and "89.06 %" in message
    assert "[0.61, 1.49]" in message


def test_float32_budget_of_zero_fails_on_any_drop():
    assert gates.drop_fails("cnn-float32-litert", 0.05, (0.0, 0.1), 0.0, 0.9, 0.8995) is not None


# --- size ratio --------------------------------------------------------------------------------


def test_size_ratio_passes_at_and_above_the_minimum_and_without_one():
    assert gates.size_ratio_fails(CASE, 3.5, 2.8, 1000, 3500) is None
    assert gates.size_ratio_fails(CASE, 2.8, 2.8, 1000, 2800) is None
    assert gates.size_ratio_fails(CASE, 0.9, None, 1000, 900) is None


def test_size_ratio_below_the_minimum_fails_with_the_numbers():
    message = gates.size_ratio_fails(CASE, 1.02, 2.8, 95_000, 96_900)
    assert message is not None and message.startswith(CASE)
    assert "1.02x" in message and "2.80x" in message
    assert "95,000 bytes" in message and "96,900" in message
    assert "quantized" in message


@pytest.mark.parametrize(
    ("mode", "model", "backend", "expected"),
    [
        ("ptq_int8", "cnn", "litert", 2.8),
        ("ptq_int8", "cnn", "onnxruntime", 2.8),  # same floor on both runtimes
        ("ptq_dynamic", "cnn", "onnxruntime", 2.8),
        ("qat_int8", "cnn", "onnxruntime", 2.8),
        ("ptq_int8", "vgg16", "onnxruntime", 3.9),
        ("ptq_int8", "mobilenet", "onnxruntime", 3.6),
        ("ptq_float16", "cnn", "onnxruntime", 1.8),
        ("ptq_float16", "vgg16", "litert", 1.95),
        ("ptq_int8", "cnn", "keras", None),  # Keras files have no size gate
        ("qat_int8", "vgg16", "keras", None),
        ("float32", "cnn", "litert", None),  # float32 is the reference
        ("float32", "cnn", "onnxruntime", None),
    ],
)
def test_min_size_ratio(mode, model, backend, expected):
    assert gates.min_size_ratio(mode, model, backend) == expected


def test_every_quantized_mode_has_a_size_gate_for_every_model():
    for mode, per_model in MIN_SIZE_RATIO.items():
        for model in ("cnn", "mobilenet", "vgg16"):
            for backend in ("litert", "onnxruntime"):
                ratio = gates.min_size_ratio(mode, model, backend)
                assert ratio is not None and 1.0 < ratio <= per_model[model], (mode, model, backend)


# --- baseline accuracy -------------------------------------------------------------------------


def test_baseline_accuracy_within_and_at_the_tolerance_passes():
    assert gates.baseline_accuracy_fails(CASE, 0.900, 0.900, 1.0) is None
    assert gates.baseline_accuracy_fails(CASE, 0.91, 0.90, 1.0) is None  # +1.0 pp exactly
    assert gates.baseline_accuracy_fails(CASE, 0.89, 0.90, 1.0) is None  # -1.0 pp exactly
    assert gates.baseline_accuracy_fails(CASE, 0.8855, 0.8905, 0.5) is None


def test_baseline_accuracy_fall_fails_with_the_numbers():
    message = gates.baseline_accuracy_fails(CASE, 0.8850, 0.9012, 1.0)
    assert message is not None and message.startswith(CASE)
    assert "88.50 %" in message and "fell 1.62 pp" in message
    assert "baseline 90.12 %" in message and "±1.00 pp" in message
    assert "update the baselines" not in message


def test_baseline_accuracy_rise_fails_and_says_how_to_accept_it():
    message = gates.baseline_accuracy_fails(CASE, 0.92, 0.90, 0.5)
    assert message is not None
    assert "rose 2.00 pp" in message and "±0.50 pp" in message
    assert "update the baselines" in message


# --- baseline size -----------------------------------------------------------------------------


def test_baseline_size_within_and_at_the_tolerance_passes():
    assert gates.baseline_size_fails(CASE, 100_000, 100_000, 0.02) is None
    assert gates.baseline_size_fails(CASE, 101_000, 100_000, 0.02) is None
    assert gates.baseline_size_fails(CASE, 102, 100, 0.02) is None  # +2 % exactly
    assert gates.baseline_size_fails(CASE, 98, 100, 0.02) is None  # -2 % exactly
    assert gates.baseline_size_fails(CASE, 102_000, 100_000, 0.02) is None


def test_baseline_size_change_fails_with_the_numbers():
    message = gates.baseline_size_fails(CASE, 103_000, 100_000, 0.02)
    assert message is not None and message.startswith(CASE)
    assert "103,000 bytes" in message and "+3.0 %" in message
    assert "baseline 100,000" in message and "±2.0 %" in message
    shrunk = gates.baseline_size_fails(CASE, 50_000, 100_000, 0.02)
    assert shrunk is not None and "-50.0 %" in shrunk


# --- QAT against PTQ ---------------------------------------------------------------------------


def test_qat_vs_ptq_passes_when_better_or_within_tolerance():
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.91, 0.90) is None
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.897, 0.900) is None
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.895, 0.900) is None  # 0.5 pp exactly


def test_qat_vs_ptq_fails_with_the_numbers():
    message = gates.qat_vs_ptq_fails("mobilenet", "onnxruntime", 0.88, 0.90)
    assert message is not None and message.startswith("mobilenet-onnxruntime")
    assert "88.00 %" in message and "2.00 pp below" in message and "90.00 %" in message
    assert "tolerance 0.50 pp" in message
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.899, 0.900, tolerance_pp=0.0) is not None


# --- case_gates --------------------------------------------------------------------------------


def record(**changes) -> dict:
    base = {
        "id": CASE, "model": "cnn", "mode": "ptq_int8", "backend": "litert",
        "accuracy": 0.897, "float_accuracy": 0.900, "accuracy_drop_pp": 0.3, "drop_ci95_pp": [0.1, 0.5],
        "size_ratio": 3.4, "size_bytes": 30_000, "float_size_bytes": 102_000,
    }
    return {**base, **changes}


def test_case_gates_empty_when_all_pass():
    assert gates.case_gates(SMOKE, record()) == []


def test_case_gates_reports_every_failure_at_once():
    messages = gates.case_gates(SMOKE, record(accuracy_drop_pp=4.0, size_ratio=1.1))
    assert len(messages) == 2
    assert "budget of 1.00 pp" in messages[0]
    assert "below the required 2.80x" in messages[1]


def test_case_gates_hold_every_runtime_to_the_same_size_floor():
    assert len(gates.case_gates(SMOKE, record(backend="onnxruntime", size_ratio=2.6))) == 1
    assert len(gates.case_gates(SMOKE, record(backend="litert", size_ratio=2.6))) == 1
    assert gates.case_gates(SMOKE, record(backend="keras", size_ratio=1.0)) == []


def test_float_accuracy_floor_passes_at_and_above_and_fails_below():
    assert gates.float_accuracy_fails("cnn-float32-litert", 0.70, 0.70, "smoke") is None
    assert gates.float_accuracy_fails("cnn-float32-litert", 0.95, None, "smoke") is None
    message = gates.float_accuracy_fails("vgg16-float32-litert", 0.6925, 0.70, "smoke")
    assert message == (
        "vgg16-float32-litert: float32 accuracy 69.25 % is below the smoke tier's floor 70.00 %: "
        "the model did not learn enough; check the training recipe"
    )
