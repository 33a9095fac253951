"""When a metric changed between two runs by more than the noise of its measurement.

``compare`` calls a change significant when it is beyond what chance moves the metric by between
two runs of the same code: the binomial noise of an accuracy over the test images, and measured
bounds for artifact sizes and timings. (A case with per-image outcomes on both sides takes the
significance of its accuracy from its paired verdict instead, see :mod:`bench.report.compare`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.report.format import is_number

# Metrics compared, in table order, and whether a larger value is better.
METRICS = ("accuracy", "accuracy_drop_pp", "size_bytes", "latency_ms_b1", "throughput_ips")
HIGHER_IS_BETTER = {
    "accuracy": True,
    "accuracy_drop_pp": False,
    "size_bytes": False,
    "latency_ms_b1": False,
    "throughput_ips": True,
}

# Two-sided 95 % quantile of the normal distribution.
Z_95 = 1.96
# Accuracy is a proportion over n test images, so two independent runs differ by chance with
# standard error sqrt(2 p (1 - p) / n); a change beyond Z_95 of those is significant. When neither
# side says its n (two baselines files), assume the full 10,000-image test set: the largest n any
# tier uses gives the narrowest noise band, so real changes are not hidden.
FALLBACK_N_TEST = 10_000
# Below this many percentage points an accuracy change does not matter for this project, however
# many images were used: the tightest gate (int8 drop <= 0.5 pp) is five times coarser.
DEFAULT_THRESHOLD_PP = 0.1
# Artifact sizes are deterministic, but converters add metadata (names, versions) that moves a few
# hundred bytes; 0.5 % is above that jitter for the smallest model (~30 KB int8) and well below
# any real change in how weights are stored (int8 vs float32 is 4x).
SIZE_SIGNIFICANT_FRACTION = 0.005
# Latency and throughput on a shared 2-core machine vary run to run by several percent (the median
# of repeats moves 3-8 % between sessions); 10 % is beyond that noise.
TIMING_SIGNIFICANT_FRACTION = 0.10

BETTER = "better"
WORSE = "worse"
SAME = "same"


def direction_of(metric: str, before: float, after: float) -> str:
    """Better, worse or same, knowing which way is good for ``metric``."""
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12):
        return SAME
    went_up = after > before
    return BETTER if went_up == HIGHER_IS_BETTER[metric] else WORSE


def accuracy_noise(p: float, n: int) -> float:
    """Z_95 standard errors of the difference of two accuracies p over n images (a fraction)."""
    p = min(max(p, 0.0), 1.0)
    return Z_95 * math.sqrt(2 * p * (1 - p) / n)


def relative_change(before: float, after: float) -> float:
    """|after / before - 1|; infinite when a zero became something else."""
    if before == 0:
        return 0.0 if after == 0 else math.inf
    return abs(after / before - 1)


def is_significant(metric: str, before: float, after: float, n_test: int, threshold_pp: float,
                   accuracy: float | None) -> bool:
    """Whether the change from ``before`` to ``after`` is beyond the noise of ``metric``.

    Args:
        metric: One of ``METRICS``.
        before: Value on side A.
        after: Value on side B.
        n_test: Test images behind the accuracies.
        threshold_pp: Accuracy and drop changes below this (pp) are never significant.
        accuracy: The case's accuracy (a fraction), for the noise of ``accuracy_drop_pp``.
    """
    if metric == "accuracy":
        noise = accuracy_noise((before + after) / 2, n_test)
        return abs(after - before) > max(noise, threshold_pp / 100)
    if metric == "accuracy_drop_pp":
        # The drop moves with the quantized accuracy, so it shares that accuracy's noise (in pp).
        # Without an accuracy only the threshold applies.
        noise_pp = 100 * accuracy_noise(accuracy, n_test) if accuracy is not None else 0.0
        return abs(after - before) > max(noise_pp, threshold_pp)
    if metric == "size_bytes":
        return relative_change(before, after) > SIZE_SIGNIFICANT_FRACTION
    return relative_change(before, after) > TIMING_SIGNIFICANT_FRACTION


def case_accuracy(before_case: Mapping[str, Any], after_case: Mapping[str, Any]) -> float | None:
    """The mean accuracy of the two sides of a case, or None if neither has one."""
    values = [case.get("accuracy") for case in (before_case, after_case)]
    known = [value for value in values if is_number(value)]
    return sum(known) / len(known) if known else None


def accuracy_sample_size(before_case: Mapping[str, Any], after_case: Mapping[str, Any],
                         a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """The number of test images behind a case's accuracies.

    The cases' own ``n_test`` (the session stores one per case) wins over the files'; of two
    sides, the smaller n, whose noise band is wider, so noise is never called a change. With no
    count anywhere (two baselines files), ``FALLBACK_N_TEST``.
    """
    for pair in ((before_case, after_case), (a, b)):
        known = [int(doc["n_test"]) for doc in pair
                 if is_number(doc.get("n_test")) and doc["n_test"] > 0]
        if known:
            return min(known)
    return FALLBACK_N_TEST


