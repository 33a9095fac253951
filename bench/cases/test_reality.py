"""The reference quantization math, held against the real artifacts.

* ``test_weights_match_reference_math``: every int8 weight of an artifact, paired with the float
  weights it was quantized from, passes :func:`bench.weight_checks.check_weights` (grid, error
  bound, scale rule, codes; see that module for what each verifies per mode).
* ``test_layer_error``: per-layer SNR of the quantized artifact against its float32 artifact,
  recorded in ``results.json``; the final logits must stay above
  ``gates.FINAL_LOGITS_SNR_FLOOR_DB``.
* ``test_weight_checks_have_teeth``: the checks report real weights with a perturbed scale or
  shifted codes, so a passing run means something.
* ``test_other_recipes_onnx_weights_match_reference_math``: the ORT int8 files the *other*
  testbed class makes (U8U8 on a VNNI host, S8S8/U8S8 on an AVX2 one) pass the same checks, and
  fail them with a perturbed scale: both recipes are held to the math on every host.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import gates, inspect_artifacts, layer_error, quantmath, weight_checks
from bench.backends import BACKENDS
from bench.modes import MODES
from bench.results import case_id

pytestmark = pytest.mark.bench

# Images run through both graphs for the per-layer error: 64 gives each SNR millions of values
# for the early layers and 640 logits at the end, enough for a stable number, in well under a
# second per artifact.
LAYER_ERROR_IMAGES = 64


def _skip_unless_int8_weights(run, model: str, mode: str, backend: str, needs: tuple[str, ...]) -> None:
    """Skips unless the run runs the case, ``mode`` stores int8 weights and the backend has ``needs``.

    Args:
        needs: The :meth:`bench.backends.Backend.capabilities` the test reads.
    """
    spec = MODES.get(mode)
    reason = run.skip_reason(model, mode, backend)
    if reason:
        pytest.skip(reason)
    if spec.weights != "int8":
        # float16 weights (ptq_float16) are out of scope here.
        pytest.skip(f"{mode} stores {spec.weights} weights, no int8 ones")
    missing = [need for need in needs if need not in BACKENDS.get(backend).capabilities()]
    if missing:
        pytest.skip(f"{backend} does not expose {', '.join(missing)}: its artifacts hold nothing to inspect here")


def test_weights_match_reference_math(case, bench_run):
    """Every int8 weight: zero point, range, axis, |error| <= scale/2, scale rule, codes."""
    model, mode, backend = case
    _skip_unless_int8_weights(bench_run, model, mode, backend, ("stored_weights", "rounding"))
    inspection = inspect_artifacts.inspect(bench_run.build, model, mode, backend)
    report = weight_checks.check_weights(
        inspection, BACKENDS.get(backend).rounding, per_channel_required=MODES.get(mode).per_channel_on(backend)
    )
    print(f"{case_id(*case)}: {report.summary()}")
    assert not report.messages, f"{case_id(*case)}: " + "\n".join(report.messages)


def _source_model(bench_run, model: str, mode: str):
    """The Keras model an artifact was converted from: the QAT model for QAT, else the float one."""
    if MODES.get(mode).uses_qat:
        return bench_run.build.qat(model).model
    return bench_run.build.trained(model).model


def test_layer_error(case, bench_run):
    """Per-layer SNR for the report; the final logits must pass ``gates.final_snr_check``.

    The rows compare with the float32 artifact (for QAT that includes what fine-tuning changed).
    The gate compares the artifact's logits with its source Keras model's, so that for QAT it
    measures the conversion and not the fine-tuning.
    """
    model, mode, backend = case
    _skip_unless_int8_weights(bench_run, model, mode, backend, ("layer_errors",))
    images = bench_run.build.inputs("test", model)[:LAYER_ERROR_IMAGES]
    errors = layer_error.layer_errors(bench_run.build, model, mode, backend, images)
    if errors.unpaired and MODES.get(mode).uses_qat:
        # A QAT artifact is converted from the QAT model, the float32 one from the float model:
        # their graphs need not pair. A PTQ artifact comes from the float32 artifact's own model,
        # so there an unpaired graph is a failure.
        pytest.skip(f"{case_id(*case)}: {errors.unpaired}")
    assert errors.rows, f"{case_id(*case)}: no layer paired with the float graph: {errors.unpaired or errors.unmatched}"
    bench_run.record.add_layer_errors(case_id(*case), errors.rows)

    logits = bench_run.build.runner(model, mode, backend).predict(images)
    reference = _source_model(bench_run, model, mode).predict(images, verbose=0)
    snr = quantmath.snr_db(reference, logits)
    worst = min(errors.rows, key=lambda row: row["snr_db"])
    print(f"{case_id(*case)}: final logits {snr:.1f} dB vs source model; worst layer "
          f"{worst['layer']} {worst['snr_db']:.1f} dB vs float32 artifact")
    check = gates.final_snr_check(case_id(*case), snr, errors.rows)
    assert check.passed, check.failure


def _with_weight(inspection, index: int, **changes):
    """A copy of the inspection whose ``index``-th weight has ``changes`` applied."""
    weights = list(inspection.weights)
    weights[index] = dataclasses.replace(weights[index], **changes)
    return dataclasses.replace(inspection, weights=weights)


def test_weight_checks_have_teeth(model_backend, bench_run):
    """Real ptq_int8 weights pass, and fail once a scale or some codes are perturbed."""
    model, backend = model_backend
    _skip_unless_int8_weights(bench_run, model, "ptq_int8", backend, ("stored_weights", "rounding"))
    rule = BACKENDS.get(backend).rounding
    inspection = inspect_artifacts.inspect(bench_run.build, model, "ptq_int8", backend)
    assert not weight_checks.check_weights(inspection, rule).messages
    # The largest tensor, so that the shifted codes below are many and the gate is not borderline.
    index = int(np.argmax([w.values.size for w in inspection.weights]))
    weight = inspection.weights[index]

    # One quantization step more at the largest code: |error| reaches a whole step.
    bigger = np.asarray(weight.scales * np.float32(1 + 1 / 127), dtype=np.float32)
    messages = weight_checks.check_weights(_with_weight(inspection, index, scales=bigger), rule).messages
    assert any("more than half a step" in m for m in messages), messages
    assert any(f"differ from the {rule} rule" in m for m in messages), messages

    # Every 50th code one higher (2 %): a systematic rounding error, far above float ties.
    shifted = weight.values.copy()
    flat = shifted.reshape(-1)
    flat[::50] = np.clip(flat[::50].astype(np.int16) + 1, -127, 127).astype(np.int8)
    messages = weight_checks.check_weights(_with_weight(inspection, index, values=shifted), rule).messages
    assert any("rounding rule differs" in m for m in messages), messages

    # A code two away from the reference is never a rounding effect.
    jumped = weight.values.copy()
    first = jumped.reshape(-1)
    first[0] += 2 if first[0] < 0 else -2  # stays inside [-127, 127]
    messages = weight_checks.check_weights(_with_weight(inspection, index, values=jumped), rule).messages
    assert any("by more than one" in m for m in messages), messages


@pytest.mark.parametrize("mode", ["ptq_int8", "qat_int8"])
def test_other_recipes_onnx_weights_match_reference_math(mode, bench_run):
    """The other testbed class's ORT files: their weights pass the checks, a wrong scale fails."""
    from bench import testbeds
    from bench.backends import onnxruntime as ort

    model, backend = "cnn", "onnxruntime"
    if model not in bench_run.options.models:
        pytest.skip("the cnn is not selected")
    _skip_unless_int8_weights(bench_run, model, mode, backend, ("stored_weights", "rounding"))
    other = ort.other_recipe_testbed(testbeds.get(bench_run.testbed))
    if other is None:
        pytest.skip(f"no testbed of another int8 class on {bench_run.testbed}'s machine kind")
    build = bench_run.build.for_testbed(other)
    rule = BACKENDS.get(backend).rounding
    inspection = inspect_artifacts.inspect(build, model, mode, backend)
    fmt = ort.int8_format(other, mode).name
    report = weight_checks.check_weights(inspection, rule, per_channel_required=mode == "ptq_int8")
    print(f"{model}-{mode}-{backend} as {other.name} ({fmt}): {report.summary()}")
    assert not report.messages, f"{other.name} ({fmt}): " + "\n".join(report.messages)
    index = int(np.argmax([w.values.size for w in inspection.weights]))
    weight = inspection.weights[index]
    bigger = np.asarray(weight.scales * np.float32(1 + 1 / 127), dtype=np.float32)
    messages = weight_checks.check_weights(_with_weight(inspection, index, scales=bigger), rule).messages
    assert any("more than half a step" in m for m in messages), messages
