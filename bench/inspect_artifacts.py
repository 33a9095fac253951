"""The quantized weights of real artifacts, paired with the float weights they were made from.

:mod:`bench.weight_checks` holds these pairs against :mod:`bench.quantmath`; this module only
reads files and pairs tensors.

Reading:

* **LiteRT**: every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op, in the interpreter's op
  order; its weight is input 1, with ``quantization_parameters`` (scales, zero points,
  quantized dimension). A weight with one scale is per-tensor (``axis=None``).
* **ONNX**: every Conv / MatMul / Gemm / ConvInteger / MatMulInteger node, in graph order (ONNX
  requires topological order). The weight is input 1: a float initializer, or the output of a
  DequantizeLinear whose input is an int8 initializer (scale, zero point, ``axis`` attribute;
  the spec's default axis is 1), or, for ORT's dynamic ConvInteger / MatMulInteger, an int8
  initializer whose scale ORT stores as ``<name>_scale`` (its own naming; the scale only feeds
  a Mul with the activation scale, so no node attribute ties them).

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
  unless a Reshape separates Conv and BatchNorm, see :func:`_feeds_batchnorm`), the reference
  weight is multiplied by the factor and the expected scale is the fake-quant scale times
  ``|factor|``; otherwise both are the fake-quant ones. Keras layers and artifact weight ops are
  paired in order like the PTQ graphs, after changing the layout to the artifact's
  (:data:`_LAYOUTS`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench import quantmath

# Output-channel axis of the weight of each weight-carrying op, in the runtime's own layout:
# LiteRT conv OHWI, depthwise 1HW(C*M), fully connected (out, in); ONNX Conv OIHW (depthwise
# [C*M, 1, H, W]), MatMul (in, out). Gemm is handled in _onnx_channel_axis (transB decides).
LITERT_WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
ONNX_WEIGHT_OPS = {"Conv": 0, "ConvInteger": 0, "MatMul": 1, "MatMulInteger": 1, "Gemm": 1}


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

    @property
    def quantized(self) -> bool:
        return self.values.dtype == np.int8


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
    """A QAT layer's weights in an artifact's layout, before any BatchNorm folding.

    Attributes:
        name: Keras layer name.
        values: The kernel clipped to its fake-quant range (what the fake quant represents).
        fake_quant_scales: The fake-quant scale of every output channel.
        batchnorm_factor: ``gamma / sqrt(var + eps)`` per output channel of a BatchNormalization
            that directly follows the layer (None when none does); folded in by :func:`match`
            unless the artifact keeps that BatchNorm as its own op.
    """

    name: str
    values: np.ndarray
    fake_quant_scales: np.ndarray
    batchnorm_factor: np.ndarray | None


# --------------------------------------------------------------------------------------------
# LiteRT
# --------------------------------------------------------------------------------------------


def _litert_params(detail: dict, channel_axis: int) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Scales, zero points and axis of a LiteRT tensor; one scale means per-tensor."""
    params = detail["quantization_parameters"]
    scales = np.asarray(params["scales"], dtype=np.float32)
    zero_points = np.asarray(params["zero_points"], dtype=np.int64)
    if scales.size == 1 and detail["shape"][channel_axis] != 1:
        return scales.reshape(()), zero_points.reshape(()), None
    return scales, zero_points, int(params["quantized_dimension"])


def litert_weights(path: Path) -> list[StoredWeight]:
    """The weight (input 1) of every conv / depthwise / fully connected op, in op order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        channel_axis = LITERT_WEIGHT_OPS.get(op["op_name"])
        if channel_axis is None:
            continue
        detail = details[op["inputs"][1]]
        values = np.array(interpreter.get_tensor(detail["index"]))
        name = detail["name"].split(";")[0]
        if values.dtype == np.int8:
            scales, zero_points, axis = _litert_params(detail, channel_axis)
        else:
            scales, zero_points, axis = None, None, None
        found.append(StoredWeight(name, op["op_name"], values, scales, zero_points, axis, channel_axis))
    return found


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------


def _onnx_channel_axis(node) -> int:
    """Output-channel axis of a node's weight: Gemm with transB=1 stores (out, in)."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return ONNX_WEIGHT_OPS[node.op_type]


def _per_axis(scales: np.ndarray, zero_points: np.ndarray, axis: int, shape: tuple[int, ...]):
    """Per-tensor (0-d scale, axis None) or per-channel (1-D scale, axis in [0, ndim)).

    ONNX makes a 0-d scale per-tensor whatever the (default) axis says. A 1-D scale with one
    entry is per-tensor too, unless the axis it would apply to has length 1.
    """
    axis = int(axis) % len(shape)
    if scales.ndim == 0 or (scales.size == 1 and shape[axis] != 1):
        return scales.reshape(()), zero_points.reshape(()), None
    return scales.reshape(-1), zero_points.reshape(-1), axis


def _onnx_dequantized(producer, initializers: dict) -> tuple | str:
    """(codes, scales, zero points, axis) of a DequantizeLinear, or why they are unreadable."""
    codes = initializers.get(producer.input[0])
    if codes is None or codes.dtype != np.int8:
        return f"DequantizeLinear {producer.name} does not read an int8 initializer"
    scales = initializers[producer.input[1]].astype(np.float32)
    zero_points = (initializers[producer.input[2]] if len(producer.input) > 2 and producer.input[2]
                   else np.zeros(scales.shape, np.int8)).astype(np.int64)
    axis = next((a.i for a in producer.attribute if a.name == "axis"), 1)  # ONNX default: 1
    return (codes, *_per_axis(scales, zero_points, axis, codes.shape))


def _onnx_integer_op(node, initializers: dict, channel_axis: int) -> tuple | str:
    """(codes, scales, zero points, axis) of a ConvInteger / MatMulInteger weight, or why not.

    ORT's dynamic quantizer names the weight ``<w>_quantized`` and its scale ``<w>_scale``, and
    quantizes per channel along the op's output channels (Conv: 0, MatMul: 1), which the file
    does not record: the scale only feeds a Mul with the activation's scale.
    """
    codes = initializers.get(node.input[1])
    base = node.input[1].removesuffix("_quantized")
    scales = initializers.get(f"{base}_scale")
    if codes is None or codes.dtype != np.int8 or scales is None:
        return f"{node.op_type} {node.name}: no int8 initializer with a {base}_scale initializer"
    zero_points = (initializers[node.input[3]] if len(node.input) > 3 and node.input[3]
                   else np.zeros(scales.shape, np.int8)).astype(np.int64)
    return (codes, *_per_axis(scales.astype(np.float32), zero_points, channel_axis, codes.shape))


# Ops that only reshape: a BatchNormalization behind them still normalizes the op's output.
_SHAPE_OPS = {"Reshape", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Flatten"}


def _feeds_batchnorm(node, consumers: dict) -> bool:
    """Whether ``node``'s output reaches a BatchNormalization through shape-only ops.

    tf2onnx fuses Conv + BatchNorm into ``*_weights_fused_bn`` weights, but not when a Reshape
    sits between them (MobileNet's last blocks, whose feature maps are 1x1 on 32x32 input).
    """
    for _ in range(len(_SHAPE_OPS) + 1):  # a bounded walk: each shape op at most once in a row
        following = consumers.get(node.output[0], [])
        if len(following) != 1:
            return False
        node = following[0]
        if node.op_type == "BatchNormalization":
            return True
        if node.op_type not in _SHAPE_OPS:
            return False
    return False


def onnx_weights(path: Path) -> list[StoredWeight]:
    """The weight (input 1) of every Conv / MatMul / Gemm (and integer variant), in graph order.

    Ops whose input 1 is an activation (neither an initializer nor dequantized from one) carry no
    weight and are left out. A quantized weight whose parameters cannot be read is listed with
    ``unreadable`` set, so that :func:`match` reports it instead of dropping it.
    """
    from onnx import numpy_helper

    from bench.modes._onnx_names import load_named

    graph = load_named(path).graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in graph.node:
        if node.op_type not in ONNX_WEIGHT_OPS or len(node.input) < 2:
            continue
        channel_axis = _onnx_channel_axis(node)
        weight, producer = node.input[1], producers.get(node.input[1])
        if weight in initializers and initializers[weight].dtype != np.int8:
            found.append(StoredWeight(weight, node.op_type, initializers[weight], None, None, None, channel_axis))
            continue
        if node.op_type.endswith("Integer"):
            quantized = _onnx_integer_op(node, initializers, channel_axis)
        elif producer is not None and producer.op_type == "DequantizeLinear":
            quantized = _onnx_dequantized(producer, initializers)
        else:
            continue  # input 1 is an activation: no weight
        if isinstance(quantized, str):
            found.append(StoredWeight(weight, node.op_type, np.zeros(0, np.int8), None, None, None,
                                      channel_axis, unreadable=quantized))
            continue
        codes, scales, zero_points, axis = quantized
        name = producer.input[0] if producer is not None else weight
        found.append(StoredWeight(name, node.op_type, codes, scales, zero_points, axis, channel_axis,
                                  batchnorm_after=_feeds_batchnorm(node, consumers)))
    return found


def stored_weights(path: Path, backend: str) -> list[StoredWeight]:
    """The weights of every weight op of an artifact, in op order.

    Raises:
        ValueError: ``backend`` stores no inspectable quantized weights (e.g. ``keras``).
    """
    if backend == "litert":
        return litert_weights(path)
    if backend == "onnxruntime":
        return onnx_weights(path)
    raise ValueError(f"no reader for {backend!r} artifacts; use litert or onnxruntime")


# --------------------------------------------------------------------------------------------
# QAT reference from the Keras model
# --------------------------------------------------------------------------------------------

# Keras weight -> artifact layout, after _output_last has made every Keras kernel (H, W, I, O)
# or (I, O) with output channels last. Keys: (backend, Keras layer class).
_LAYOUTS = {
    ("litert", "Conv2D"): (3, 0, 1, 2),            # HWIO -> OHWI
    ("litert", "DepthwiseConv2D"): (2, 0, 1, 3),   # HW1(C*M) -> 1HW(C*M)
    ("litert", "Dense"): (1, 0),                   # (in, out) -> (out, in)
    ("onnxruntime", "Conv2D"): (3, 2, 0, 1),       # HWIO -> OIHW
    ("onnxruntime", "DepthwiseConv2D"): (3, 2, 0, 1),  # HW1(C*M) -> (C*M)1HW
    ("onnxruntime", "Dense"): (0, 1),              # MatMul keeps (in, out)
}


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


def qat_reference(qat_model, backend: str) -> list[Reference | str]:
    """The clipped kernel, fake-quant scales and BatchNorm factor of each fake-quantized layer.

    Returns:
        One :class:`Reference` per fake-quantized Conv2D / DepthwiseConv2D / Dense layer, in
        layer order, or a string saying why a layer has none (unknown layer type or range shape).
    """
    references: list[Reference | str] = []
    for layer in qat_model.layers:
        found = _fake_quantized_kernel(layer)
        if found is None:
            continue
        layer_type = type(_inner(layer)).__name__
        layout = _LAYOUTS.get((backend, layer_type))
        if layout is None:
            references.append(f"{layer.name}: no {backend} layout known for {layer_type}")
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
        references.append(Reference(layer.name, np.transpose(clipped, layout),
                                    np.broadcast_to(scale, (channels,)).copy(), _batchnorm_factor(layer)))
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


def _qat_weight(stored: StoredWeight, ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Float weights and expected scales of a QAT layer as ``stored`` holds it.

    The converters fold a following BatchNorm into the weight (LiteRT always; tf2onnx unless a
    Reshape separates them): the weight and its scale are multiplied by the per-channel factor
    (the scale by its magnitude, so a negative gamma flips the codes, not the scale).
    """
    factor = ref.batchnorm_factor
    if factor is None or stored.batchnorm_after:
        factor = np.ones_like(ref.fake_quant_scales)
    shape = [1] * ref.values.ndim
    shape[stored.channel_axis] = -1
    values = (ref.values * factor.reshape(shape)).astype(np.float32)
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
        if isinstance(ref, str):
            unmatched.append(ref)
            continue
        if ref.values.shape != stored.values.shape:
            unmatched.append(f"{stored.name}: shape {stored.values.shape} but its reference "
                             f"{ref.name} has {ref.values.shape}")
            continue
        if isinstance(ref, Reference):
            values, expected = _qat_weight(stored, ref)
        else:
            values, expected = ref.values.astype(np.float32), None
        weights.append(QuantizedWeight(
            stored.name, stored.op, values, stored.values, stored.scales,
            stored.zero_points, stored.axis, stored.channel_axis, expected,
        ))
    return Inspection(weights, unmatched, float_ops)


def inspect(session, model: str, mode: str, backend: str) -> Inspection:
    """The int8 weights of ``model`` in ``mode`` on ``backend``, each with its float reference.

    Args:
        session: A :class:`bench.session.BenchSession` (artifacts, trained and QAT models).
        model: Model name.
        mode: A quantized mode whose artifact stores int8 weights.
        backend: ``litert`` or ``onnxruntime``.
    """
    from bench.modes import MODES

    quantized = stored_weights(session.artifact(model, mode, backend), backend)
    if MODES.get(mode).uses_qat:
        references = qat_reference(session.qat(model).model, backend)
    else:
        references = stored_weights(session.artifact(model, "float32", backend), backend)
    return match(quantized, references)
