"""Tests of bench.metrics on hand-made logits with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import metrics


def one_hot_logits(predicted: list[int] | np.ndarray, classes: int = 10) -> np.ndarray:
    """Logits whose argmax is ``predicted`` (3.0 on the predicted class, small noise elsewhere)."""
    predicted = np.asarray(predicted)
    logits = np.linspace(-1.0, 0.0, classes, dtype=np.float32)[None, :].repeat(len(predicted), 0)
    logits[np.arange(len(predicted)), predicted] = 3.0
    return logits


def paired_case(n: int, both_right: int, lost: int, gained: int):
    """Labels and float/quant logits with the given counts; the rest both wrong (differently)."""
    labels = np.arange(n) % 10
    wrong = (labels + 1) % 10
    other_wrong = (labels + 2) % 10
    float_pred, quant_pred = wrong.copy(), other_wrong.copy()
    i = 0
    for count, f_right, q_right in ((both_right, True, True), (lost, True, False), (gained, False, True)):
        for j in range(i, i + count):
            float_pred[j] = labels[j] if f_right else wrong[j]
            quant_pred[j] = labels[j] if q_right else wrong[j]
        i += count
    assert i <= n
    return one_hot_logits(float_pred), one_hot_logits(quant_pred), labels


def expected_half_width_pp(n: int, lost: int, gained: int) -> float:
    variance = (lost + gained - (lost - gained) ** 2 / n) / n**2
    return 100 * 1.959963984540054 * math.sqrt(variance)


def test_accuracy():
    labels = np.array([0, 1, 2, 3])
    assert metrics.accuracy(one_hot_logits([0, 1, 2, 3]), labels) == 1.0
    assert metrics.accuracy(one_hot_logits([0, 1, 0, 0]), labels) == 0.5
    assert metrics.accuracy(one_hot_logits([9, 9, 9, 9]), labels) == 0.0


def test_paired_drop_counts_and_sign():
    f, q, labels = paired_case(n=200, both_right=150, lost=8, gained=2)
    result = metrics.paired_drop(f, q, labels)
    assert (result.lost, result.gained) == (8, 2)
    assert result.drop_pp == pytest.approx(100 * 6 / 200)  # 3 points lost
    assert result.drop_pp == pytest.approx(100 * (metrics.accuracy(f, labels) - metrics.accuracy(q, labels)))
    low, high = result.ci95_pp
    assert low < result.drop_pp < high
    assert high - result.drop_pp == pytest.approx(expected_half_width_pp(200, 8, 2))
    assert result.drop_pp - low == pytest.approx(expected_half_width_pp(200, 8, 2))
    assert result.mcnemar_p == pytest.approx(metrics.mcnemar_exact(8, 2))


def test_paired_drop_is_negative_when_quantized_model_is_better():
    f, q, labels = paired_case(n=100, both_right=50, lost=1, gained=6)
    result = metrics.paired_drop(f, q, labels)
    assert (result.lost, result.gained) == (1, 6)
    assert result.drop_pp == pytest.approx(-5.0)
    assert result.ci95_pp[0] < -5.0 < result.ci95_pp[1]
    # Swapping the models flips the sign and the counts.
    swapped = metrics.paired_drop(q, f, labels)
    assert (swapped.lost, swapped.gained) == (6, 1)
    assert swapped.drop_pp == pytest.approx(5.0)


def test_paired_drop_without_discordant_images_has_a_zero_width_interval():
    f, q, labels = paired_case(n=50, both_right=40, lost=0, gained=0)
    result = metrics.paired_drop(f, q, labels)
    assert (result.lost, result.gained) == (0, 0)
    assert result.drop_pp == 0.0
    assert result.ci95_pp == (0.0, 0.0)
    assert result.mcnemar_p == 1.0


def test_paired_drop_all_discordant_one_way_has_zero_variance():
    """lost = n: the drop is certain (100 pp) and the variance formula gives exactly zero."""
    f, q, labels = paired_case(n=20, both_right=0, lost=20, gained=0)
    result = metrics.paired_drop(f, q, labels)
    assert result.drop_pp == pytest.approx(100.0)
    assert result.ci95_pp == pytest.approx((100.0, 100.0))


@pytest.mark.parametrize(
    ("lost", "gained", "p"),
    [
        (10, 0, 2 / 1024),
        (0, 10, 2 / 1024),
        (3, 1, 2 * (1 + 4) / 16),
        (1, 7, 2 * (1 + 8) / 256),
        (5, 5, 1.0),
        (0, 0, 1.0),
        (1, 0, 1.0),
        (20, 5, 2 * sum(math.comb(25, k) for k in range(6)) / 2**25),
    ],
)
def test_mcnemar_exact_known_values(lost, gained, p):
    assert metrics.mcnemar_exact(lost, gained) == pytest.approx(p, rel=1e-12)


def test_mcnemar_significance_grows_with_the_imbalance():
    assert metrics.mcnemar_exact(12, 0) < metrics.mcnemar_exact(8, 0) < metrics.mcnemar_exact(4, 0)
    assert metrics.mcnemar_exact(6, 0) < 0.05 < metrics.mcnemar_exact(5, 0)


@pytest.mark.parametrize(
    ("lost", "gained", "p"),
    [
        (3, 0, 1 / 8),  # all three discordant images went against the run: 0.5^3
        (0, 3, 1.0),  # nothing lost: P(X >= 0) is certain
        (0, 0, 1.0),  # nothing differs
        (1, 0, 1 / 2),
        (0, 1, 1.0),
        (2, 1, (3 + 1) / 8),  # P(X >= 2), X ~ Bin(3, 1/2)
        (3, 4, (35 + 35 + 21 + 7 + 1) / 128),  # P(X >= 3), X ~ Bin(7, 1/2)
        (4, 3, (35 + 21 + 7 + 1) / 128),
        (5, 5, (252 + 210 + 120 + 45 + 10 + 1) / 1024),  # symmetric: just over one half
        (20, 0, 2.0**-20),
        (10, 0, 1 / 1024),
    ],
)
def test_mcnemar_one_sided_known_values(lost, gained, p):
    assert metrics.mcnemar_one_sided(lost, gained) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(("lost", "gained"), [(1, 0), (3, 1), (7, 2), (12, 12), (30, 15), (1, 9)])
def test_mcnemar_one_sided_tails_are_complementary(lost, gained):
    """P(X >= lost) + P(X <= lost - 1) = 1; by symmetry P(X <= lost - 1) = P(X >= total - lost + 1)."""
    total = lost + gained
    upper = metrics.mcnemar_one_sided(lost, gained)
    lower = metrics.mcnemar_one_sided(total - lost + 1, lost - 1)
    assert upper + lower == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("lost", "gained"), [(3, 0), (8, 2), (6, 6), (1, 7), (25, 20)])
def test_mcnemar_one_sided_is_half_the_two_sided_on_the_losing_side(lost, gained):
    one, two = metrics.mcnemar_one_sided(lost, gained), metrics.mcnemar_exact(lost, gained)
    if lost > gained:
        assert one == pytest.approx(two / 2, rel=1e-12)
    elif lost == gained:
        assert one > 0.5 and two == 1.0
    else:
        assert one > 0.5


def test_mcnemar_one_sided_falls_as_losses_grow_and_rises_with_gains():
    assert metrics.mcnemar_one_sided(12, 0) < metrics.mcnemar_one_sided(8, 0) < metrics.mcnemar_one_sided(4, 0)
    assert metrics.mcnemar_one_sided(8, 0) < metrics.mcnemar_one_sided(8, 2) < metrics.mcnemar_one_sided(8, 8)
    # Gains never make a loss more significant, and a loss test never says a gain is significant.
    assert metrics.mcnemar_one_sided(0, 50) == 1.0


def test_agreement():
    a = one_hot_logits([0, 1, 2, 3])
    assert metrics.agreement(a, a) == 1.0
    assert metrics.agreement(a, one_hot_logits([0, 1, 2, 9])) == 0.75
    assert metrics.agreement(a, one_hot_logits([9, 9, 9, 9])) == 0.0


def test_max_abs_diff():
    a = np.array([[1.0, -2.0], [0.5, 4.0]], np.float32)
    b = np.array([[1.5, -2.0], [0.5, 1.0]], np.float32)
    assert metrics.max_abs_diff(a, b) == 3.0
    assert metrics.max_abs_diff(b, a) == 3.0
    assert metrics.max_abs_diff(a, a) == 0.0
    # int8 outputs: computed in float64, so no wrap-around (int8 127 - (-128) would overflow).
    assert metrics.max_abs_diff(np.array([[127]], np.int8), np.array([[-128]], np.int8)) == 255.0


def test_size_bytes(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x00" * 1234)
    assert metrics.size_bytes(path) == 1234
    assert metrics.size_bytes(str(path)) == 1234
