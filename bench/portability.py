"""Which quantized file runs where: every int8 ONNX file of a model on every selected ONNX runtime.

A file is the one a backend's own exporter made (ORT's static QDQ and dynamic files, the QAT
export, NNCF's); each other ONNX runtime loads and runs it on the test set. A row gives the
accuracy and the top-1 agreement with the file's own runtime, or the runtime's one-line error.
Rows are results.json's ``portability`` (``bench.cases.test_portability`` asks for them).
"""

from __future__ import annotations

import numpy as np

from bench import formats, metrics
from bench.backends import BACKENDS
from bench.build import Builder
from bench.errors import first_line
from bench.modes import MODES
from bench.results import case_id
from bench.selection import Selection


def rows(build: Builder, selection: Selection, model: str) -> list[dict]:
    """Every int8 ONNX file of ``model`` tried on every other selected runtime that reads ONNX.

    Args:
        build: The run's builder (its files, logits and test images).
        selection: The run's selection: its modes, its backends, and which cases run here.
        model: The model.
    """
    onnx_runtimes = [b for b in selection.backends if formats.runs_onnx(b)]
    found = []
    for mode in selection.modes:
        spec = MODES.get(mode)
        if spec.weights != "int8":
            continue
        for maker in onnx_runtimes:
            if formats.home(mode, maker) != maker or _not_run(selection, model, mode, maker):
                continue
            own = build.logits(model, mode, maker)
            for runtime in onnx_runtimes:
                if runtime != maker and not selection.unavailable_reason(mode, runtime):
                    found.append(_try_file(build, model, mode, maker, runtime, own))
            found += _other_recipe(build, model, mode, maker, own)
    return found


def _not_run(selection: Selection, model: str, mode: str, backend: str) -> bool:
    """Whether the case does not run here: declared unsupported, or this machine cannot run it
    (the reasons ``bench.run.BenchRun.skip_reason`` gives)."""
    return bool(selection.declared_reason(model, mode, backend) or selection.unavailable_reason(mode, backend))


def _other_recipe(build: Builder, model: str, mode: str, maker: str, own: np.ndarray) -> list[dict]:
    """The file the other kind of testbed's recipe makes (``bench.backends.onnxruntime``:
    the VNNI format on an AVX2 testbed, the AVX2 one on VNNI), run here by its own runtime,
    so that what the other recipe would cost on this CPU is a fact in the table."""
    if not build.int8_format(mode, maker):
        return []
    from bench.backends import onnxruntime as ort_backend

    other_testbed = ort_backend.other_recipe_testbed(build.testbed)
    if other_testbed is None:
        return []
    other = build.for_testbed(other_testbed)
    recipe = f"{other.testbed.name} ({other.int8_format(mode, maker)})"
    return [_try_file(build, model, mode, maker, maker, own, made_by=other, recipe=recipe)]


def _try_file(build: Builder, model: str, mode: str, maker: str, runtime: str, own: np.ndarray,
              made_by: Builder | None = None, recipe: str | None = None) -> dict:
    """One row: ``made_by``'s file (default: the run's own, whose recipe is this testbed's) on
    ``runtime``, fed the run's test images."""
    made_by = made_by or build
    fmt = made_by.int8_format(mode, maker)
    row = {"model": model, "mode": mode, "file": case_id(model, mode, maker), "runtime": runtime,
           "recipe": recipe or made_by.testbed.name + (f" ({fmt})" if fmt else "")}
    try:
        runner = BACKENDS.get(runtime).load(made_by.artifact(model, mode, maker))
        # A file whose outputs depend on the batch (ORT's dynamic file) is run one image at a
        # time everywhere, as deployed; any other at the evaluation batch.
        logits = runner.predict(build.inputs("test", model), MODES.get(mode).eval_batch(maker))
    except Exception as exc:  # any runtime's refusal is the finding; it never stops the run
        return {**row, "runs": False, "error": f"{type(exc).__name__}: {first_line(exc)}"}
    labels = build.splits.y_test
    return {**row, "runs": True, "accuracy": metrics.accuracy(logits, labels),
            "file_accuracy": metrics.accuracy(own, labels), "top1_agreement": metrics.agreement(own, logits),
            "max_abs_logit_diff": metrics.max_abs_diff(own, logits)}
