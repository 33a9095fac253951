"""A toy backend registered the way another package would: ``quantbench.backends`` entry point.

``tf_lite``: TensorFlow's own bundled TFLite interpreter (``tf.lite.Interpreter``), a second
runtime for LiteRT's files: it runs the ``tflite`` format (``bench.formats``), so every mode with a
``tflite`` exporter runs on it, on the very same file.
"""

from __future__ import annotations

from pathlib import Path

from bench.backends import BACKENDS, Backend
from bench.backends.litert import LiteRTRunner


def load(path: Path, threads: int | None = None) -> LiteRTRunner:
    """LiteRT's runner, over TensorFlow's interpreter: same API, another build of the kernels."""
    from bench.tfsetup import tf

    return LiteRTRunner(Path(path), threads, interpreter_class=tf.lite.Interpreter)


SPEC = BACKENDS.register("tf_lite", Backend(
    name="tf_lite",
    description="toy backend of the plugin-API test: TensorFlow's bundled TFLite interpreter",
    load=load,
    formats=("tflite",),
    packages=("tensorflow",),
    untimed="a toy backend: timed cases are out of the plugin-API test's scope",
))
