"""Shared ONNX steps: tf2onnx export and ONNX Runtime's own quantization tools."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench import atomic
from bench.errors import ArtifactError, first_line
from bench.modes import _onnx_names

if TYPE_CHECKING:
    from bench.backends.onnxruntime import Int8Format

# tf2onnx's opset: 17 is the oldest the harness accepts (per-axis QDQ and the ops of all three
# models are stable there); ORT 1.32 runs it natively.
OPSET = 17
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")


def export_keras(model, input_shape: tuple[int, int, int], path: Path, what: str) -> None:
    """Exports a Keras model with tf2onnx (batch dimension dynamic), atomically.

    Raises:
        ArtifactError: tf2onnx could not convert the graph.
    """
    import tf2onnx

    from bench.tfsetup import tf

    signature = [tf.TensorSpec((None, *input_shape), tf.float32, name="image")]
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    except Exception as exc:  # tf2onnx raises whatever its handlers raise
        raise ArtifactError(f"tf2onnx could not export {what}: {first_line(exc)}") from exc
    _without_identity_reshapes(proto)
    _fold_batchnorms(proto.graph)
    atomic.write_bytes(path, proto.SerializeToString())


def package(path: Path) -> None:
    """The last step of every ONNX artifact: short tensor names, originals in a sidecar.

    See ``_onnx_names`` for why; the tools that need the names read them back with
    ``_onnx_names.load_named``.
    """
    _onnx_names.compact_file(path)


class _Reader:
    """ONNX Runtime's calibration reader over the calibration images, one batch of 1 at a time."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._items = iter([{input_name: image[None, ...].astype(np.float32)} for image in images])

    def get_next(self):
        return next(self._items, None)


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def quantize_static(float_onnx: Path, path: Path, images: np.ndarray, method: str, what: str,
                    fmt: Int8Format) -> None:
    """Static QDQ quantization in format ``fmt``, per-channel weights, calibrated on ``images``.

    ``fmt`` (``bench.backends.onnxruntime.int8_format``) gives the activation and weight types
    and ``reduce_range``; ORT's defaults do the rest (symmetric int8 weights, asymmetric uint8
    weights, as its docs describe).

    Raises:
        ArtifactError: Unknown calibration method, or ONNX Runtime's quantizer failed.
    """
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ArtifactError(
            f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # Quantize the named graph, so that the quantized tensors inherit readable names.
            named = _onnx_names.named_copy(float_onnx, Path(tmp) / "float.onnx")
            quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
            # Straight into ``path``: exporters write into the cache's staging folder, which only
            # becomes the entry once everything in it is complete.
            activation_type, weight_type = fmt.quant_types()
            q.quantize_static(
                str(prepared), str(path), _Reader(_input_name(prepared), images),
                quant_format=q.QuantFormat.QDQ,
                activation_type=activation_type,
                weight_type=weight_type,
                per_channel=True,
                reduce_range=fmt.reduce_range,
                calibrate_method=getattr(q.CalibrationMethod, method),
                calibration_providers=["CPUExecutionProvider"],
            )
        except Exception as exc:
            raise ArtifactError(f"ONNX Runtime static quantization of {what} failed: {first_line(exc)}") from exc


def quantize_dynamic(float_onnx: Path, path: Path, what: str) -> None:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized at run time."""
    from onnxruntime import quantization as q

    try:
        with tempfile.TemporaryDirectory() as tmp:
            named = _onnx_names.named_copy(float_onnx, Path(tmp) / "float.onnx")
            # Straight into ``path``, the cache's staging folder (see quantize_static).
            q.quantize_dynamic(str(named), str(path), weight_type=q.QuantType.QInt8, per_channel=True)
    except Exception as exc:
        raise ArtifactError(f"ONNX Runtime dynamic quantization of {what} failed: {first_line(exc)}") from exc


# How far (in quantization steps) a fake-quantized weight may sit from the int8 grid and still be
# called "on" it: float32 rounding of w = q * scale leaves ~1e-5 steps (measured: 2e-5 at most on
# the smoke cnn); an unquantized weight sits anywhere, typically 0.25 steps away.
GRID_TOLERANCE_STEPS = 1e-3
# Stored dtype of a symmetric weight code in [-127, 127] and the zero point that keeps its value.
_WEIGHT_STORAGE = {"int8": (np.int8, 0), "uint8": (np.uint8, 128)}
# Weight input of each op and the axis of its output channels.
_WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}


def _on_grid(values: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Whether every value of each row is an integer multiple of that row's step."""
    steps = values / step[:, None]
    return np.max(np.abs(steps - np.rint(steps)), axis=1) <= GRID_TOLERANCE_STEPS


def _row_steps(rows: np.ndarray) -> np.ndarray | None:
    """The int8 step of each row of ``rows`` (one row per channel), or None if a row is off-grid.

    Usually a row's largest value sits on code 127 (per-channel fake quant). But tf2onnx folds
    frozen BatchNorm factors into weights *after* a per-tensor fake quant (as for MobileNet's
    depthwise kernels), which leaves each channel on its own grid whose largest code is below 127:
    those rows are searched for the largest code m in 1..126 that puts them on a grid.
    """
    absmax = np.abs(rows).max(axis=1)
    absmax = np.where(absmax > 0, absmax, 1.0)
    step = absmax / 127.0
    fits = _on_grid(rows, step)
    for row in np.flatnonzero(~fits):
        for top_code in range(1, 127):
            candidate = np.array([absmax[row] / top_code])
            # A few hundred values reject a wrong code almost always; the full row confirms.
            if _on_grid(rows[row:row + 1, :512], candidate)[0] and _on_grid(rows[row:row + 1], candidate)[0]:
                step[row] = candidate[0]
                break
        else:
            return None
    return step


def _grid_scale(weight: np.ndarray, axis: int) -> tuple[np.ndarray, int | None] | None:
    """Int8 scales whose grid ``weight`` lies on: per tensor if one scale fits, else per channel."""
    w = weight.astype(np.float64)
    whole = _row_steps(w.reshape(1, -1))
    if whole is not None:
        return whole.astype(np.float32).reshape(()), None
    per_channel = _row_steps(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1))
    if per_channel is not None:
        return per_channel.astype(np.float32), axis
    return None


def _activation_scale(tensor: str, producers: dict, initializers: dict) -> float | None:
    """The scale of ``tensor`` when a DequantizeLinear with a constant scalar scale produced it."""
    from onnx import numpy_helper

    node = producers.get(tensor)
    if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in initializers:
        return None
    scale = numpy_helper.to_array(initializers[node.input[1]])
    return float(scale) if scale.size == 1 else None


def _quantized_bias(node, weight_scale: np.ndarray, producers: dict, initializers: dict, graph) -> list:
    """Stores a Conv's float bias as int32 at scale input_scale * weight_scale, behind a DQ node.

    ONNX Runtime fuses a QDQ Conv into an integer kernel only when *every* input, the bias too,
    comes from a DequantizeLinear; a float bias leaves the whole Conv in float (measured: QAT
    VGG16 at 0.68x the float speed). int32 at that scale is exactly what integer kernels add, so
    the rounding is the one the integer model makes anyway (at most half a bias step).
    """
    from onnx import helper, numpy_helper

    if node.op_type != "Conv" or len(node.input) < 3 or node.input[2] not in initializers:
        return []
    input_scale = _activation_scale(node.input[0], producers, initializers)
    if input_scale is None:
        return []
    name = node.input[2]
    bias = numpy_helper.to_array(initializers[name]).astype(np.float64)
    scale = (input_scale * np.broadcast_to(weight_scale.astype(np.float64), bias.shape)).astype(np.float32)
    q = np.clip(np.rint(bias / scale), np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    graph.initializer.remove(initializers[name])
    graph.initializer.extend([
        numpy_helper.from_array(q, f"{name}_int32"),
        numpy_helper.from_array(scale, f"{name}_scale"),
        numpy_helper.from_array(np.zeros(scale.shape, np.int32), f"{name}_zero_point"),
    ])
    node.input[2] = f"{name}_dequantized"
    return [helper.make_node(
        "DequantizeLinear", [f"{name}_int32", f"{name}_scale", f"{name}_zero_point"],
        [f"{name}_dequantized"], name=f"{name}_DequantizeLinear", axis=0,
    )]


def _without_redundant_relus(nodes: list, initializers: dict) -> list:
    """Drops each Relu whose only consumer is a QuantizeLinear that saturates at zero anyway.

    QAT exports put the fake quant after the ReLU (Conv -> Relu -> Q); with the quantized range
    starting at 0.0 (zero point = the type's minimum) the Q clamps negatives to the same code the
    Relu would, so the Relu is redundant. It is also what stops ORT from fusing Conv with its
    output Q into one integer kernel (measured: the float Conv path stayed, 0.4x float speed).
    """
    from onnx import numpy_helper

    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    kept = []
    for node in nodes:
        users = consumers.get(node.output[0], []) if node.op_type == "Relu" else []
        if len(users) == 1 and users[0].op_type == "QuantizeLinear" and len(users[0].input) > 2 \
                and users[0].input[2] in initializers:
            zero_point = numpy_helper.to_array(initializers[users[0].input[2]])
            if zero_point.size == 1 and int(zero_point) == np.iinfo(zero_point.dtype).min:
                users[0].input[0] = node.input[0]
                continue
        kept.append(node)
    return kept


def _static_shapes(model) -> dict[str, list[int | None]]:
    """Tensor name -> dims (None where symbolic, e.g. the batch) from ONNX shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {}
    for info in (*inferred.value_info, *inferred.input, *inferred.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _is_identity_reshape(node, shapes: dict, initializers: dict) -> bool:
    """Whether a Reshape to ``[-1, d1, d2, ...]`` gets an input of shape ``[n, d1, d2, ...]`` already."""
    from onnx import numpy_helper

    if node.op_type != "Reshape" or node.input[1] not in initializers:
        return False
    target = numpy_helper.to_array(initializers[node.input[1]]).tolist()
    shape = shapes.get(node.input[0])
    return (shape is not None and len(shape) == len(target) and target[0] == -1
            and None not in shape[1:] and shape[1:] == target[1:])


def _consumers(nodes) -> dict[str, list]:
    found: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _without_identity_reshapes(model) -> int:
    """Bypasses every Reshape that leaves its input's shape as it is; returns how many.

    tf2onnx wraps MobileNet's last convolutions, where the feature map is 1x1, in
    Reshape(-1, C, 1, 1) pairs, no-ops at that size. Between Conv and BatchNorm they stop the
    BatchNorm from folding, in ORT's optimizer and in its quantizer alike, and in QAT graphs they
    also sit between DequantizeLinear and Conv, which stops ORT from fusing the QDQ group into an
    integer kernel (measured: QAT MobileNet at 0.66-0.78x the float speed on ORT).
    """
    graph = model.graph
    shapes = _static_shapes(model)
    initializers = {init.name: init for init in graph.initializer}
    outputs = {v.name for v in graph.output}
    identity = [n for n in graph.node if _is_identity_reshape(n, shapes, initializers) and n.output[0] not in outputs]
    for reshape in identity:
        for node in graph.node:
            node.input[:] = [reshape.input[0] if name == reshape.output[0] else name for name in node.input]
        graph.node.remove(reshape)
    return len(identity)


def _fold_batchnorms(graph) -> int:
    """Folds each inference BatchNormalization into the Conv that alone feeds it; returns how many.

    tf2onnx folds BatchNorm itself except where a Reshape separated it from its Conv (see
    :func:`_without_identity_reshapes`); this finishes the job, as the converters do for LiteRT.
    Only for a float weight initializer read by that Conv alone. In a QAT export the folded weight
    ``w * gamma / sqrt(var + eps)`` lies on a per-channel grid of its own (the fake-quant step
    times the factor's magnitude), which :func:`store_weights_as_int8` detects and stores.
    """
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers = _consumers(graph.node)
    folded = 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization" and len(n.output) == 1]:
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(consumers.get(conv.output[0], [])) != 1:
            continue
        weight_name = conv.input[1]
        if weight_name not in initializers or len(consumers.get(weight_name, [])) != 1 \
                or any(name not in initializers for name in bn.input[1:]):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(initializers[n]).astype(np.float64) for n in bn.input[1:])
        epsilon = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        factor = gamma / np.sqrt(var + epsilon)
        weight = numpy_helper.to_array(initializers[weight_name]).astype(np.float64)
        bias = (numpy_helper.to_array(initializers[conv.input[2]]).astype(np.float64)
                if len(conv.input) > 2 and conv.input[2] in initializers else np.zeros_like(factor))
        folded_weight = (weight * factor.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
        folded_bias = (bias * factor + beta - mean * factor).astype(np.float32)
        graph.initializer.remove(initializers[weight_name])
        graph.initializer.append(numpy_helper.from_array(folded_weight, weight_name))
        bias_name = f"{bn.name or bn.output[0]}_folded_bias"
        graph.initializer.append(numpy_helper.from_array(folded_bias, bias_name))
        del conv.input[2:]
        conv.input.append(bias_name)
        conv.output[0] = bn.output[0]
        graph.node.remove(bn)
        folded += 1
    _drop_unused_initializers(graph)
    return folded


def _drop_unused_initializers(graph) -> None:
    """Removes initializers no node reads any more (a folded BatchNorm's parameters, old biases)."""
    read = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def store_weights_as_int8(path: Path, what: str, weight_type: str = "int8") -> int:
    """Rewrites a QAT export so that its fake-quantized weights are stored as int8 (or uint8).

    tf2onnx folds each weight's FakeQuant node into a float32 constant: the values already lie on
    the int8 grid, but the file holds four bytes each, and ONNX Runtime sees a float Conv. Each
    such weight becomes an int8 initializer with its scales and a DequantizeLinear node, the QDQ
    form ORT fuses into integer kernels. The values do not change (checked: every weight must lie
    within GRID_TOLERANCE_STEPS of the grid, else ArtifactError).

    ``weight_type="uint8"`` (the U8U8 format, for CPUs whose int8 sums saturate) stores the same
    grid as codes + 128 with zero point 128: the dequantized weights are the same values.

    Returns:
        How many weights were rewritten.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    rewritten, new_nodes = 0, []
    for node in graph.node:
        axis = _WEIGHT_AXIS.get(node.op_type)
        name = node.input[1] if axis is not None and len(node.input) > 1 else None
        if name not in initializers:
            new_nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[name])
        found = _grid_scale(weight, axis)
        if found is None:
            raise ArtifactError(
                f"{what}: weight {name} of {node.op_type} is not on an int8 grid; the export did "
                "not keep QAT's fake quantization"
            )
        scale, along = found
        shaped = scale if along is None else np.expand_dims(scale, tuple(i for i in range(weight.ndim) if i != along))
        q = np.clip(np.rint(weight.astype(np.float64) / shaped), -127, 127)
        dtype, zero = _WEIGHT_STORAGE[weight_type]
        graph.initializer.remove(initializers[name])
        graph.initializer.extend([
            numpy_helper.from_array((q + zero).astype(dtype), f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.full(scale.shape, zero, dtype), f"{name}_zero_point"),
        ])
        attrs = {} if along is None else {"axis": along}
        new_nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
            [f"{name}_dequantized"], name=f"{name}_DequantizeLinear", **attrs,
        ))
        node.input[1] = f"{name}_dequantized"
        new_nodes += _quantized_bias(node, scale, producers, initializers, graph)
        new_nodes.append(node)
        rewritten += 1
    new_nodes = _without_redundant_relus(new_nodes, initializers)
    del graph.node[:]
    graph.node.extend(new_nodes)
    onnx.checker.check_model(model)
    atomic.write_bytes(path, model.SerializeToString())
    return rewritten
