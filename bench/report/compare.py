"""Compare two runs: every case judged image by image, then metric by metric as ``asv compare`` does.

Either side may be a ``results.json`` (cases as a list) or a ``baselines/<tier>.json`` (cases keyed
by id), read by :func:`bench.results.load_results_or_baselines`, which migrates older schemas and
checks every per-image record; both are normalized to ``{case_id: case}`` first. For every case
measured on both sides:

- a :class:`CaseVerdict`: where both sides hold per-image outcomes (``correct_bits``) of the same
  number of test images, the paired verdict of :func:`bench.stats.judge`, as the session judges a
  run against its baselines (the false-alarm rate shared among the cases compared, the tier's
  ceiling), with the differences of environment and case definition beside it as likely causes.
  A case whose recipe hash changed is judged like any other; the change is one of its causes.
  Without per-image outcomes on both sides, the accuracies and "no per-image record".
- a :class:`Row` for each metric both sides measured: the values before and after, the change,
  the ratio after / before, whether that is better or worse, and whether the change is larger
  than the noise of the measurement (:mod:`bench.report.significance`).

The tables (:mod:`bench.report.compare_render`) fit a pull-request comment::

    python -m bench.report compare baselines/smoke.json reports/smoke/results.json

The command exits with ``REGRESSED_EXIT_STATUS`` when any case is ``regressed``, so it can gate CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench import environment, evidence, stats
from bench.errors import ReportError
from bench.report.format import is_number
from bench.report.significance import (
    DEFAULT_THRESHOLD_PP,
    METRICS,
    accuracy_sample_size,
    case_accuracy,
    direction_of,
    is_significant,
)
from bench.results import HOW_TO_GET_EITHER, sort_case_ids
from bench.tiers import TIERS, get_tier

# The exit status of `compare` when a case regressed: distinct from 1 (a file could not be read)
# and 2 (argparse's bad usage), so a CI script can tell a regression from a broken invocation.
REGRESSED_EXIT_STATUS = 3
ADDED = "added"
REMOVED = "removed"
# Verdicts that are decided by the paired test, not by noise: they make an accuracy row significant.
DECISIVE_VERDICTS = ("regressed", "improved")
# What a case without per-image outcomes on both sides reads instead of a verdict.
NO_PER_IMAGE_RECORD = "no per-image record"


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
    verdict: stats.Verdict | None
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
    # Cases of A that B's run did not run, with B's reason ((case id, reason), in case order):
    # shown as "not run: <reason>", never as identical nor merely removed.
    not_run: tuple[tuple[str, str], ...] = ()
    # The accepted changes of the baselines side (A's history, or the history B was judged with).
    history: tuple[dict, ...] = ()
    history_source: str | None = None

    @property
    def regressed(self) -> list[str]:
        """The ids of the cases judged ``regressed``; the command fails when there is one."""
        return [case.case_id for case in self.verdicts if case.name == "regressed"]


# --------------------------------------------------------------------------------------------
# Normalizing the two sides


def cases_by_id(document: Mapping[str, Any]) -> dict[str, dict]:
    """The cases of a results dict (a list) or of a baselines dict (keyed by id), by id."""
    cases = document.get("cases")
    if isinstance(cases, dict):
        return {str(case_id): dict(metrics or {}) for case_id, metrics in cases.items()}
    if isinstance(cases, list):
        return {str(case["id"]): case for case in cases
                if isinstance(case, dict) and "id" in case}
    raise ReportError(f"cannot compare: 'cases' is neither a list nor an object: "
                      f"{HOW_TO_GET_EITHER}")


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
    for side, case in (("before", before_case), ("after", after_case)):
        if isinstance(case.get("measured_by"), Mapping):  # a row kept in a restricted run's results
            by = case["measured_by"]
            causes.append(f"{side}: measured by an earlier run ({str(by.get('created'))[:10]}, testbed "
                          f"{by.get('testbed')})")
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
                          f"{HOW_TO_GET_EITHER}")
    try:
        return evidence.unpack(case["correct_bits"], n_test)
    except evidence.EvidenceError as error:
        raise ReportError(f"case {case_id}: its per-image record 'correct_bits' {error}; the file is "
                          f"damaged: {HOW_TO_GET_EITHER}") from None


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


def judge_case(case_id: str, before_case: Mapping[str, Any], after_case: Mapping[str, Any],
               a: Mapping[str, Any], b: Mapping[str, Any], alpha: float,
               ceiling_pp: float | None) -> CaseVerdict:
    """One case's paired verdict, B against A, with the differences between the sides beside it.

    Args:
        case_id: The case.
        before_case: Its entry on side A.
        after_case: Its entry on side B.
        a: Side A.
        b: Side B.
        alpha: The false-alarm rate of one case (:func:`bench.stats.per_case_alpha`).
        ceiling_pp: The tier's ceiling, or None without a known tier.

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
    verdict = stats.judge(after_bits, before_bits, alpha=alpha, ceiling_pp=ceiling_pp, causes=causes)
    return CaseVerdict(case_id, verdict, None, verdict.baseline_accuracy, verdict.accuracy, *sizes,
                       causes=tuple(causes))


# --------------------------------------------------------------------------------------------
# Comparing


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
    common = [case_id for case_id in sort_case_ids(set(before_cases) & set(after_cases))
              if was_measured(before_cases[case_id]) and was_measured(after_cases[case_id])]
    # The run's false-alarm rate is shared among the cases compared, as the session shares it.
    alpha = stats.per_case_alpha(len(common))
    tier = verdict_tier(a, b)
    ceiling_pp = verdict_ceiling_pp(tier)
    verdicts = tuple(
        judge_case(case_id, before_cases[case_id], after_cases[case_id], a, b, alpha, ceiling_pp)
        for case_id in common)
    rows = metric_rows(a, b, threshold_pp, {case.case_id: case.verdict for case in verdicts
                                            if case.verdict is not None})
    not_run = {str(entry["id"]): str(entry.get("reason") or "no reason recorded")
               for entry in b.get("not_run") or [] if isinstance(entry, Mapping) and entry.get("id") in before_cases}
    # A case B did not run is in the not-run table, not a plain "removed" row.
    rows = [row for row in rows if not (row.direction == REMOVED and row.case_id in not_run)]
    history, source = baseline_history(a, b)
    return Comparison(verdicts, tuple(rows), alpha, ceiling_pp, tier,
                      tuple((cid, not_run[cid]) for cid in sort_case_ids(not_run)), history, source)


def baseline_history(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[tuple[dict, ...], str | None]:
    """The history to show: a baselines side's own (A's first), else the one a results side was
    judged with (its ``baseline``), with where it comes from; empty when neither has one."""
    for side in (a, b):
        if isinstance(side.get("cases"), dict) and isinstance(side.get("history"), list):
            return tuple(side["history"]), f"the baselines file ({side.get('testbed')}, {side.get('tier')})"
    for side in (b, a):
        baseline = side.get("baseline")
        if isinstance(baseline, Mapping) and isinstance(baseline.get("history"), list):
            return tuple(baseline["history"]), baseline.get("path")
    return (), None


def metric_rows(a: Mapping[str, Any], b: Mapping[str, Any], threshold_pp: float,
                paired: Mapping[str, stats.Verdict]) -> list[Row]:
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
    for case_id in sort_case_ids(set(before_cases) | set(after_cases)):
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
