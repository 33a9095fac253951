"""Shared LiteRT conversion steps: converter set-up and the representative data set."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bench import atomic
from bench.errors import ArtifactError, first_line


def representative(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The calibration images, one per step, as the converter asks for them."""

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None, ...].astype(np.float32)]

    return generate


def converter_for(model):
    """A converter of ``model``, whose auto-named layers first get the names a fresh process gives."""
    from bench.tfsetup import tf

    canonical_auto_names(model)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def canonical_auto_names(model) -> None:
    """Renames the layers Keras named by itself to the names they get in a fresh process.

    Keras names a layer built without a name after its class and a process-wide counter
    (``quantize_layer``, then ``quantize_layer_1``, ...), and the converter writes layer names
    into the file's tensor names. tfmot's QuantizeLayer is such a layer: the cnn's QAT file was
    31,440 bytes where a QAT model had been built before in the process, 31,432 in a fresh one
    (``cnn/quantize_layer_3/...`` against ``cnn/quantize_layer/...``). Numbering them by their
    order in the model makes the bytes depend on the model alone. Named layers are left as they are.
    """
    seen: dict[str, int] = {}
    for layer in model.layers:
        base = _keras_auto_name(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name):
            count = seen.get(base, 0)
            seen[base] = count + 1
            layer._name = base if count == 0 else f"{base}_{count}"


def _keras_auto_name(class_name: str) -> str:
    """The name Keras gives an unnamed layer of this class before numbering (its to_snake_case)."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return snake if snake[0] != "_" else "private" + snake


def convert(converter, path: Path, what: str) -> None:
    """Runs the converter and writes the flatbuffer atomically.

    Raises:
        ArtifactError: The converter failed; the message keeps its first line.
    """
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises many types; the user needs which step failed
        raise ArtifactError(f"LiteRT conversion for {what} failed: {first_line(exc)}") from exc
    atomic.write_bytes(path, flatbuffer)


def full_integer(converter, calibration: np.ndarray | None) -> None:
    """Integer-only model: int8 kernels throughout, int8 input and output.

    Args:
        converter: A converter from :func:`converter_for`.
        calibration: Calibration images for post-training quantization; None for a QAT model,
            whose fake-quant nodes already carry every range.

    Per-channel weight scales are the converter's default for convolutions; dense layers are
    asked for per-channel too (the private flag has been the converter's switch since TF 2.15).
    For QAT models ``supported_ops`` is left unset: TF 2.21's validation of an int8-only target
    reads ``_experimental_low_bit_qat`` before setting it and crashes on any graph with
    fake-quant nodes. :func:`check_integer_only` then proves no float kernel slipped in.
    """
    from bench.tfsetup import tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is not None:
        converter.representative_dataset = representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = False


def float_tensors(path: Path) -> list[str]:
    """Names of float tensors in a .tflite model (an integer-only model has none)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return [
        d["name"] for d in interpreter.get_tensor_details()
        if np.issubdtype(d["dtype"], np.floating)
    ]


def check_integer_only(path: Path, what: str) -> None:
    """Raises ArtifactError when a supposedly integer-only model still holds float tensors."""
    leftovers = float_tensors(path)
    if leftovers:
        raise ArtifactError(
            f"{what} is not integer-only: {len(leftovers)} float tensors remain "
            f"(first: {', '.join(leftovers[:3])})"
        )
