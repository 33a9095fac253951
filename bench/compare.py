"""Compare two runs: every case judged image by image, then metric by metric as ``asv compare`` does.

Either side may be a ``results.json`` (cases as a list) or a ``baselines/<tier>.json`` (cases keyed
by id, read through :func:`bench.baseline.load`, which migrates older schemas and checks every
per-image record); both are normalized to ``{case_id: case}`` first. For every case measured on
both sides:

- a :class:`CaseVerdict`: where both sides hold per-image outcomes (``correct_bits``) of the same
  number of test images, the paired verdict of :func:`bench.gates.judge`, as the session judges a
  run against its baselines (the false-alarm rate shared among the cases compared, the tier's
  ceiling), with the differences of environment and case definition beside it as likely causes.
  A case whose recipe hash changed is judged like any other; the change is one of its causes.
  Without per-image outcomes on both sides, the accuracies and "no per-image record".
- a :class:`Row` for each metric both sides measured: the values before and after, the change,
  the ratio after / before, whether that is better or worse, and whether the change is larger
  than the noise of the measurement.

The tables fit a pull-request comment::

    python -m bench.report compare baselines/smoke.json reports/smoke/results.json

The command exits with ``REGRESSED_EXIT_STATUS`` when any case is ``regressed``, so it can gate CI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import baseline as baselines
from bench import environment, evidence, gates
from bench import report_baseline as against
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
from bench.tiers import TIERS, get_tier

# The exit status of `compare` when a case regressed: distinct from 1 (a file could not be read)
# and 2 (argparse's bad usage), so a CI script can tell a regression from a broken invocation.
REGRESSED_EXIT_STATUS = 3

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
# Verdicts that are decided by the paired test, not by noise: they make an accuracy row significant.
DECISIVE_VERDICTS = ("regressed", "improved")
# What a case without per-image outcomes on both sides reads instead of a verdict.
NO_PER_IMAGE_RECORD = "no per-image record"

HOW_TO_GET_COMPARABLE = ("pass a results.json written by `nox -s bench` or a "
                         "baselines/<tier>.json")


@dataclass(frozen=True)
class Row:
    """One metric of one case, before and after; or a case present on one side only.

    Attributes:
        case_id: The case, ``model-mode-backend``.
        metric: One of ``METRICS``; None for an added or removed case.
        before: The value on side A, or None.
        after: The value on side B, or None.
        change: ``after - before``, or None.
        ratio: ``after / before``, or None when either is missing or before is 0.
        direction: ``better``, ``worse``, ``same``, ``added`` or ``removed``.
        significant: True when the change is beyond the noise threshold of its metric; for the
            accuracy of a case with a paired verdict, True when it is regressed or improved.
    """

    case_id: str
    metric: str | None
    before: float | None
    after: float | None
    change: float | None
    ratio: float | None
    direction: str
    significant: bool


@dataclass(frozen=True)
class CaseVerdict:
    """One case judged image by image from side A to side B, or why it could not be.

    Attributes:
        case_id: The case, ``model-mode-backend``.
        verdict: The paired verdict (B against A), or None without per-image outcomes of the same
            number of images on both sides.
        unpaired: Why there is no verdict ("no per-image record ..."), or None.
        accuracy_before: Side A's accuracy (from its per-image outcomes when judged).
        accuracy_after: Side B's accuracy, likewise.
        size_before: Side A's artifact size in bytes, or None.
        size_after: Side B's artifact size in bytes, or None.
        causes: Differences of environment and case definition between the sides.
    """

    case_id: str
    verdict: gates.Verdict | None
    unpaired: str | None
    accuracy_before: float | None
    accuracy_after: float | None
    size_before: float | None
    size_after: float | None
    causes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The verdict's name, or ``no per-image record`` for an unjudged case."""
        return self.verdict.verdict if self.verdict else NO_PER_IMAGE_RECORD


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: one verdict per case measured on both sides, and metric rows.

    Attributes:
        verdicts: In case order (model, mode, backend).
        rows: In case order, then metric order.
        alpha: The false-alarm rate each case was judged at.
        ceiling_pp: The tier's verdict ceiling before any case's churn widens it, or None when no
            file names a known tier (then no case had per-image outcomes on both sides, or
            :func:`compare` would have refused).
        tier: The tier whose ceiling was used, or None.
    """

    verdicts: tuple[CaseVerdict, ...]
    rows: tuple[Row, ...]
    alpha: float
    ceiling_pp: float | None = None
    tier: str | None = None

    @property
    def regressed(self) -> list[str]:
        """The ids of the cases judged ``regressed``; the command fails when there is one."""
        return [case.case_id for case in self.verdicts if case.name == "regressed"]


# --------------------------------------------------------------------------------------------
# Normalizing the two sides


def load_comparable(path: str | os.PathLike[str]) -> dict:
    """Reads a results or baselines file for :func:`compare`.

    A baselines file (cases keyed by id) goes through :func:`bench.baseline.load`, so an older
    schema is migrated and a corrupt per-image record is refused exactly as the bench refuses it.

    Raises:
        ReportError: The file cannot be read, is of another schema, or holds no cases.
        BaselineError: A baselines file that :func:`bench.baseline.load` refuses.
    """
    document = read_versioned_json(path, kind="results or baselines file",
                                   how_to_make=HOW_TO_GET_COMPARABLE)
    cases = document.get("cases")
    if isinstance(cases, dict):
        return baselines.load(Path(path))
    if not isinstance(cases, list):
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


def id_parts(case_id: str) -> tuple[str, str, str]:
    """The (model, mode, backend) of an id: ids are ``model-mode-backend`` and no name has a hyphen.

    Read from the id because baselines entries, keyed by id, carry no names of their own.
    """
    model, mode, backend = (case_id.split("-") + ["", "", ""])[:3]
    return model, mode, backend


def case_id_sort_key(case_id: str) -> tuple:
    """Orders ids by model, mode, backend."""
    model, mode, backend = id_parts(case_id)
    return (order_key(model, MODEL_ORDER), order_key(mode, MODE_ORDER),
            order_key(backend, BACKEND_ORDER), case_id)


def was_measured(case: Mapping[str, Any]) -> bool:
    """Whether a case has an accuracy or per-image outcomes (a skipped case has neither)."""
    return is_number(case.get("accuracy")) or "correct_bits" in case


def environment_of(document: Mapping[str, Any], case: Mapping[str, Any]) -> dict:
    """The environment a case was measured in.

    Schema 2 names it per case (an id into the document's ``environments``), since a baselines
    file or a merged results file mixes cases from several runs; a schema-1 results file has one
    ``environment`` for all. Empty when neither is there.
    """
    environments = document.get("environments")
    key = case.get("environment")
    if isinstance(environments, Mapping) and isinstance(key, str) \
            and isinstance(environments.get(key), Mapping):
        return dict(environments[key])
    whole = document.get("environment")
    return dict(whole) if isinstance(whole, Mapping) else {}


def both_differ(before: Any, after: Any) -> bool:
    """True when both sides record a value and the values differ (a missing one is unknown)."""
    return before is not None and after is not None and before != after


def likely_causes(before_case: Mapping[str, Any], after_case: Mapping[str, Any],
                  a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between the two sides of a case besides its outcomes.

    Worded as the session words the causes beside a verdict, so that the comparison of a
    baselines file with a results file reads as the report of that run does.
    """
    before_env, after_env = environment_of(a, before_case), environment_of(b, after_case)
    if before_env and after_env:
        causes = environment.differences(before_env, after_env)
    else:
        # Listing every package as "None -> version" would hide what is known: nothing.
        causes = ["environment recorded on one side only"] if before_env or after_env else []
    if both_differ(a.get("dataset_sha256"), b.get("dataset_sha256")):
        causes.append("data set hash differs from the baseline's")
    if recipes_differ(before_case, after_case):
        causes.append("case definition (recipe hash) changed")
    if both_differ(before_case.get("artifact_sha256"), after_case.get("artifact_sha256")):
        causes.append("artifact bytes differ from the baseline's")
    if both_differ(before_case.get("eval_batch"), after_case.get("eval_batch")):
        causes.append(f"evaluation batch {before_case['eval_batch']} -> {after_case['eval_batch']}")
    return causes


def per_image_record(case_id: str, case: Mapping[str, Any],
                     document: Mapping[str, Any]) -> np.ndarray | None:
    """A case's outcome on each test image, or None when it holds no per-image record.

    Raises:
        ReportError: Bits without an image count, or bits that cannot be the record of that many
            images (a damaged file).
    """
    if "correct_bits" not in case:
        return None
    n_test = case.get("n_test", document.get("n_test"))
    if not isinstance(n_test, int) or isinstance(n_test, bool) or n_test <= 0:
        raise ReportError(f"case {case_id} has per-image bits but no image count ('n_test'): "
                          f"{HOW_TO_GET_COMPARABLE}")
    try:
        return evidence.unpack(case["correct_bits"], n_test)
    except evidence.EvidenceError as error:
        raise ReportError(f"case {case_id}: its per-image record 'correct_bits' {error}; the file is "
                          f"damaged: {HOW_TO_GET_COMPARABLE}") from None


def why_unpaired(before: np.ndarray | None, after: np.ndarray | None) -> str | None:
    """Why two per-image records cannot be compared image by image; None when they can."""
    if before is None and after is None:
        return NO_PER_IMAGE_RECORD
    if before is None:
        return f"{NO_PER_IMAGE_RECORD} before"
    if after is None:
        return f"{NO_PER_IMAGE_RECORD} after"
    if len(before) != len(after):
        return f"not paired: {len(before):,} vs {len(after):,} test images"
    return None


def verdict_tier(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The tier whose ceiling judges the cases: B's (the run under review), else A's."""
    for document in (b, a):
        name = document.get("tier")
        if isinstance(name, str) and name in TIERS:
            return name
    return None


def verdict_ceiling_pp(tier: str | None) -> float | None:
    """The tier's ``verdict_ceiling_pp``, or None without a known tier."""
    return get_tier(tier).verdict_ceiling_pp if tier else None


def float_sibling_flips(case_id: str, before_cases: Mapping[str, Mapping[str, Any]],
                        after_cases: Mapping[str, Mapping[str, Any]], a: Mapping[str, Any],
                        b: Mapping[str, Any]) -> int | None:
    """Images the case's float32 sibling (same model and backend) flipped from A to B.

    The churn of the trained model itself, which widens the verdict's ceiling (see
    :func:`bench.gates.churn_ceiling_pp`), taken as the session takes it: None for a float32 case
    (its own flips count), 0 when the sibling has no per-image records of the same images on both
    sides (the tier's ceiling then applies unwidened).
    """
    model, mode, backend = id_parts(case_id)
    if mode == "float32":
        return None
    sibling = f"{model}-float32-{backend}"
    if sibling not in before_cases or sibling not in after_cases:
        return 0
    before = per_image_record(sibling, before_cases[sibling], a)
    after = per_image_record(sibling, after_cases[sibling], b)
    if why_unpaired(before, after) is not None:
        return 0
    return int(np.sum(before != after))


def judge_case(case_id: str, before_case: Mapping[str, Any], after_case: Mapping[str, Any],
               a: Mapping[str, Any], b: Mapping[str, Any], alpha: float,
               ceiling_pp: float | None, reference_flips: int | None) -> CaseVerdict:
    """One case's paired verdict, B against A, with the differences between the sides beside it.

    Args:
        case_id: The case.
        before_case: Its entry on side A.
        after_case: Its entry on side B.
        a: Side A.
        b: Side B.
        alpha: The false-alarm rate of one case (:func:`bench.gates.per_case_alpha`).
        ceiling_pp: The tier's ceiling, or None without a known tier.
        reference_flips: :func:`float_sibling_flips`.

    Raises:
        ReportError: The case has per-image records on both sides but no file names a known tier,
            whose ceiling the verdict needs; or a record is damaged.
    """
    causes = likely_causes(before_case, after_case, a, b)
    before_bits = per_image_record(case_id, before_case, a)
    after_bits = per_image_record(case_id, after_case, b)
    unpaired = why_unpaired(before_bits, after_bits)
    sizes = before_case.get("size_bytes"), after_case.get("size_bytes")
    if unpaired is not None:
        return CaseVerdict(case_id, None, unpaired, before_case.get("accuracy"),
                           after_case.get("accuracy"), *sizes, causes=tuple(causes))
    if ceiling_pp is None:
        raise ReportError(f"cannot judge {case_id}: neither file names a known tier "
                          f"({', '.join(TIERS)}), and the verdict's ceiling is the tier's")
    verdict = gates.judge(after_bits, before_bits, alpha=alpha, ceiling_pp=ceiling_pp, causes=causes,
                          reference_flips=reference_flips)
    return CaseVerdict(case_id, verdict, None, verdict.baseline_accuracy, verdict.accuracy, *sizes,
                       causes=tuple(causes))


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
    """The row for a case added or removed."""
    return Row(case_id=case_id, metric=None, before=None, after=None, change=None, ratio=None,
               direction=direction, significant=False)


def compare(a: Mapping[str, Any], b: Mapping[str, Any],
            threshold_pp: float = DEFAULT_THRESHOLD_PP) -> Comparison:
    """Compares run ``a`` (before) with run ``b`` (after).

    Args:
        a: A results dict or a baselines dict: the old side.
        b: A results dict or a baselines dict: the new side.
        threshold_pp: Accuracy and drop changes smaller than this many percentage points are
            never significant, even on a large test set (a paired verdict decides the accuracy
            of a case that has one).

    Returns:
        A verdict for every case measured on both sides, and rows in case order (model, mode,
        backend) and then metric order. Metrics that either side did not measure (a skipped case,
        no latency) give no row.

    Raises:
        ReportError: A per-image record is damaged, or cases need judging and no file names a
            known tier.
    """
    before_cases, after_cases = cases_by_id(a), cases_by_id(b)
    common = [case_id for case_id in sorted(set(before_cases) & set(after_cases), key=case_id_sort_key)
              if was_measured(before_cases[case_id]) and was_measured(after_cases[case_id])]
    # The run's false-alarm rate is shared among the cases compared, as the session shares it.
    alpha = gates.per_case_alpha(len(common))
    tier = verdict_tier(a, b)
    ceiling_pp = verdict_ceiling_pp(tier)
    verdicts = tuple(
        judge_case(case_id, before_cases[case_id], after_cases[case_id], a, b, alpha, ceiling_pp,
                   float_sibling_flips(case_id, before_cases, after_cases, a, b))
        for case_id in common)
    rows = metric_rows(a, b, threshold_pp, {case.case_id: case.verdict for case in verdicts
                                            if case.verdict is not None})
    return Comparison(verdicts, tuple(rows), alpha, ceiling_pp, tier)


def metric_rows(a: Mapping[str, Any], b: Mapping[str, Any], threshold_pp: float,
                paired: Mapping[str, gates.Verdict]) -> list[Row]:
    """The metric rows of :func:`compare`, and a row for each case on one side only.

    Args:
        a: The old side.
        b: The new side.
        threshold_pp: See :func:`compare`.
        paired: The paired verdict of each case that has one: it decides whether the case's
            accuracy moved significantly, so the two tables never disagree.
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
        accuracy = case_accuracy(before_case, after_case)
        n_test = accuracy_sample_size(before_case, after_case, a, b)
        for metric in METRICS:
            before, after = before_case.get(metric), after_case.get(metric)
            if not (is_number(before) and is_number(after)):
                continue
            row = metric_row(case_id, metric, float(before), float(after), n_test, threshold_pp,
                             accuracy)
            if metric == "accuracy" and case_id in paired:
                row = replace(row, significant=paired[case_id].verdict in DECISIVE_VERDICTS)
            rows.append(row)
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
# within noise, blank unchanged (or on one side only).
SIGNIFICANT_MARKERS = {WORSE: "+", BETTER: "-"}
WITHIN_NOISE_MARKER = "~"


def attention_rank(row: Row) -> int:
    """Sort key putting what needs attention first: 0 for significant regressions, 5 for same."""
    if row.direction == WORSE and row.significant:
        return 0
    if row.direction == REMOVED:
        return 1
    if row.direction == BETTER and row.significant:
        return 2
    if row.direction == ADDED:
        return 3
    if row.direction in (WORSE, BETTER):
        return 4
    return 5


def marker_of(row: Row) -> str:
    """The leading marker of a row (see ``SIGNIFICANT_MARKERS``)."""
    if row.direction in SIGNIFICANT_MARKERS:
        return SIGNIFICANT_MARKERS[row.direction] if row.significant else WITHIN_NOISE_MARKER
    return ""


ONE_SIDED_NOTES = {ADDED: "only in after", REMOVED: "only in before"}


def table_row(row: Row) -> list[str]:
    """One row of the metric table."""
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
VERDICT_HEADERS = ("case", "verdict", "lost / gained", "net pp", "one-sided p",
                   "accuracy % (before -> after)", "size (before -> after)", "likely causes")
# Verdicts in the order a reviewer should read them.
VERDICT_RANKS = {"regressed": 0, "improved": 1, "drift": 2, NO_PER_IMAGE_RECORD: 3, "identical": 4}


def verdict_rank(case: CaseVerdict) -> int:
    """Sort key of a verdict row: regressions first, identical cases last."""
    return VERDICT_RANKS.get(case.name, len(VERDICT_RANKS))


def is_uneventful(case: CaseVerdict) -> bool:
    """Identical outcomes and nothing changed around them: a row only ``--all`` shows."""
    return case.name == "identical" and not case.causes


def format_size_change(before: Any, after: Any) -> str:
    """``32.4 KB -> 33.1 KB (+700 B)``, or ``98.0 KB (same)``."""
    if is_number(before) and is_number(after) and before == after:
        return f"{format_size(after)} (same)"
    change = after - before if is_number(before) and is_number(after) else None
    return f"{format_size(before)} -> {format_size(after)} ({format_signed_size(change)})"


def verdict_row(case: CaseVerdict, shared: Sequence[str]) -> list[str]:
    """One case of the verdict table, with the report's cell formats (:mod:`bench.report_baseline`)."""
    accuracy = against.format_accuracy_change(case.accuracy_before, case.accuracy_after)
    size = format_size_change(case.size_before, case.size_after)
    causes = against.format_causes(case.causes, shared)
    if case.verdict is None:
        # No paired test, but the numbers are still shown: the net change of the accuracies.
        known = is_number(case.accuracy_before) and is_number(case.accuracy_after)
        net = against.format_signed_pp(100 * (case.accuracy_after - case.accuracy_before)
                                       if known else None)
        return [f"`{case.case_id}`", case.unpaired or NO_PER_IMAGE_RECORD, NOT_AVAILABLE, net,
                NOT_AVAILABLE, accuracy, size, causes]
    comparison = case.verdict.as_dict()
    return [f"`{case.case_id}`", against.format_comparison_verdict(comparison),
            against.format_lost_gained(comparison), against.format_net_pp(comparison),
            against.format_p_value(comparison), accuracy, size, causes]


def summary_line(comparison: Comparison) -> str:
    """One line on top: cases compared, their verdicts, then counts of what changed."""
    rows = comparison.rows

    def count(predicate) -> int:
        return sum(1 for row in rows if predicate(row))

    worse = count(lambda row: row.direction == WORSE and row.significant)
    better = count(lambda row: row.direction == BETTER and row.significant)
    noise = count(lambda row: row.direction in (WORSE, BETTER) and not row.significant)
    same = count(lambda row: row.direction == SAME)
    verdicts = against.verdict_counts(case.name for case in comparison.verdicts)
    return (f"**{len(comparison.verdicts)} cases compared**: {verdicts}; metrics: {worse} worse "
            f"(significant), {better} better (significant), {noise} changed within noise, {same} "
            f"unchanged; {count(lambda row: row.direction == ADDED)} added, "
            f"{count(lambda row: row.direction == REMOVED)} removed.")


def verdict_legend(comparison: Comparison) -> str:
    """When a case regresses, with this comparison's alpha and ceiling, and what the exit says."""
    ceiling = (f" or its net loss exceeds tier `{comparison.tier}`'s ceiling of "
               f"{comparison.ceiling_pp:.2f} pp (widened by {gates.CHURN_Z:g} standard deviations of "
               "the flips of the case's float32 sibling, where the model itself churned)"
               if comparison.ceiling_pp is not None else "")
    return ("Verdicts compare each case's outcome on every test image, after against before (lost = "
            "right before and wrong after, gained the reverse; net pp is the accuracy change), as "
            "the bench judges a run against its baselines: regressed when the exact one-sided "
            f"McNemar p of the loss is below alpha {comparison.alpha:.2g} (1 % shared among the "
            f"{len(comparison.verdicts)} cases compared){ceiling}, improved when the gain is "
            "significant (the p shown is then the gain's, as it is where more images were gained "
            "than lost), drift when outcomes moved without either. Likely causes are the "
            "differences of environment and case definition; they never replace the verdict. A "
            f"regressed case makes the command exit with status {REGRESSED_EXIT_STATUS}.")


def legend(threshold_pp: float) -> str:
    """What the marker and significance of the metric table mean, in one paragraph."""
    return ("Marker: `+` worse, `-` better (both significant), `~` changed within noise, blank "
            "unchanged. Significant: accuracy as its paired verdict says (regressed or improved) "
            f"where the case has one, else beyond {Z_95} binomial standard errors of the test set "
            f"and at least {threshold_pp:g} pp, as the drop always is; size beyond "
            f"{100 * SIZE_SIGNIFICANT_FRACTION:g} %, latency and throughput beyond "
            f"{100 * TIMING_SIGNIFICANT_FRACTION:g} %. Ratio is after / before.")


def render_verdicts(comparison: Comparison, include_unchanged: bool) -> list[str]:
    """The verdict table's lines, regressions first; uneventful cases only when asked for."""
    if not comparison.verdicts:
        return ["No case was measured on both sides."]
    shared = against.shared_causes([list(case.causes) for case in comparison.verdicts])
    shown = [case for case in comparison.verdicts if include_unchanged or not is_uneventful(case)]
    # sorted() is stable: within a rank, cases keep compare()'s order.
    shown.sort(key=verdict_rank)
    lines = [verdict_legend(comparison), ""]
    if shared:
        lines += [f"Differences that every compared case shares (\"{against.SHARED_CAUSES_MARK}\" in "
                  f"the table): {'; '.join(shared)}.", ""]
    if shown:
        lines.append(markdown_table(VERDICT_HEADERS, [verdict_row(case, shared) for case in shown]))
    hidden = len(comparison.verdicts) - len(shown)
    if hidden:
        lines += ["", f"{hidden} identical cases with nothing changed not shown (`--all` shows them)."]
    return lines


def render_metrics(comparison: Comparison, include_unchanged: bool, threshold_pp: float) -> list[str]:
    """The metric table's lines, what needs attention first; unchanged metrics only when asked."""
    rows = comparison.rows
    shown = [row for row in rows if include_unchanged or row.direction != SAME]
    # sorted() is stable: within a rank, rows keep compare()'s case and metric order.
    shown = sorted(shown, key=attention_rank)
    lines = [legend(threshold_pp), ""]
    lines.append(markdown_table(COMPARE_HEADERS, [table_row(row) for row in shown])
                 if shown else "No differences.")
    hidden = len(rows) - len(shown)
    if hidden:
        lines.extend(["", f"{hidden} unchanged metrics not shown (`--all` shows them)."])
    return lines


def render_compare(comparison: Comparison, include_unchanged: bool = False,
                   threshold_pp: float = DEFAULT_THRESHOLD_PP) -> str:
    """Renders the comparison as markdown for a pull-request comment.

    Args:
        comparison: What :func:`compare` returned.
        include_unchanged: Also list identical cases with nothing changed, and metrics whose
            value did not change.
        threshold_pp: The threshold given to :func:`compare`, for the legend.

    Returns:
        A summary line; the verdicts, regressions first, with their numbers and likely causes;
        then the metric table with what needs attention first (significant regressions, removed,
        improvements, added, noise).
    """
    lines = [summary_line(comparison), "", "## Verdicts", "",
             *render_verdicts(comparison, include_unchanged), "", "## Metrics", "",
             *render_metrics(comparison, include_unchanged, threshold_pp)]
    return "\n".join(lines) + "\n"
