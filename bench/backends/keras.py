"""Backend ``keras``: the float reference, and the QAT model's simulated int8 (fake quant)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import formats
from bench.backends import BACKENDS, EVAL_BATCH, Backend
from bench.errors import ArtifactError


class KerasRunner:
    def __init__(self, model) -> None:
        self.model = model

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return self.model.predict(images, batch_size=batch, verbose=0).astype(np.float32)

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """One direct call: ``predict`` adds ~ms of data-pipeline set-up per call."""
        return self.model(images, training=False).numpy()


def load(path: Path, threads: int | None = None) -> KerasRunner:
    """Loads a saved model; the tfmot scope lets QAT models' wrappers deserialize."""
    import tensorflow_model_optimization as tfmot

    from bench.tfsetup import keras

    try:
        with tfmot.quantization.keras.quantize_scope():
            model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        raise ArtifactError(
            f"{path} is not a loadable Keras model ({type(exc).__name__}); delete it so it is rebuilt"
        ) from exc
    return KerasRunner(model)


FORMAT = formats.define("keras", ".keras", "a saved tf-keras model", home="keras")

SPEC = BACKENDS.register("keras", Backend(
    name="keras",
    description="tf-keras itself: the float reference and the QAT model's simulated int8",
    load=load,
    formats=("keras",),
    packages=("tensorflow", "tf-keras"),
    untimed="TensorFlow's thread pool is fixed at start-up, so Keras cannot be timed on one thread; "
    "it is the float reference, not a deployment runtime",
))
