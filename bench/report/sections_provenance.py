"""Where a report's rows and baselines come from: cases not run, rows of earlier runs, the history.

Three things a reader must not mistake: a baseline case this run did not run (never shown as
identical, always "not run: <reason>"), a row an earlier run measured on this testbed (kept in a
restricted run's report, marked with that run's date and testbed), and the accepted changes of the
baselines file the run was judged against (its ``history``). ``compare`` prints the same tables
(:mod:`bench.report.compare_render`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.report.format import NOT_AVAILABLE, format_percent, format_signed_pp, is_number, markdown_table

NOT_RUN = "## Not run"
NOT_RUN_HEADERS = ("case", "not run: reason", "fails the run")
BASELINE_HISTORY = "## Baseline history"
HISTORY_HEADERS = ("when", "case", "verdict", "status", "lost / gained", "net pp",
                   "accuracy % (before -> after)", "reason", "commit")


def not_run_rows(not_run: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One row per case that did not run (see ``NOT_RUN_HEADERS``)."""
    return [[f"`{entry.get('id')}`", f"not run: {entry.get('reason') or NOT_AVAILABLE}",
             "**yes**" if entry.get("fails") else "no"] for entry in not_run]


def render_not_run(results: Mapping[str, Any]) -> str | None:
    """The baseline cases of the selection that did not run, with their reasons; None when every
    one ran."""
    not_run = [entry for entry in results.get("not_run") or [] if isinstance(entry, Mapping)]
    if not not_run:
        return None
    return "\n".join([
        NOT_RUN, "",
        f"{len(not_run)} {'case' if len(not_run) == 1 else 'cases'} of the selection with a baseline entry "
        "(or an error) did not run in this run; none of them is judged or shown as measured. A case "
        "that stops running for a reason other than a capability this CPU declares missing fails "
        "the run.", "",
        markdown_table(NOT_RUN_HEADERS, not_run_rows(not_run)),
    ])


def earlier_mark(row: Mapping[str, Any]) -> str | None:
    """``earlier run 2026-12-02, testbed avx512-vnni`` for a row kept from an earlier run, else None."""
    measured_by = row.get("measured_by")
    if not isinstance(measured_by, Mapping):
        return None
    created = str(measured_by.get("created") or NOT_AVAILABLE)[:10]
    return f"earlier run {created}, testbed {measured_by.get('testbed') or NOT_AVAILABLE}"


def earlier_rows_note(results: Mapping[str, Any]) -> list[str]:
    """A line saying how many rows an earlier run measured (none when this run measured all)."""
    earlier = [case for case in results.get("cases") or [] if earlier_mark(case)]
    if not earlier:
        return []
    runs = sorted({earlier_mark(case) for case in earlier})
    return [f"{len(earlier)} of the rows were not measured by this run: they are kept from "
            f"{'; '.join(runs)} (the same testbed), and marked so in every table.", ""]


def history_row(entry: Mapping[str, Any]) -> list[str]:
    """One accepted change (see :func:`bench.baseline.history_entry`)."""
    lost, gained = entry.get("lost"), entry.get("gained")
    net = entry.get("net_change_pp")
    return [str(entry.get("when") or NOT_AVAILABLE), f"`{entry.get('case')}`",
            str(entry.get("verdict") or NOT_AVAILABLE).replace("_", " "),
            str(entry.get("status") or NOT_AVAILABLE),
            f"{lost} / {gained}" if lost is not None else NOT_AVAILABLE,
            format_signed_pp(net) if is_number(net) else NOT_AVAILABLE,
            f"{format_percent(entry.get('baseline_accuracy'))} -> {format_percent(entry.get('accuracy'))}",
            str(entry.get("reason") or NOT_AVAILABLE), str(entry.get("commit") or NOT_AVAILABLE)]


def history_lines(history: Sequence[Mapping[str, Any]], source: str | None) -> list[str]:
    """The history table, newest first, under a line naming its file; a line when it is empty."""
    where = f" of `{source}`" if source else ""
    if not history:
        return [f"No accepted changes in the history{where}: every entry was taken without a "
                "regression or a failed gate."]
    rows = [history_row(entry) for entry in reversed(list(history)) if isinstance(entry, Mapping)]
    return [f"Changes accepted into the baselines{where} with `--update-baselines --accept CASE=REASON` "
            "(regressed or failed cases, which an update otherwise refuses), newest first:", "",
            markdown_table(HISTORY_HEADERS, rows)]


def render_baseline_history(results: Mapping[str, Any]) -> str | None:
    """The history of the baselines file the run was judged against; None without one."""
    baseline = results.get("baseline")
    if not isinstance(baseline, Mapping) or "history" not in baseline:
        return None
    return "\n".join([BASELINE_HISTORY, "", *history_lines(baseline.get("history") or [], baseline.get("path"))])


def case_cell(case: Mapping[str, Any]) -> str:
    """A case's id as a table cell, with its earlier run's mark when this run did not measure it."""
    mark = earlier_mark(case)
    return f"`{case.get('id')}`" + (f" ({mark})" if mark else "")
