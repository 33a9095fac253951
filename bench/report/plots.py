"""The report's plots, drawn from a results dict into PNG files.

Figures are built on matplotlib's Agg canvas directly (``Figure`` + ``savefig``), never through
``pyplot``: no global figure state, no GUI backend to select, nothing left open between calls.
Each function returns the written path, or None when the results hold no data for that plot (and
then removes a stale file of that name, so the folder never shows a plot from another run).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench import atomic
from bench.report.format import is_number
from bench.report.lookup import model_names, snr_sort_key, sorted_cases, worst_case_per_model
from bench.results import backend_order_key, case_parts, mode_order_key

PLOT_FILES = {
    "accuracy_vs_size": "accuracy_vs_size.png",
    "speedup": "speedup.png",
    "layer_error": "layer_error.png",
    "lost_images": "lost_images.png",
}
DPI = 120
PREFERRED_BACKEND = "litert"
INT8_MODES = ("ptq_int8", "qat_int8")
# One marker shape per mode; shapes differ in outline, so they read in greyscale too.
MODE_MARKERS = {"float32": "o", "ptq_dynamic": "s", "ptq_float16": "D", "ptq_int16x8": "v",
                "ptq_int8": "^", "qat_int8": "*"}
FALLBACK_MARKER = "P"
# Layers below this SNR lose about 10 % of their signal to quantization, a level worth marking.
SNR_GUIDE_DB = 20.0
LAYERS_HIGHLIGHTED = 5
# Fashion-MNIST's classes by label, in the data set's documented order.
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot")
# The test images as results.json carries them: 28x28 uint8, row-major.
IMAGE_SIDE = 28
# Four across: 16 lost images (what the session keeps) make a square grid at a readable size.
LOST_GRID_COLUMNS = 4
LOST_TILE_INCHES = 1.7


# --------------------------------------------------------------------------------------------
# Shared helpers


def model_colours(results: Mapping[str, Any]) -> dict[str, Any]:
    """One tab10 colour per model, stable across plots of the same results."""
    palette = colormaps["tab10"]
    return {model: palette(index % 10) for index, model in enumerate(model_names(results))}


def save_figure(figure: Figure, path: Path) -> Path:
    """Renders ``figure`` to PNG and writes it atomically."""
    buffer = io.BytesIO()
    # No "Software" entry: the PNG bytes then depend on the data, not on the matplotlib version.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic.write_bytes(path, buffer.getvalue())
    return path


def skip_plot(path: Path) -> None:
    """Removes a plot file left by an earlier rendering that had data for it."""
    path.unlink(missing_ok=True)


def new_figure(width: float, height: float) -> Figure:
    """A figure with constrained layout, so labels and outside legends are never clipped."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def subtitle(results: Mapping[str, Any]) -> str:
    """``tier smoke, 2,000 test images``, for plot titles."""
    tier = results.get("tier") or "?"
    n_test = results.get("n_test")
    images = f", {n_test:,} test images" if is_number(n_test) else ""
    return f"tier {tier}{images}"


# --------------------------------------------------------------------------------------------
# Accuracy vs size


def measured_cases(results: Mapping[str, Any], backend: str) -> list[dict]:
    """Cases on ``backend`` with an accuracy and a positive size (log axis needs > 0)."""
    return [case for case in sorted_cases(results)
            if case_parts(case)[2] == backend and is_number(case.get("accuracy"))
            and is_number(case.get("size_bytes")) and case["size_bytes"] > 0]


def choose_backend(results: Mapping[str, Any]) -> str | None:
    """LiteRT, the deployable format, if it has data; else the first backend that does."""
    backends = {case_parts(case)[2] for case in results.get("cases") or []}
    candidates = [PREFERRED_BACKEND] + sorted(backends - {PREFERRED_BACKEND}, key=backend_order_key)
    for backend in candidates:
        if measured_cases(results, backend):
            return backend
    return None


def float_reference(cases: list[dict], model: str) -> float | None:
    """The model's float32 accuracy (%): its float32 case, else any case's float_accuracy."""
    for case in cases:
        if case_parts(case)[:2] == (model, "float32"):
            return 100 * case["accuracy"]
    for case in cases:
        if case_parts(case)[0] == model and is_number(case.get("float_accuracy")):
            return 100 * case["float_accuracy"]
    return None


def draw_float_reference(axes, cases: list[dict], model: str, colour: Any) -> None:
    """A dashed line at the model's float accuracy, across its points and a little beyond."""
    reference = float_reference(cases, model)
    sizes_mb = [case["size_bytes"] / 1e6 for case in cases if case_parts(case)[0] == model]
    if reference is None or not sizes_mb:
        return
    # A factor of 1.6 either side in log space keeps the line visibly tied to its own cluster.
    axes.plot([min(sizes_mb) / 1.6, max(sizes_mb) * 1.6], [reference, reference],
              linestyle="--", linewidth=1.2, color=colour, alpha=0.8, zorder=1)


def plot_accuracy_vs_size(results: Mapping[str, Any], out_dir: str | Path) -> Path | None:
    """The Pareto view: accuracy against artifact size, one colour per model, one marker per mode.

    Args:
        results: A results dict.
        out_dir: Folder to write ``accuracy_vs_size.png`` into.

    Returns:
        The written path, or None when no backend has a case with accuracy and size.
    """
    path = Path(out_dir) / PLOT_FILES["accuracy_vs_size"]
    backend = choose_backend(results)
    if backend is None:
        skip_plot(path)
        return None
    cases = measured_cases(results, backend)
    colours = model_colours(results)
    figure = new_figure(9, 5.5)
    axes = figure.add_subplot()
    for case in cases:
        model, mode, _ = case_parts(case)
        failed = case.get("status") == "failed"
        axes.scatter(case["size_bytes"] / 1e6, 100 * case["accuracy"],
                     marker=MODE_MARKERS.get(mode, FALLBACK_MARKER),
                     # Slightly see-through: int8 variants of one model sit close together.
                     s=170 if mode == "qat_int8" else 80, linewidths=1.5, zorder=3, alpha=0.85,
                     edgecolors=colours[model], facecolors="none" if failed else colours[model])
    for model in {case_parts(case)[0] for case in cases}:
        draw_float_reference(axes, cases, model, colours[model])
    axes.set_xscale("log")
    # Plain numbers (0.1, 1, 10) read faster than powers of ten for sizes in MB.
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_xlabel("artifact size (MB, 1 MB = 10⁶ B, log scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"Accuracy vs artifact size on {backend} ({subtitle(results)})")
    axes.grid(True, which="both", linestyle=":", alpha=0.6)
    add_accuracy_legends(figure, cases, colours)
    return save_figure(figure, path)


def add_accuracy_legends(figure: Figure, cases: list[dict], colours: dict[str, Any]) -> None:
    """Two legends outside the axes: models by colour, modes by marker (plus the line styles)."""
    models = sorted({case_parts(case)[0] for case in cases},
                    key=lambda name: list(colours).index(name))
    modes = sorted({case_parts(case)[1] for case in cases}, key=mode_order_key)
    model_handles = [Patch(color=colours[model], label=model) for model in models]
    model_handles.append(Line2D([], [], color="grey", linestyle="--", label="float32 accuracy"))
    mode_handles = [Line2D([], [], linestyle="none", color="dimgrey", markersize=13 if mode ==
                           "qat_int8" else 8, marker=MODE_MARKERS.get(mode, FALLBACK_MARKER),
                           label=mode) for mode in modes]
    if any(case.get("status") == "failed" for case in cases):
        mode_handles.append(Line2D([], [], linestyle="none", marker="o", markersize=8,
                                   markerfacecolor="none", color="dimgrey",
                                   label="hollow: failed a gate"))
    figure.legend(handles=model_handles, title="model", loc="outside right upper")
    figure.legend(handles=mode_handles, title="mode", loc="outside right lower")


# --------------------------------------------------------------------------------------------
# Speedup


def speedup_cases(results: Mapping[str, Any]) -> list[dict]:
    """int8 cases with a measured speedup over float32."""
    return [case for case in sorted_cases(results)
            if case_parts(case)[1] in INT8_MODES and is_number(case.get("speedup_vs_float"))]


def plot_speedup(results: Mapping[str, Any], out_dir: str | Path) -> Path | None:
    """int8 speedup over float32 on the same backend: groups per model and mode, bars per backend.

    Args:
        results: A results dict.
        out_dir: Folder to write ``speedup.png`` into.

    Returns:
        The written path, or None when no int8 case has a measured speedup.
    """
    path = Path(out_dir) / PLOT_FILES["speedup"]
    cases = speedup_cases(results)
    if not cases:
        skip_plot(path)
        return None
    groups = list(dict.fromkeys(case_parts(case)[:2] for case in cases))
    backends = sorted({case_parts(case)[2] for case in cases}, key=backend_order_key)
    speedups = {case_parts(case): case["speedup_vs_float"] for case in cases}
    palette = colormaps["Set2"]
    width = 0.8 / len(backends)
    figure = new_figure(max(6.0, 1.3 * len(groups) + 2.5), 5)
    axes = figure.add_subplot()
    for index, backend in enumerate(backends):
        positions, heights = [], []
        for group_index, (model, mode) in enumerate(groups):
            value = speedups.get((model, mode, backend))
            position = group_index - 0.4 + width * (index + 0.5)
            if value is None:
                # Say so: an empty slot could be read as a speedup of zero.
                axes.text(position, 0.05, "not\nmeasured", ha="center", va="bottom", fontsize=7,
                          color="dimgrey")
                continue
            positions.append(position)
            heights.append(value)
        bars = axes.bar(positions, heights, width=width * 0.95, label=backend,
                        color=palette(index), edgecolor="black", linewidth=0.5, zorder=3)
        axes.bar_label(bars, labels=[f"{value:.1f}x" for value in heights], padding=2, fontsize=8)
    axes.axhline(1.0, color="black", linestyle="--", linewidth=1, zorder=2,
                 label="float32 (1x)")
    axes.set_xticks(range(len(groups)), [f"{model}\n{mode}" for model, mode in groups])
    axes.set_ylim(0, max(max(speedups.values()), 1.0) * 1.15)
    axes.set_xlabel("model and int8 mode")
    axes.set_ylabel("speedup vs float32, same backend (x)")
    axes.set_title(f"int8 speedup over float32 ({subtitle(results)})")
    axes.grid(True, axis="y", linestyle=":", alpha=0.6)
    axes.legend(title="backend", loc="upper left")
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Per-layer error


def worst_case_id(results: Mapping[str, Any]) -> str | None:
    """The case whose lowest layer SNR is the lowest of all cases, or None without layer data."""
    layer_errors = results.get("layer_errors") or {}
    if not isinstance(layer_errors, dict):
        return None
    worst_per_model = worst_case_per_model(layer_errors, results)
    if not worst_per_model:
        return None
    return min(worst_per_model.values(),
               key=lambda case_id: (min(snr_sort_key(layer) for layer in layer_errors[case_id]
                                        if isinstance(layer, dict)), case_id))


def plot_layer_error(results: Mapping[str, Any], out_dir: str | Path) -> Path | None:
    """Per-layer SNR of the worst case, in network order, its lowest layers highlighted.

    Args:
        results: A results dict.
        out_dir: Folder to write ``layer_error.png`` into.

    Returns:
        The written path, or None when the results hold no per-layer errors.
    """
    path = Path(out_dir) / PLOT_FILES["layer_error"]
    case_id = worst_case_id(results)
    layers = [layer for layer in (results.get("layer_errors") or {}).get(case_id) or []
              if isinstance(layer, dict) and is_number(layer.get("snr_db"))]
    if not layers:
        skip_plot(path)
        return None
    names = [str(layer.get("layer", "?")) for layer in layers]
    snrs = [float(layer["snr_db"]) for layer in layers]
    lowest = set(sorted(range(len(snrs)), key=lambda index: snrs[index])[:LAYERS_HIGHLIGHTED])
    colours = ["tab:red" if index in lowest else "tab:blue" for index in range(len(snrs))]
    figure = new_figure(8, max(3.5, 0.3 * len(layers) + 1.8))
    axes = figure.add_subplot()
    axes.barh(range(len(layers)), snrs, color=colours, zorder=3)
    axes.set_yticks(range(len(layers)), names)
    axes.invert_yaxis()  # network order, first layer on top
    axes.axvline(SNR_GUIDE_DB, color="black", linestyle="--", linewidth=1, zorder=2)
    axes.set_xlim(0, max(max(snrs), SNR_GUIDE_DB) * 1.1)
    axes.set_xlabel("SNR of quantized layer output vs float32 (dB, higher is better)")
    axes.set_ylabel("layer (network order)")
    hidden = count_unplottable_layers(results, case_id)
    note = f"; {hidden} exact or unmeasured layers not shown" if hidden else ""
    axes.set_title(f"Per-layer SNR of the worst case: {case_id}\n({subtitle(results)}{note})")
    axes.grid(True, axis="x", linestyle=":", alpha=0.6)
    axes.legend(handles=[Patch(color="tab:red", label=f"{LAYERS_HIGHLIGHTED} lowest SNR"),
                         Patch(color="tab:blue", label="other layers"),
                         Line2D([], [], color="black", linestyle="--",
                                label=f"{SNR_GUIDE_DB:g} dB ≈ 10 % relative error")],
                loc="lower right")
    return save_figure(figure, path)


def count_unplottable_layers(results: Mapping[str, Any], case_id: str) -> int:
    """Layers of ``case_id`` without a finite SNR (an exact layer has an infinite one)."""
    layers = (results.get("layer_errors") or {}).get(case_id) or []
    return sum(1 for layer in layers
               if not (isinstance(layer, dict) and is_number(layer.get("snr_db"))))


# --------------------------------------------------------------------------------------------
# Lost images


def decode_pixels(encoded: Any) -> np.ndarray | None:
    """base64 of 28x28 uint8 pixels -> a (28, 28) array; None for anything else."""
    if not isinstance(encoded, str):
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != IMAGE_SIDE * IMAGE_SIDE:
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


def class_name(label: Any) -> str:
    """The class name of a label, or the label itself when it is not one of the ten."""
    is_label = isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(CLASS_NAMES)
    return CLASS_NAMES[label] if is_label else str(label)


def lost_image_tiles(results: Mapping[str, Any]) -> list[tuple[np.ndarray, str]]:
    """(pixels, title) of each lost image whose pixels are readable, in the results' order."""
    lost = results.get("lost_images")
    images = lost.get("images") if isinstance(lost, Mapping) else None
    tiles = []
    for image in images if isinstance(images, list) else []:
        pixels = decode_pixels(image.get("pixels")) if isinstance(image, Mapping) else None
        if pixels is not None:
            tiles.append((pixels, f"true {class_name(image.get('label'))}\n"
                                  f"int8 {class_name(image.get('predicted'))}"))
    return tiles


def plot_lost_images(results: Mapping[str, Any], out_dir: str | Path) -> Path | None:
    """The test images the worst int8 case got wrong where float32 got them right, as a grid.

    Each tile is one image in greyscale (dark garment on white, full 0-255 range on every tile so
    that contrast compares), titled with its true class and the int8 prediction.

    Args:
        results: A results dict with ``lost_images``.
        out_dir: Folder to write ``lost_images.png`` into.

    Returns:
        The written path, or None when the results hold no lost image with readable pixels.
    """
    path = Path(out_dir) / PLOT_FILES["lost_images"]
    tiles = lost_image_tiles(results)
    if not tiles:
        skip_plot(path)
        return None
    columns = min(LOST_GRID_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    # The extra height holds each tile's two-line title and the figure's title.
    figure = new_figure(LOST_TILE_INCHES * columns + 0.3, (LOST_TILE_INCHES + 0.35) * rows + 0.5)
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.set_axis_off()
        if index < len(tiles):
            pixels, title = tiles[index]
            axes.imshow(pixels, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            axes.set_title(title, fontsize=9)
    lost = results["lost_images"]
    total = lost.get("images_lost")
    of_total = f" of {total:,}" if is_number(total) else ""
    figure.suptitle(f"{lost.get('case', '?')}: {len(tiles)}{of_total} images lost against "
                    f"{lost.get('float_case', 'float32')}\n({subtitle(results)})", fontsize=10)
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# All of them

PLOTTERS: dict[str, Callable[[Mapping[str, Any], Path], Path | None]] = {
    "accuracy_vs_size": plot_accuracy_vs_size,
    "speedup": plot_speedup,
    "layer_error": plot_layer_error,
    "lost_images": plot_lost_images,
}


def draw_all(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Draws every plot the results have data for.

    Returns:
        Plot key to written path, for the plots that were drawn.
    """
    drawn = {key: plotter(results, Path(out_dir)) for key, plotter in PLOTTERS.items()}
    return {key: path for key, path in drawn.items() if path is not None}
