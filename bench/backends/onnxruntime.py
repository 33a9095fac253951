"""Backend ``onnxruntime``: an ONNX Runtime session on the CPU execution provider, batched.

* **Stored weights** (:func:`stored_weights`): every Conv / MatMul / Gemm / ConvInteger /
  MatMulInteger node, in graph order (ONNX requires topological order). The weight is input 1:
  a float initializer, or the output of a DequantizeLinear whose input is an int8 initializer
  (scale, zero point, ``axis`` attribute; the spec's default axis is 1), or, for ORT's dynamic
  ConvInteger / MatMulInteger, an int8 initializer whose scale ORT stores as ``<name>_scale``
  (its own naming; the scale only feeds a Mul with the activation scale, so no node attribute
  ties them).
* **Layer errors** (:func:`layer_errors`, QDQ graphs): tensors are paired by name (tf2onnx names
  survive ORT's quantizer; artifacts store short names and are read back with their originals,
  see ``bench.modes._onnx_names``); a QDQ tensor is read after its DequantizeLinear, i.e. with
  activation quantization applied. Exposing intermediates as graph outputs stops ORT from fusing
  those QDQ groups into integer kernels, so these numbers are those of ORT's float simulation of
  the QDQ graph (same scales, same rounding at every Q/DQ), not of its int8 kernels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backends import BACKENDS, EVAL_BATCH, Backend, predict_batched
from bench.errors import ArtifactError, first_line
from bench.inspect_artifacts import StoredWeight, output_axis
from bench.layer_error import LayerErrors, error_row

# Weight layout of each weight-carrying op, as the transpose from a Keras kernel with output
# channels last: Conv OIHW (depthwise [C*M, 1, H, W]), MatMul (in, out). Gemm's depends on its
# transB (_layout).
WEIGHT_OPS = {"Conv": (3, 2, 0, 1), "ConvInteger": (3, 2, 0, 1), "MatMul": (0, 1),
              "MatMulInteger": (0, 1), "Gemm": (0, 1)}
# Ops that only reshape: a BatchNormalization behind them still normalizes the op's output.
_SHAPE_OPS = {"Reshape", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Flatten"}


class OrtRunner:
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ArtifactError(
                f"{path} is not a loadable ONNX model ({first_line(exc)}); "
                "delete it so it is rebuilt"
            ) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: images.astype(np.float32)})[0]

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return predict_batched(self.run_batch, images, batch)


def load(path: Path, threads: int | None = None) -> OrtRunner:
    return OrtRunner(Path(path), threads)


def raw_loop(runner: OrtRunner, batches: list[np.ndarray]):
    """``InferenceSession.run`` over pre-made float32 ``batches``."""
    session, feed, outputs = runner.session, runner.input_name, [runner.output_name]

    def loop() -> None:
        for batch in batches:
            session.run(outputs, {feed: batch})

    return loop


# --------------------------------------------------------------------------------------------
# Stored weights
# --------------------------------------------------------------------------------------------


def _layout(node) -> tuple[int, ...]:
    """A node's weight layout (see WEIGHT_OPS): Gemm with transB=1 stores (out, in)."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (1, 0) if trans_b else (0, 1)
    return WEIGHT_OPS[node.op_type]


def _per_axis(scales: np.ndarray, zero_points: np.ndarray, axis: int, shape: tuple[int, ...]):
    """Per-tensor (0-d scale, axis None) or per-channel (1-D scale, axis in [0, ndim)).

    ONNX makes a 0-d scale per-tensor whatever the (default) axis says. A 1-D scale with one
    entry is per-tensor too, unless the axis it would apply to has length 1.
    """
    axis = int(axis) % len(shape)
    if scales.ndim == 0 or (scales.size == 1 and shape[axis] != 1):
        return scales.reshape(()), zero_points.reshape(()), None
    return scales.reshape(-1), zero_points.reshape(-1), axis


def _dequantized(producer, initializers: dict) -> tuple | str:
    """(codes, scales, zero points, axis) of a DequantizeLinear, or why they are unreadable."""
    codes = initializers.get(producer.input[0])
    if codes is None or codes.dtype != np.int8:
        return f"DequantizeLinear {producer.name} does not read an int8 initializer"
    scales = initializers[producer.input[1]].astype(np.float32)
    zero_points = (initializers[producer.input[2]] if len(producer.input) > 2 and producer.input[2]
                   else np.zeros(scales.shape, np.int8)).astype(np.int64)
    axis = next((a.i for a in producer.attribute if a.name == "axis"), 1)  # ONNX default: 1
    return (codes, *_per_axis(scales, zero_points, axis, codes.shape))


def _integer_op(node, initializers: dict, channel_axis: int) -> tuple | str:
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


def stored_weights(path: Path) -> list[StoredWeight]:
    """The weight (input 1) of every Conv / MatMul / Gemm (and integer variant), in graph order.

    Ops whose input 1 is an activation (neither an initializer nor dequantized from one) carry no
    weight and are left out. A quantized weight whose parameters cannot be read is listed with
    ``unreadable`` set, so that ``inspect_artifacts.match`` reports it instead of dropping it.
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
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
            continue
        from_keras = _layout(node)
        channel_axis = output_axis(from_keras)
        weight, producer = node.input[1], producers.get(node.input[1])
        if weight in initializers and initializers[weight].dtype != np.int8:
            found.append(StoredWeight(weight, node.op_type, initializers[weight], None, None, None, channel_axis,
                                      from_keras=from_keras))
            continue
        if node.op_type.endswith("Integer"):
            quantized = _integer_op(node, initializers, channel_axis)
        elif producer is not None and producer.op_type == "DequantizeLinear":
            quantized = _dequantized(producer, initializers)
        else:
            continue  # input 1 is an activation: no weight
        if isinstance(quantized, str):
            found.append(StoredWeight(weight, node.op_type, np.zeros(0, np.int8), None, None, None,
                                      channel_axis, unreadable=quantized, from_keras=from_keras))
            continue
        codes, scales, zero_points, axis = quantized
        name = producer.input[0] if producer is not None else weight
        found.append(StoredWeight(name, node.op_type, codes, scales, zero_points, axis, channel_axis,
                                  batchnorm_after=_feeds_batchnorm(node, consumers), from_keras=from_keras))
    return found


# --------------------------------------------------------------------------------------------
# Layer errors
# --------------------------------------------------------------------------------------------


def _run_with_outputs(path: Path, names: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs an ONNX model with ``names`` added as graph outputs; returns them by name."""
    import onnx
    import onnxruntime as ort

    from bench.modes._onnx_names import load_named

    model = load_named(path)
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names, {session.get_inputs()[0].name: images.astype(np.float32)})
    return dict(zip(names, values, strict=True))


def layer_errors(float_path: Path, quantized_path: Path, images: np.ndarray) -> LayerErrors:
    """Per-layer errors of an ORT QDQ model: each float node output against its dequantized twin.

    A quantized graph that shares no tensor name with the float graph is reported ``unpaired``
    (tf2onnx names a QAT graph's tensors after tfmot's wrappers, ``quant_conv1`` for ``conv1``).
    """
    from bench.modes._onnx_names import load_named

    float_nodes = [n for n in load_named(float_path).graph.node if n.output]
    quant_tensors = {out for n in load_named(quantized_path).graph.node for out in n.output}
    pairs, unmatched = [], []
    for node in float_nodes:
        name = node.output[0]
        twin = f"{name}_DequantizeLinear_Output"
        if twin in quant_tensors or name in quant_tensors:
            pairs.append((node.op_type, name, twin if twin in quant_tensors else name))
        else:
            unmatched.append(f"{name}: no tensor of that name in the quantized graph")
    if not pairs:
        return LayerErrors([], unmatched, unpaired="the quantized graph shares no tensor name with the float "
                           "graph (as when tf2onnx names a QAT graph's tensors after tfmot's wrappers), so "
                           "nothing pairs by name")
    float_values = _run_with_outputs(float_path, [p[1] for p in pairs], images)
    quant_values = _run_with_outputs(quantized_path, [p[2] for p in pairs], images)
    rows = []
    for op, name, twin in pairs:
        if float_values[name].shape != quant_values[twin].shape:
            unmatched.append(f"{name}: shape {float_values[name].shape} vs {quant_values[twin].shape}")
            continue
        rows.append(error_row(name, op, float_values[name], quant_values[twin]))
    return LayerErrors(rows, unmatched)


SPEC = BACKENDS.register("onnxruntime", Backend(
    name="onnxruntime",
    suffix=".onnx",
    description="ONNX Runtime, CPU execution provider (MLAS)",
    load=load,
    packages=("onnxruntime",),
    raw_loop=raw_loop,
    stored_weights=stored_weights,
    layer_errors=layer_errors,
    rounding="ort",
))
