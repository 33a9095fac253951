"""REPORT.md, rendered from a results dict: the title, the tables of numbers, and the whole.

A report never needs the bench to run again: everything it shows comes from the results, so a
change here is checked by re-rendering (``python -m bench.report render``). Missing optional data
(no latency, no backend agreement, no per-layer errors) reads "n/a" or a one-line note; it never
stops the report. The sections that explain the numbers are in
:mod:`bench.report.sections_diagnostics` and :mod:`bench.report.sections_baseline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.backends import EVAL_BATCH
from bench.models import MODELS
from bench.report.format import (
    NOT_AVAILABLE,
    format_count,
    format_drop_with_interval,
    format_milliseconds,
    format_percent,
    format_pp,
    format_ratio,
    format_scientific,
    format_size,
    format_throughput,
    is_number,
    markdown_table,
)
from bench.report.lookup import find_case, model_names, model_params, sorted_cases
from bench.report.sections_baseline import render_against_baseline
from bench.report.sections_diagnostics import (
    render_environment,
    render_failures,
    render_lost_images,
    render_plots,
    render_portability,
    render_worst_layers,
)
from bench.report.sections_provenance import (
    earlier_mark,
    earlier_rows_note,
    render_baseline_history,
    render_not_run,
)
from bench.results import case_parts, mode_order_key, model_order_key, order_key

STATUS_ORDER = ("passed", "failed", "skipped")

# The headline reads the deployable artifact: LiteRT is what ships to devices. Keras is the
# fallback for float32 only, so a run without LiteRT still shows its float accuracy.
HEADLINE_BACKEND = "litert"
HEADLINE_FLOAT_FALLBACK_BACKEND = "keras"

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


def render_markdown(results: Mapping[str, Any], plot_names: Mapping[str, str] | None = None) -> str:
    """Renders the whole report.

    Args:
        results: A results dict as :func:`bench.results.load_results` returns it.
        plot_names: Plot key (see :data:`bench.report.sections_diagnostics.PLOT_TITLES`) to file
            name relative to the report, for the plots that were drawn; None when no plots were
            drawn at all.

    Returns:
        Markdown text ending with a newline.
    """
    sections = [render_title(results), render_headline(results), render_models(results),
                render_full_matrix(results),
                render_speed(results), render_backend_comparison(results), render_portability(results),
                render_worst_layers(results),
                render_lost_images(results, plot_names), render_against_baseline(results),
                render_not_run(results), render_baseline_history(results),
                render_failures(results), render_environment(results), render_plots(plot_names)]
    return "\n\n".join(section for section in sections if section is not None) + "\n"


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
    lines += testbed_lines(results)
    lines += earlier_rows_note(results)
    status = render_status_summary(results.get("cases") or [])
    not_run = len(results.get("not_run") or [])
    if not_run:  # baseline cases of the selection that did not run: listed under "Not run"
        status = status[:-1] + f"; {not_run} baseline {'case' if not_run == 1 else 'cases'} not run."
    lines.append(status)
    return "\n".join(lines)


def testbed_lines(results: Mapping[str, Any]) -> list[str]:
    """The testbed (CPU class) the run measured on and the baseline it was judged against."""
    testbed = results.get("testbed")
    if not testbed:
        return []
    cpu = (results.get("environment") or {}).get("cpu") or {}
    lines = [f"Testbed: `{testbed}` ({cpu.get('model', NOT_AVAILABLE)}, {cpu.get('cores', '?')} cores; "
             "see `bench/testbeds.py`)."]
    note = (results.get("baseline") or {}).get("note")
    if note:
        lines.append(f"Baseline: {note}.")
    return [" ".join(lines), ""]


def render_status_summary(cases: Sequence[Mapping[str, Any]]) -> str:
    """One line counting the cases per status, e.g. "12 cases: 10 passed, 1 failed, 1 skipped"."""
    counts: dict[str, int] = {}
    for case in cases:
        status = str(case.get("status") or "unknown")
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{counts[status]} {status.replace('_', ' ')}"
             for status in sorted(counts, key=lambda name: order_key(name, STATUS_ORDER))]
    return f"{len(cases)} cases: {', '.join(parts) if parts else 'none'}."


def headline_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One headline row per model, in report order (columns: ``HEADLINE_HEADERS``)."""
    return [headline_row(results, model) for model in model_names(results)]


def display_name(model: str) -> str:
    """The name reports show for a model (``ModelSpec.display_name``), or its registry name.

    The registry name also stands for a model this process has not registered: reports render
    results.json files of other packages' runs.
    """
    return (MODELS.get(model).display_name if model in MODELS else "") or model


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
    rows = headline_rows(results)
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


MODELS_HEADERS = ("model", "parameters", "validation accuracy %", "training", "weights")


def models_row(model: str, info: Mapping[str, Any]) -> list[str]:
    """One trained model: size, validation accuracy, training time and where its weights came from.

    Results written before ``weights`` was recorded say only whether the model was cached.
    """
    seconds, qat = info.get("train_seconds"), info.get("qat_seconds")
    training = f"{seconds:.1f} s" if is_number(seconds) else NOT_AVAILABLE
    if is_number(qat):
        training += f" (QAT {qat:.1f} s)"
    weights = info.get("weights") or {True: "cache", False: "trained in this run"}.get(info.get("cached"),
                                                                                      NOT_AVAILABLE)
    return [model, format_count(info.get("params")), format_percent(info.get("val_accuracy")), training,
            str(weights)]


def render_models(results: Mapping[str, Any]) -> str:
    """The trained models and where their weights came from (trained here, cache, or a bundle)."""
    models = results.get("models") or {}
    rows = [models_row(model, models[model] or {}) for model in sorted(models, key=model_order_key)]
    return "\n".join([
        "## Models",
        "",
        "Training time is what training took where the weights were made (a cached or bundled "
        "model was not trained by this run); weights trained on another testbed differ from this "
        "one's, so the weights column says where they came from (`python -m bench.bundle`).",
        "",
        markdown_table(MODELS_HEADERS, rows) if rows else "No models in these results.",
    ])


MATRIX_HEADERS = ("model", "mode", "backend", "accuracy %", "drop pp [95 % CI]", "size",
                  "size ratio", "latency ms (b1)", "throughput img/s", "speedup", "status")


def matrix_row(case: Mapping[str, Any]) -> list[str]:
    """One case of the full matrix."""
    model, mode, backend = case_parts(case)
    if case.get("int8_format"):  # the testbed's int8 format of the file (bench.backends.onnxruntime)
        backend = f"{backend} ({case['int8_format']})"
    return [model, mode, backend, format_percent(case.get("accuracy")),
            format_drop_with_interval(case.get("accuracy_drop_pp"), case.get("drop_ci95_pp")),
            format_size(case.get("size_bytes")), format_ratio(case.get("size_ratio")),
            format_milliseconds(case.get("latency_ms_b1")),
            format_throughput(case.get("throughput_ips")),
            format_ratio(case.get("speedup_vs_float")),
            format_status(case.get("status")) + (f" ({earlier_mark(case)})" if earlier_mark(case) else "")]


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
    batch_notes = [batch_one_note(cases), batch_invariance_note(cases)]
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
    entries.sort(key=lambda entry: (model_order_key(str(entry.get("model"))),
                                    mode_order_key(str(entry.get("mode")))))
    return "\n".join([
        "## Backend comparison",
        "",
        "Each row runs the same model and mode on several backends over the same test images. "
        "Values listed per backend are in the order of the backends column; the difference is the "
        "largest minus the smallest accuracy.",
        "",
        markdown_table(AGREEMENT_HEADERS, [agreement_row(entry) for entry in entries]),
    ])


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
            format_ratio(target) if is_number(target) else NOT_AVAILABLE,
            case.get("speedup_gate") or NOT_AVAILABLE,
        ])
    return rows


def harness_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per measurement of the harness's overhead against the raw interpreter loop."""
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


# --------------------------------------------------------------------------------------------
# Batch dependence, noted above the full matrix


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
    if not isinstance(invariance, Mapping) or not is_number(invariance.get("max_abs_logit_diff")):
        return ""
    changed = invariance.get("top1_changed")
    changes = f", {changed} top-1 changed" if is_number(changed) else ""
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
              and is_number(case["batch_invariance"].get("max_abs_logit_diff"))]
    if not checks:
        return None
    largest = max(check["max_abs_logit_diff"] for check in checks)
    return (f"{len(checks)} cases evaluated in batches give the outputs of batch 1: run one image at a "
            f"time, their sampled images' logits moved by at most {largest:.2g}.")
