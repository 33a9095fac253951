"""Compare two runs, metric by metric, in the spirit of ``asv compare``.

Either side may be a ``results.json`` (cases as a list) or a ``baselines/<tier>.json`` (cases as
a dict keyed by id); both are normalized to ``{case_id: metrics}`` first. For each case on both
sides and each metric both sides measured, a :class:`Row` says the values before and after, the
change, the ratio after / before, whether that is better or worse, and whether the change is larger
than the noise of the measurement. The table fits a pull-request comment::

    python -m bench.report compare baselines/smoke.json reports/smoke/results.json

A case whose ``recipe_hash`` differs between the sides was built differently: it reads "not
comparable" rather than better or worse (as asv does for a changed benchmark source).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.errors import ReportError
from bench.report import (
    BACKEND_ORDER,
    MODE_ORDER,
    MODEL_ORDER,
    NOT_AVAILABLE,
    format_signed_size,
    format_significant,
    format_size,
    is_number,
    markdown_table,
    order_key,
    read_versioned_json,
)

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
ADDED = "added"
REMOVED = "removed"
NOT_COMPARABLE = "not comparable"

HOW_TO_GET_COMPARABLE = ("pass a results.json written by `nox -s bench` or a "
                         "baselines/<tier>.json")


@dataclass(frozen=True)
class Row:
    """One metric of one case, before and after; or a case present on one side only.

    Attributes:
        case_id: The case, ``model-mode-backend``.
        metric: One of ``METRICS``; None for an added, removed or not comparable case.
        before: The value on side A, or None.
        after: The value on side B, or None.
        change: ``after - before``, or None.
        ratio: ``after / before``, or None when either is missing or before is 0.
        direction: ``better``, ``worse``, ``same``, ``added``, ``removed`` or ``not comparable``.
        significant: True when the change is beyond the noise threshold of its metric.
    """

    case_id: str
    metric: str | None
    before: float | None
    after: float | None
    change: float | None
    ratio: float | None
    direction: str
    significant: bool


# --------------------------------------------------------------------------------------------
# Normalizing the two sides


def load_comparable(path: str | os.PathLike[str]) -> dict:
    """Reads a results or baselines file for :func:`compare`.

    Raises:
        ReportError: The file cannot be read, is of another schema, or holds no cases.
    """
    document = read_versioned_json(path, kind="results or baselines file",
                                   how_to_make=HOW_TO_GET_COMPARABLE)
    if not isinstance(document.get("cases"), (list, dict)):
        raise ReportError(f"{path} has no 'cases' list or object: {HOW_TO_GET_COMPARABLE}")
    return document


def cases_by_id(document: Mapping[str, Any]) -> dict[str, dict]:
    """The cases of a results dict (a list) or of a baselines dict (keyed by id), by id."""
    cases = document.get("cases")
    if isinstance(cases, dict):
        return {str(case_id): dict(metrics or {}) for case_id, metrics in cases.items()}
    if isinstance(cases, list):
        return {str(case["id"]): case for case in cases
                if isinstance(case, dict) and "id" in case}
    raise ReportError(f"cannot compare: 'cases' is neither a list nor an object: "
                      f"{HOW_TO_GET_COMPARABLE}")


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


def case_id_sort_key(case_id: str) -> tuple:
    """Orders ids by model, mode, backend (ids are ``model-mode-backend``)."""
    model, mode, backend = (case_id.split("-") + ["", "", ""])[:3]
    return (order_key(model, MODEL_ORDER), order_key(mode, MODE_ORDER),
            order_key(backend, BACKEND_ORDER), case_id)


# --------------------------------------------------------------------------------------------
# Judging one change


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


def recipes_differ(before_case: Mapping[str, Any], after_case: Mapping[str, Any]) -> bool:
    """True when both sides name a recipe hash and they differ: the case was built differently."""
    before_hash, after_hash = before_case.get("recipe_hash"), after_case.get("recipe_hash")
    return bool(before_hash) and bool(after_hash) and before_hash != after_hash


def metric_row(case_id: str, metric: str, before: float, after: float, n_test: int,
               threshold_pp: float, accuracy: float | None) -> Row:
    """The row for one metric measured on both sides."""
    return Row(case_id=case_id, metric=metric, before=before, after=after,
               change=after - before, ratio=after / before if before else None,
               direction=direction_of(metric, before, after),
               significant=is_significant(metric, before, after, n_test, threshold_pp, accuracy))


def one_sided_row(case_id: str, direction: str) -> Row:
    """The row for a case added, removed, or not comparable."""
    return Row(case_id=case_id, metric=None, before=None, after=None, change=None, ratio=None,
               direction=direction, significant=False)


def compare(a: Mapping[str, Any], b: Mapping[str, Any],
            threshold_pp: float = DEFAULT_THRESHOLD_PP) -> list[Row]:
    """Compares run ``a`` (before) with run ``b`` (after).

    Args:
        a: A results dict or a baselines dict: the old side.
        b: A results dict or a baselines dict: the new side.
        threshold_pp: Accuracy and drop changes smaller than this many percentage points are
            never significant, even on a large test set.

    Returns:
        Rows in case order (model, mode, backend) and then metric order. Metrics that either
        side did not measure (a skipped case, no latency) give no row.
    """
    before_cases, after_cases = cases_by_id(a), cases_by_id(b)
    rows: list[Row] = []
    for case_id in sorted(set(before_cases) | set(after_cases), key=case_id_sort_key):
        if case_id not in after_cases:
            rows.append(one_sided_row(case_id, REMOVED))
            continue
        if case_id not in before_cases:
            rows.append(one_sided_row(case_id, ADDED))
            continue
        before_case, after_case = before_cases[case_id], after_cases[case_id]
        if recipes_differ(before_case, after_case):
            rows.append(one_sided_row(case_id, NOT_COMPARABLE))
            continue
        accuracy = case_accuracy(before_case, after_case)
        n_test = accuracy_sample_size(before_case, after_case, a, b)
        for metric in METRICS:
            before, after = before_case.get(metric), after_case.get(metric)
            if is_number(before) and is_number(after):
                rows.append(metric_row(case_id, metric, float(before), float(after), n_test,
                                       threshold_pp, accuracy))
    return rows


# --------------------------------------------------------------------------------------------
# Rendering


def format_value(metric: str, value: float | None) -> str:
    """A metric value with its unit."""
    if value is None:
        return NOT_AVAILABLE
    if metric == "accuracy":
        return f"{100 * value:.2f} %"
    if metric == "accuracy_drop_pp":
        return f"{value:.2f} pp"
    if metric == "size_bytes":
        return format_size(value)
    if metric == "latency_ms_b1":
        return f"{format_significant(value)} ms"
    return f"{value:,.0f} img/s"


def format_change(metric: str, change: float | None) -> str:
    """A change with its sign and unit; accuracy changes are in percentage points."""
    if change is None:
        return NOT_AVAILABLE
    if metric == "accuracy":
        return f"{100 * change:+.2f} pp"
    if metric == "accuracy_drop_pp":
        return f"{change:+.2f} pp"
    if metric == "size_bytes":
        return format_signed_size(change)
    if metric == "latency_ms_b1":
        return f"{'+' if change > 0 else ''}{format_significant(change)} ms"
    return f"{change:+,.0f} img/s"


# The leading marker, as asv prints it: + significantly worse, - significantly better, ~ changed
# within noise, x not comparable, blank unchanged (or on one side only).
SIGNIFICANT_MARKERS = {WORSE: "+", BETTER: "-"}
WITHIN_NOISE_MARKER = "~"
NOT_COMPARABLE_MARKER = "x"


def attention_rank(row: Row) -> int:
    """Sort key putting what needs attention first: 0 for significant regressions, 6 for same."""
    if row.direction == WORSE and row.significant:
        return 0
    if row.direction == NOT_COMPARABLE:
        return 1
    if row.direction == REMOVED:
        return 2
    if row.direction == BETTER and row.significant:
        return 3
    if row.direction == ADDED:
        return 4
    if row.direction in (WORSE, BETTER):
        return 5
    return 6


def marker_of(row: Row) -> str:
    """The leading marker of a row (see ``SIGNIFICANT_MARKERS``)."""
    if row.direction == NOT_COMPARABLE:
        return NOT_COMPARABLE_MARKER
    if row.direction in SIGNIFICANT_MARKERS:
        return SIGNIFICANT_MARKERS[row.direction] if row.significant else WITHIN_NOISE_MARKER
    return ""


ONE_SIDED_NOTES = {NOT_COMPARABLE: "recipe changed", ADDED: "only in after",
                   REMOVED: "only in before"}


def table_row(row: Row) -> list[str]:
    """One row of the comparison table."""
    marker = marker_of(row)
    if row.metric is None:
        note = ONE_SIDED_NOTES.get(row.direction, "")
        return [marker, f"`{row.case_id}`", "", "", "", "", "", f"{row.direction} ({note})", ""]
    ratio = f"{row.ratio:.3f}" if row.ratio is not None else NOT_AVAILABLE
    significant = "" if row.direction == SAME else ("**yes**" if row.significant else "no")
    return [marker, f"`{row.case_id}`", row.metric, format_value(row.metric, row.before),
            format_value(row.metric, row.after), format_change(row.metric, row.change), ratio,
            row.direction, significant]


COMPARE_HEADERS = ("", "case", "metric", "before", "after", "change", "ratio", "direction",
                   "significant")


def summary_line(rows: Sequence[Row]) -> str:
    """One line on top: cases compared, then counts of what changed."""
    compared = {row.case_id for row in rows if row.direction not in (ADDED, REMOVED)}

    def count(predicate) -> int:
        return sum(1 for row in rows if predicate(row))

    worse = count(lambda row: row.direction == WORSE and row.significant)
    better = count(lambda row: row.direction == BETTER and row.significant)
    noise = count(lambda row: row.direction in (WORSE, BETTER) and not row.significant)
    same = count(lambda row: row.direction == SAME)
    return (f"**{len(compared)} cases compared**: {worse} worse (significant), {better} better "
            f"(significant), {noise} changed within noise, {same} unchanged metrics; "
            f"{count(lambda row: row.direction == NOT_COMPARABLE)} not comparable, "
            f"{count(lambda row: row.direction == ADDED)} added, "
            f"{count(lambda row: row.direction == REMOVED)} removed.")


def legend(threshold_pp: float) -> str:
    """What the marker and significance mean, in one paragraph."""
    return ("Marker: `+` worse, `-` better (both significant), `~` changed within noise, "
            "`x` not comparable, blank unchanged. Significant: "
            f"accuracy and drop beyond {Z_95} binomial standard errors of the test set and at "
            f"least {threshold_pp:g} pp, size beyond "
            f"{100 * SIZE_SIGNIFICANT_FRACTION:g} %, latency and throughput beyond "
            f"{100 * TIMING_SIGNIFICANT_FRACTION:g} %. Ratio is after / before.")


def render_compare(rows: Sequence[Row], include_unchanged: bool = False,
                   threshold_pp: float = DEFAULT_THRESHOLD_PP) -> str:
    """Renders the comparison as markdown for a pull-request comment.

    Args:
        rows: What :func:`compare` returned.
        include_unchanged: Also list metrics whose value did not change.
        threshold_pp: The threshold given to :func:`compare`, for the legend.

    Returns:
        A summary line, a legend, and a github-format table with what needs attention first
        (significant regressions, then not comparable, removed, improvements, added, noise).
    """
    shown = [row for row in rows if include_unchanged or row.direction != SAME]
    # sorted() is stable: within a rank, rows keep compare()'s case and metric order.
    shown = sorted(shown, key=attention_rank)
    lines = [summary_line(rows), "", legend(threshold_pp), ""]
    if shown:
        lines.append(markdown_table(COMPARE_HEADERS, [table_row(row) for row in shown]))
    else:
        lines.append("No differences.")
    hidden = len(rows) - len(shown)
    if hidden:
        lines.extend(["", f"{hidden} unchanged metrics not shown (`--all` shows them)."])
    return "\n".join(lines) + "\n"
