"""The quantized weights of real artifacts, paired with the float weights they were made from.

:mod:`bench.weight_checks` holds these pairs against :mod:`bench.quantmath`; this module only
pairs tensors. Reading a file is the backend's business: each backend with inspectable weights
registers a ``stored_weights(path)`` reader (:class:`bench.backends.Backend`) that lists the
weight of every weight-carrying op, in op order, as a :class:`StoredWeight`.

The float reference:

* **Post-training modes**: the float32 artifact of the same backend. The converters fold
  BatchNorm into the convolutions (LiteRT's MLIR passes, tf2onnx's ``_fused_bn`` weights), so
  the Keras weights are not what was quantized; the float32 artifact's constant weights are the
  folded ones. Both graphs come from the same Keras model through the same converter, so their
  weight ops line up one to one in op order; pairs are accepted only when the counts and every
  shape agree, and anything else is reported as unmatched rather than guessed.
* **QAT** (``qat_int8``): there is no float32 artifact of the QAT model. The reference is built
  from the QAT Keras model itself: each weight's tfmot fake-quant range (``kernel_min`` /
  ``kernel_max``), the kernel clipped to that range, and the per-channel factor
  ``gamma / sqrt(moving_variance + epsilon)`` of a BatchNormalization that directly follows the
  layer. Where the artifact folded that BatchNorm into the weight (LiteRT always; tf2onnx
  unless a Reshape separates Conv and BatchNorm, see ``StoredWeight.batchnorm_after``), the
  reference weight is multiplied by the factor and the expected scale is the fake-quant scale
  times ``|factor|``; otherwise both are the fake-quant ones. Keras layers and artifact weight
  ops are paired in order like the PTQ graphs, after changing the layout to the artifact's
  (``StoredWeight.from_keras``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench import quantmath
from bench.backends import BACKENDS
from bench.modes import REFERENCE_MODE


@dataclasses.dataclass
class StoredWeight:
    """The weight input of one op as the artifact stores it.

    Attributes:
        name: Tensor or initializer name (LiteRT: the first of its ';'-joined fused names).
        op: The consuming op's type (``CONV_2D``, ``Conv``, ...).
        values: Float weights, or int8 codes when quantized.
        scales: Float32 scale(s) when quantized (0-d per-tensor, 1-D per-channel), else None.
        zero_points: Int64 zero point(s), same layout as ``scales``, else None.
        axis: Quantized axis for per-channel weights; None for per-tensor or float.
        channel_axis: The output-channel axis of this op's weight layout.
        unreadable: Why a quantized weight's parameters could not be read (None when they could).
        batchnorm_after: The op's output goes (through shape-only ops) into a BatchNormalization
            node, i.e. the converter did not fold that BatchNorm into this weight.
        from_keras: The transpose that takes a Keras kernel with output channels last
            (``(H, W, I, O)``, depthwise ``(H, W, 1, C*M)``, dense ``(I, O)``) to this op's
            layout; None where the reader knows none (then no QAT reference pairs with it).
    """

    name: str
    op: str
    values: np.ndarray
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    axis: int | None
    channel_axis: int
    unreadable: str | None = None
    batchnorm_after: bool = False
    from_keras: tuple[int, ...] | None = None

    @property
    def quantized(self) -> bool:
        """Whether it holds 8-bit codes: int8, or uint8 (ONNX Runtime's U8U8 format)."""
        return self.values.dtype in (np.int8, np.uint8)


@dataclasses.dataclass
class QuantizedWeight:
    """One int8 weight of an artifact with the float weights it was quantized from.

    Attributes:
        name: Name in the quantized artifact.
        op: The op that consumes it.
        float_weights: Reference float weights in the artifact's layout (see module docstring).
        values: The stored int8 codes.
        scales: Stored float32 scale(s): 0-d per-tensor, 1-D per-channel.
        zero_points: Stored zero point(s), same layout as ``scales``.
        axis: Stored quantized axis; None for per-tensor.
        channel_axis: Output-channel axis of the op's weight layout (what ``axis`` must be).
        expected_scales: QAT only: the scales the fake-quant ranges imply, times ``|factor|``
            where a BatchNorm was folded in (0-d for a per-tensor weight); None where the
            runtime's rule derives them from ``float_weights``.
    """

    name: str
    op: str
    float_weights: np.ndarray
    values: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    axis: int | None
    channel_axis: int
    expected_scales: np.ndarray | None = None


@dataclasses.dataclass
class Inspection:
    """The matched weights of one artifact and what could not be matched.

    Attributes:
        weights: Quantized weights paired with their float reference, in op order.
        unmatched: One line per quantized weight that has no trustworthy reference.
        float_ops: Weight ops left in float (e.g. layers too small for dynamic-range mode).
    """

    weights: list[QuantizedWeight]
    unmatched: list[str]
    float_ops: int


@dataclasses.dataclass
class Reference:
    """A QAT layer's weights, output channels last, before any BatchNorm folding.

    Attributes:
        name: Keras layer name.
        values: The kernel clipped to its fake-quant range (what the fake quant represents), in
            the layout ``StoredWeight.from_keras`` starts from.
        fake_quant_scales: The fake-quant scale of every output channel.
        batchnorm_factor: ``gamma / sqrt(var + eps)`` per output channel of a BatchNormalization
            that directly follows the layer (None when none does); folded in by :func:`match`
            unless the artifact keeps that BatchNorm as its own op.
    """

    name: str
    values: np.ndarray
    fake_quant_scales: np.ndarray
    batchnorm_factor: np.ndarray | None


def output_axis(from_keras: tuple[int, ...]) -> int:
    """The output-channel axis of an op's weight: where ``from_keras`` puts the last Keras axis."""
    return from_keras.index(len(from_keras) - 1)


def stored_weights(path: Path, backend: str) -> list[StoredWeight]:
    """The weights of every weight op of an artifact, in op order, read by the backend's reader.

    Raises:
        ValueError: ``backend`` registers no reader (its artifacts hold no quantized weights).
    """
    reader = BACKENDS.get(backend).stored_weights
    if reader is None:
        readers = [name for name, spec in BACKENDS.items() if spec.stored_weights]
        raise ValueError(f"{backend} artifacts hold no quantized weights to inspect; backends with a "
                         f"reader: {', '.join(readers)}")
    return reader(path)


# --------------------------------------------------------------------------------------------
# QAT reference from the Keras model
# --------------------------------------------------------------------------------------------

# Keras layers whose kernel _output_last leaves with output channels last, the layout every
# reader's StoredWeight.from_keras starts from (Conv2DTranspose, for one, stores (H, W, O, I)).
_OUTPUT_LAST_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def _short_names(layer) -> dict[str, np.ndarray]:
    """A layer's weights by short name ("kernel", "kernel_min", "gamma", ...)."""
    return {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}


def _inner(layer):
    """The Keras layer inside a tfmot QuantizeWrapper (or the layer itself)."""
    return getattr(layer, "layer", layer)


def _fake_quantized_kernel(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(kernel, range min, range max) of a layer's fake-quantized weight, if it has one.

    tfmot stores the range of weight ``w`` as ``w_min`` / ``w_max`` next to it (``kernel``,
    ``depthwise_kernel``); activations' ranges have no such twin.
    """
    weights = _short_names(layer)
    for short, values in weights.items():
        if f"{short}_min" in weights and f"{short}_max" in weights and values.ndim >= 2:
            return values, weights[f"{short}_min"], weights[f"{short}_max"]
    return None


def _batchnorm_factor(layer) -> np.ndarray | None:
    """``gamma / sqrt(var + eps)`` of a BatchNormalization that is the layer's only consumer."""
    consumers = [node.outbound_layer for node in layer.outbound_nodes]
    if len(consumers) != 1 or type(_inner(consumers[0])).__name__ != "BatchNormalization":
        return None
    bn = _inner(consumers[0])
    weights = _short_names(consumers[0])
    gamma = weights.get("gamma", np.ones_like(weights["moving_variance"]))
    return (gamma / np.sqrt(weights["moving_variance"].astype(np.float64) + bn.epsilon)).astype(np.float64)


def _output_last(kernel: np.ndarray, layer_type: str) -> np.ndarray:
    """Depthwise (H, W, C, M) -> (H, W, 1, C*M): output channel c*M + m last, as for Conv2D."""
    if layer_type == "DepthwiseConv2D":
        h, w, c, m = kernel.shape
        return kernel.reshape(h, w, 1, c * m)
    return kernel


def _fake_quant_scale(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Scale of TF's FakeQuantWithMinMaxVars(PerChannel), narrow range: ``(max - min) / 254``.

    tfmot's weight quantizer is symmetric (``min = -max``), so the nudged zero point is 0 and
    this is exactly ``quantmath.choose_qparams`` on ``[min, max]`` with int8 narrow range.
    """
    lo, hi = np.atleast_1d(lo), np.atleast_1d(hi)
    narrow = quantmath.DTYPES["int8_narrow"]
    params = quantmath.choose_qparams(lo, hi, narrow, symmetric=False, axis=0, rule="litert")
    return params.scale.astype(np.float64)


def qat_reference(qat_model) -> list[Reference | str]:
    """The clipped kernel, fake-quant scales and BatchNorm factor of each fake-quantized layer.

    Returns:
        One :class:`Reference` per fake-quantized Conv2D / DepthwiseConv2D / Dense layer, in
        layer order and Keras layout, or a string saying why a layer has none (unknown layer
        type or range shape).
    """
    references: list[Reference | str] = []
    for layer in qat_model.layers:
        found = _fake_quantized_kernel(layer)
        if found is None:
            continue
        layer_type = type(_inner(layer)).__name__
        if layer_type not in _OUTPUT_LAST_LAYERS:
            references.append(f"{layer.name}: no output-channels-last layout known for {layer_type}")
            continue
        kernel, lo, hi = found
        kernel = _output_last(kernel.astype(np.float64), layer_type)
        channels = kernel.shape[-1]
        scale = _fake_quant_scale(lo, hi)
        if scale.size not in (1, channels):
            references.append(f"{layer.name}: fake-quant range of {scale.size} entries for {channels} channels")
            continue
        # The fake quant clamps to its (symmetric, nudged) range before anything else happens.
        clipped = np.clip(kernel, -127 * scale, 127 * scale)
        references.append(Reference(layer.name, clipped, np.broadcast_to(scale, (channels,)).copy(),
                                    _batchnorm_factor(layer)))
    return references




# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def _per_tensor_expected(expected: np.ndarray, stored: StoredWeight) -> np.ndarray:
    """Expected scales in the stored weight's layout: one scale for a per-tensor weight.

    Per-channel expectations that differ between channels stay per-channel, and the scale
    check then reports the per-tensor weight's single scale as a mismatch.
    """
    if stored.axis is None and np.all(expected == expected.flat[0]):
        return np.asarray(expected.flat[0], dtype=np.float32)
    return expected


def _laid_out(stored: StoredWeight, ref: StoredWeight | Reference) -> np.ndarray | str:
    """The reference's float weights in the stored weight's layout, or why they cannot be.

    A float32 artifact's weight already is; a QAT layer's Keras kernel takes the transpose the
    backend's reader recorded for the op.
    """
    if isinstance(ref, StoredWeight):
        return ref.values
    if stored.from_keras is None or len(stored.from_keras) != ref.values.ndim:
        return (f"{stored.name}: no layout known that takes {ref.name}'s Keras kernel "
                f"{ref.values.shape} to {stored.op}'s")
    return np.transpose(ref.values, stored.from_keras)


def _qat_weight(stored: StoredWeight, ref: Reference, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float weights and expected scales of a QAT layer as ``stored`` holds it.

    ``values`` is the layer's kernel in the stored layout (:func:`_laid_out`). The converters
    fold a following BatchNorm into the weight (LiteRT always; tf2onnx unless a Reshape
    separates them): the weight and its scale are multiplied by the per-channel factor (the
    scale by its magnitude, so a negative gamma flips the codes, not the scale).
    """
    factor = ref.batchnorm_factor
    if factor is None or stored.batchnorm_after:
        factor = np.ones_like(ref.fake_quant_scales)
    shape = [1] * values.ndim
    shape[stored.channel_axis] = -1
    values = (values * factor.reshape(shape)).astype(np.float32)
    expected = (ref.fake_quant_scales * np.abs(factor)).astype(np.float32)
    return values, _per_tensor_expected(expected, stored)


def match(quantized: list[StoredWeight], references: list[StoredWeight | Reference | str]) -> Inspection:
    """Pairs each int8 weight with the reference of the same position in op order.

    Positions must agree one to one: different weight-op counts mean the graphs differ, and
    then nothing is paired (every int8 weight is reported unmatched).
    """
    int8 = [w for w in quantized if w.quantized]
    float_ops = len(quantized) - len(int8)
    if len(quantized) != len(references):
        return Inspection([], [f"{w.name}: {len(quantized)} weight ops in the artifact but "
                               f"{len(references)} in the reference" for w in int8], float_ops)
    weights, unmatched = [], []
    for stored, ref in zip(quantized, references, strict=True):
        if not stored.quantized:
            continue
        if stored.unreadable:
            unmatched.append(f"{stored.name}: {stored.unreadable}")
            continue
        values = ref if isinstance(ref, str) else _laid_out(stored, ref)
        if isinstance(values, str):
            unmatched.append(values)
            continue
        if values.shape != stored.values.shape:
            unmatched.append(f"{stored.name}: shape {stored.values.shape} but its reference "
                             f"{ref.name} has {values.shape}")
            continue
        if isinstance(ref, Reference):
            values, expected = _qat_weight(stored, ref, values)
        else:
            values, expected = values.astype(np.float32), None
        weights.append(QuantizedWeight(
            stored.name, stored.op, values, stored.values, stored.scales,
            stored.zero_points, stored.axis, stored.channel_axis, expected,
        ))
    return Inspection(weights, unmatched, float_ops)


def inspect(build, model: str, mode: str, backend: str) -> Inspection:
    """The int8 weights of ``model`` in ``mode`` on ``backend``, each with its float reference.

    Args:
        build: A :class:`bench.build.Builder` (artifacts, trained and QAT models).
        model: Model name.
        mode: A quantized mode whose artifact stores int8 weights.
        backend: A backend with a ``stored_weights`` reader.
    """
    from bench.modes import MODES

    quantized = stored_weights(build.artifact(model, mode, backend), backend)
    if MODES.get(mode).uses_qat:
        references = qat_reference(build.qat(model).model)
    else:
        references = stored_weights(build.artifact(model, REFERENCE_MODE, backend), backend)
    return match(quantized, references)
