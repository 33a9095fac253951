"""REPORT.md's sections that explain its numbers: worst layers, lost images, failures, environment
and plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.report.format import (
    NOT_AVAILABLE,
    format_count,
    format_significant,
    is_number,
    markdown_table,
)
from bench.report.lookup import snr_sort_key, sorted_cases, worst_case_per_model
from bench.results import model_order_key

# Five layers per model is enough to see where the error starts without flooding the report.
WORST_LAYERS_SHOWN = 5
LOST_IMAGES = "lost_images"
# Titles for the plot files that bench.report.plots draws, by key; kept here so that rendering
# markdown does not import matplotlib.
PLOT_TITLES = {
    "accuracy_vs_size": "Accuracy vs artifact size",
    "speedup": "int8 speedup vs float32",
    "layer_error": "Per-layer SNR of the worst case",
}


def format_snr(snr: Any) -> str:
    """SNR in dB with one decimal; ``inf`` for an exact layer."""
    if isinstance(snr, float) and math.isinf(snr):
        return "inf"
    return f"{snr:.1f}" if is_number(snr) else NOT_AVAILABLE


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
    for model in sorted(models, key=model_order_key):
        info = models[model] or {}
        seconds = info.get("train_seconds")
        timing = f"{seconds:.1f} s" if is_number(seconds) else NOT_AVAILABLE
        source = "cached" if info.get("cached") else "trained"
        rows.append([f"model {model}", f"{source}, {timing}"])
    return rows


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




PORTABILITY_HEADERS = ("file (model-mode-made by)", "recipe (testbed, int8 format)", "runs on", "runs",
                       "accuracy %", "file's own accuracy %", "top-1 agreement %", "runtime's error")


def render_portability(results: Mapping[str, Any]) -> str:
    """Which integer ONNX file runs on which other ONNX runtime, with what result."""
    rows = [row for row in results.get("portability") or [] if isinstance(row, dict)]
    title = "## Which quantized file runs where"
    if not rows:
        return f"{title}\n\nNo int8 ONNX file was tried on another runtime in this run (it needs two ONNX runtimes selected)."
    table = [[str(row.get("file")), str(row.get("recipe") or NOT_AVAILABLE), str(row.get("runtime")),
              "yes" if row.get("runs") else "no",
              _percent(row.get("accuracy")), _percent(row.get("file_accuracy")),
              _percent(row.get("top1_agreement")), str(row.get("error") or "")]
             for row in rows]
    return "\n".join([
        title, "",
        "Every int8 ONNX file the run made, loaded by every other selected runtime that reads ONNX and "
        "run on the same test images: its accuracy there, against the file's accuracy on the runtime that "
        "made it, and the share of images both give the same class; or the runtime's one-line error. "
        "Each ONNX Runtime int8 file is also made by the other kind of testbed's recipe (the format "
        "chosen where int8 sums saturate, or where they are exact) and run here by ONNX Runtime: what "
        "that recipe's file loses or keeps on this CPU.",
        "", markdown_table(PORTABILITY_HEADERS, table),
    ])


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}" if is_number(value) else NOT_AVAILABLE
