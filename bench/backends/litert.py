"""Backend ``litert``: the ai_edge_litert interpreter (XNNPACK), batched.

Integer-only models take int8 input and give int8 output: the runner quantizes the float images
with the input tensor's scale and zero point and dequantizes the logits, so callers always see
float32 in and out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backends import EVAL_BATCH, predict_batched
from bench.errors import ArtifactError, first_line

name = "litert"
suffix = ".tflite"


def version() -> str:
    from bench.environment import versions

    return versions()["ai_edge_litert"] or "unknown"


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
    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
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
