"""Per-layer quantization error: every intermediate tensor of a quantized model against float.

A small batch runs through the float32 artifact and the quantized artifact of the same backend;
each op output of the quantized graph that has a counterpart in the float graph is dequantized
and compared with ``quantmath.snr_db`` and ``quantmath.relative_error``.

* **LiteRT**: both interpreters keep every intermediate (``experimental_preserve_all_tensors``).
  The converter emits the same op sequence for the float and the integer graph (BatchNorm and
  ReLU fused into the convolution in both), apart from QUANTIZE / DEQUANTIZE ops at the edges of
  some modes; those are dropped and the rest is paired by position, a pair counting only when the
  op type and the output shape agree.
* **ONNX Runtime** (QDQ): tensors are paired by name (tf2onnx names survive ORT's quantizer;
  artifacts store short names and are read back with their originals, see ``_onnx_names``);
  a QDQ tensor is read after its DequantizeLinear, i.e. with activation quantization applied.
  Exposing intermediates as graph outputs stops ORT from fusing those QDQ groups into integer
  kernels, so these numbers are those of ORT's float simulation of the QDQ graph (same scales,
  same rounding at every Q/DQ), not of its int8 kernels; the LiteRT numbers are the real kernels.

For ``qat_int8`` the float reference is the float32 artifact of the original model, so the
error includes what QAT fine-tuning changed besides quantization.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from bench import quantmath

# Ops with no float-graph counterpart: QUANTIZE / DEQUANTIZE only move values between float and
# integer; DELEGATE entries are the XNNPACK partitions appended to the op list. (With every
# tensor preserved, XNNPACK delegates each op on its own, so the preserved intermediates are the
# outputs of the kernels the bench runs.)
_SKIPPED_OPS = {"QUANTIZE", "DEQUANTIZE", "DELEGATE"}


@dataclasses.dataclass
class LayerErrors:
    """Per-layer errors of one quantized artifact.

    Attributes:
        rows: ``{"layer", "op", "snr_db", "rel_error"}`` per paired op output, in graph order.
        unmatched: One line per quantized-graph op output without a float counterpart.
    """

    rows: list[dict]
    unmatched: list[str]


def _error_row(layer: str, op: str, reference: np.ndarray, approx: np.ndarray) -> dict:
    return {
        "layer": layer,
        "op": op,
        "snr_db": quantmath.snr_db(reference, approx),
        "rel_error": quantmath.relative_error(reference, approx),
    }


# --------------------------------------------------------------------------------------------
# LiteRT
# --------------------------------------------------------------------------------------------


def _dequantized(interpreter, detail: dict) -> np.ndarray:
    """A tensor's values as float64, dequantized when it is an integer tensor with parameters."""
    values = interpreter.get_tensor(detail["index"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale > 0:
        return quantmath.dequantize(values, scale, zero_point)
    return values.astype(np.float64)


def _run_litert(path: Path, images: np.ndarray):
    """Runs one batch with every intermediate kept; returns the interpreter and its op outputs.

    Returns:
        The interpreter and ``[(op name, output tensor detail)]`` in op order, without the ops
        in _SKIPPED_OPS.
    """
    from ai_edge_litert.interpreter import Interpreter

    from bench.backends.litert import quantize_input

    with warnings.catch_warnings():
        # Keeping every tensor is the point here; the interpreter warns that it is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], list(images.shape))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    interpreter.set_tensor(source["index"], quantize_input(images, source))
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    outputs = [(op["op_name"], details[op["outputs"][0]]) for op in interpreter._get_ops_details()
               if op["op_name"] not in _SKIPPED_OPS]
    return interpreter, outputs


def litert_layer_errors(float_path: Path, quantized_path: Path, images: np.ndarray) -> LayerErrors:
    """SNR and relative error of every quantized op output against the float graph's.

    Args:
        float_path: The float32 .tflite of the model.
        quantized_path: A quantized .tflite of the same model.
        images: A float32 batch of model inputs (quantized for integer-input models).
    """
    float_interp, float_ops = _run_litert(float_path, images)
    quant_interp, quant_ops = _run_litert(quantized_path, images)
    if len(float_ops) != len(quant_ops):
        return LayerErrors([], [f"{len(quant_ops)} ops in the quantized graph but {len(float_ops)} in the float "
                                "graph: no positional pairing"])
    rows, unmatched = [], []
    for (float_op, float_detail), (quant_op, quant_detail) in zip(float_ops, quant_ops, strict=True):
        layer = float_detail["name"].split(";")[0]
        if float_op != quant_op or list(float_detail["shape"]) != list(quant_detail["shape"]):
            unmatched.append(f"{layer}: float {float_op} {list(float_detail['shape'])} vs quantized "
                             f"{quant_op} {list(quant_detail['shape'])}")
            continue
        reference = _dequantized(float_interp, float_detail)
        rows.append(_error_row(layer, quant_op, reference, _dequantized(quant_interp, quant_detail)))
    return LayerErrors(rows, unmatched)


# --------------------------------------------------------------------------------------------
# ONNX Runtime (QDQ)
# --------------------------------------------------------------------------------------------


def _run_onnx_with_outputs(path: Path, names: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs an ONNX model with ``names`` added as graph outputs; returns them by name."""
    import onnx
    import onnxruntime as ort

    from bench.modes._onnx_names import load_named

    model = load_named(path)
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names, {session.get_inputs()[0].name: images.astype(np.float32)})
    return dict(zip(names, values, strict=True))


def onnx_layer_errors(float_path: Path, quantized_path: Path, images: np.ndarray) -> LayerErrors:
    """Per-layer errors of an ORT QDQ model: each float node output against its dequantized twin."""
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
    float_values = _run_onnx_with_outputs(float_path, [p[1] for p in pairs], images)
    quant_values = _run_onnx_with_outputs(quantized_path, [p[2] for p in pairs], images)
    rows = []
    for op, name, twin in pairs:
        if float_values[name].shape != quant_values[twin].shape:
            unmatched.append(f"{name}: shape {float_values[name].shape} vs {quant_values[twin].shape}")
            continue
        rows.append(_error_row(name, op, float_values[name], quant_values[twin]))
    return LayerErrors(rows, unmatched)


def layer_errors(session, model: str, mode: str, backend: str, images: np.ndarray) -> LayerErrors:
    """Per-layer errors of ``model`` in ``mode`` on ``backend`` against its float32 artifact.

    Raises:
        ValueError: A backend without per-layer support (only litert and onnxruntime).
    """
    float_path = session.artifact(model, "float32", backend)
    quantized_path = session.artifact(model, mode, backend)
    if backend == "litert":
        return litert_layer_errors(float_path, quantized_path, images)
    if backend == "onnxruntime":
        return onnx_layer_errors(float_path, quantized_path, images)
    raise ValueError(f"no per-layer error for {backend!r}; use litert or onnxruntime")
