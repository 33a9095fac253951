"""Backend ``litert``: the ai_edge_litert interpreter (XNNPACK), batched.

Integer-only models take int8 input and give int8 output: the runner quantizes the float images
with the input tensor's scale and zero point and dequantizes the logits, so callers always see
float32 in and out.

* **Stored weights** (:func:`stored_weights`): every CONV_2D / DEPTHWISE_CONV_2D /
  FULLY_CONNECTED op, in the interpreter's op order; its weight is input 1, with
  ``quantization_parameters`` (scales, zero points, quantized dimension). A weight with one
  scale is per-tensor (``axis=None``).
* **Layer errors** (:func:`layer_errors`): both interpreters keep every intermediate
  (``experimental_preserve_all_tensors``). The converter emits the same op sequence for the float
  and the integer graph (BatchNorm and ReLU fused into the convolution in both), apart from
  QUANTIZE / DEQUANTIZE ops at the edges of some modes; those are dropped and the rest is paired
  by position, a pair counting only when the op type and the output shape agree. These are the
  outputs of the real integer kernels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bench import formats, quantmath
from bench.backends import BACKENDS, EVAL_BATCH, Backend, predict_batched
from bench.errors import ArtifactError, first_line
from bench.inspect_artifacts import StoredWeight, output_axis
from bench.layer_error import LayerErrors, error_row

# Weight layout of each weight-carrying op, as the transpose from a Keras kernel with output
# channels last: conv OHWI, depthwise 1HW(C*M), fully connected (out, in).
WEIGHT_OPS = {"CONV_2D": (3, 0, 1, 2), "DEPTHWISE_CONV_2D": (2, 0, 1, 3), "FULLY_CONNECTED": (1, 0)}
# Ops with no float-graph counterpart: QUANTIZE / DEQUANTIZE only move values between float and
# integer; DELEGATE entries are the XNNPACK partitions appended to the op list. (With every
# tensor preserved, XNNPACK delegates each op on its own, so the preserved intermediates are the
# outputs of the kernels the bench runs.)
_SKIPPED_OPS = {"QUANTIZE", "DEQUANTIZE", "DELEGATE"}


def quantize_input(images: np.ndarray, detail: dict) -> np.ndarray:
    """Float images -> the input tensor's dtype, with its affine parameters if it is integer."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    # In place on one float32 buffer: for the small cnn the whole evaluation takes ~15 ms per
    # 1,000 images, so temporaries here are a visible share of the harness's cost.
    buffer = np.multiply(images, np.float32(1.0 / scale), dtype=np.float32)
    np.rint(buffer, out=buffer)
    buffer += np.float32(zero_point)
    np.clip(buffer, info.min, info.max, out=buffer)
    return buffer.astype(dtype)


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


class LiteRTRunner:
    """A .tflite file in an interpreter, batched.

    Args:
        interpreter_class: The interpreter to run it in; None: ai_edge_litert's. Another runtime
            with the same API (TensorFlow's bundled ``tf.lite.Interpreter``) reuses this runner.
    """

    def __init__(self, path: Path, threads: int | None, interpreter_class: type | None = None) -> None:
        if interpreter_class is None:
            from ai_edge_litert.interpreter import Interpreter as interpreter_class

        try:
            self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
        except Exception as exc:
            raise ArtifactError(
                f"{path} is not a loadable .tflite model ({first_line(exc)}); "
                "delete it so it is rebuilt"
            ) from exc
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def _resize(self, batch: int) -> None:
        if batch != self.batch:
            shape = [batch, *self.input["shape"][1:]]
            self.interpreter.resize_tensor_input(self.input["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
            self.batch = batch

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        self._resize(len(images))
        self.interpreter.set_tensor(self.input["index"], quantize_input(images, self.input))
        self.interpreter.invoke()
        return dequantize_output(self.interpreter.get_tensor(self.output["index"]), self.output)

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return predict_batched(self.run_batch, images, batch)


def load(path: Path, threads: int | None = None) -> LiteRTRunner:
    return LiteRTRunner(Path(path), threads)


def raw_loop(runner: LiteRTRunner, batches: list[np.ndarray]):
    """The interpreter's own set_tensor / invoke / get_tensor over pre-quantized ``batches``."""
    quantized = [quantize_input(batch, runner.input) for batch in batches]
    runner._resize(len(batches[0]))
    interpreter = runner.interpreter

    def loop() -> None:
        for batch in quantized:
            interpreter.set_tensor(runner.input["index"], batch)
            interpreter.invoke()
            interpreter.get_tensor(runner.output["index"])

    return loop


# --------------------------------------------------------------------------------------------
# Stored weights
# --------------------------------------------------------------------------------------------


def _params(detail: dict, channel_axis: int) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Scales, zero points and axis of a LiteRT tensor; one scale means per-tensor."""
    params = detail["quantization_parameters"]
    scales = np.asarray(params["scales"], dtype=np.float32)
    zero_points = np.asarray(params["zero_points"], dtype=np.int64)
    if scales.size == 1 and detail["shape"][channel_axis] != 1:
        return scales.reshape(()), zero_points.reshape(()), None
    return scales, zero_points, int(params["quantized_dimension"])


def stored_weights(path: Path) -> list[StoredWeight]:
    """The weight (input 1) of every conv / depthwise / fully connected op, in op order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        from_keras = WEIGHT_OPS.get(op["op_name"])
        if from_keras is None:
            continue
        channel_axis = output_axis(from_keras)
        detail = details[op["inputs"][1]]
        values = np.array(interpreter.get_tensor(detail["index"]))
        name = detail["name"].split(";")[0]
        if values.dtype == np.int8:
            scales, zero_points, axis = _params(detail, channel_axis)
        else:
            scales, zero_points, axis = None, None, None
        found.append(StoredWeight(name, op["op_name"], values, scales, zero_points, axis, channel_axis,
                                  from_keras=from_keras))
    return found


# --------------------------------------------------------------------------------------------
# Layer errors
# --------------------------------------------------------------------------------------------


def _dequantized(interpreter, detail: dict) -> np.ndarray:
    """A tensor's values as float64, dequantized when it is an integer tensor with parameters."""
    values = interpreter.get_tensor(detail["index"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale > 0:
        return quantmath.dequantize(values, scale, zero_point)
    return values.astype(np.float64)


def _run_preserving(path: Path, images: np.ndarray):
    """Runs one batch with every intermediate kept; returns the interpreter and its op outputs.

    Returns:
        The interpreter and ``[(op name, output tensor detail)]`` in op order, without the ops
        in _SKIPPED_OPS.
    """
    from ai_edge_litert.interpreter import Interpreter

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


def layer_errors(float_path: Path, quantized_path: Path, images: np.ndarray) -> LayerErrors:
    """SNR and relative error of every quantized op output against the float graph's.

    Args:
        float_path: The float32 .tflite of the model.
        quantized_path: A quantized .tflite of the same model.
        images: A float32 batch of model inputs (quantized for integer-input models).
    """
    float_interp, float_ops = _run_preserving(float_path, images)
    quant_interp, quant_ops = _run_preserving(quantized_path, images)
    if len(float_ops) != len(quant_ops):
        return LayerErrors([], [], unpaired=f"{len(quant_ops)} ops in the quantized graph but "
                           f"{len(float_ops)} in the float graph: no positional pairing")
    rows, unmatched = [], []
    for (float_op, float_detail), (quant_op, quant_detail) in zip(float_ops, quant_ops, strict=True):
        layer = float_detail["name"].split(";")[0]
        if float_op != quant_op or list(float_detail["shape"]) != list(quant_detail["shape"]):
            unmatched.append(f"{layer}: float {float_op} {list(float_detail['shape'])} vs quantized "
                             f"{quant_op} {list(quant_detail['shape'])}")
            continue
        reference = _dequantized(float_interp, float_detail)
        rows.append(error_row(layer, quant_op, reference, _dequantized(quant_interp, quant_detail)))
    return LayerErrors(rows, unmatched)


FORMAT = formats.define("tflite", ".tflite", "a LiteRT flatbuffer", home="litert")

SPEC = BACKENDS.register("litert", Backend(
    name="litert",
    description="LiteRT interpreter (XNNPACK)",
    load=load,
    formats=("tflite",),
    packages=("ai-edge-litert",),
    raw_loop=raw_loop,
    stored_weights=stored_weights,
    layer_errors=layer_errors,
    rounding="litert",
))
