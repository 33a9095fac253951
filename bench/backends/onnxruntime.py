"""Backend ``onnxruntime``: an ONNX Runtime session on the CPU execution provider, batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backends import EVAL_BATCH, predict_batched
from bench.errors import ArtifactError, first_line

name = "onnxruntime"
suffix = ".onnx"


def version() -> str:
    from bench.environment import versions

    return versions()["onnxruntime"] or "unknown"


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
