"""NumPy reference for affine (scale / zero-point) integer quantization.

The harness compares what LiteRT (TFLite) and ONNX Runtime produce with this reference, so it
follows the rules of the two converters, not a textbook. The mapping is the usual one::

    q = clamp(round(x / scale) + zero_point, qmin, qmax)
    x' = (q - zero_point) * scale

Where the two runtimes differ (integer types, how scale and zero point are picked, rounding) is
described and expressed in :mod:`bench.quantmath_rules` and chosen here through ``rule=``; the error
metrics of per-layer reports are in :mod:`bench.quantmath_error`. Both are importable from here as
well (``quantmath.RULES``, ``quantmath.snr_db``).

Both runtimes store the scale as float32, so :func:`choose_qparams` returns float32 scales; the
arithmetic here is done in float64, which can differ from a runtime's float32 arithmetic by one
code for a value that lies within a float32 rounding error of a rounding tie.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from bench.quantmath_error import relative_error, snr_db
from bench.quantmath_rules import (
    DTYPES,
    ROUNDINGS,
    RULES,
    IntSpec,
    QuantRule,
    Rounding,
    get_rule,
    get_spec,
    round_half_away_from_zero,
    round_half_to_even,
    round_values,
)

__all__ = [
    "DTYPES", "ROUNDINGS", "RULES", "IntSpec", "QParams", "QuantRule", "QuantizedTensor", "Rounding",
    "choose_qparams", "choose_qparams_for_tensor", "dequantize", "get_rule", "get_spec",
    "normalize_axis", "quantize", "quantize_per_channel_weights", "quantized_range",
    "relative_error", "round_half_away_from_zero", "round_half_to_even", "round_values", "snr_db",
    "tensor_range",
]


# --------------------------------------------------------------------------------------------
# Choosing scale and zero point
# --------------------------------------------------------------------------------------------


class QParams(NamedTuple):
    """Quantization parameters: float32 scale(s) and int64 zero point(s) of matching shape."""

    scale: np.ndarray
    zero_point: np.ndarray


def quantized_range(
    dtype: str | IntSpec,
    symmetric: bool,
    narrow_range: bool | None = None,
    rule: str | QuantRule = "ort",
) -> IntSpec:
    """The codes a scheme actually uses, after narrow-range and symmetric adjustments.

    Args:
        dtype: Target type name or spec.
        symmetric: Whether the float range is made symmetric about 0.
        narrow_range: Drop one code so the range is symmetric; ``None`` means "narrow exactly
            when symmetric", which is what both runtimes do. For an asymmetric unsigned type
            ``True`` follows TensorFlow (uint8 [1, 255]); ORT has no such option.
        rule: ``"litert"`` or ``"ort"``.

    Returns:
        The effective spec (e.g. ``int8_narrow`` for symmetric int8).

    Raises:
        ValueError: LiteRT and a symmetric scheme on an unsigned or full-range type.
    """
    spec = get_spec(dtype)
    rule = get_rule(rule)
    narrow = symmetric if narrow_range is None else bool(narrow_range)
    if narrow and symmetric and not spec.signed and rule.unsigned_symmetric_drops_top:
        # ORT's ONNX_INT_TYPE_SYMMETRIC_RANGE: uint8 [0, 254], zero point 127.
        effective = IntSpec(f"{spec.name}_symmetric", spec.qmin, spec.qmax - 1, spec.storage)
    elif narrow:
        effective = spec.narrowed()
    else:
        effective = spec
    if (
        symmetric
        and rule.symmetric_needs_signed_narrow
        and not (effective.signed and effective.qmin == -effective.qmax)
    ):
        raise ValueError(
            f"LiteRT quantizes symmetrically only to signed narrow-range types "
            f"(e.g. int8 [-127, 127]); got {effective.name} [{effective.qmin}, {effective.qmax}]"
        )
    return effective


def _validated_range(rmin: ArrayLike, rmax: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of the range ends, checked to be finite, same-shaped and ordered."""
    lo = np.asarray(rmin, dtype=np.float64)
    hi = np.asarray(rmax, dtype=np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"rmin has shape {lo.shape} but rmax has shape {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"range ends must be finite; got rmin={lo}, rmax={hi}")
    if np.any(lo > hi):
        bad = np.flatnonzero(np.atleast_1d(lo > hi))
        raise ValueError(
            f"rmin must be <= rmax; violated at index {bad.tolist()} "
            f"(rmin={np.atleast_1d(lo)[bad].tolist()}, rmax={np.atleast_1d(hi)[bad].tolist()})"
        )
    return lo, hi


def _include_zero(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widens ``[lo, hi]`` to contain 0.0, so that 0.0 (padding, ReLU's floor) is exact."""
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def _symmetrize(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[-absmax, absmax]``: the float range symmetric quantization maps onto the codes."""
    absmax = np.maximum(np.abs(lo), np.abs(hi))
    return -absmax, absmax


def _expand_very_small_range(
    lo: np.ndarray, hi: np.ndarray, min_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """LiteRT's ``ExpandVerySmallRange``: a range <= ``min_range`` wide grows to >= +-min_range/2.

    This keeps the scale far from zero, so no value quantizes to a huge code.
    """
    small = (hi - lo) <= min_range
    half = min_range / 2.0
    return np.where(small, np.minimum(lo, -half), lo), np.where(small, np.maximum(hi, half), hi)


def _nudged_zero_point(
    lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, spec: IntSpec, rule: QuantRule
) -> np.ndarray:
    """The integer zero point that maps 0.0 exactly, clamped into ``[qmin, qmax]``."""
    from_min = spec.qmin - lo / scale
    if rule.zero_point_from_nearer_end:
        # LiteRT: both ends give the same value in exact arithmetic; use the one whose float
        # error (~ eps * sum of |terms|) is smaller.
        from_max = spec.qmax - hi / scale
        error_min = abs(spec.qmin) + np.abs(lo / scale)
        error_max = abs(spec.qmax) + np.abs(hi / scale)
        zero_point = np.where(error_min < error_max, from_min, from_max)
    else:
        zero_point = from_min
    return np.clip(round_values(zero_point, rule.rounding), spec.qmin, spec.qmax)


def choose_qparams(
    rmin: ArrayLike,
    rmax: ArrayLike,
    dtype: str | IntSpec = "int8",
    symmetric: bool = False,
    narrow_range: bool | None = None,
    axis: int | None = None,
    *,
    rule: str | QuantRule = "ort",
) -> QParams:
    """Chooses scale and zero point so that ``[rmin, rmax]`` (widened to contain 0) is covered.

    Asymmetric: ``scale = (max - min) / (qmax - qmin)``,
    ``zero_point = clamp(round(qmin - min / scale), qmin, qmax)``.
    Symmetric: the range becomes ``[-absmax, absmax]``, so ``scale = 2*absmax / (qmax - qmin)``,
    which is ``absmax / 127`` for int8 narrow range and ``absmax / 32767`` for int16 narrow range,
    with zero point 0 for signed types. See the module docstring for the LiteRT/ORT specifics.

    Args:
        rmin: Lower end(s) of the float range; a scalar, or one entry per channel.
        rmax: Upper end(s), same shape as ``rmin``.
        dtype: Target type: ``"int8"``, ``"uint8"``, ``"int16"`` (or an :class:`IntSpec`).
        symmetric: Quantize ``[-absmax, absmax]`` (weights) rather than ``[min, max]``.
        narrow_range: Drop the lowest code (int8 -> [-127, 127]); ``None`` = same as
            ``symmetric``, which is what both runtimes do.
        axis: ``None`` for per-tensor parameters (``rmin``/``rmax`` must be scalars); an int for
            per-channel parameters (``rmin``/``rmax`` must be 1-D, one entry per channel along
            that axis of the tensor they describe).
        rule: ``"ort"`` (default) or ``"litert"``.

    Returns:
        :class:`QParams` with float32 scale(s) (> 0, finite) and int64 zero point(s), 0-d for
        per-tensor and 1-D for per-channel.

    Raises:
        ValueError: Non-finite or reversed range, wrong shapes for ``axis``, unknown dtype or
            rule, a scale that would not fit float32, or an unsupported symmetric scheme.
    """
    rule = get_rule(rule)
    spec = quantized_range(dtype, symmetric, narrow_range, rule)
    lo, hi = _validated_range(rmin, rmax)
    if axis is None and lo.ndim != 0:
        raise ValueError(
            f"per-tensor parameters (axis=None) need scalar rmin/rmax; got shape {lo.shape}. "
            "Pass axis=<channel axis> for per-channel parameters."
        )
    if axis is not None and lo.ndim != 1:
        raise ValueError(
            f"per-channel parameters (axis={axis}) need 1-D rmin/rmax with one entry per "
            f"channel; got shape {lo.shape}"
        )

    lo, hi = _include_zero(lo, hi)
    if symmetric:
        lo, hi = _symmetrize(lo, hi)
    if rule.min_range is not None:
        lo, hi = _expand_very_small_range(lo, hi, rule.min_range)

    scale = (hi - lo) / spec.steps
    degenerate = scale < np.finfo(np.float32).tiny
    if rule.degenerate_scale is not None:
        scale = np.where(degenerate, rule.degenerate_scale, scale)
    elif np.any(degenerate):  # unreachable for LiteRT, whose range was widened above
        raise ValueError(
            f"rule {rule.name!r} neither widens tiny ranges nor sets a degenerate_scale, so the "
            f"range [{lo.min()}, {hi.max()}] gives a zero scale"
        )
    # ORT's placeholder scale 1.0 keeps the zero point computation finite; the fallback zero
    # point replaces the computed one for those entries below.
    if symmetric and rule.symmetric_midpoint_zero_point:
        midpoint = round_values((spec.qmin + spec.qmax) / 2.0, rule.rounding)
        zero_point = np.broadcast_to(midpoint, scale.shape).copy()
    else:
        zero_point = _nudged_zero_point(lo, hi, scale, spec, rule)
    # ORT's fallback zero point is 0; clamped for codes that exclude 0 (narrow uint8 [1, 255]).
    zero_point = np.where(degenerate, np.clip(0, spec.qmin, spec.qmax), zero_point)

    scale32 = scale.astype(np.float32)
    if not np.all(np.isfinite(scale32)):
        raise ValueError(f"the range [{lo.min()}, {hi.max()}] needs a scale beyond float32's range")
    # np.asarray: 0-d arithmetic can decay to NumPy scalars; callers get arrays either way.
    return QParams(scale=np.asarray(scale32), zero_point=np.asarray(zero_point, dtype=np.int64))


def tensor_range(x: ArrayLike, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of ``x``: overall (``axis=None``) or per slice along ``axis``.

    Raises:
        ValueError: Empty or non-finite ``x``, or ``axis`` out of range.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("cannot take the range of an empty tensor")
    if not np.all(np.isfinite(x)):
        raise ValueError("tensor contains NaN or infinity; its range is undefined")
    if axis is None:
        return np.asarray(x.min()), np.asarray(x.max())
    axis = normalize_axis(axis, x.ndim, x.shape)
    others = tuple(i for i in range(x.ndim) if i != axis)
    return x.min(axis=others), x.max(axis=others)


def choose_qparams_for_tensor(
    x: ArrayLike,
    dtype: str | IntSpec = "int8",
    symmetric: bool = False,
    narrow_range: bool | None = None,
    axis: int | None = None,
    *,
    rule: str | QuantRule = "ort",
) -> QParams:
    """:func:`choose_qparams` on the min/max of ``x`` (per channel along ``axis`` if given)."""
    lo, hi = tensor_range(x, axis)
    return choose_qparams(lo, hi, dtype, symmetric, narrow_range, axis, rule=rule)


# --------------------------------------------------------------------------------------------
# Quantize / dequantize
# --------------------------------------------------------------------------------------------


def normalize_axis(axis: int, ndim: int, shape: tuple[int, ...] | None = None) -> int:
    """Maps a possibly negative axis into ``[0, ndim)``.

    Raises:
        ValueError: ``axis`` is not an int or is out of range for a tensor of rank ``ndim``.
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an int or None; got {axis!r}")
    if not -ndim <= axis < ndim:
        where = f" (shape {shape})" if shape is not None else ""
        raise ValueError(
            f"axis {axis} is out of range for a tensor of rank {ndim}{where}; "
            f"valid axes are {-ndim}..{ndim - 1}"
        )
    return int(axis) % ndim


def _channel_shape(ndim: int, axis: int, channels: int) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector along ``axis`` of a rank-``ndim`` tensor."""
    shape = [1] * ndim
    shape[axis] = channels
    return tuple(shape)


def _broadcast_params(
    shape: tuple[int, ...], scale: ArrayLike, zero_point: ArrayLike, axis: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validates scale/zero point and reshapes them to broadcast against a tensor of ``shape``."""
    scale = np.asarray(scale, dtype=np.float64)
    zero_point = np.asarray(zero_point)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"scale must be positive and finite; got {scale}")
    if zero_point.dtype.kind not in "iu":
        as_float = zero_point.astype(np.float64)
        if not np.all(as_float == np.round(as_float)):
            raise ValueError(f"zero_point must be integer-valued; got {zero_point}")
    zero_point = zero_point.astype(np.int64)

    if axis is None:
        if scale.size != 1 or zero_point.size != 1:
            raise ValueError(
                f"per-tensor quantization (axis=None) needs a single scale and zero point; got "
                f"scale shape {scale.shape}, zero_point shape {zero_point.shape}. "
                "Pass axis=<channel axis> for per-channel parameters."
            )
        return scale.reshape(()), zero_point.reshape(())

    ndim = len(shape)
    axis = normalize_axis(axis, ndim, shape)
    channels = shape[axis]
    if scale.ndim != 1 or scale.size != channels:
        raise ValueError(
            f"scale has shape {scale.shape} but axis {axis} of the tensor (shape {shape}) has "
            f"{channels} channels; per-channel scale must be 1-D with one entry per channel"
        )
    if zero_point.size == 1:
        # A single zero point shared by all channels (0 for symmetric weights) is common.
        zero_point = np.full(channels, zero_point.reshape(()).item(), dtype=np.int64)
    if zero_point.ndim != 1 or zero_point.size != channels:
        raise ValueError(
            f"zero_point has shape {zero_point.shape} but axis {axis} of the tensor has "
            f"{channels} channels; give one zero point per channel or a single one"
        )
    target = _channel_shape(ndim, axis, channels)
    return scale.reshape(target), zero_point.reshape(target)


def _check_zero_point_in_range(zero_point: np.ndarray, spec: IntSpec) -> None:
    if np.any(zero_point < spec.qmin) or np.any(zero_point > spec.qmax):
        raise ValueError(
            f"zero_point {zero_point.ravel().tolist()} is outside {spec.name}'s [{spec.qmin}, {spec.qmax}]"
        )


def quantize(
    x: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike,
    dtype: str | IntSpec = "int8",
    axis: int | None = None,
    *,
    rounding: Rounding = "half_to_even",
) -> np.ndarray:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)``, per tensor or per channel.

    The zero point is added after rounding, as in ONNX ``QuantizeLinear`` and LiteRT's Quantize
    kernel; with ties-to-even ``round(v) + z`` and ``round(v + z)`` differ for odd ``z``.

    Args:
        x: Float values (any shape; computed in float64).
        scale: Scalar, or 1-D with one entry per channel along ``axis``.
        zero_point: Integer(s), same layout as ``scale`` (or one shared value).
        dtype: Target type; values saturate to its ``[qmin, qmax]``.
        axis: Channel axis for per-channel parameters; ``None`` for per-tensor.
        rounding: ``"half_to_even"`` (ORT, ONNX; default) or ``"half_away_from_zero"`` (LiteRT).

    Returns:
        Codes in the dtype's NumPy storage type, same shape as ``x``.

    Raises:
        ValueError: Non-positive or non-finite scale, non-integer or out-of-range zero point,
            axis out of range, per-channel length mismatch, unknown dtype, NaN in ``x``.
    """
    spec = get_spec(dtype)
    x = np.asarray(x, dtype=np.float64)
    if np.any(np.isnan(x)):
        raise ValueError("cannot quantize NaN")
    scale, zero_point = _broadcast_params(x.shape, scale, zero_point, axis)
    _check_zero_point_in_range(zero_point, spec)
    # float64 keeps x / scale finite for float32-range inputs with tiny scales; +-inf from
    # a true overflow still saturates correctly in the clip below.
    with np.errstate(over="ignore"):
        codes = round_values(x / scale, rounding) + zero_point
    return np.clip(codes, spec.qmin, spec.qmax).astype(spec.numpy_dtype)


def dequantize(q: ArrayLike, scale: ArrayLike, zero_point: ArrayLike, axis: int | None = None) -> np.ndarray:
    """``(q - zero_point) * scale`` in float64, per tensor or per channel.

    Raises:
        ValueError: Same parameter checks as :func:`quantize`.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        as_float = q.astype(np.float64)
        if not np.all(as_float == np.round(as_float)):
            raise ValueError("dequantize expects integer codes")
    scale, zero_point = _broadcast_params(q.shape, scale, zero_point, axis)
    # int64 subtraction first: int8 - int64 never wraps, and the product is exact up to one
    # float64 rounding.
    return (q.astype(np.int64) - zero_point).astype(np.float64) * scale


class QuantizedTensor(NamedTuple):
    """A quantized tensor with its parameters (per-channel along ``axis`` unless it is None)."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    spec: IntSpec


def quantize_per_channel_weights(
    w: ArrayLike,
    axis: int,
    dtype: str | IntSpec = "int8",
    *,
    rule: str | QuantRule = "litert",
    symmetric: bool = True,
    narrow_range: bool | None = None,
) -> QuantizedTensor:
    """Quantizes a weight tensor per output channel the way a converter does.

    Defaults give LiteRT's int8 weights (symmetric, [-127, 127], ``scale = absmax / 127``,
    zero point 0). The output-channel axis is the last one for Keras Conv2D/Dense kernels
    (HWIO / IO) and 0 for LiteRT's OHWI conv filters and ONNX's OIHW Conv weights (depthwise:
    LiteRT 1HWO -> axis 3, ONNX [C,1,H,W] -> axis 0).

    Args:
        w: Float weights.
        axis: Output-channel axis (negative counts from the end).
        dtype: Target type, int8 by default.
        rule: ``"litert"`` (default) or ``"ort"``; also picks the rounding.
        symmetric: Symmetric per-channel ranges (both runtimes' default for int8 weights).
        narrow_range: See :func:`choose_qparams`.

    Returns:
        :class:`QuantizedTensor` with codes, per-channel float32 scales and int64 zero points.
    """
    rule = get_rule(rule)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 0:
        raise ValueError("per-channel quantization needs a tensor of rank >= 1; got a scalar")
    axis = normalize_axis(axis, w.ndim, w.shape)
    params = choose_qparams_for_tensor(w, dtype, symmetric, narrow_range, axis, rule=rule)
    spec = quantized_range(dtype, symmetric, narrow_range, rule)
    values = quantize(w, params.scale, params.zero_point, spec, axis, rounding=rule.rounding)
    return QuantizedTensor(values, params.scale, params.zero_point, axis, spec)
