"""ACROSS.md, rendered from an across document (:mod:`bench.report.across`) alone.

Three parts: the testbeds with their CPUs and runs and a line on how to read the rest; "By
testbed", each case's numbers on every testbed side by side; "Same case across testbeds", each
case's per-image agreement, file and weights across each pair of testbeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from bench.report.across import (
    BASIS_OUTCOME,
    BASIS_TOP1,
    CPU_FITTING_RECIPE,
    OTHER_RECIPE,
    SAME_FILE,
    SAME_RECIPE,
)
from bench.report.format import (
    NOT_AVAILABLE,
    format_count,
    format_percent,
    format_pp,
    format_ratio,
    format_signed_pp,
    format_size,
    is_number,
    markdown_table,
)

# A cell with nothing to show: the case was not measured there, or the metric does not apply.
ABSENT = "-"
BASIS_LABELS = {BASIS_TOP1: "top-1 class", BASIS_OUTCOME: "outcome only"}



TESTBED_HEADERS = ("run", "testbed", "CPU", "cores", "int8 sums", "CPU flags", "run id", "created")
BY_TESTBED_METRICS = ("acc %", "drop pp", "size", "int8 speedup")
PAIR_HEADERS = ("case", "testbeds", "compared", "agreement %", "images that differ",
                "accuracy change pp", "file", "weights")


def render_across(document: Mapping[str, Any]) -> str:
    """ACROSS.md: the testbeds, how to read the tables, the numbers by testbed, the pairs.

    Args:
        document: An across document as :func:`across_document` returns it.

    Returns:
        Markdown text ending with a newline.
    """
    sections = [_render_header(document), _render_by_testbed(document), _render_pairs(document)]
    return "\n\n".join(sections) + "\n"


def _render_header(document: Mapping[str, Any]) -> str:
    entries = document.get("testbeds") or []
    rows = [[entry["label"], f"`{entry['testbed']}`", ", ".join(entry.get("cpu_models") or []) or NOT_AVAILABLE,
             entry.get("cores") or NOT_AVAILABLE, entry.get("int8_sums") or NOT_AVAILABLE,
             " ".join(entry.get("cpu_flags") or []) or NOT_AVAILABLE,
             ", ".join(f"`{run_id[:12]}`" for run_id in entry.get("run_ids") or []) or NOT_AVAILABLE,
             entry.get("created") or NOT_AVAILABLE] for entry in entries]
    return "\n".join([
        f"# Across testbeds: tier `{document.get('tier') or NOT_AVAILABLE}`, "
        f"{format_count(document.get('n_test'))} test images", "",
        markdown_table(TESTBED_HEADERS, rows), "",
        "How to read: \"By testbed\" sets each testbed's numbers side by side (int8 speedup: that testbed's "
        "int8 over float32 time, comparable only within a testbed; under an emulator it times the emulator). "
        "\"Same case across testbeds\" compares the answers image by image: the same file with images "
        "that differ means the CPUs' kernels compute differently; another file means the recipe or the "
        "weights differ too (the last two columns say which). The weights are called the same only where "
        "a weights digest or an identical float32 file shows it: converters write other bytes on other "
        "CPUs, so another file alone proves nothing."])


def _by_testbed_cells(on: Mapping[str, Any] | None, footnotes: dict[str, int], label: str) -> list[str]:
    if not on:
        return [ABSENT] * len(BY_TESTBED_METRICS)
    if "not_run" in on:
        note = footnotes.setdefault(f"{label}: not run: {on['not_run']}", len(footnotes) + 1)
        return [f"not run [{note}]"] + [ABSENT] * (len(BY_TESTBED_METRICS) - 1)
    status = on.get("status")
    if not is_number(on.get("accuracy")):
        return [str(status or NOT_AVAILABLE)] + [ABSENT] * (len(BY_TESTBED_METRICS) - 1)
    accuracy = format_percent(on["accuracy"]) + (f" ({status})" if status and status != "passed" else "")
    speedup = format_ratio(on["speedup_vs_float"]) if is_number(on.get("speedup_vs_float")) else ABSENT
    return [accuracy, format_pp(on.get("accuracy_drop_pp")), format_size(on.get("size_bytes")), speedup]


def _render_by_testbed(document: Mapping[str, Any]) -> str:
    labels = [entry["label"] for entry in document.get("testbeds") or []]
    headers = ["case"] + [f"{label} {metric}" for label in labels for metric in BY_TESTBED_METRICS]
    footnotes: dict[str, int] = {}
    rows = []
    for case in document.get("cases") or []:
        on = case.get("on") or {}
        row = [f"`{case['id']}`"]
        for label in labels:
            measured = on.get(label) or {}
            cells = _by_testbed_cells(measured, footnotes, label)
            int8_format = measured.get("int8_format")
            if int8_format and is_number(measured.get("accuracy")):
                cells[0] += f" ({int8_format})"
            row += cells
        rows.append(row)
    lines = ["## By testbed", "",
             "Accuracy on the test set, drop against the same testbed's float32 case, file size, and int8 "
             "speedup over float32 where the case was timed (`-`: not timed, or not measured on that "
             "testbed). An int8 file's format follows its accuracy where the recipe names one.", "",
             markdown_table(headers, rows)]
    if footnotes:
        lines += [""] + [f"[{number}] {text}" for text, number in footnotes.items()]
    return "\n".join(lines)


def _render_pairs(document: Mapping[str, Any]) -> str:
    pairs = document.get("pairs") or []
    lines = ["## Same case across testbeds", ""]
    if not pairs:
        return "\n".join(lines + ["No case was measured on two testbeds."])
    rows = []
    for pair in pairs:
        images = pair.get("images") or {}
        rows.append([f"`{pair['case']}`", f"{pair['a']} vs {pair['b']}",
                     BASIS_LABELS.get(images.get("basis"), NOT_AVAILABLE),
                     format_percent(images.get("agreement")), format_count(images.get("differ")),
                     format_signed_pp(pair.get("accuracy_change_pp")),
                     file_words(pair.get("file"), pair.get("int8_format")),
                     pair.get("weights_note") or NOT_AVAILABLE])
    outcome_only = any((pair.get("images") or {}).get("basis") == BASIS_OUTCOME for pair in pairs)
    lines += _pair_summaries(document) + ["", markdown_table(PAIR_HEADERS, rows)]
    if outcome_only:
        lines += ["", "\"outcome only\": a results file without per-image predictions keeps only whether "
                      "each image was right; two different wrong answers then count as agreeing, so the "
                      "agreement is an upper bound of the top-1 agreement."]
    return "\n".join(lines)


def file_words(kind: str | None, int8_formats: Sequence[str | None] | None) -> str:
    """A :func:`file_relation` kind in words, e.g. "other file: S8S8 vs U8U8 (CPU-fitting recipe)"."""
    format_a, format_b = int8_formats if int8_formats and len(int8_formats) == 2 else (None, None)
    return {SAME_FILE: "same file",
            CPU_FITTING_RECIPE: f"other file: {format_a or 'default'} vs {format_b or 'default'} "
                                "(CPU-fitting recipe)",
            OTHER_RECIPE: "other file (other recipe)",
            SAME_RECIPE: "other file (same recipe)"}.get(kind or "", NOT_AVAILABLE)


def _pair_summaries(document: Mapping[str, Any]) -> list[str]:
    """One line per pair of testbeds: how many cases agree on every image, and which differ most."""
    lines = []
    order = [(entry_a["label"], entry_b["label"])
             for entry_a, entry_b in itertools.combinations(document.get("testbeds") or [], 2)]
    for a, b in order:
        pairs = [pair for pair in document.get("pairs") or [] if (pair["a"], pair["b"]) == (a, b)]
        if not pairs:
            lines.append(f"- {a} vs {b}: no case measured on both.")
            continue
        compared = [pair for pair in pairs if pair.get("images")]
        whole = [pair for pair in compared if pair["images"]["differ"] == 0]
        differ = sorted((pair for pair in compared if pair["images"]["differ"]),
                        key=lambda pair: -pair["images"]["differ"])
        text = f"- {a} vs {b}: {len(pairs)} cases on both; {len(whole)} of {len(compared)} compared agree on every image"
        outcome_only = sum(1 for pair in compared if pair["images"]["basis"] == BASIS_OUTCOME)
        if outcome_only:
            text += f" ({outcome_only} compared by outcome only)"
        if differ:
            text += "; most images differ in " + ", ".join(
                f"`{pair['case']}` ({format_count(pair['images']['differ'])})" for pair in differ[:3])
        notes = sorted({f"{weight['model']}: {weight['note']}" for weight in document.get("weights") or []
                        if (weight["a"], weight["b"]) == (a, b)})
        lines.append(text + "." + ("" if not notes else " Weights: " + "; ".join(notes) + "."))
    return lines
