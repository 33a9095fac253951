"""Holds the int8 weights of real artifacts against :mod:`bench.quantmath`.

Every function returns messages (empty when all is well) instead of raising, so that one run
reports every problem of every weight. What each check verifies:

* **grid**: zero points equal the reference's (0 for symmetric int8), codes lie in the narrow
  range ``[-127, 127]``, and a per-channel weight is quantized along its op's output-channel
  axis (and, where the mode promises it, is per-channel at all). uint8 weights (ONNX Runtime's
  U8U8 format, taken where the CPU's int8 sums saturate, see ``bench.backends.onnxruntime``)
  follow their own reference: a QAT file stores the int8 codes plus 128 with zero point 128 (the
  same values, checked as the int8 codes they are); a PTQ file follows ORT's symmetric uint8
  rule over the full range: zero point 128, ``scale = 2 absmax / 255`` per channel, codes in
  ``[0, 255]`` (what onnxruntime 1.32's ``quantize_static`` wrote for every weight of the three
  smoke models' U8U8 files; ``quantmath.choose_qparams`` with ``narrow_range=False``).
* **error bound**: ``|dequantize(q) - w| <= scale / 2`` per channel, plus float32 slack
  (:data:`ERROR_BOUND_SLACK_STEPS`). This holds for any round-to-nearest quantizer on an
  unclipped range, whatever scale it chose.
* **scale rule**: the stored scales equal ``quantmath.choose_qparams`` on the float weights
  with the runtime's rule (both runtimes: symmetric, ``absmax / 127`` per channel), within
  :data:`SCALE_RTOL`. For QAT artifacts the scales come from the fake-quant ranges the model
  learned, not from the weights' absmax, so they are compared with the scales those ranges
  imply instead (``QuantizedWeight.expected_scales``).
* **codes**: the stored codes equal ``quantmath.quantize`` of the float weights with the
  reference scales and the runtime's rounding. Off-by-one codes are counted as rounding
  differences and gated by :data:`MAX_ROUNDING_MISMATCH_FRACTION`; any larger difference fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import quantmath
from bench.inspect_artifacts import Inspection, QuantizedWeight

# Slack of the error bound, in quantization steps. The converters divide w / scale in float32,
# with a relative error of at most 2^-24; at |w / scale| <= 127 that is at most 127 * 2^-24 =
# 7.6e-6 steps, and rounding the scale to float32 adds as much again. 1e-4 steps is ~6x that, and
# still ~5000x below the 0.5 steps a wrong scale or a shifted code adds.
ERROR_BOUND_SLACK_STEPS = 1e-4
# Relative tolerance between stored and reference scales. absmax / 127 computed in float32 (the
# converter) and in float64 then rounded (quantmath) differ by at most 1 ulp = 2^-23 = 1.2e-7;
# a QAT scale passes through a few more float32 products (fake-quant range, BatchNorm factor).
# 1e-6 is ~8 ulp, and four orders below a one-step scale error (1/127 = 7.9e-3).
SCALE_RTOL = 1e-6
# Largest fraction of codes allowed to differ by one from the reference. A code can differ only
# when w / scale lies within the converter's float32 error of a rounding tie (k + 0.5): that
# error is <= 127 * 2^-24 = 7.6e-6 steps (see ERROR_BOUND_SLACK_STEPS), so for fractional parts
# spread evenly a fraction of about 2 * 7.6e-6 = 1.5e-5 of the codes is exposed. 1e-3 is ~60x
# that expectation (room for unlucky small artifacts) and far below a systematic rounding error
# (a wrong tie rule or a float16 detour shifts whole percents of the codes).
MAX_ROUNDING_MISMATCH_FRACTION = 1e-3
NARROW_INT8 = quantmath.DTYPES["int8_narrow"]
UINT8 = quantmath.DTYPES["uint8"]
# The offset between a QAT weight's int8 codes and the uint8 codes of the same values (U8U8).
UINT8_OFFSET = 128


def as_checked(w: QuantizedWeight) -> QuantizedWeight:
    """The weight as the checks see it: a QAT weight stored as uint8 (codes + 128, zero point
    128) becomes the int8 codes it encodes, so that every int8 check applies to it unchanged; a
    zero point other than 128 stays visible as a non-zero int8 zero point."""
    if w.values.dtype != np.uint8 or w.expected_scales is None:
        return w
    return dataclasses.replace(w, values=(w.values.astype(np.int16) - UINT8_OFFSET).astype(np.int16),
                               zero_points=np.asarray(w.zero_points, np.int64) - UINT8_OFFSET)


def ties_by_construction(w: QuantizedWeight) -> int:
    """Codes that sit exactly on a rounding tie by the rule's own construction.

    ORT's symmetric uint8 grid spans 255 steps over ``[-absmax, absmax]``, so each channel's
    largest weight lands on +127.5 steps and its most negative one (when it is ``-absmax``) on
    -127.5: a tie that the converter's float32 arithmetic breaks either way (measured: the smoke
    cnn's U8U8 file differs from the float64 reference by one in 28 of 23,504 codes, every one
    within 1.4e-6 steps of a tie, and a float32 replay of ORT's formula matches all of them).
    At most two per channel; the int8 narrow grid puts absmax on 127 exactly, never on a tie.
    """
    if not _is_uint8(w) or w.expected_scales is not None:
        return 0
    return 2 * (1 if w.axis is None else int(w.values.shape[w.axis]))


def _is_uint8(w: QuantizedWeight) -> bool:
    return w.values.dtype == np.uint8


def _codes_spec(w: QuantizedWeight) -> quantmath.IntSpec:
    return UINT8 if _is_uint8(w) else NARROW_INT8


@dataclasses.dataclass
class WeightReport:
    """The result of checking every matched weight of one artifact.

    Attributes:
        messages: One line per problem; empty when every check passed.
        weights_checked: Weight tensors checked.
        values_checked: Individual codes checked.
        max_error_over_scale: Largest ``|dequantized - float| / scale`` (<= 0.5 + slack).
        rounding_mismatches: Codes that differ from the reference by exactly one.
        unmatched: Int8 weights without a reference (listed in ``messages`` too).
        float_ops: Weight ops the artifact keeps in float (not checked).
    """

    messages: list[str]
    weights_checked: int = 0
    values_checked: int = 0
    max_error_over_scale: float = 0.0
    rounding_mismatches: int = 0
    unmatched: int = 0
    float_ops: int = 0

    def summary(self) -> str:
        return (f"{self.weights_checked} weights ({self.values_checked} values), max error/scale "
                f"{self.max_error_over_scale:.6f}, {self.rounding_mismatches} rounding mismatches, "
                f"{self.unmatched} unmatched, {self.float_ops} float weight ops")


def _channel_view(w: QuantizedWeight, per_value: np.ndarray) -> np.ndarray:
    """Broadcasts 0-d / 1-D per-channel ``per_value`` against the weight's shape."""
    if w.axis is None:
        return np.asarray(per_value, dtype=np.float64).reshape(())
    shape = [1] * w.values.ndim
    shape[w.axis] = -1
    return np.asarray(per_value, dtype=np.float64).reshape(shape)


def reference_qparams(w: QuantizedWeight, rule: str) -> quantmath.QParams:
    """Scales and zero points the reference picks for this weight.

    PTQ: the runtime's rule on the float weights (symmetric int8, narrow range), per channel
    along the stored axis or per tensor. QAT: the scales the fake-quant ranges imply, zero 0.
    """
    if w.expected_scales is not None:
        scale = _qat_equivalent_scales(w)
        return quantmath.QParams(scale, np.zeros(scale.shape, dtype=np.int64))
    if _is_uint8(w):
        return quantmath.choose_qparams_for_tensor(w.float_weights, "uint8", symmetric=True, narrow_range=False,
                                                   axis=w.axis, rule=rule)
    return quantmath.choose_qparams_for_tensor(w.float_weights, "int8", symmetric=True, axis=w.axis, rule=rule)


def _qat_equivalent_scales(w: QuantizedWeight) -> np.ndarray:
    """The fake-quant scales, or the stored ones where they are a whole multiple of them.

    A per-tensor fake quant folded with per-channel BatchNorm factors leaves each channel on a
    grid whose largest code is below 127, and the values alone fix that grid only up to a whole
    factor k (codes q*k at step s/k are the same values). ORT's QAT rewrite
    (``_onnx.store_weights_as_int8``) stores the coarsest such grid; the dequantized weights are
    identical, so a stored scale of k times the fake-quant scale is the same quantization.
    """
    expected = np.asarray(w.expected_scales, dtype=np.float64)
    stored = np.asarray(w.scales, dtype=np.float64)
    if expected.shape != stored.shape:
        return expected.astype(np.float32)
    factor = stored / expected
    whole = np.rint(factor)
    equivalent = (whole >= 1) & (np.abs(factor - whole) <= SCALE_RTOL * np.maximum(whole, 1))
    return np.where(equivalent, stored, expected).astype(np.float32)


def error_over_scale(w: QuantizedWeight) -> np.ndarray:
    """``|dequantize(q) - w| / scale`` for every value, in quantization steps."""
    dequantized = quantmath.dequantize(w.values, w.scales, w.zero_points, w.axis)
    return np.abs(dequantized - w.float_weights.astype(np.float64)) / _channel_view(w, w.scales)


def error_bound_messages(w: QuantizedWeight) -> list[str]:
    """Values whose dequantized error exceeds half a step (plus float32 slack)."""
    steps = error_over_scale(w)
    bound = 0.5 + ERROR_BOUND_SLACK_STEPS
    over = steps > bound
    if not over.any():
        return []
    return [f"{w.name} ({w.op}): {int(over.sum())} of {steps.size} values are off their float weight by "
            f"more than half a step (worst {steps.max():.4f} steps > {bound})"]


def scale_messages(w: QuantizedWeight, rule: str) -> list[str]:
    """Stored scales that differ from the reference's by more than SCALE_RTOL."""
    expected = np.asarray(reference_qparams(w, rule).scale, dtype=np.float64)
    stored = np.asarray(w.scales, dtype=np.float64)
    if expected.shape != stored.shape:
        return [f"{w.name} ({w.op}): {stored.size} stored scales but the reference has {expected.size}"]
    relative = np.abs(stored - expected) / expected
    bad = np.flatnonzero(np.atleast_1d(relative > SCALE_RTOL))
    if bad.size == 0:
        return []
    source = "fake-quant range" if w.expected_scales is not None else f"{rule} rule"
    first = int(bad[0])
    return [f"{w.name} ({w.op}): {bad.size} of {stored.size} scales differ from the {source} "
            f"(channel {first}: stored {np.atleast_1d(stored)[first]:.9g}, reference "
            f"{np.atleast_1d(expected)[first]:.9g}; worst relative difference {relative.max():.2e} > {SCALE_RTOL:.0e})"]


def grid_messages(w: QuantizedWeight, rule: str, per_channel_required: bool) -> list[str]:
    """Zero points, code range and quantized axis."""
    messages = []
    zero = np.asarray(reference_qparams(w, rule).zero_point)
    if not np.all(np.asarray(w.zero_points) == zero):
        messages.append(f"{w.name} ({w.op}): zero points {np.unique(w.zero_points).tolist()} but the "
                        f"reference has {np.unique(zero).tolist()}")
    low, high = int(w.values.min()), int(w.values.max())
    spec = _codes_spec(w)
    if low < spec.qmin or high > spec.qmax:
        messages.append(f"{w.name} ({w.op}): codes span [{low}, {high}], outside the {spec.name} "
                        f"range [{spec.qmin}, {spec.qmax}]")
    if w.axis is not None and w.axis != w.channel_axis:
        messages.append(f"{w.name} ({w.op}): quantized along axis {w.axis}, but the output channels "
                        f"of this op's weight are axis {w.channel_axis}")
    if w.axis is None and per_channel_required:
        messages.append(f"{w.name} ({w.op}): per-tensor scale where this mode promises per-channel weights")
    return messages


def code_differences(w: QuantizedWeight, rule: str) -> np.ndarray:
    """``stored - reference`` codes, the reference quantizing the float weights itself.

    The reference keeps its own granularity: QAT ranges folded with BatchNorm are per channel
    even where the artifact stores one scale (then the scale check reports the difference).
    """
    params = reference_qparams(w, rule)
    axis = None if params.scale.ndim == 0 else (w.channel_axis if w.axis is None else w.axis)
    rounding = quantmath.get_rule(rule).rounding
    reference = quantmath.quantize(w.float_weights, params.scale, params.zero_point, _codes_spec(w),
                                   axis, rounding=rounding)
    return w.values.astype(np.int64) - reference.astype(np.int64)


def code_messages(w: QuantizedWeight, differences: np.ndarray) -> list[str]:
    """Codes off the reference by more than one: never a float rounding effect."""
    far = np.abs(differences) > 1
    if not far.any():
        return []
    return [f"{w.name} ({w.op}): {int(far.sum())} of {differences.size} codes differ from the reference "
            f"quantization by more than one (largest {int(np.abs(differences).max())})"]


def check_weights(inspection: Inspection, rule: str, *, per_channel_required: bool = False) -> WeightReport:
    """Runs every check on every matched weight of one artifact.

    Args:
        inspection: From :func:`bench.inspect_artifacts.inspect`.
        rule: ``"litert"`` or ``"ort"`` (:data:`bench.quantmath.RULES`).
        per_channel_required: Report per-tensor weights (for modes that promise per-channel).

    Returns:
        A :class:`WeightReport`; its ``messages`` are empty when everything holds.
    """
    report = WeightReport(messages=[f"unmatched: {line}" for line in inspection.unmatched],
                          unmatched=len(inspection.unmatched), float_ops=inspection.float_ops)
    tie_codes = 0
    for w in map(as_checked, inspection.weights):
        tie_codes += ties_by_construction(w)
        report.weights_checked += 1
        report.values_checked += w.values.size
        report.max_error_over_scale = max(report.max_error_over_scale, float(error_over_scale(w).max()))
        differences = code_differences(w, rule)
        report.rounding_mismatches += int(np.sum(np.abs(differences) == 1))
        report.messages += (grid_messages(w, rule, per_channel_required) + error_bound_messages(w)
                            + scale_messages(w, rule) + code_messages(w, differences))
    allowed = MAX_ROUNDING_MISMATCH_FRACTION * report.values_checked + tie_codes
    if report.values_checked and report.rounding_mismatches > allowed:
        report.messages.append(
            f"{report.rounding_mismatches} of {report.values_checked} codes differ from the reference by one "
            f"({report.rounding_mismatches / report.values_checked:.2e} > {MAX_ROUNDING_MISMATCH_FRACTION:.0e}"
            + (f", plus {tie_codes} codes on ties by construction" if tie_codes else "")
            + "): more than float32 ties explain, so the rounding rule differs"
        )
    if not inspection.weights and not inspection.unmatched:
        report.messages.append("no int8 weights found in the artifact")
    return report
