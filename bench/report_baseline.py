"""What the report says about each case against its baseline, cell by cell and line by line.

A schema-2 case carries ``baseline_verdict`` (one of :data:`bench.gates.VERDICTS`) and
``baseline_comparison`` (:meth:`bench.gates.Verdict.as_dict`, or None): its per-image outcomes
against the baseline's. This module turns them into the rows and lines of the report's "Against the
baseline" section, and words the cases evaluated one image at a time. ``python -m bench.report
compare`` formats its own verdicts with the same cell functions, so the report and the reviewers'
table print the same numbers the same way.

It imports nothing from :mod:`bench.report` (which imports it) nor from :mod:`bench.compare`, so
no import loop can form; the tables themselves are laid out by the callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.backends import EVAL_BATCH
from bench.gates import CHURN_Z, VERDICTS

NOT_AVAILABLE = "n/a"
NO_BASELINE = "no_baseline"
# Verdicts as the tables print them; the others print as they are named.
VERDICT_LABELS = {NO_BASELINE: "no baseline"}
# Shown in a case's causes column when its only differences are those every case shares.
SHARED_CAUSES_MARK = "as above"
NO_CAUSES = "none"

BASELINE_HEADERS = ("case", "verdict", "lost / gained", "net pp", "one-sided p",
                    "accuracy % (baseline -> now)", "likely causes")


def _is_number(value: Any) -> bool:
    """True for an int or float that is not a bool (the harness writes no NaN here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Cells, shared with bench.compare


def format_verdict(verdict: str | None) -> str:
    """A verdict as a table cell; ``regressed`` in bold, since it fails the run."""
    if not verdict:
        return NOT_AVAILABLE
    label = VERDICT_LABELS.get(verdict, verdict)
    return f"**{label}**" if verdict == "regressed" else label


def format_comparison_verdict(comparison: Mapping[str, Any]) -> str:
    """A comparison's verdict cell; a case regressed by its ceiling alone says so.

    Its p-value is then above alpha, and the row would otherwise not show why it failed.
    """
    cell = format_verdict(comparison.get("verdict"))
    p, alpha, ceiling = comparison.get("p_loss"), comparison.get("alpha"), comparison.get("ceiling_pp")
    by_ceiling = (comparison.get("verdict") == "regressed" and _is_number(p) and _is_number(alpha)
                  and p >= alpha)
    return f"{cell} (net loss over {ceiling:.2f} pp)" if by_ceiling and _is_number(ceiling) else cell


def format_p_value(comparison: Mapping[str, Any] | None) -> str:
    """The one-sided p-value in the direction the outcomes moved, a gain's marked ``(gain)``.

    The loss's p decides ``regressed``, the gain's ``improved``; for a case that gained more than
    it lost, the loss's p is near 1 and says nothing, so the gain's is shown. Two significant
    digits, as :meth:`bench.gates.Verdict.summary` prints them: ``0.0027``, ``3.1e-06``; 1 when
    no image changed its outcome.
    """
    if not comparison:
        return NOT_AVAILABLE
    gained_more = (_is_number(comparison.get("gained")) and _is_number(comparison.get("lost"))
                   and comparison["gained"] > comparison["lost"])
    if gained_more or comparison.get("verdict") == "improved":
        p = comparison.get("p_gain")
        return f"{p:.2g} (gain)" if _is_number(p) else NOT_AVAILABLE
    p = comparison.get("p_loss")
    return f"{p:.2g}" if _is_number(p) else NOT_AVAILABLE


def format_signed_pp(value: Any) -> str:
    """Points with their sign and 2 decimals, ``+0.28`` or ``-0.27``; ``0.00`` without a sign."""
    if not _is_number(value):
        return NOT_AVAILABLE
    # "-0.00" (a tiny loss, or the -0.0 of negating nothing) would read as a loss that is not there.
    return "0.00" if round(value, 2) == 0 else f"{value:+.2f}"


def format_net_pp(comparison: Mapping[str, Any] | None) -> str:
    """The net change of accuracy in points, signed: ``-0.27`` for a net loss.

    Printed as a change (gained minus lost), not as the ``net_loss_pp`` the gate reads, so that it
    has the sign of the accuracy column beside it.
    """
    if not comparison or not _is_number(comparison.get("net_loss_pp")):
        return NOT_AVAILABLE
    return format_signed_pp(-comparison["net_loss_pp"])


def format_lost_gained(comparison: Mapping[str, Any] | None) -> str:
    """``31 / 4``: images lost and gained against the other side."""
    if not comparison:
        return NOT_AVAILABLE
    return f"{comparison.get('lost', NOT_AVAILABLE)} / {comparison.get('gained', NOT_AVAILABLE)}"


def format_accuracy_change(before: Any, after: Any) -> str:
    """Two accuracies (fractions) as percentages: ``93.12 -> 92.85``."""
    def percent(value: Any) -> str:
        return f"{100 * value:.2f}" if _is_number(value) else NOT_AVAILABLE

    return f"{percent(before)} -> {percent(after)}"


def format_causes(causes: Sequence[str], shared: Sequence[str] = ()) -> str:
    """A case's likely causes; those every case shares are listed once above the table instead.

    Args:
        causes: The case's differences of environment and case definition.
        shared: The differences every case of the table has, stated once above it.
    """
    own = [cause for cause in causes if cause not in shared]
    if len(own) < len(causes):
        own.insert(0, SHARED_CAUSES_MARK)
    return "; ".join(own) if own else NO_CAUSES


def shared_causes(cause_lists: Sequence[Sequence[str]]) -> list[str]:
    """The causes found in every list, in the first list's order; none for fewer than two lists.

    A new lock or library version is a cause of every case at once: printed on each of 32 rows it
    would bury the one case whose definition changed.
    """
    if len(cause_lists) < 2:
        return []
    return [cause for cause in cause_lists[0] if all(cause in other for other in cause_lists[1:])]


def verdict_counts(verdicts: Iterable[str]) -> str:
    """``17 identical, 2 drift, 1 regressed``: verdicts counted, in :data:`bench.gates.VERDICTS`
    order; any other name (compare's ``no per-image record``) follows alphabetically."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
    names = [name for name in VERDICTS if name in counts] + sorted(set(counts) - set(VERDICTS))
    parts = [f"{counts[name]} {VERDICT_LABELS.get(name, name)}" for name in names]
    return ", ".join(parts) if parts else "none"


def count_verdicts(verdicts: Iterable[str]) -> str:
    """The section's first line: ``22 cases judged against the baseline: 17 identical, ...``."""
    verdicts = list(verdicts)
    cases = "case" if len(verdicts) == 1 else "cases"
    return f"{len(verdicts)} {cases} judged against the baseline: {verdict_counts(verdicts)}."


# --------------------------------------------------------------------------------------------
# The report's section


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
        return [f"`{case.get('id')}`", format_verdict(case.get("baseline_verdict")), NOT_AVAILABLE,
                NOT_AVAILABLE, NOT_AVAILABLE, format_accuracy_change(None, case.get("accuracy")),
                "nothing recorded to compare with"]
    return [f"`{case.get('id')}`", format_comparison_verdict(comparison),
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
    return value if _is_number(value) else None


def ceiling_phrase(ceilings: Iterable[Any]) -> str:
    """`` of 0.50 pp``, or the range the cases' ceilings span once their churn widened some."""
    numbers = sorted({value for value in ceilings if _is_number(value)})
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f" of {numbers[0]:.2f} pp"
    return (f" ({numbers[0]:.2f} to {numbers[-1]:.2f} pp: widened where the model itself churned, by "
            f"{CHURN_Z:g} standard deviations of its float32 case's flips)")


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
            f"alpha{alpha}: 1 % for the whole run, shared among its cases) or its net loss exceeds the "
            f"ceiling{ceiling}; it improves when its gain is significant, and drifts when outcomes "
            "moved without either. The p shown is the loss's, or the gain's (marked) where more "
            "images were gained than lost. Likely causes are the differences of environment and case "
            "definition from the baseline; they explain a verdict and never replace it.")


# --------------------------------------------------------------------------------------------
# Batch dependence


def batch_one_note(cases: Sequence[Mapping[str, Any]]) -> str | None:
    """The note naming the cases evaluated one image at a time, with the evidence for each.

    Returns:
        One paragraph, or None when every case was evaluated in batches.
    """
    single = [case for case in cases if case.get("eval_batch") == 1]
    if not single:
        return None
    listed = ", ".join(f"`{case.get('id')}`{batch_evidence(case)}" for case in single)
    return f"Evaluated one image at a time: outputs depend on the batch: {listed}."


def batch_evidence(case: Mapping[str, Any]) -> str:
    """`` (batch 256 against batch 1 on 48 sampled images: logits up to 0.29 apart, 2 top-1
    changed)``, or nothing without the check.

    For a case evaluated at batch 1 the session runs the batched pass only to measure this.
    """
    invariance = case.get("batch_invariance")
    if not isinstance(invariance, Mapping) or not _is_number(invariance.get("max_abs_logit_diff")):
        return ""
    changed = invariance.get("top1_changed")
    changes = f", {changed} top-1 changed" if _is_number(changed) else ""
    return (f" (batch {EVAL_BATCH} against batch 1 on {invariance.get('sample', NOT_AVAILABLE)} sampled "
            f"images: logits up to {invariance['max_abs_logit_diff']:.2g} apart{changes})")


def batch_invariance_note(cases: Sequence[Mapping[str, Any]]) -> str | None:
    """The evidence that the cases evaluated in batches give the outputs of batch 1.

    Returns:
        One sentence with the largest logit difference found, or None when no batched case
        recorded its check.
    """
    checks = [case["batch_invariance"] for case in cases
              if case.get("eval_batch") not in (None, 1) and isinstance(case.get("batch_invariance"), Mapping)
              and _is_number(case["batch_invariance"].get("max_abs_logit_diff"))]
    if not checks:
        return None
    largest = max(check["max_abs_logit_diff"] for check in checks)
    return (f"{len(checks)} cases evaluated in batches give the outputs of batch 1: run one image at a "
            f"time, their sampled images' logits moved by at most {largest:.2g}.")
