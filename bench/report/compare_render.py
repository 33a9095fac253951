"""The markdown of a comparison (:func:`bench.report.compare.compare`), for a pull-request comment.

First the verdicts, regressions first, with the report's cells (:mod:`bench.report.verdicts`), so
``compare`` and REPORT.md print a verdict the same way; then the metric table, marked as ``asv
compare`` marks it, what needs attention first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.report.compare import (
    ADDED,
    NO_PER_IMAGE_RECORD,
    REGRESSED_EXIT_STATUS,
    REMOVED,
    CaseVerdict,
    Comparison,
    Row,
)
from bench.report.format import (
    NOT_AVAILABLE,
    format_signed_pp,
    format_signed_size,
    format_significant,
    format_size,
    is_number,
    markdown_table,
)
from bench.report.sections_provenance import BASELINE_HISTORY, NOT_RUN, NOT_RUN_HEADERS, history_lines
from bench.report.significance import (
    BETTER,
    DEFAULT_THRESHOLD_PP,
    SAME,
    SIZE_SIGNIFICANT_FRACTION,
    TIMING_SIGNIFICANT_FRACTION,
    WORSE,
    Z_95,
)
from bench.report.verdicts import (
    format_accuracy_change,
    format_causes,
    format_comparison_verdict,
    format_lost_gained,
    format_net_pp,
    format_p_value,
    shared_causes,
    shared_causes_paragraph,
    verdict_counts,
)


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
    """One case of the verdict table, with the report's cells (:mod:`bench.report.verdicts`)."""
    accuracy = format_accuracy_change(case.accuracy_before, case.accuracy_after)
    size = format_size_change(case.size_before, case.size_after)
    causes = format_causes(case.causes, shared)
    if case.verdict is None:
        # No paired test, but the numbers are still shown: the net change of the accuracies.
        known = is_number(case.accuracy_before) and is_number(case.accuracy_after)
        net = format_signed_pp(100 * (case.accuracy_after - case.accuracy_before) if known else None)
        return [f"`{case.case_id}`", case.unpaired or NO_PER_IMAGE_RECORD, NOT_AVAILABLE, net,
                NOT_AVAILABLE, accuracy, size, causes]
    comparison = case.verdict.as_dict()
    return [f"`{case.case_id}`", format_comparison_verdict(comparison),
            format_lost_gained(comparison), format_net_pp(comparison),
            format_p_value(comparison), accuracy, size, causes]


def summary_line(comparison: Comparison) -> str:
    """One line on top: cases compared, their verdicts, then counts of what changed."""
    rows = comparison.rows

    def count(predicate) -> int:
        return sum(1 for row in rows if predicate(row))

    worse = count(lambda row: row.direction == WORSE and row.significant)
    better = count(lambda row: row.direction == BETTER and row.significant)
    noise = count(lambda row: row.direction in (WORSE, BETTER) and not row.significant)
    same = count(lambda row: row.direction == SAME)
    verdicts = verdict_counts(case.name for case in comparison.verdicts)
    return (f"**{len(comparison.verdicts)} cases compared**: {verdicts}; metrics: {worse} worse "
            f"(significant), {better} better (significant), {noise} changed within noise, {same} "
            f"unchanged; {count(lambda row: row.direction == ADDED)} added, "
            f"{count(lambda row: row.direction == REMOVED)} removed"
            + (f"; {len(comparison.not_run)} not run" if comparison.not_run else "") + ".")


def verdict_legend(comparison: Comparison) -> str:
    """When a case regresses, with this comparison's alpha and ceiling, and what the exit says."""
    ceiling = (f" or its net loss exceeds tier `{comparison.tier}`'s ceiling of "
               f"{comparison.ceiling_pp:.2f} pp"
               if comparison.ceiling_pp is not None else "")
    return ("Verdicts compare each case's outcome on every test image, after against before (lost = "
            "right before and wrong after, gained the reverse; net pp is the accuracy change), as "
            "the bench judges a run against its baselines: regressed when the exact one-sided "
            f"McNemar p of the loss is below alpha {comparison.alpha:.2g} (1 % shared among the loss "
            f"and gain tests of the {len(comparison.verdicts)} cases compared){ceiling}, improved when the gain is "
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
    shared = shared_causes([list(case.causes) for case in comparison.verdicts])
    shown = [case for case in comparison.verdicts if include_unchanged or not is_uneventful(case)]
    # sorted() is stable: within a rank, cases keep compare()'s order.
    shown.sort(key=verdict_rank)
    lines = [verdict_legend(comparison), ""]
    lines += shared_causes_paragraph(shared)
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
             *render_verdicts(comparison, include_unchanged)]
    if comparison.not_run:
        lines += ["", NOT_RUN, "", "Cases of before that the after run did not run, with its reason; "
                  "none is judged, and none is identical.", "",
                  markdown_table(NOT_RUN_HEADERS[:2], [[f"`{cid}`", f"not run: {reason}"]
                                                        for cid, reason in comparison.not_run])]
    lines += ["", "## Metrics", "", *render_metrics(comparison, include_unchanged, threshold_pp)]
    if comparison.history_source is not None:
        lines += ["", BASELINE_HISTORY, "", *history_lines(comparison.history, comparison.history_source)]
    return "\n".join(lines) + "\n"
