"""NumPy reference for affine (scale / zero-point) integer quantization.

The harness compares what LiteRT (TFLite) and ONNX Runtime produce with this reference, so it
follows the rules of the two converters, not a textbook. The mapping is the usual one::

    q = clamp(round(x / scale) + zero_point, qmin, qmax)
    x' = (q - zero_point) * scale

Two rule sets are expressible through ``rule=`` (see :data:`RULES`); they differ only in details.

**LiteRT** (``rule="litert"``; the MLIR converter, ``tf.lite.TFLiteConverter`` in TF 2.x)

* Weights of Conv/Dense are int8, **per output channel, symmetric, narrow range**
  ``[-127, 127]``: ``scale[c] = max|w[..c..]| / 127``, ``zero_point[c] = 0``.
  (``GetUniformQuantizedPerAxisTypeForWeight`` + ``ExtractMinMaxFromAttr`` in
  ``tensorflow/compiler/mlir/quantization/common/quantization_lib/quantization_utils.cc``, then
  ``fakeQuantAttrsToType``: ``scale = (max - min) / (qmax - qmin) = 2*absmax / 254``.) The legacy
  TOCO path (``tensorflow/lite/tools/optimize/quantization_utils.cc``,
  ``SymmetricPerChannelQuantization``) gives the same ``half_range / 127``.
* Activations are int8 asymmetric over the full range ``[-128, 127]``: the calibrated range is
  widened to contain 0, ``scale = (max - min) / 255`` and the zero point is "nudged":
  ``round(qmin - min / scale)`` clamped to ``[qmin, qmax]`` (``getNudgedScaleAndZeroPoint`` /
  ``fakeQuantAttrsToType`` in ``FakeQuantSupport.cc``; it computes the zero point from whichever
  of ``(min, qmin)`` / ``(max, qmax)`` has the smaller float error, which this module copies).
  16x8 mode quantizes activations to int16 symmetric narrow range: ``scale = absmax / 32767``.
* A range narrower than 1e-6 is widened to at least ``[-5e-7, 5e-7]`` before the scale is
  computed (``ExpandVerySmallRange``, ``kNearZeroTolerance = 1e-6``), so an all-zero channel gets
  ``scale = 5e-7 / 127`` rather than 0.
* Rounding is **half away from zero** (``std::round`` in ``quantizeF32ToInt8`` of MLIR's
  ``UniformSupport.h``; ``TfLiteRound`` = ``std::round`` in the runtime's Quantize kernel and in
  ``SymmetricPerChannelQuantizeValues``). Note: *not* half-to-even.

**ONNX Runtime** (``rule="ort"``; ``onnxruntime.quantization.quantize_static``, QDQ, S8S8)

* ``compute_scale_zp`` in ``onnxruntime/python/tools/quantization/quant_utils.py`` widens the range
  to contain 0; symmetric makes it ``[-absmax, absmax]``; then
  ``scale = (rmax - rmin) / (qmax - qmin)`` for both modes, i.e. ``2*absmax / (qmax - qmin)`` when
  symmetric. Asymmetric: ``zero_point = numpy.round(qmin - rmin / scale)``; symmetric:
  ``zero_point = numpy.round((qmin + qmax) / 2)``.
* Int8 weights are symmetric by default (``BaseQuantizer.is_weight_symmetric``) and per-channel
  with ``per_channel=True``. Since ORT 1.11 (PR microsoft/onnxruntime#10170) symmetric
  quantization uses ``ONNX_INT_TYPE_SYMMETRIC_RANGE`` (int8 ``[-127, 127]``, int16
  ``[-32767, 32767]``, uint8 ``[0, 254]``), so symmetric int8 weights get
  ``scale = absmax / 127``, the same as LiteRT. Older ORT used ``[-128, 127]`` and hence
  ``absmax / 127.5``; express that with ``symmetric=True, narrow_range=False``.
  ``reduce_range=True`` (int8 ``[-64, 64]``) is not modelled here.
* Activations (S8) are asymmetric int8 over ``[-128, 127]``, as for LiteRT.
* A scale below float32's smallest normal (an all-zero range) is replaced by ``1.0`` with zero
  point 0.
* Rounding is **half to even** (``numpy.round`` in ``quantize_nparray``; the ONNX
  ``QuantizeLinear`` spec also rounds half to even).

Both runtimes store the scale as float32, so :func:`choose_qparams` returns float32 scales; the
arithmetic here is done in float64, which can differ from a runtime's float32 arithmetic by one
code for a value that lies within a float32 rounding error of a rounding tie.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

Rounding = Literal["half_to_even", "half_away_from_zero"]
ROUNDINGS: tuple[str, ...] = ("half_to_even", "half_away_from_zero")


# --------------------------------------------------------------------------------------------
# Integer types
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IntSpec:
    """An integer target type: the codes ``[qmin, qmax]`` and the NumPy type that stores them.

    Attributes:
        name: Key in :data:`DTYPES` (or a derived name such as ``"uint8_symmetric"``).
        qmin: Smallest code used.
        qmax: Largest code used.
        storage: NumPy dtype name of the stored codes (``"int8"`` for ``int8_narrow`` too).
    """

    name: str
    qmin: int
    qmax: int
    storage: str

    def __post_init__(self) -> None:
        """Rejects specs whose codes the storage type cannot hold.

        The codes need not include 0 (TensorFlow's narrow uint8 is [1, 255]): 0.0 maps to the
        zero point, which :func:`choose_qparams` keeps inside ``[qmin, qmax]``.
        """
        info = np.iinfo(np.dtype(self.storage))
        if not info.min <= self.qmin < self.qmax <= info.max:
            raise ValueError(
                f"IntSpec {self.name!r}: need {info.min} <= qmin < qmax <= {info.max} for "
                f"storage {self.storage}, got qmin={self.qmin}, qmax={self.qmax}"
            )

    @property
    def steps(self) -> int:
        """Number of quantization steps, ``qmax - qmin`` (255 for int8)."""
        return self.qmax - self.qmin

    @property
    def signed(self) -> bool:
        """Whether the storage type is signed."""
        return np.dtype(self.storage).kind == "i"

    @property
    def numpy_dtype(self) -> np.dtype:
        """The NumPy dtype of the stored codes."""
        return np.dtype(self.storage)

    def narrowed(self) -> IntSpec:
        """The TensorFlow "narrow range" variant: the lowest code is dropped (int8 -> [-127, 127]).

        Dropping ``qmin`` makes a signed range symmetric about 0, which is what lets symmetric
        quantization use zero point 0.
        """
        if self.name.endswith("_narrow"):
            return self
        return IntSpec(f"{self.name}_narrow", self.qmin + 1, self.qmax, self.storage)


DTYPES: dict[str, IntSpec] = {
    "int8": IntSpec("int8", -128, 127, "int8"),
    "uint8": IntSpec("uint8", 0, 255, "uint8"),
    "int16": IntSpec("int16", -32768, 32767, "int16"),
    # Symmetric weights (LiteRT and ORT >= 1.11) and int16 activations of LiteRT's 16x8 mode.
    "int8_narrow": IntSpec("int8_narrow", -127, 127, "int8"),
    "int16_narrow": IntSpec("int16_narrow", -32767, 32767, "int16"),
}


def get_spec(dtype: str | IntSpec) -> IntSpec:
    """Resolves a dtype name (a key of :data:`DTYPES`) or passes an :class:`IntSpec` through.

    Raises:
        ValueError: ``dtype`` is neither a known name nor an IntSpec.
    """
    if isinstance(dtype, IntSpec):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown quantized dtype {dtype!r}; known dtypes are: {', '.join(sorted(DTYPES))}")


# --------------------------------------------------------------------------------------------
# Runtime rules
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuantRule:
    """How one runtime's converter picks scales and zero points and rounds values.

    Attributes:
        name: ``"litert"`` or ``"ort"``.
        rounding: Tie-breaking of ``round`` for values and for the zero point.
        min_range: LiteRT widens a range narrower than this (1e-6) to at least
            ``[-min_range/2, min_range/2]``; ``None`` for no widening (ORT).
        degenerate_scale: Scale used when the computed one is below float32's smallest normal
            (ORT: 1.0); ``None`` where widening makes this impossible (LiteRT).
        zero_point_from_nearer_end: LiteRT computes the zero point from whichever end of the
            range gives the smaller float error; ORT always uses ``qmin - rmin / scale``.
        symmetric_midpoint_zero_point: ORT sets the symmetric zero point to
            ``round((qmin + qmax) / 2)`` directly instead of solving for it.
        unsigned_symmetric_drops_top: ORT's symmetric uint8 range is ``[0, 254]`` (drops the top
            code); TensorFlow's narrow range drops the bottom code instead.
        symmetric_needs_signed_narrow: LiteRT refuses symmetric quantization unless the type is
            signed and narrow-range (``GetUniformQuantizedTypeForWeight`` returns no type).
    """

    name: str
    rounding: Rounding
    min_range: float | None
    degenerate_scale: float | None
    zero_point_from_nearer_end: bool
    symmetric_midpoint_zero_point: bool
    unsigned_symmetric_drops_top: bool
    symmetric_needs_signed_narrow: bool


RULES: dict[str, QuantRule] = {
    "litert": QuantRule(
        name="litert",
        rounding="half_away_from_zero",
        min_range=1e-6,
        degenerate_scale=None,
        zero_point_from_nearer_end=True,
        symmetric_midpoint_zero_point=False,
        unsigned_symmetric_drops_top=False,
        symmetric_needs_signed_narrow=True,
    ),
    "ort": QuantRule(
        name="ort",
        rounding="half_to_even",
        min_range=None,
        degenerate_scale=1.0,
        zero_point_from_nearer_end=False,
        symmetric_midpoint_zero_point=True,
        unsigned_symmetric_drops_top=True,
        symmetric_needs_signed_narrow=False,
    ),
}


def get_rule(rule: str | QuantRule) -> QuantRule:
    """Resolves a rule name (a key of :data:`RULES`) or passes a :class:`QuantRule` through.

    Raises:
        ValueError: ``rule`` is not a known name.
    """
    if isinstance(rule, QuantRule):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return RULES[rule]
    raise ValueError(f"unknown rule {rule!r}; known rules are: {', '.join(sorted(RULES))}")


# --------------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------------


def round_half_to_even(values: ArrayLike) -> np.ndarray:
    """Rounds to the nearest integer, ties to even (NumPy's ``rint``, ONNX ``QuantizeLinear``)."""
    return np.rint(np.asarray(values, dtype=np.float64))


def round_half_away_from_zero(values: ArrayLike) -> np.ndarray:
    """Rounds to the nearest integer, ties away from zero (C's ``std::round``, used by LiteRT)."""
    values = np.asarray(values, dtype=np.float64)
    whole = np.trunc(values)
    # ``values - whole`` is exact in floating point, so unlike floor(x + 0.5) this never turns
    # 0.49999999999999994 into 1. (inf - inf is NaN, which the comparison treats as "no step".)
    with np.errstate(invalid="ignore"):
        fraction = values - whole
        return whole + np.where(np.abs(fraction) >= 0.5, np.sign(values), 0.0)


def round_values(values: ArrayLike, rounding: Rounding) -> np.ndarray:
    """Rounds with the named tie-breaking rule.

    Raises:
        ValueError: ``rounding`` is not one of :data:`ROUNDINGS`.
    """
    if rounding == "half_to_even":
        return round_half_to_even(values)
    if rounding == "half_away_from_zero":
        return round_half_away_from_zero(values)
    raise ValueError(f"unknown rounding {rounding!r}; use one of: {', '.join(ROUNDINGS)}")


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


def fake_quant(
    x: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike,
    dtype: str | IntSpec = "int8",
    axis: int | None = None,
    *,
    rounding: Rounding = "half_to_even",
) -> np.ndarray:
    """Quantize then dequantize: the float values a quantized runtime effectively computes with."""
    codes = quantize(x, scale, zero_point, dtype, axis, rounding=rounding)
    return dequantize(codes, scale, zero_point, axis)


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


# --------------------------------------------------------------------------------------------
# Error metrics for per-layer reports
# --------------------------------------------------------------------------------------------


def _paired(reference: ArrayLike, approx: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    app = np.asarray(approx, dtype=np.float64)
    if ref.shape != app.shape:
        raise ValueError(f"reference has shape {ref.shape} but approx has shape {app.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(app))):
        raise ValueError("reference and approx must be finite")
    return ref, app


def _normalized(ref: np.ndarray, app: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divides both by their largest magnitude, which the ratio metrics cancel.

    Without it, squaring 1e200-sized values would overflow to infinity.
    """
    magnitude = max(float(np.max(np.abs(ref), initial=0.0)), float(np.max(np.abs(app), initial=0.0)))
    if magnitude == 0.0:
        return ref, app
    return ref / magnitude, app / magnitude


def snr_db(reference: ArrayLike, approx: ArrayLike) -> float:
    """Signal-to-noise ratio ``10 log10(sum(ref^2) / sum((ref - approx)^2))`` in dB.

    Higher is better; each extra bit of precision adds about 6 dB. ``inf`` when ``approx``
    equals ``reference`` (including both all-zero); ``-inf`` when the reference is all zero and
    the approximation is not.

    Raises:
        ValueError: Shapes differ, or an input holds NaN/infinity.
    """
    ref, app = _normalized(*_paired(reference, approx))
    signal = float(np.sum(ref**2))
    noise = float(np.sum((ref - app) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def relative_error(reference: ArrayLike, approx: ArrayLike) -> float:
    """``||ref - approx||_2 / ||ref||_2``; 0 for equal inputs, ``inf`` if only ref is all zero.

    Raises:
        ValueError: Shapes differ, or an input holds NaN/infinity.
    """
    ref, app = _normalized(*_paired(reference, approx))
    diff = float(np.linalg.norm((ref - app).ravel()))
    if diff == 0.0:
        return 0.0
    base = float(np.linalg.norm(ref.ravel()))
    return float("inf") if base == 0.0 else diff / base
