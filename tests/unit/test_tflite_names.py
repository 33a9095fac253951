"""A LiteRT file's bytes depend on the model alone, not on what the process built before it.

Keras numbers the layers it names by itself with a process-wide counter, and the converter writes
layer names into tensor names: the smoke cnn's QAT file was 31,440 bytes in CI's long pytest
process (``quantize_layer_3``) against the baseline's 31,432 (``quantize_layer``), and failed the
exact size gate. ``_tflite.converter_for`` renames such layers as a fresh process names them.
"""

from __future__ import annotations

import numpy as np

from bench.modes import _tflite


def _qat_tiny():
    import tensorflow_model_optimization as tfmot

    from bench.tfsetup import keras

    inputs = keras.Input((8,), name="x")
    # Every layer named, as the built-in models name theirs: tfmot's QuantizeLayer is then the one
    # layer Keras names by itself.
    outputs = keras.layers.Dense(4, name="logits")(keras.layers.Dense(6, name="hidden")(inputs))
    model = keras.Model(inputs, outputs, name="tiny")
    model.set_weights([np.full(w.shape, 0.01 * (i + 1), np.float32) for i, w in enumerate(model.get_weights())])
    return tfmot.quantization.keras.quantize_model(model)


def _converted(model, tmp_path, name: str) -> bytes:
    converter = _tflite.converter_for(model)
    _tflite.full_integer(converter, None)
    _tflite.convert(converter, tmp_path / name, name)
    return (tmp_path / name).read_bytes()


def test_the_same_qat_model_converts_to_the_same_bytes_after_others_were_built(tmp_path):
    first = _converted(_qat_tiny(), tmp_path, "first.tflite")
    _qat_tiny(), _qat_tiny()  # counters move on, as in a process that built other models
    later = _qat_tiny()
    assert [layer.name for layer in later.layers][1] != "quantize_layer"  # quantize_layer_<n>
    assert _converted(later, tmp_path, "later.tflite") == first
    assert [layer.name for layer in later.layers] == ["x", "quantize_layer", "quant_hidden", "quant_logits"]


def test_only_auto_named_layers_are_renamed():
    from bench.tfsetup import keras

    inputs = keras.Input((2,), name="input_7")
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense_5")(keras.layers.Dense(2)(inputs)))
    _tflite.canonical_auto_names(model)
    # The input and "dense_5" match the auto-name pattern of their classes' names only if they
    # are named after them: InputLayer's auto name is "input_layer", Dense's "dense".
    assert [layer.name for layer in model.layers] == ["input_7", "dense", "dense_1"]
