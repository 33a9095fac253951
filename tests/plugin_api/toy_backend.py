"""A toy backend registered the way another package would: ``quantbench.backends`` entry point.

``tf_lite``: TensorFlow's own bundled TFLite interpreter (``tf.lite.Interpreter``), a second
runtime for LiteRT's files: it declares ``reads="litert"``, so every mode with a LiteRT exporter
runs on it, on the very same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backends import BACKENDS, EVAL_BATCH, Backend, predict_batched


class TfLiteRunner:
    def __init__(self, path: Path, threads: int | None) -> None:
        from bench.tfsetup import tf

        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        from bench.backends.litert import dequantize_output, quantize_input

        if len(images) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], quantize_input(images, self.input))
        self.interpreter.invoke()
        return dequantize_output(self.interpreter.get_tensor(self.output["index"]), self.output)

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return predict_batched(self.run_batch, images, batch)


def load(path: Path, threads: int | None = None) -> TfLiteRunner:
    return TfLiteRunner(Path(path), threads)


SPEC = BACKENDS.register("tf_lite", Backend(
    name="tf_lite",
    suffix=".tflite",
    description="toy backend of the plugin-API test: TensorFlow's bundled TFLite interpreter",
    load=load,
    reads="litert",
    packages=("tensorflow",),
    untimed="a toy backend: timed cases are out of the plugin-API test's scope",
))
