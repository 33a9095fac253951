"""The cells of a paired verdict, shared by REPORT.md's "Against the baseline" and ``compare``.

A verdict is :meth:`bench.stats.Verdict.as_dict`: one case's outcomes on every test image against
those of another run. Both tables print it with these functions, so the report and the reviewers'
comparison show the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.report.format import NOT_AVAILABLE, format_percent, format_signed_pp, is_number
from bench.stats import VERDICTS

NO_BASELINE = "no_baseline"
# Verdicts as the tables print them; the others print as they are named.
VERDICT_LABELS = {NO_BASELINE: "no baseline"}
# Shown in a case's causes column when its only differences are those every case shares.
SHARED_CAUSES_MARK = "as above"
NO_CAUSES = "none"


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
    by_ceiling = (comparison.get("verdict") == "regressed" and is_number(p) and is_number(alpha)
                  and p >= alpha)
    return f"{cell} (net loss over {ceiling:.2f} pp)" if by_ceiling and is_number(ceiling) else cell


def format_p_value(comparison: Mapping[str, Any] | None) -> str:
    """The one-sided p-value in the direction the outcomes moved, a gain's marked ``(gain)``.

    The loss's p decides ``regressed``, the gain's ``improved``; for a case that gained more than
    it lost, the loss's p is near 1 and says nothing, so the gain's is shown. Two significant
    digits, as :meth:`bench.stats.Verdict.summary` prints them: ``0.0027``, ``3.1e-06``; 1 when
    no image changed its outcome.
    """
    if not comparison:
        return NOT_AVAILABLE
    gained_more = (is_number(comparison.get("gained")) and is_number(comparison.get("lost"))
                   and comparison["gained"] > comparison["lost"])
    if gained_more or comparison.get("verdict") == "improved":
        p = comparison.get("p_gain")
        return f"{p:.2g} (gain)" if is_number(p) else NOT_AVAILABLE
    p = comparison.get("p_loss")
    return f"{p:.2g}" if is_number(p) else NOT_AVAILABLE


def format_net_pp(comparison: Mapping[str, Any] | None) -> str:
    """The net change of accuracy in points, signed: ``-0.27`` for a net loss.

    Printed as a change (gained minus lost), not as the ``net_loss_pp`` the gate reads, so that it
    has the sign of the accuracy column beside it.
    """
    if not comparison or not is_number(comparison.get("net_loss_pp")):
        return NOT_AVAILABLE
    return format_signed_pp(-comparison["net_loss_pp"])


def format_lost_gained(comparison: Mapping[str, Any] | None) -> str:
    """``31 / 4``: images lost and gained against the other side."""
    if not comparison:
        return NOT_AVAILABLE
    return f"{comparison.get('lost', NOT_AVAILABLE)} / {comparison.get('gained', NOT_AVAILABLE)}"


def format_accuracy_change(before: Any, after: Any) -> str:
    """Two accuracies (fractions) as percentages: ``93.12 -> 92.85``."""
    return f"{format_percent(before)} -> {format_percent(after)}"


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


def shared_causes_paragraph(shared: Sequence[str], against: str = "") -> list[str]:
    """The lines stating the shared causes once, above the table; none when there are none.

    Args:
        shared: :func:`shared_causes`.
        against: What the cases differ from, if the sentence names it ("from the baseline").
    """
    if not shared:
        return []
    differences = f"Differences {against}" if against else "Differences"
    return [f"{differences} that every compared case shares (\"{SHARED_CAUSES_MARK}\" in the table): "
            f"{'; '.join(shared)}.", ""]


def verdict_counts(verdicts: Iterable[str]) -> str:
    """``17 identical, 2 drift, 1 regressed``: verdicts counted, in :data:`bench.stats.VERDICTS`
    order; any other name (compare's ``no per-image record``) follows alphabetically."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
    names = [name for name in VERDICTS if name in counts] + sorted(set(counts) - set(VERDICTS))
    parts = [f"{counts[name]} {VERDICT_LABELS.get(name, name)}" for name in names]
    return ", ".join(parts) if parts else "none"
