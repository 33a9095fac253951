"""REPORT.md's "Against the baseline": each case's paired verdict, a count, the rule, one row each.

A schema-2 case carries ``baseline_verdict`` (one of :data:`bench.stats.VERDICTS`) and
``baseline_comparison`` (:meth:`bench.stats.Verdict.as_dict`, or None): its per-image outcomes
against the baseline's, judged by the session. The cells are :mod:`bench.report.verdicts`', which
``compare`` prints its own verdicts with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.report.format import NOT_AVAILABLE, is_number, markdown_table
from bench.report.lookup import sorted_cases
from bench.report.sections_provenance import case_cell
from bench.report.verdicts import (
    format_accuracy_change,
    format_causes,
    format_comparison_verdict,
    format_lost_gained,
    format_net_pp,
    format_p_value,
    format_verdict,
    shared_causes,
    shared_causes_paragraph,
    verdict_counts,
)

AGAINST_BASELINE = "## Against the baseline"
BASELINE_HEADERS = ("case", "verdict", "lost / gained", "net pp", "one-sided p",
                    "accuracy % (baseline -> now)", "likely causes")


def render_against_baseline(results: Mapping[str, Any]) -> str:
    """Each case's verdict against its baseline: a count, the rule, then one row per case."""
    cases = judged_cases(sorted_cases(results))
    if not cases:
        return f"{AGAINST_BASELINE}\n\nNo case in these results was judged against a baseline."
    shared, rows = baseline_rows(cases)
    lines = [AGAINST_BASELINE, "", count_verdicts(case["baseline_verdict"] for case in cases), ""]
    # Without a single comparison (a first run, or baselines without per-image records) the rule
    # would explain numbers the table does not have.
    if any(case.get("baseline_comparison") for case in cases):
        lines += [decision_rule(cases), ""]
    lines += shared_causes_paragraph(shared, against="from the baseline")
    lines.append(markdown_table(BASELINE_HEADERS, rows))
    return "\n".join(lines)


def count_verdicts(verdicts: Iterable[str]) -> str:
    """The section's first line: ``22 cases judged against the baseline: 17 identical, ...``."""
    verdicts = list(verdicts)
    cases = "case" if len(verdicts) == 1 else "cases"
    return f"{len(verdicts)} {cases} judged against the baseline: {verdict_counts(verdicts)}."


def judged_cases(cases: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The cases that carry a baseline verdict (schema 2; skipped cases carry none)."""
    return [case for case in cases if case.get("baseline_verdict")]


def case_causes(case: Mapping[str, Any]) -> list[str]:
    """The differences of environment and case definition recorded beside a case's verdict."""
    comparison = case.get("baseline_comparison") or {}
    return [str(cause) for cause in comparison.get("causes") or []]


def baseline_row(case: Mapping[str, Any], shared: Sequence[str] = ()) -> list[str]:
    """One case of the section's table (see ``BASELINE_HEADERS``)."""
    comparison = case.get("baseline_comparison")
    if not comparison:
        # The session found no baseline entry with per-image outcomes; its failure says which.
        return [case_cell(case), format_verdict(case.get("baseline_verdict")), NOT_AVAILABLE,
                NOT_AVAILABLE, NOT_AVAILABLE, format_accuracy_change(None, case.get("accuracy")),
                "nothing recorded to compare with"]
    return [case_cell(case), format_comparison_verdict(comparison),
            format_lost_gained(comparison), format_net_pp(comparison), format_p_value(comparison),
            format_accuracy_change(comparison.get("baseline_accuracy"), comparison.get("accuracy")),
            format_causes(case_causes(case), shared)]


def baseline_rows(cases: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The causes every compared case shares, and one table row per judged case.

    Args:
        cases: Judged cases (:func:`judged_cases`), in display order.
    """
    # A case without a baseline has no differences to share; it must not empty the common list.
    shared = shared_causes([case_causes(case) for case in cases if case.get("baseline_comparison")])
    return shared, [baseline_row(case, shared) for case in cases]


def _only_number(values: Iterable[Any]) -> float | None:
    """The value when every value is that same number, else None."""
    distinct = set(values)
    value = next(iter(distinct)) if len(distinct) == 1 else None
    return value if is_number(value) else None


def ceiling_phrase(ceilings: Iterable[Any]) -> str:
    """`` of 0.50 pp``, or the range the cases' ceilings span where merged runs differ (runs
    recorded before the ceiling stopped widening with a model's churn)."""
    numbers = sorted({value for value in ceilings if is_number(value)})
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f" of {numbers[0]:.2f} pp"
    return f" ({numbers[0]:.2f} to {numbers[-1]:.2f} pp across the runs merged here)"


def decision_rule(cases: Sequence[Mapping[str, Any]]) -> str:
    """The sentence saying when a case regresses, with the run's alpha and ceilings.

    The numbers are those of the comparisons themselves; where merged runs used different alphas,
    the sentence names none rather than one that is wrong for some rows.
    """
    comparisons = [case["baseline_comparison"] for case in cases if case.get("baseline_comparison")]
    alpha = _only_number(comparison.get("alpha") for comparison in comparisons)
    alpha = f" {alpha:.2g}" if alpha is not None else ""
    ceiling = ceiling_phrase(comparison.get("ceiling_pp") for comparison in comparisons)
    return ("Each case's outcome on every test image against the baseline's on the same images: lost "
            "= right in the baseline and wrong now, gained the reverse; net pp is the accuracy change. "
            "A case regresses when its loss is significant (exact one-sided McNemar p below "
            f"alpha{alpha}: 1 % for the whole run, shared among the loss and gain tests of its cases) or "
            "its net loss exceeds the "
            f"ceiling{ceiling}; it improves when its gain is significant, and drifts when outcomes "
            "moved without either. The p shown is the loss's, or the gain's (marked) where more "
            "images were gained than lost. Likely causes are the differences of environment and case "
            "definition from the baseline; they explain a verdict and never replace it.")
