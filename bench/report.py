"""The markdown report, rendered from ``results.json`` alone.

A report never needs the bench to run again: everything it shows comes from the results file, so
``python -m bench.report render reports/smoke/results.json`` re-renders ``REPORT.md`` and the plots
after a change to this module. Missing optional data (no latency, no backend agreement, no per-layer
errors) reads "n/a" or a one-line note; it never stops the report.

Command line::

    python -m bench.report render RESULTS_JSON [--out-dir DIR]
    python -m bench.report compare A B [--out FILE] [--threshold-pp X] [--all]

``A`` and ``B`` may each be a ``results.json`` or a ``baselines/<tier>.json``. ``compare`` exits
with status 3 when a case regressed from A to B (see :mod:`bench.compare`), so it can gate CI.

Sizes use decimal units throughout (1 KB = 1000 B, 1 MB = 1000 KB), as file managers and the
reference report do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench import atomic
from bench import report_baseline as against
from bench.errors import BenchError, ReportError

SCHEMA_VERSION = 2
# Schema 1 (before per-image records and baseline verdicts) still renders: what it lacks reads
# "n/a" or a one-line note, like any other missing optional data.
OLDEST_SCHEMA_VERSION = 1
REPORT_FILE = "REPORT.md"
NOT_AVAILABLE = "n/a"

# Display order; names not listed here (a model added later) follow in alphabetical order.
MODEL_ORDER = ("cnn", "mobilenet", "vgg16")
MODE_ORDER = ("float32", "ptq_dynamic", "ptq_float16", "ptq_int16x8", "ptq_int8", "qat_int8")
BACKEND_ORDER = ("keras", "litert", "onnxruntime")
STATUS_ORDER = ("passed", "failed", "skipped")
MODEL_DISPLAY_NAMES = {"cnn": "Normal CNN", "mobilenet": "MobileNet", "vgg16": "VGG16"}

# The headline reads the deployable artifact: LiteRT is what ships to devices. Keras is the
# fallback for float32 only, so a run without LiteRT still shows its float accuracy.
HEADLINE_BACKEND = "litert"
HEADLINE_FLOAT_FALLBACK_BACKEND = "keras"

# Five layers per model is enough to see where the error starts without flooding the report.
WORST_LAYERS_SHOWN = 5

# The report this project reproduces and beats (see the project guide, section 2). Its sizes are
# kept in MB with the digits it printed; it reported no PTQ accuracy.
REFERENCE_SOURCE = "reference report"
REFERENCE_REPORT = (
    {"model": "Normal CNN", "params": 20_426, "float_accuracy_pct": 88.37,
     "qat_int8_accuracy_pct": 87.30, "float_size_mb": 0.9174, "int8_size_mb": 0.233},
    {"model": "MobileNet", "params": 3_251_259, "float_accuracy_pct": 85.72,
     "qat_int8_accuracy_pct": 83.11, "float_size_mb": 12.71, "int8_size_mb": 3.36},
    {"model": "VGG16", "params": 14_781_642, "float_accuracy_pct": 82.20,
     "qat_int8_accuracy_pct": 71.82, "float_size_mb": 57.63, "int8_size_mb": 15.37},
)

HOW_TO_MAKE_RESULTS = "run `nox -s bench` first (or pass the path of an existing results.json)"


# --------------------------------------------------------------------------------------------
# Reading results


def load_results(path: str | os.PathLike[str]) -> dict:
    """Reads and validates a ``results.json``.

    Args:
        path: The results file.

    Returns:
        The parsed results, unchanged.

    Raises:
        ReportError: The file is missing or unreadable, is not valid JSON, is of another schema
            than this version reads, or has no list of cases. The message says what to do.
    """
    results = read_versioned_json(path, kind="results file", how_to_make=HOW_TO_MAKE_RESULTS)
    cases = results.get("cases")
    if not isinstance(cases, list):
        raise ReportError(
            f"{path} has no list of 'cases'; it is not a results.json of this harness: "
            f"{HOW_TO_MAKE_RESULTS}"
        )
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise ReportError(
                f"{path}: case #{index} is not an object with a string 'id'; the file is damaged: "
                "rerun `nox -s bench`"
            )
    return results


def read_versioned_json(path: str | os.PathLike[str], kind: str, how_to_make: str) -> dict:
    """Reads a JSON object that carries a ``"schema"`` this version reads.

    Shared by results and baselines files, which follow the same versioning rule: a reader
    refuses a schema it does not know rather than misread it (as asv does with its ``version``).

    Args:
        path: The file.
        kind: What the file is, for messages ("results file", "baselines file").
        how_to_make: What the user should do to get a good file, appended to messages.

    Returns:
        The parsed object.

    Raises:
        ReportError: Missing, unreadable, invalid JSON, not an object, or another schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{kind} {path} does not exist: {how_to_make}") from None
    except IsADirectoryError:
        raise ReportError(f"{kind} {path} is a folder, not a file: {how_to_make}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read {kind} {path} ({error}): {how_to_make}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{kind} {path} is not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}); an interrupted run may have truncated it: {how_to_make}"
        ) from None
    if not isinstance(document, dict):
        raise ReportError(f"{kind} {path} holds a JSON {type(document).__name__}, not an object: "
                          f"{how_to_make}")
    check_schema(document.get("schema", None), path, kind, how_to_make)
    return document


def check_schema(schema: Any, path: Path, kind: str, how_to_make: str) -> None:
    """Raises ReportError unless ``schema`` is a version this module reads."""
    # bool is an int in Python; `true` must not pass for schema 1.
    is_integer = isinstance(schema, int) and not isinstance(schema, bool)
    if is_integer and OLDEST_SCHEMA_VERSION <= schema <= SCHEMA_VERSION:
        return
    if schema is None:
        raise ReportError(f"{kind} {path} has no 'schema' field; it was not written by this "
                          f"harness: {how_to_make}")
    if is_integer and schema > SCHEMA_VERSION:
        raise ReportError(
            f"{kind} {path} has schema {schema}: it was written by a newer version of the harness "
            f"(this version reads schemas {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}); update this "
            "checkout, or rerun "
            "`nox -s bench` with this version"
        )
    raise ReportError(f"{kind} {path} has unknown schema {schema!r} (this version reads schemas "
                      f"{OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}): {how_to_make}")


# --------------------------------------------------------------------------------------------
# Formatting: one function per kind of value, each returning "n/a" for a missing one.


def is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool, not None, not NaN)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def format_significant(value: float, digits: int = 3) -> str:
    """Formats with ``digits`` significant digits in fixed notation (no exponent).

    ``format(x, ".3g")`` switches to exponents (``1.53e+03``) and drops trailing zeros
    (``31``), which both read badly in a table column.
    """
    if value == 0:
        return "0"
    # Round first: 0.9996 must count its digits as 1.00, not as 0.9996 (which would give "1.000").
    rounded = float(f"{value:.{digits - 1}e}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def format_size(size_bytes: Any) -> str:
    """Formats a byte count with decimal units (1 KB = 1000 B) and 3 significant digits.

    Examples: ``512 B``, ``31.0 KB``, ``1.00 MB``, ``59.1 MB``.
    """
    if not is_number(size_bytes):
        return NOT_AVAILABLE
    if abs(size_bytes) < 1000:
        return f"{size_bytes:.0f} B"
    value = float(size_bytes)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        text = format_significant(value)
        # 999,600 B rounds to "1000 KB": move up a unit instead.
        if abs(float(text)) < 1000:
            return f"{text} {unit}"
    return f"{format_significant(value / 1000)} TB"


def format_signed_size(delta_bytes: Any) -> str:
    """A size change with its sign, e.g. ``+1.20 KB`` or ``-512 B``."""
    if not is_number(delta_bytes):
        return NOT_AVAILABLE
    sign = "+" if delta_bytes > 0 else "-" if delta_bytes < 0 else ""
    return sign + format_size(abs(delta_bytes))


def format_percent(fraction: Any) -> str:
    """A fraction 0..1 as a percentage with 2 decimals, without the sign: ``90.12``."""
    return f"{100 * fraction:.2f}" if is_number(fraction) else NOT_AVAILABLE


def format_pp(value: Any, signed: bool = False) -> str:
    """Percentage points with 2 decimals; ``signed`` adds ``+`` to positive values."""
    if not is_number(value):
        return NOT_AVAILABLE
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def format_drop_with_interval(drop_pp: Any, interval_pp: Any) -> str:
    """The accuracy drop with its paired 95 % interval: ``0.38 [0.05, 0.71]``."""
    if not is_number(drop_pp):
        return NOT_AVAILABLE
    has_interval = (isinstance(interval_pp, (list, tuple)) and len(interval_pp) == 2
                    and all(is_number(bound) for bound in interval_pp))
    if not has_interval:
        return f"{drop_pp:.2f}"
    low, high = interval_pp
    return f"{drop_pp:.2f} [{low:.2f}, {high:.2f}]"


def format_ratio(value: Any) -> str:
    """A ratio with 2 decimals and a multiplication sign: ``3.16x``."""
    return f"{value:.2f}x" if is_number(value) else NOT_AVAILABLE


def format_milliseconds(value: Any) -> str:
    """Latency with 3 significant digits: ``0.120``, ``12.3``, ``153``."""
    return format_significant(value) if is_number(value) else NOT_AVAILABLE


def format_throughput(value: Any) -> str:
    """Images per second, whole, with thousands separators: ``25,000``."""
    return f"{value:,.0f}" if is_number(value) else NOT_AVAILABLE


def format_count(value: Any) -> str:
    """An integer with thousands separators: ``3,251,259``."""
    return f"{value:,.0f}" if is_number(value) else NOT_AVAILABLE


def format_scientific(value: Any) -> str:
    """A small magnitude with 2 significant digits: ``1.2e-05``."""
    return f"{value:.2g}" if is_number(value) else NOT_AVAILABLE


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A github-format table whose cells are shown exactly as given.

    ``disable_numparse`` keeps tabulate from re-reading "0.120" as 0.12 and dropping the digits
    chosen on purpose; pipes are escaped because they would split a cell in markdown.
    """
    cells = [[str(cell).replace("|", "\\|") for cell in row] for row in rows]
    return tabulate(cells, headers=list(headers), tablefmt="github", disable_numparse=True)


# --------------------------------------------------------------------------------------------
# Looking things up in results


def order_key(name: str, known_order: Sequence[str]) -> tuple[int, str]:
    """Sort key: names in ``known_order`` first, in that order, then the rest alphabetically."""
    return (known_order.index(name), "") if name in known_order else (len(known_order), name)


def case_parts(case: Mapping[str, Any]) -> tuple[str, str, str]:
    """The (model, mode, backend) of a case, read from its fields or else from its id.

    Ids are ``model-mode-backend`` and no name holds a hyphen, so the id is a safe fallback.
    """
    from_id = (str(case.get("id", "")).split("-") + ["?", "?", "?"])[:3]
    return (str(case.get("model") or from_id[0]), str(case.get("mode") or from_id[1]),
            str(case.get("backend") or from_id[2]))


def case_sort_key(case: Mapping[str, Any]) -> tuple:
    """Orders cases by model, then mode, then backend."""
    model, mode, backend = case_parts(case)
    return (order_key(model, MODEL_ORDER), order_key(mode, MODE_ORDER),
            order_key(backend, BACKEND_ORDER))


def sorted_cases(results: Mapping[str, Any]) -> list[dict]:
    """The cases of ``results`` in model, mode, backend order."""
    return sorted(results.get("cases") or [], key=case_sort_key)


def find_case(results: Mapping[str, Any], model: str, mode: str, backend: str) -> dict | None:
    """The case with these names that has an accuracy (a skipped case has none), or None."""
    for case in results.get("cases") or []:
        if case_parts(case) == (model, mode, backend) and is_number(case.get("accuracy")):
            return case
    return None


def model_names(results: Mapping[str, Any]) -> list[str]:
    """Every model named in ``results``, in display order."""
    names = set((results.get("models") or {}).keys())
    names.update(case_parts(case)[0] for case in results.get("cases") or [])
    return sorted(names, key=lambda name: order_key(name, MODEL_ORDER))


def model_params(results: Mapping[str, Any], model: str) -> Any:
    """The model's parameter count, from ``models`` or else from any of its cases."""
    params = ((results.get("models") or {}).get(model) or {}).get("params")
    if is_number(params):
        return params
    for case in results.get("cases") or []:
        if case_parts(case)[0] == model and is_number(case.get("params")):
            return case["params"]
    return None


def display_name(model: str) -> str:
    """The name the reference report used for a model, or the registry name."""
    return MODEL_DISPLAY_NAMES.get(model, model)


# --------------------------------------------------------------------------------------------
# Sections


def render_title(results: Mapping[str, Any]) -> str:
    """Title with tier and date, then what produced the results and on how many images."""
    tier = results.get("tier") or NOT_AVAILABLE
    created = str(results.get("created") or NOT_AVAILABLE)
    date = created[:10] if created != NOT_AVAILABLE else created
    lines = [f"# Quantization benchmark report: tier `{tier}`, {date}", ""]
    command = results.get("command")
    command_text = f"`{command}`" if command else NOT_AVAILABLE
    lines.append(f"Command: {command_text}; created {created}; "
                 f"{format_count(results.get('n_test'))} test images.")
    lines.append("")
    lines.append(render_status_summary(results.get("cases") or []))
    return "\n".join(lines)


def render_status_summary(cases: Sequence[Mapping[str, Any]]) -> str:
    """One line counting the cases per status, e.g. "12 cases: 10 passed, 1 failed, 1 skipped"."""
    counts: dict[str, int] = {}
    for case in cases:
        status = str(case.get("status") or "unknown")
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{counts[status]} {status.replace('_', ' ')}"
             for status in sorted(counts, key=lambda name: order_key(name, STATUS_ORDER))]
    return f"{len(cases)} cases: {', '.join(parts) if parts else 'none'}."


def headline_row(results: Mapping[str, Any], model: str) -> list[str]:
    """One model's headline: float, QAT and PTQ int8 accuracy, sizes and size ratio."""
    float_case = find_case(results, model, "float32", HEADLINE_BACKEND)
    float_accuracy = format_percent_cell(float_case)
    if float_case is None:
        float_case = find_case(results, model, "float32", HEADLINE_FLOAT_FALLBACK_BACKEND)
        if float_case is not None:
            float_accuracy = f"{format_percent_cell(float_case)} ({HEADLINE_FLOAT_FALLBACK_BACKEND})"
    qat_case = find_case(results, model, "qat_int8", HEADLINE_BACKEND)
    ptq_case = find_case(results, model, "ptq_int8", HEADLINE_BACKEND)
    # Sizes come from LiteRT on both sides so the ratio compares like with like.
    float_litert = find_case(results, model, "float32", HEADLINE_BACKEND)
    float_size = float_litert.get("size_bytes") if float_litert else None
    if not is_number(float_size) and qat_case is not None:
        float_size = qat_case.get("float_size_bytes")
    int8_size = qat_case.get("size_bytes") if qat_case else None
    ratio = qat_case.get("size_ratio") if qat_case else None
    if not is_number(ratio) and is_number(float_size) and is_number(int8_size) and int8_size:
        ratio = float_size / int8_size
    return [display_name(model), format_count(model_params(results, model)), float_accuracy,
            format_percent_cell(qat_case), format_percent_cell(ptq_case),
            format_size(float_size), format_size(int8_size), format_ratio(ratio)]


def format_percent_cell(case: Mapping[str, Any] | None) -> str:
    """A case's accuracy as ``90.12 %``, the way the reference report wrote it."""
    if case is None or not is_number(case.get("accuracy")):
        return NOT_AVAILABLE
    return f"{format_percent(case['accuracy'])} %"


HEADLINE_HEADERS = ("model", "parameters", "float accuracy", "QAT int8 accuracy",
                    "PTQ int8 accuracy", "float size", "int8 size (QAT)", "size ratio")


def reference_rows() -> list[list[str]]:
    """The reference report's table in the headline's layout, with its own printed digits."""
    rows = []
    for entry in REFERENCE_REPORT:
        ratio = entry["float_size_mb"] / entry["int8_size_mb"]
        rows.append([entry["model"], format_count(entry["params"]),
                     f"{entry['float_accuracy_pct']:.2f} %", f"{entry['qat_int8_accuracy_pct']:.2f} %",
                     "not reported", f"{entry['float_size_mb']:g} MB", f"{entry['int8_size_mb']:g} MB",
                     format_ratio(ratio)])
    return rows


def render_headline(results: Mapping[str, Any]) -> str:
    """The headline table, then the reference report's table in the same layout."""
    rows = [headline_row(results, model) for model in model_names(results)]
    return "\n".join([
        "## Headline",
        "",
        f"Accuracy on the test images, artifacts run on {HEADLINE_BACKEND} (float accuracy falls "
        f"back to {HEADLINE_FLOAT_FALLBACK_BACKEND} where {HEADLINE_BACKEND} has none, and says so). "
        "Sizes are the LiteRT files in decimal units (1 KB = 1000 B, 1 MB = 1000 KB); the ratio is "
        "float size / QAT int8 size.",
        "",
        markdown_table(HEADLINE_HEADERS, rows) if rows else "No models in these results.",
        "",
        f"For comparison, the {REFERENCE_SOURCE} this project set out to beat:",
        "",
        markdown_table(HEADLINE_HEADERS, reference_rows()),
    ])


MATRIX_HEADERS = ("model", "mode", "backend", "accuracy %", "drop pp [95 % CI]", "size",
                  "size ratio", "latency ms (b1)", "throughput img/s", "speedup", "status")


def matrix_row(case: Mapping[str, Any]) -> list[str]:
    """One case of the full matrix."""
    model, mode, backend = case_parts(case)
    return [model, mode, backend, format_percent(case.get("accuracy")),
            format_drop_with_interval(case.get("accuracy_drop_pp"), case.get("drop_ci95_pp")),
            format_size(case.get("size_bytes")), format_ratio(case.get("size_ratio")),
            format_milliseconds(case.get("latency_ms_b1")),
            format_throughput(case.get("throughput_ips")),
            format_ratio(case.get("speedup_vs_float")), format_status(case.get("status"))]


def format_status(status: Any) -> str:
    """The status, with failures in bold so they stand out in a long table."""
    text = str(status or "unknown").replace("_", " ")
    return f"**{text}**" if status == "failed" else text


def render_full_matrix(results: Mapping[str, Any]) -> str:
    """Every case: accuracy, drop with its interval, size, latency, throughput and status."""
    cases = sorted_cases(results)
    body = (markdown_table(MATRIX_HEADERS, [matrix_row(case) for case in cases])
            if cases else "No cases in these results.")
    carried = sorted({case["timings_from"] for case in cases if case.get("timings_from")})
    note = ([f"Timings of {sum(1 for c in cases if c.get('timings_from'))} cases were measured by an "
             f"earlier run on this machine ({', '.join(carried)}) for the same case definitions; this "
             "run did not time them.", ""] if carried else [])
    # Accuracies of batch-1 cases are the deployed ones, not the batched pass's: say which they are.
    batch_notes = [against.batch_one_note(cases), against.batch_invariance_note(cases)]
    note += [" ".join(text for text in batch_notes if text), ""] if any(batch_notes) else []
    return "\n".join([
        "## Full matrix",
        "",
        "Drop: float32 accuracy minus this accuracy on the same backend, in percentage points, "
        "with its paired 95 % interval. Size ratio and speedup are relative to float32 on the same "
        "backend. Latency at batch 1; sizes in decimal units (1 KB = 1000 B).",
        "",
        *note,
        body,
    ])


AGREEMENT_HEADERS = ("model", "mode", "backends", "accuracy % (each)", "difference pp",
                     "top-1 agreement %", "max abs logit diff", "size (each)")


def agreement_comparisons(entry: Mapping[str, Any]) -> list[dict]:
    """The backend comparisons of one agreement entry, each with its own ``backends`` list.

    An entry is either one comparison (``backends``, ``top1_agreement``, ``max_abs_logit_diff``
    at its top level) or, as the session writes it, per-model-and-mode figures (``accuracy``,
    ``size_bytes`` per backend) with a list of ``pairs``; each pair becomes one comparison.
    """
    pairs = entry.get("pairs")
    if not isinstance(pairs, list):
        return [dict(entry)]
    return [{**entry, **pair} for pair in pairs if isinstance(pair, dict)]


def agreement_row(entry: Mapping[str, Any]) -> list[str]:
    """One pair (or group) of backends run on the same model and mode."""
    backends = [str(name) for name in entry.get("backends") or []]
    accuracy = entry.get("accuracy") if isinstance(entry.get("accuracy"), dict) else {}
    sizes = entry.get("size_bytes") if isinstance(entry.get("size_bytes"), dict) else {}
    accuracies = [accuracy.get(name) for name in backends]
    measured = [value for value in accuracies if is_number(value)]
    # Spread rather than a signed difference so that three or more backends read the same way.
    spread = 100 * (max(measured) - min(measured)) if len(measured) >= 2 else None
    return [str(entry.get("model", NOT_AVAILABLE)), str(entry.get("mode", NOT_AVAILABLE)),
            " vs ".join(backends) or NOT_AVAILABLE,
            " / ".join(format_percent(value) for value in accuracies) or NOT_AVAILABLE,
            format_pp(spread), format_percent(entry.get("top1_agreement")),
            format_scientific(entry.get("max_abs_logit_diff")),
            " / ".join(format_size(sizes.get(name)) for name in backends) or NOT_AVAILABLE]


def render_backend_comparison(results: Mapping[str, Any]) -> str:
    """The same model and mode on different backends: do they agree, and at what size?"""
    entries = [comparison for entry in results.get("agreement") or [] if isinstance(entry, dict)
               for comparison in agreement_comparisons(entry)]
    if not entries:
        return "## Backend comparison\n\nNo backend agreement was measured in this run."
    entries.sort(key=lambda entry: (order_key(str(entry.get("model")), MODEL_ORDER),
                                    order_key(str(entry.get("mode")), MODE_ORDER)))
    return "\n".join([
        "## Backend comparison",
        "",
        "Each row runs the same model and mode on several backends over the same test images. "
        "Values listed per backend are in the order of the backends column; the difference is the "
        "largest minus the smallest accuracy.",
        "",
        markdown_table(AGREEMENT_HEADERS, [agreement_row(entry) for entry in entries]),
    ])


def snr_sort_key(layer: Mapping[str, Any]) -> float:
    """Sort key putting the lowest SNR first, and layers without a number last.

    An exact layer has an infinite SNR, which sorts last too, as it should.
    """
    snr = layer.get("snr_db")
    is_real = isinstance(snr, (int, float)) and not isinstance(snr, bool) and not math.isnan(snr)
    return float(snr) if is_real else math.inf


def format_snr(snr: Any) -> str:
    """SNR in dB with one decimal; ``inf`` for an exact layer."""
    if isinstance(snr, float) and math.isinf(snr):
        return "inf"
    return f"{snr:.1f}" if is_number(snr) else NOT_AVAILABLE


# Modes whose per-layer error against float includes training drift, not only quantization.
DRIFTING_MODES = ("qat_int8",)


def worst_case_per_model(layer_errors: Mapping[str, Any],
                         results: Mapping[str, Any]) -> dict[str, str]:
    """For each model, the case id whose lowest layer SNR is the lowest of that model's cases.

    QAT cases do not compete: their layers are compared with the float model *before*
    fine-tuning, so their SNR mixes fine-tuning drift with quantization error (measured: the
    smoke mobilenet's QAT logits sit at 7.6 dB against float, 29.6 dB against the QAT model).
    """
    by_id = {case["id"]: case for case in results.get("cases") or []}
    worst: dict[str, tuple[float, str]] = {}
    for case_id, layers in layer_errors.items():
        if not isinstance(layers, list) or not layers:
            continue
        model, mode, _ = case_parts(by_id.get(case_id, {"id": case_id}))
        if mode in DRIFTING_MODES:
            continue
        lowest = min(snr_sort_key(layer) for layer in layers if isinstance(layer, dict))
        if model not in worst or (lowest, case_id) < worst[model]:
            worst[model] = (lowest, case_id)
    return {model: worst[model][1]
            for model in sorted(worst, key=lambda name: order_key(name, MODEL_ORDER))}


def render_worst_layers(results: Mapping[str, Any]) -> str:
    """The layers that lose the most signal to quantization, for each model's worst case."""
    layer_errors = results.get("layer_errors") or {}
    worst = worst_case_per_model(layer_errors, results) if isinstance(layer_errors, dict) else {}
    if not worst:
        return "## Worst layers by quantization error\n\nNo per-layer errors were measured in this run."
    rows = []
    for model, case_id in worst.items():
        layers = sorted((layer for layer in layer_errors[case_id] if isinstance(layer, dict)),
                        key=snr_sort_key)
        for layer in layers[:WORST_LAYERS_SHOWN]:
            snr, rel = layer.get("snr_db"), layer.get("rel_error")
            rows.append([model, case_id, str(layer.get("layer", NOT_AVAILABLE)),
                         format_snr(snr),
                         format_significant(rel) if is_number(rel) else NOT_AVAILABLE])
    return "\n".join([
        "## Worst layers by quantization error",
        "",
        f"For each model, the case whose lowest per-layer SNR is lowest, and its "
        f"{WORST_LAYERS_SHOWN} lowest-SNR layers (SNR of the quantized layer output against float; "
        "higher is better, 20 dB is about 10 % relative error).",
        "",
        markdown_table(("model", "case", "layer", "SNR dB", "relative error"), rows),
    ])


def render_failures(results: Mapping[str, Any]) -> str:
    """Failed gates with their messages (a regression against the baseline among them), and skips."""
    cases = sorted_cases(results)
    failed = [case for case in cases if case.get("status") == "failed"]
    skipped = [case for case in cases if case.get("status") == "skipped"]
    lines = ["## Failures and regressions", ""]
    if not failed:
        lines.append("No failed gates.")
    for case in failed:
        lines.append(f"- `{case['id']}` failed:")
        messages = [str(message) for message in case.get("failures") or []]
        lines.extend(f"  - {message}" for message in messages or ["(no message recorded)"])
    if skipped:
        lines.extend(["", "Skipped:", ""])
        lines.extend(f"- `{case['id']}`: {case.get('skip_reason') or 'no reason recorded'}"
                     for case in skipped)
    return "\n".join(lines)


AGAINST_BASELINE = "## Against the baseline"


def render_against_baseline(results: Mapping[str, Any]) -> str:
    """Each case's verdict against its baseline: a count, the rule, then one row per case."""
    cases = against.judged_cases(sorted_cases(results))
    if not cases:
        return f"{AGAINST_BASELINE}\n\nNo case in these results was judged against a baseline."
    shared, rows = against.baseline_rows(cases)
    lines = [AGAINST_BASELINE, "", against.count_verdicts(case["baseline_verdict"] for case in cases), ""]
    # Without a single comparison (a first run, or baselines without per-image records) the rule
    # would explain numbers the table does not have.
    if any(case.get("baseline_comparison") for case in cases):
        lines += [against.decision_rule(cases), ""]
    if shared:
        lines += [f"Differences from the baseline that every compared case shares "
                  f"(\"{against.SHARED_CAUSES_MARK}\" in the table): {'; '.join(shared)}.", ""]
    lines.append(markdown_table(against.BASELINE_HEADERS, rows))
    return "\n".join(lines)


LOST_IMAGES = "lost_images"


def render_lost_images(results: Mapping[str, Any], plot_names: Mapping[str, str] | None) -> str:
    """The picture of the images the worst int8 case lost against float32, under its name."""
    lost = results.get(LOST_IMAGES)
    images = lost.get("images") if isinstance(lost, Mapping) else None
    if not images:
        return ("## Images lost to int8\n\nNo int8 case lost an image that float32 classified "
                "correctly in these results.")
    case, float_case = lost.get("case", NOT_AVAILABLE), lost.get("float_case", NOT_AVAILABLE)
    positions = ", ".join(str(image.get("position", "?")) for image in images
                          if isinstance(image, Mapping))
    total = lost.get("images_lost")
    shown = f"{len(images)} of the {format_count(total)}" if is_number(total) else f"{len(images)}"
    if plot_names is None:
        picture = "Plots were not drawn for this rendering."
    elif LOST_IMAGES in plot_names:
        picture = f"![Images {case} lost]({plot_names[LOST_IMAGES]})"
    else:
        picture = "Not drawn: these results hold no readable pixels for them."
    return "\n".join([
        f"## Images `{case}` lost against `{float_case}`",
        "",
        f"The int8 case with the largest drop: {shown} test images that `{float_case}` classifies "
        f"correctly and `{case}` does not, each titled with its true class and the int8 "
        f"prediction (test-set positions {positions}).",
        "",
        picture,
    ])


def flatten_environment(environment: Mapping[str, Any], prefix: str = "") -> list[list[str]]:
    """Environment entries as (key, value) rows; nested objects become dotted keys.

    A dict of booleans (the CPU flags) stays one row, ``avx2 yes, avx_vnni no``, which reads
    better than one row per flag.
    """
    rows = []
    for key, value in environment.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(v, bool) for v in value.values()):
            rows.append([name, ", ".join(f"{flag} {'yes' if on else 'no'}"
                                         for flag, on in value.items())])
        elif isinstance(value, dict):
            rows.extend(flatten_environment(value, prefix=f"{name}."))
        elif isinstance(value, bool):
            rows.append([name, "yes" if value else "no"])
        else:
            rows.append([name, NOT_AVAILABLE if value is None else str(value)])
    return rows


def render_environment(results: Mapping[str, Any]) -> str:
    """The fingerprint of the machine, the packages and the data the results came from."""
    rows = flatten_environment(results.get("environment") or {})
    rows += [["dataset sha256", str(results.get("dataset_sha256") or NOT_AVAILABLE)],
             ["test images", format_count(results.get("n_test"))],
             ["tier", str(results.get("tier") or NOT_AVAILABLE)],
             ["created", str(results.get("created") or NOT_AVAILABLE)],
             ["command", str(results.get("command") or NOT_AVAILABLE)]]
    rows += model_training_rows(results)
    return "\n".join(["## Environment", "", markdown_table(("item", "value"), rows)])


def model_training_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Per model: training time, or that a cached model was reused (which hides the cost)."""
    rows = []
    models = results.get("models") or {}
    for model in sorted(models, key=lambda name: order_key(name, MODEL_ORDER)):
        info = models[model] or {}
        seconds = info.get("train_seconds")
        timing = f"{seconds:.1f} s" if is_number(seconds) else NOT_AVAILABLE
        source = "cached" if info.get("cached") else "trained"
        rows.append([f"model {model}", f"{source}, {timing}"])
    return rows


# Titles for the plot files that bench.plots draws, by key; kept here so that rendering markdown
# does not import matplotlib.
PLOT_TITLES = {
    "accuracy_vs_size": "Accuracy vs artifact size",
    "speedup": "int8 speedup vs float32",
    "layer_error": "Per-layer SNR of the worst case",
}


def render_plots(plot_names: Mapping[str, str] | None) -> str:
    """Inline images of the plots, by relative file name, and a note for those not drawn."""
    lines = ["## Plots", ""]
    if plot_names is None:
        lines.append("Plots were not drawn for this rendering.")
        return "\n".join(lines)
    for key, title in PLOT_TITLES.items():
        if key in plot_names:
            lines.append(f"### {title}\n\n![{title}]({plot_names[key]})\n")
        else:
            lines.append(f"### {title}\n\nNot drawn: these results hold no data for it.\n")
    # The lost images are shown in their own section, under a heading that names the case.
    for key in sorted(set(plot_names) - set(PLOT_TITLES) - {LOST_IMAGES}):
        lines.append(f"### {key}\n\n![{key}]({plot_names[key]})\n")
    return "\n".join(lines).rstrip()


def speed_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per int8 case with a measured speedup against float32 on its backend."""
    rows = []
    for case in sorted_cases(results):
        model, mode, backend = case_parts(case)
        if mode == "float32" or not is_number(case.get("speedup_vs_float")):
            continue
        reference = find_case(results, model, "float32", backend) or {}
        target = case.get("speedup_target")
        rows.append([
            model, mode, backend,
            format_milliseconds(reference.get("latency_ms_b1")),
            format_milliseconds(case.get("latency_ms_b1")),
            format_ratio(case["speedup_vs_float"]),
            format_ratio(target) if is_number(target) else "n/a",
            case.get("speedup_gate") or "n/a",
        ])
    return rows


def harness_rows(results: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, entry in sorted((results.get("harness") or {}).items()):
        if isinstance(entry, Mapping) and is_number(entry.get("ratio")):
            rows.append([name, format_count(entry.get("images")), f"{entry.get('raw_s', 0):.3f}",
                         f"{entry.get('harness_s', 0):.3f}", format_ratio(entry["ratio"])])
    return rows


def render_speed(results: Mapping[str, Any]) -> str:
    """int8 against float32 at batch 1 (interleaved timing), and the harness's own overhead."""
    rows = speed_rows(results)
    if not rows:
        return "## int8 speed\n\nNo latency was measured in this run (run `nox -s bench`)."
    lines = [
        "## int8 speed",
        "",
        "Batch 1, one thread; float32 and int8 timed in turn each round (medians), so machine drift "
        "cancels in the speedup. Targets are the project's benchmark goals, not test assertions; the "
        "gate column says what the test asserted.",
        "",
        markdown_table(("model", "mode", "backend", "float32 ms", "int8 ms", "speedup", "target", "gate"), rows),
    ]
    overhead = harness_rows(results)
    if overhead:
        lines += ["", "Harness overhead: evaluating the test images through the harness against the raw "
                  "batched interpreter loop (limit 1.25x).", "",
                  markdown_table(("measurement", "images", "raw s", "harness s", "ratio"), overhead)]
    return "\n".join(lines)


def render_markdown(results: Mapping[str, Any], plot_names: Mapping[str, str] | None = None) -> str:
    """Renders the whole report.

    Args:
        results: A results dict as :func:`load_results` returns it.
        plot_names: Plot key (see ``PLOT_TITLES``) to file name relative to the report, for the
            plots that were drawn; None when no plots were drawn at all.

    Returns:
        Markdown text ending with a newline.
    """
    sections = [render_title(results), render_headline(results), render_full_matrix(results),
                render_speed(results), render_backend_comparison(results), render_worst_layers(results),
                render_lost_images(results, plot_names), render_against_baseline(results),
                render_failures(results), render_environment(results), render_plots(plot_names)]
    return "\n\n".join(sections) + "\n"


# --------------------------------------------------------------------------------------------
# Writing


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, never half.

    Goes through :mod:`bench.atomic` (temporary file beside the target, fsync, ``os.replace``),
    like everything else the harness keeps; this adds only an error that names the folder.

    Raises:
        ReportError: The folder cannot be created or written; the message names it.
    """
    path = Path(path)
    try:
        atomic.write_bytes(path, data)
    except OSError as error:
        raise unwritable_folder(path.parent, error) from None
    return path


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_bytes_atomically` for UTF-8 text."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def unwritable_folder(folder: Path, error: OSError) -> ReportError:
    """The error for a folder the report cannot be written into."""
    return ReportError(
        f"cannot write into the folder {folder} ({error.strerror or error}); choose a writable "
        "folder with --out-dir, or fix its permissions"
    )


def ensure_folder(folder: Path) -> None:
    """Creates ``folder`` if needed; raises ReportError naming it if that is impossible."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable_folder(folder, error) from None
    if not folder.is_dir():
        raise ReportError(f"{folder} exists and is not a folder; choose another with --out-dir")


def write_report(results_path: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Renders REPORT.md and its plots from a results file.

    Args:
        results_path: The ``results.json`` to render.
        out_dir: Where to write; by default the folder holding ``results.json``.

    Returns:
        The path of the written REPORT.md.

    Raises:
        ReportError: The results cannot be read, or the folder cannot be written.
    """
    results = load_results(results_path)
    folder = Path(out_dir) if out_dir is not None else Path(results_path).parent
    ensure_folder(folder)
    # Imported here: matplotlib takes a while to import, and nothing else here needs it.
    from bench import plots

    plot_paths = plots.draw_all(results, folder)
    plot_names = {key: path.name for key, path in plot_paths.items()}
    return write_text_atomically(folder / REPORT_FILE, render_markdown(results, plot_names))


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench.report`` argument parser."""
    from bench.compare import DEFAULT_THRESHOLD_PP, REGRESSED_EXIT_STATUS

    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Render a benchmark report, or compare two results or baselines files.")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="re-render REPORT.md and plots from results.json")
    render.add_argument("results", help="path of a results.json")
    render.add_argument("--out-dir", default=None,
                        help="folder to write into (default: the folder of results.json)")
    compare = commands.add_parser(
        "compare", help="compare two results.json or baselines files (A = before, B = after)",
        description="Judge every case of B against A image by image (paired verdicts) and list "
                    "the metrics that changed.",
        epilog=f"Exit status: 0 when no case regressed, {REGRESSED_EXIT_STATUS} when a case is "
               "'regressed' from A to B (the table is printed or written first), 1 when a file "
               "cannot be read or written. Use it to gate CI.")
    compare.add_argument("before", help="results.json or baselines/<tier>.json: the old side")
    compare.add_argument("after", help="results.json or baselines/<tier>.json: the new side")
    compare.add_argument("--out", default=None, help="write the markdown here instead of stdout")
    compare.add_argument("--threshold-pp", type=float, default=DEFAULT_THRESHOLD_PP,
                         help="accuracy and drop changes below this many percentage points are "
                              "never significant; a case with per-image records on both sides "
                              "takes its accuracy's significance from its paired verdict "
                              f"(default {DEFAULT_THRESHOLD_PP})")
    compare.add_argument("--all", action="store_true",
                         help="also list identical cases and metrics that did not change")
    return parser


def run_compare(args: argparse.Namespace) -> int:
    """The ``compare`` command: prints or writes the comparison; returns the exit status."""
    from bench.compare import REGRESSED_EXIT_STATUS, compare, load_comparable, render_compare

    comparison = compare(load_comparable(args.before), load_comparable(args.after),
                         threshold_pp=args.threshold_pp)
    text = render_compare(comparison, include_unchanged=args.all, threshold_pp=args.threshold_pp)
    if args.out:
        out = Path(args.out)
        ensure_folder(out.parent)
        write_text_atomically(out, text)
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    if not comparison.regressed:
        return 0
    # On stderr as well: a CI log shows why the step failed without opening the --out file.
    print(f"regressed from {args.before} to {args.after}: {', '.join(comparison.regressed)}",
          file=sys.stderr)
    return REGRESSED_EXIT_STATUS


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    0: done (and, for ``compare``, no case regressed); 1: an error the user can fix; for
    ``compare``, ``bench.compare.REGRESSED_EXIT_STATUS`` when a case regressed.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            print(f"wrote {write_report(args.results, args.out_dir)}")
            return 0
        return run_compare(args)
    except BenchError as error:
        # Errors of the harness say what to do; a traceback would only bury that.
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
