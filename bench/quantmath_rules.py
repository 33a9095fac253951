"""The two runtimes' rules for affine integer quantization: integer types, rule sets, rounding.

:mod:`bench.quantmath` computes with these; what differs between the converters lives here. Two
rule sets are expressible through ``rule=`` (see :data:`RULES`); they differ only in details.

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
"""

from __future__ import annotations

import dataclasses
from typing import Literal

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
        zero point, which :func:`bench.quantmath.choose_qparams` keeps inside ``[qmin, qmax]``.
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
