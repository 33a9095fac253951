"""Property tests for :mod:`bench.quantmath`: invariants every affine quantizer must keep.

Each property runs for both rule sets (LiteRT, ORT), every integer type and both symmetric and
asymmetric ranges. The strategies deliberately include the awkward ranges: widths down to
1e-8, all-equal tensors, magnitudes up to 1e30, subnormals, and ranges entirely below or above
zero. ``test_wrong_math_is_caught`` shows the checks would fail an off-by-one quantizer.

Tolerances: a value inside the range may move by at most half a step when quantized. On top of
that, a little slack is allowed because both runtimes store the scale as float32, so the last
code can sit ``steps * scale * 2**-24`` (about ``range * 6e-8``) short of the exact range end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench import quantmath as qm

RULE_NAMES = ("ort", "litert")
DTYPE_NAMES = ("int8", "uint8", "int16")
MAX_MAGNITUDE = 1e30  # far beyond any activation, still finite in float32
EPS32 = float(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

# Magnitudes spread over 42 decades: Hypothesis' own float generator (boundaries, subnormals,
# odd bit patterns) plus a log-uniform generator so ordinary magnitudes are well represented.
magnitudes = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=MAX_MAGNITUDE),
    st.builds(
        lambda mantissa, exponent: mantissa * 10.0**exponent,
        st.floats(min_value=1.0, max_value=9.99),
        st.integers(min_value=-12, max_value=30),
    ),
)
reals = st.builds(lambda sign, m: sign * m, st.sampled_from((-1.0, 1.0)), magnitudes)


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    return (min(pair), max(pair))


# (rmin, rmax) pairs, rmin <= rmax, covering the shapes that break naive formulas.
ranges = st.one_of(
    st.tuples(reals, reals).map(_ordered),
    st.builds(lambda c, w: (c, c + w), reals, st.floats(min_value=0.0, max_value=1e-8)),
    reals.map(lambda c: (c, c)),  # all-equal tensor
    st.tuples(magnitudes, magnitudes).map(lambda p: (-max(p), -min(p))),  # negative only
    st.tuples(magnitudes, magnitudes).map(_ordered),  # positive only
)


@st.composite
def ranges_with_inside_values(draw: st.DrawFn) -> tuple[float, float, np.ndarray]:
    """A range and values inside it, always including both ends."""
    lo, hi = draw(ranges)
    fractions = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=16)))
    inside = np.clip(lo + fractions * (hi - lo), lo, hi)
    return lo, hi, np.concatenate([[lo, hi], inside])


@st.composite
def ranges_with_any_values(draw: st.DrawFn) -> tuple[float, float, np.ndarray]:
    """A range and values in, near and far outside it (for monotonicity)."""
    lo, hi = draw(ranges)
    fractions = np.array(draw(st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=16)))
    near = lo + fractions * (hi - lo)
    far = np.array(draw(st.lists(reals, max_size=8)))
    return lo, hi, np.concatenate([[lo, hi, 0.0], near, far])


@st.composite
def tensors_with_axis(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """A rank 1..4 tensor of one magnitude, sometimes with a constant channel, and an axis."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    axis = draw(st.integers(min_value=-len(shape), max_value=len(shape) - 1))
    unit = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0)))
    x = unit * 10.0 ** draw(st.integers(min_value=-12, max_value=30))
    if draw(st.booleans()):
        # All-equal channel: a dead filter or a constant bias-like slice.
        channel = draw(st.integers(min_value=0, max_value=shape[axis] - 1))
        index = [slice(None)] * len(shape)
        index[axis] = channel
        x[tuple(index)] = draw(reals)
    return x, axis


# --------------------------------------------------------------------------------------------
# Shared checks (also applied to the deliberately wrong quantizers below)
# --------------------------------------------------------------------------------------------


def slack(*magnitudes_: float) -> float:
    """Float error tolerated on top of half a step: float32 scale storage, float64 arithmetic."""
    return 4.0 * EPS32 * max(abs(float(m)) for m in magnitudes_)


def requested_range(lo: float, hi: float, symmetric: bool) -> tuple[float, float]:
    """The float range the parameters must cover: widened to 0, symmetrized if asked."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        absmax = max(-lo, hi)
        return -absmax, absmax
    return lo, hi


def round_trip_within_half_step(
    lo: float,
    hi: float,
    x: np.ndarray,
    scale: float,
    zero_point: int,
    spec: qm.IntSpec,
    rounding: qm.Rounding,
) -> bool:
    """Whether every ``x`` in ``[lo, hi]`` comes back within half a step (plus float slack)."""
    codes = qm.quantize(x, scale, zero_point, spec, rounding=rounding)
    error = np.abs(qm.dequantize(codes, scale, zero_point) - x)
    return bool(np.all(error <= float(scale) / 2 + slack(lo, hi)))


def covers_range(lo: float, hi: float, scale: float, zero_point: int, spec: qm.IntSpec) -> bool:
    """Whether the first and last codes reach the range ends to within half a step, and 0 fits."""
    bottom, top = qm.dequantize(np.array([spec.qmin, spec.qmax]), scale, zero_point)
    half = float(scale) / 2 + slack(lo, hi)
    return bool(bottom <= lo + half and top >= hi - half and bottom <= 0.0 <= top)


def scheme(rule: str, dtype: str, symmetric: bool, narrow_range: bool | None = None):
    """The effective spec and rule, or a skip for a combination the runtime does not offer."""
    try:
        spec = qm.quantized_range(dtype, symmetric, narrow_range, rule)
    except ValueError as error:
        pytest.skip(f"not offered by {rule}: {error}")
    return spec, qm.get_rule(rule)


parametrize_rule = pytest.mark.parametrize("rule", RULE_NAMES)
parametrize_dtype = pytest.mark.parametrize("dtype", DTYPE_NAMES)
parametrize_symmetric = pytest.mark.parametrize("symmetric", [False, True], ids=("asymmetric", "symmetric"))
parametrize_narrow = pytest.mark.parametrize(
    "narrow_range", [None, False, True], ids=("narrow-default", "full-range", "narrow")
)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@parametrize_narrow
@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(case=ranges_with_inside_values())
def test_round_trip_error_is_at_most_half_a_step(rule, dtype, symmetric, narrow_range, case):
    spec, rule_ = scheme(rule, dtype, symmetric, narrow_range)
    lo, hi, x = case
    params = qm.choose_qparams(lo, hi, dtype, symmetric, narrow_range, rule=rule)
    assert round_trip_within_half_step(lo, hi, x, params.scale, params.zero_point, spec, rule_.rounding)


@parametrize_narrow
@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(bounds=ranges)
def test_chosen_parameters_cover_the_range_and_no_more(rule, dtype, symmetric, narrow_range, bounds):
    spec, rule_ = scheme(rule, dtype, symmetric, narrow_range)
    lo, hi = requested_range(*bounds, symmetric)
    params = qm.choose_qparams(*bounds, dtype, symmetric, narrow_range, rule=rule)
    scale = float(params.scale)

    assert math.isfinite(scale)
    assert scale > 0.0
    assert spec.qmin <= int(params.zero_point) <= spec.qmax
    assert covers_range(lo, hi, scale, int(params.zero_point), spec)

    # Tight too: the scale is what the range needs, except where a runtime deliberately
    # replaces a degenerate range (LiteRT widens it, ORT uses scale 1.0).
    if rule_.min_range is not None and hi - lo <= rule_.min_range:
        half = rule_.min_range / 2
        lo, hi = min(lo, -half), max(hi, half)
    needed = (hi - lo) / spec.steps
    if rule_.degenerate_scale is not None and needed < np.finfo(np.float32).tiny:
        assert scale == rule_.degenerate_scale
    else:
        assert scale == pytest.approx(needed, rel=1e-6)


@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(bounds=ranges, beyond=st.floats(min_value=0.0, max_value=1e12))
def test_values_beyond_the_last_code_saturate(rule, dtype, symmetric, bounds, beyond):
    spec, rule_ = scheme(rule, dtype, symmetric)
    params = qm.choose_qparams(*bounds, dtype, symmetric, rule=rule)
    scale, zero_point = float(params.scale), int(params.zero_point)
    bottom, top = qm.dequantize(np.array([spec.qmin, spec.qmax]), scale, zero_point)
    # Past half a step beyond the last code, rounding can only land beyond it, so clamping
    # must give the end code; the extra 1e-3 step absorbs float error in x / scale.
    step_past = scale * (0.501 + beyond)
    above = np.array([top + step_past, np.finfo(np.float32).max, np.inf])
    below = np.array([bottom - step_past, -np.finfo(np.float32).max, -np.inf])
    if top + step_past < MAX_MAGNITUDE:
        above = np.append(above, MAX_MAGNITUDE)
    if bottom - step_past > -MAX_MAGNITUDE:
        below = np.append(below, -MAX_MAGNITUDE)

    assert np.all(qm.quantize(above, scale, zero_point, spec, rounding=rule_.rounding) == spec.qmax)
    assert np.all(qm.quantize(below, scale, zero_point, spec, rounding=rule_.rounding) == spec.qmin)


@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(bounds=ranges)
def test_zero_round_trips_exactly(rule, dtype, symmetric, bounds):
    spec, rule_ = scheme(rule, dtype, symmetric)
    params = qm.choose_qparams(*bounds, dtype, symmetric, rule=rule)
    zeros = np.array([0.0, -0.0])
    codes = qm.quantize(zeros, params.scale, params.zero_point, spec, rounding=rule_.rounding)
    assert np.all(codes == params.zero_point)
    assert np.all(qm.dequantize(codes, params.scale, params.zero_point) == 0.0)


@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(case=ranges_with_any_values())
def test_quantize_is_monotonic(rule, dtype, symmetric, case):
    spec, rule_ = scheme(rule, dtype, symmetric)
    lo, hi, x = case
    params = qm.choose_qparams(lo, hi, dtype, symmetric, rule=rule)
    codes = qm.quantize(np.sort(x), params.scale, params.zero_point, spec, rounding=rule_.rounding)
    assert np.all(np.diff(codes.astype(np.int64)) >= 0)


@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(bounds=ranges, data=st.data())
def test_dequantize_then_quantize_is_identity(rule, dtype, symmetric, bounds, data):
    spec, rule_ = scheme(rule, dtype, symmetric)
    params = qm.choose_qparams(*bounds, dtype, symmetric, rule=rule)
    codes = np.array(
        [spec.qmin, spec.qmax, int(params.zero_point)]
        + data.draw(st.lists(st.integers(spec.qmin, spec.qmax), max_size=16)),
        dtype=spec.numpy_dtype,
    )
    values = qm.dequantize(codes, params.scale, params.zero_point)
    again = qm.quantize(values, params.scale, params.zero_point, spec, rounding=rule_.rounding)
    np.testing.assert_array_equal(again, codes)


@parametrize_symmetric
@parametrize_dtype
@parametrize_rule
@given(case=tensors_with_axis())
def test_per_channel_equals_per_tensor_on_each_channel(rule, dtype, symmetric, case):
    spec, rule_ = scheme(rule, dtype, symmetric)
    x, axis = case
    params = qm.choose_qparams_for_tensor(x, dtype, symmetric, axis=axis, rule=rule)
    codes = qm.quantize(x, params.scale, params.zero_point, spec, axis, rounding=rule_.rounding)
    restored = qm.dequantize(codes, params.scale, params.zero_point, axis)

    for channel in range(x.shape[axis]):
        piece = np.take(x, channel, axis=axis)
        alone = qm.choose_qparams_for_tensor(piece, dtype, symmetric, rule=rule)
        assert alone.scale == params.scale[channel]
        assert alone.zero_point == params.zero_point[channel]
        alone_codes = qm.quantize(piece, alone.scale, alone.zero_point, spec, rounding=rule_.rounding)
        np.testing.assert_array_equal(np.take(codes, channel, axis=axis), alone_codes)
        np.testing.assert_array_equal(
            np.take(restored, channel, axis=axis),
            qm.dequantize(alone_codes, alone.scale, alone.zero_point),
        )

    if symmetric:
        weights = qm.quantize_per_channel_weights(x, axis, dtype, rule=rule)
        np.testing.assert_array_equal(weights.values, codes)
        np.testing.assert_array_equal(weights.scale, params.scale)


# --------------------------------------------------------------------------------------------
# The properties have teeth
# --------------------------------------------------------------------------------------------


def _wrong_qparams_one_step_too_many(lo: float, hi: float, spec: qm.IntSpec):
    """Classic off-by-one: divides by the number of codes (qmax - qmin + 1), not of steps."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (spec.steps + 1) or 1.0
    zero_point = int(np.clip(np.rint(spec.qmin - lo / scale), spec.qmin, spec.qmax))
    return scale, zero_point


def test_wrong_math_is_caught():
    spec = qm.DTYPES["uint8"]

    def wrong_scale_fails(case):
        lo, hi, x = case
        scale, zero_point = _wrong_qparams_one_step_too_many(lo, hi, spec)
        return not round_trip_within_half_step(lo, hi, x, scale, zero_point, spec, "half_to_even")

    counterexample = find(
        ranges_with_inside_values(),
        wrong_scale_fails,
        settings=settings(max_examples=2000, derandomize=True, database=None, deadline=None),
    )
    lo, hi, x = counterexample
    right = qm.choose_qparams(lo, hi, spec, rule="ort")
    assert round_trip_within_half_step(lo, hi, x, right.scale, right.zero_point, spec, "half_to_even"), (
        f"the correct quantizer fails the example that exposed the wrong one: {counterexample}"
    )

    # A zero point off by one shifts every code by a step, so the top of [0, 1] is not reached.
    lo, hi = 0.0, 1.0
    right = qm.choose_qparams(lo, hi, spec, rule="ort")
    assert covers_range(lo, hi, right.scale, int(right.zero_point), spec)
    assert not covers_range(lo, hi, right.scale, int(right.zero_point) + 1, spec)
    x = np.array([hi])
    assert not round_trip_within_half_step(
        lo, hi, x, right.scale, int(right.zero_point) + 1, spec, "half_to_even"
    )


# --------------------------------------------------------------------------------------------
# Concrete anchors: the runtime constants that properties alone cannot pin down
# --------------------------------------------------------------------------------------------


@parametrize_rule
def test_int8_weights_are_symmetric_narrow_absmax_over_127(rule):
    w = np.array([[0.5, -2.0], [1.0, 0.25], [-1.27, 0.0]])  # two output channels on axis 1
    weights = qm.quantize_per_channel_weights(w, axis=1, rule=rule)
    np.testing.assert_allclose(weights.scale, np.float32([1.27 / 127, 2.0 / 127]), rtol=1e-7)
    np.testing.assert_array_equal(weights.zero_point, [0, 0])
    assert weights.spec == qm.DTYPES["int8_narrow"]
    assert weights.values[2, 0] == -127
    assert weights.values[0, 1] == -127


def test_legacy_ort_full_range_symmetric_is_absmax_over_127_5():
    params = qm.choose_qparams(-1.0, 1.0, "int8", symmetric=True, narrow_range=False, rule="ort")
    assert float(params.scale) == pytest.approx(1 / 127.5, rel=1e-7)
    assert int(params.zero_point) == 0


@parametrize_rule
def test_int16_symmetric_activations_use_32767(rule):
    params = qm.choose_qparams(-3.0, 6.0, "int16", symmetric=True, rule=rule)
    assert float(params.scale) == pytest.approx(6.0 / 32767, rel=1e-7)
    assert int(params.zero_point) == 0


def test_int8_asymmetric_activation_zero_point_is_nudged():
    # [-1, 2] over 255 steps: zero point -128 + 1 / (3 / 255) = -43.
    for rule in RULE_NAMES:
        params = qm.choose_qparams(-1.0, 2.0, "int8", rule=rule)
        assert float(params.scale) == pytest.approx(3.0 / 255, rel=1e-7)
        assert int(params.zero_point) == -43


def test_degenerate_ranges_get_the_runtimes_positive_scale():
    assert float(qm.choose_qparams(0.0, 0.0, "int8", rule="ort").scale) == 1.0
    litert = qm.choose_qparams(0.0, 0.0, "int8", symmetric=True, rule="litert")
    assert float(litert.scale) == pytest.approx(5e-7 / 127, rel=1e-7)
    assert int(litert.zero_point) == 0


def test_rounding_ties_follow_each_runtime():
    ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    even = qm.quantize(ties, 1.0, 0, "int8", rounding="half_to_even")
    away = qm.quantize(ties, 1.0, 0, "int8", rounding="half_away_from_zero")
    np.testing.assert_array_equal(even, [-2, -2, 0, 0, 2, 2])
    np.testing.assert_array_equal(away, [-3, -2, -1, 1, 2, 3])
    assert qm.round_half_away_from_zero(0.49999999999999994) == 0.0


def test_error_metrics():
    ref = np.array([1.0, 1.0])
    assert qm.snr_db(ref, ref) == math.inf
    assert qm.relative_error(ref, ref) == 0.0
    assert qm.snr_db(ref, [1.0, 1.1]) == pytest.approx(10 * math.log10(2 / 0.01))
    assert qm.relative_error(ref, [1.0, 1.1]) == pytest.approx(0.1 / math.sqrt(2))
    assert qm.relative_error([0.0], [1.0]) == math.inf
    big = np.array([1e200, -1e200])
    assert qm.snr_db(big, big * (1 + 1e-3)) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: qm.quantize([1.0], 0.0, 0), "scale must be positive"),
        (lambda: qm.quantize([1.0], -0.1, 0), "scale must be positive"),
        (lambda: qm.dequantize([1], math.nan, 0), "scale must be positive"),
        (lambda: qm.quantize(np.ones((2, 3)), [1.0, 1.0], 0, axis=2), "axis 2 is out of range"),
        (lambda: qm.quantize(np.ones((2, 3)), [1.0, 1.0], 0, axis=1), "has 3 channels"),
        (lambda: qm.quantize([1.0], [1.0, 2.0], 0), "needs a single scale"),
        (lambda: qm.quantize([1.0], 1.0, 200, "int8"), "outside int8"),
        (lambda: qm.quantize([1.0], 1.0, 0, "int4"), "unknown quantized dtype 'int4'"),
        (lambda: qm.choose_qparams(1.0, -1.0), "rmin must be <= rmax"),
        (lambda: qm.choose_qparams(0.0, math.inf), "must be finite"),
        (lambda: qm.choose_qparams(-1, 1, "int8", rule="tensorrt"), "unknown rule"),
        (lambda: qm.choose_qparams([-1, -2], [1, 2]), "need scalar rmin/rmax"),
        (
            lambda: qm.choose_qparams(-1, 1, "uint8", symmetric=True, rule="litert"),
            "LiteRT quantizes symmetrically only",
        ),
        (lambda: qm.snr_db([1.0, 2.0], [1.0]), "shape"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
