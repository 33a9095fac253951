"""Weight inspection and per-layer errors: registry dispatch, QAT layouts, unpairable graphs.

The real artifacts are held to these in ``bench/cases/test_reality.py``; here tiny hand-made
weights and ONNX graphs pin what the bench cannot run without training.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import gates, inspect_artifacts, layer_error
from bench.inspect_artifacts import Reference, StoredWeight

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.backends import onnxruntime as ort_backend  # noqa: E402


def test_readers_are_asked_of_the_registry():
    """A backend without a reader is refused with the names of those that have one."""
    with pytest.raises(ValueError, match="keras artifacts hold no quantized weights") as weights:
        inspect_artifacts.stored_weights("model.keras", "keras")
    with pytest.raises(ValueError, match="keras exposes no per-layer outputs") as layers:
        layer_error.layer_errors(None, "cnn", "ptq_int8", "keras", np.zeros((1, 28, 28, 1), np.float32))
    for refusal in (weights, layers):
        assert "litert" in str(refusal.value) and "onnxruntime" in str(refusal.value)


def _conv_weight(from_keras: tuple[int, ...] | None) -> tuple[StoredWeight, Reference]:
    """A (3, 3, 2, 4) Keras kernel on a per-channel grid of step 0.1, and its OHWI int8 codes."""
    codes = np.arange(-36, 36, dtype=np.int8).reshape(3, 3, 2, 4)  # Keras HWIO
    scales = np.full(4, 0.1, np.float32)
    ref = Reference("conv", codes * 0.1, scales.astype(np.float64), batchnorm_factor=None)
    stored = StoredWeight("conv", "CONV_2D", np.transpose(codes, (3, 0, 1, 2)), scales,
                          np.zeros(4, np.int64), 0, 0, from_keras=from_keras)
    return stored, ref


def test_qat_reference_takes_the_readers_layout():
    """The Keras kernel is transposed by the op's ``from_keras``, channel 0 staying channel 0."""
    stored, ref = _conv_weight((3, 0, 1, 2))
    inspection = inspect_artifacts.match([stored], [ref])
    assert not inspection.unmatched
    (weight,) = inspection.weights
    np.testing.assert_allclose(weight.float_weights, np.transpose(ref.values, (3, 0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(weight.expected_scales, stored.scales)


def test_a_weight_without_layout_is_unmatched():
    stored, ref = _conv_weight(None)
    inspection = inspect_artifacts.match([stored], [ref])
    assert not inspection.weights
    assert inspection.unmatched == ["conv: no layout known that takes conv's Keras kernel (3, 3, 2, 4) to CONV_2D's"]


def _dense(tmp_path, name: str, prefix: str = ""):
    """``logits = relu(image @ W^T)`` through a Gemm with transB=1, tensors named with ``prefix``.

    tf2onnx names a QAT graph's tensors like this after tfmot's wrappers (``quant_conv1``).
    """
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, f"{prefix}dense/w")
    inner, logits = f"{prefix}dense/MatMul:0", f"{prefix}logits"
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["image", weight.name], [inner], transB=1),
         helper.make_node("Relu", [inner], [logits])],
        name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, 3])], [weight])
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_gemm_with_trans_b_stores_out_in(tmp_path):
    (weight,) = ort_backend.stored_weights(_dense(tmp_path, "float"))
    assert (weight.from_keras, weight.channel_axis) == ((1, 0), 0)


def test_onnx_graphs_pair_by_name_or_are_unpaired(tmp_path):
    """Shared names pair; a graph sharing none is reported unpaired, not an error."""
    float_path = _dense(tmp_path, "float")
    images = np.ones((1, 4), np.float32)
    same = ort_backend.layer_errors(float_path, _dense(tmp_path, "same"), images)
    assert same.unpaired is None and [row["layer"] for row in same.rows] == ["dense/MatMul:0", "logits"]
    renamed = ort_backend.layer_errors(float_path, _dense(tmp_path, "renamed", "quant_"), images)
    assert renamed.rows == [] and "shares no tensor name" in renamed.unpaired


def test_final_snr_fails_below_the_floor():
    floor = gates.FINAL_LOGITS_SNR_FLOOR_DB
    rows = [{"layer": "conv1", "snr_db": 30.0}, {"layer": "logits", "snr_db": 12.34}]
    assert not gates.final_snr_check("cnn-ptq_int8-litert", floor + 0.1, rows)
    message = gates.final_snr_check("cnn-ptq_int8-litert", floor, rows).failure
    assert message.startswith("cnn-ptq_int8-litert: final logits SNR 15.0 dB") and "logits 12.3" in message
