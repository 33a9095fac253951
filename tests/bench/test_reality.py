"""The reference quantization math, held against the real artifacts.

* ``test_weights_match_reference_math``: every int8 weight of an artifact, paired with the float
  weights it was quantized from, passes :func:`bench.weight_checks.check_weights` (grid, error
  bound, scale rule, codes; see that module for what each verifies per mode).
* ``test_layer_error``: per-layer SNR of the quantized artifact against its float32 artifact,
  recorded in ``results.json``; the final logits must stay above FINAL_LOGITS_SNR_FLOOR_DB.
* ``test_weight_checks_have_teeth``: the checks report real weights with a perturbed scale or
  shifted codes, so a passing run means something.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import inspect_artifacts, layer_error, quantmath, weight_checks
from bench.backends import get_backend
from bench.modes import MODES
from bench.session import case_id

pytestmark = pytest.mark.bench

# Modes whose artifacts store int8 weights. float32 has none; ptq_float16 stores float16 weights,
# which is out of scope here.
INT8_WEIGHT_MODES = ("ptq_int8", "qat_int8", "ptq_dynamic", "ptq_int16x8")
# Each runtime's rule set in bench.quantmath.
RULES = {"litert": "litert", "onnxruntime": "ort"}
# (mode, backend) pairs whose artifacts promise per-channel weights for every layer: ptq_int8 and
# ptq_int16x8 ask for it (dense layers included), and LiteRT's dynamic-range quantizer is
# per-channel. Not promised: ORT dynamic (ConvInteger takes one weight scale) and QAT (tfmot's
# Dense weights are per-tensor).
PER_CHANNEL_PROMISED = {("ptq_int8", "litert"), ("ptq_int8", "onnxruntime"),
                        ("ptq_int16x8", "litert"), ("ptq_dynamic", "litert")}
# Images run through both graphs for the per-layer error: 64 gives each SNR millions of values
# for the early layers and 640 logits at the end, enough for a stable number, in well under a
# second per artifact.
LAYER_ERROR_IMAGES = 64
# Lowest SNR accepted for the final logits against the model the artifact was converted from.
# Measured (64 test images), cnn / mobilenet: LiteRT ptq_int8 35.7 / 29.8 dB, ptq_dynamic
# 37.2 / 37.3 dB, ptq_int16x8 38.6 / 33.0 dB, qat_int8 44.1 / 29.6 dB (against the QAT model);
# ORT ptq_int8 35.7 / 29.5 dB, ptq_dynamic 35.5 / 27.2 dB. Deeper models accumulate more layers'
# noise (mobilenet's 28 weight layers lose ~6 dB to cnn's 5), so the floor keeps >= 12 dB below
# the lowest of these. A broken conversion lands far below; measured on cnn's float model: one
# layer's weights off by a factor of two give 0.0 dB (logits) to -4.0 dB (conv3), and another
# image's logits -2.5 dB. 15 dB is an error of 18 % of the logits' RMS.
FINAL_LOGITS_SNR_FLOOR_DB = 15.0


def _skip_unless_int8_weights(mode: str, backend: str) -> None:
    reason = MODES.get(mode).skip_reason(backend)
    if reason:
        pytest.skip(f"{mode} on {backend}: {reason}")
    if mode not in INT8_WEIGHT_MODES:
        pytest.skip(f"{mode} stores no int8 weights")
    if backend not in RULES:
        pytest.skip(f"{backend} artifacts hold no quantized weights to inspect")


def test_weights_match_reference_math(case, bench_session):
    """Every int8 weight: zero point, range, axis, |error| <= scale/2, scale rule, codes."""
    model, mode, backend = case
    _skip_unless_int8_weights(mode, backend)
    inspection = inspect_artifacts.inspect(bench_session, model, mode, backend)
    report = weight_checks.check_weights(
        inspection, RULES[backend], per_channel_required=(mode, backend) in PER_CHANNEL_PROMISED
    )
    print(f"{case_id(*case)}: {report.summary()}")
    assert not report.messages, f"{case_id(*case)}: " + "\n".join(report.messages)


def _source_model(bench_session, model: str, mode: str):
    """The Keras model an artifact was converted from: the QAT model for QAT, else the float one."""
    if MODES.get(mode).uses_qat:
        return bench_session.qat(model).model
    return bench_session.trained(model).model


def test_layer_error(case, bench_session):
    """Per-layer SNR for the report; the final logits stay within FINAL_LOGITS_SNR_FLOOR_DB.

    The rows compare with the float32 artifact (for QAT that includes what fine-tuning changed).
    The gate compares the artifact's logits with its source Keras model's, so that for QAT it
    measures the conversion and not the fine-tuning.
    """
    model, mode, backend = case
    _skip_unless_int8_weights(mode, backend)
    if backend == "onnxruntime" and mode == "qat_int8":
        pytest.skip("qat_int8 on onnxruntime: tf2onnx names the QAT graph's tensors after tfmot's "
                    "wrappers, so no tensor pairs with the float32 graph by name")
    images = bench_session.inputs("test", model)[:LAYER_ERROR_IMAGES]
    errors = layer_error.layer_errors(bench_session, model, mode, backend, images)
    assert errors.rows, f"{case_id(*case)}: no layer paired with the float graph: {errors.unmatched}"
    bench_session.layer_errors[case_id(*case)] = errors.rows

    logits = get_backend(backend).load(bench_session.artifact(model, mode, backend)).predict(images)
    reference = _source_model(bench_session, model, mode).predict(images, verbose=0)
    snr = quantmath.snr_db(reference, logits)
    worst = min(errors.rows, key=lambda row: row["snr_db"])
    print(f"{case_id(*case)}: final logits {snr:.1f} dB vs source model; worst layer "
          f"{worst['layer']} {worst['snr_db']:.1f} dB vs float32 artifact")
    assert snr > FINAL_LOGITS_SNR_FLOOR_DB, (
        f"{case_id(*case)}: final logits SNR {snr:.1f} dB against the source model is below "
        f"{FINAL_LOGITS_SNR_FLOOR_DB} dB; per-layer SNR: "
        + ", ".join(f"{row['layer']} {row['snr_db']:.1f}" for row in errors.rows)
    )


def _with_weight(inspection, index: int, **changes):
    """A copy of the inspection whose ``index``-th weight has ``changes`` applied."""
    weights = list(inspection.weights)
    weights[index] = dataclasses.replace(weights[index], **changes)
    return dataclasses.replace(inspection, weights=weights)


def test_weight_checks_have_teeth(model_backend, bench_session):
    """Real ptq_int8 weights pass, and fail once a scale or some codes are perturbed."""
    model, backend = model_backend
    _skip_unless_int8_weights("ptq_int8", backend)
    rule = RULES[backend]
    inspection = inspect_artifacts.inspect(bench_session, model, "ptq_int8", backend)
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
