"""Shared ONNX steps: tf2onnx export and ONNX Runtime's own quantization tools."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from bench import atomic
from bench.errors import ArtifactError

# tf2onnx's opset: 17 is the oldest the harness accepts (per-axis QDQ and the ops of all three
# models are stable there); ORT 1.32 runs it natively.
OPSET = 17
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        raise ArtifactError(f"tf2onnx could not export {what}: {_first_line(exc)}") from exc
    atomic.write_bytes(path, proto.SerializeToString())


class _Reader:
    """ONNX Runtime's calibration reader over the calibration images, one batch of 1 at a time."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._items = iter([{input_name: image[None, ...].astype(np.float32)} for image in images])

    def get_next(self):
        return next(self._items, None)


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def _into(path: Path, write) -> None:
    """Runs ``write(tmp_path)`` and renames the result over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, suffix=".onnx")
    os.close(fd)
    try:
        write(tmp)
        data = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    atomic.write_bytes(path, data)


def quantize_static(float_onnx: Path, path: Path, images: np.ndarray, method: str, what: str) -> None:
    """Static QDQ quantization, S8S8, per-channel weights, calibrated on ``images``.

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
            quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)

            def write(out: str) -> None:
                q.quantize_static(
                    str(prepared), out, _Reader(_input_name(prepared), images),
                    quant_format=q.QuantFormat.QDQ,
                    activation_type=q.QuantType.QInt8,
                    weight_type=q.QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=getattr(q.CalibrationMethod, method),
                    calibration_providers=["CPUExecutionProvider"],
                )

            _into(path, write)
        except Exception as exc:
            raise ArtifactError(f"ONNX Runtime static quantization of {what} failed: {_first_line(exc)}") from exc


def quantize_dynamic(float_onnx: Path, path: Path, what: str) -> None:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized at run time."""
    from onnxruntime import quantization as q

    def write(out: str) -> None:
        q.quantize_dynamic(str(float_onnx), out, weight_type=q.QuantType.QInt8, per_channel=True)

    try:
        _into(path, write)
    except Exception as exc:
        raise ArtifactError(f"ONNX Runtime dynamic quantization of {what} failed: {_first_line(exc)}") from exc


# How far (in quantization steps) a fake-quantized weight may sit from the int8 grid and still be
# called "on" it: float32 rounding of w = q * scale leaves ~1e-5 steps (measured: 2e-5 at most on
# the smoke cnn); an unquantized weight sits anywhere, typically 0.25 steps away.
GRID_TOLERANCE_STEPS = 1e-3
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


def store_weights_as_int8(path: Path, what: str) -> int:
    """Rewrites a QAT export so that its fake-quantized weights are stored as int8.

    tf2onnx folds each weight's FakeQuant node into a float32 constant: the values already lie on
    the int8 grid, but the file holds four bytes each, and ONNX Runtime sees a float Conv. Each
    such weight becomes an int8 initializer with its scales and a DequantizeLinear node, the QDQ
    form ORT fuses into integer kernels. The values do not change (checked: every weight must lie
    within GRID_TOLERANCE_STEPS of the grid, else ArtifactError).

    Returns:
        How many weights were rewritten.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
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
        q = np.clip(np.rint(weight.astype(np.float64) / shaped), -127, 127).astype(np.int8)
        graph.initializer.remove(initializers[name])
        graph.initializer.extend([
            numpy_helper.from_array(q, f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero_point"),
        ])
        attrs = {} if along is None else {"axis": along}
        new_nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
            [f"{name}_dequantized"], name=f"{name}_DequantizeLinear", **attrs,
        ))
        node.input[1] = f"{name}_dequantized"
        new_nodes.append(node)
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    onnx.checker.check_model(model)
    atomic.write_bytes(path, model.SerializeToString())
    return rewritten
