"""The ONNX graph clean-ups of bench/modes/_onnx.py on small real graphs run by ONNX Runtime.

tf2onnx wraps MobileNet's 1x1-spatial convolutions in no-op Reshapes that keep BatchNorm unfolded;
these tests build that pattern (and look-alikes that must be left alone) and check that the
rewritten graph computes the same logits with the Reshape and BatchNorm gone.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.modes import _onnx  # noqa: E402

CHANNELS = 6


def _graph(spatial: int, negative_gamma: bool = False):
    """image (N, 3, s, s) -> Reshape(-1, 3, s, s) -> Conv -> Reshape(-1, C, 1, 1) -> BN -> Flatten."""
    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.5, 2.0, CHANNELS) * (-1 if negative_gamma else 1)
    inits = [
        numpy_helper.from_array(np.array([-1, 3, spatial, spatial], np.int64), "in_shape"),
        numpy_helper.from_array(rng.normal(size=(CHANNELS, 3, spatial, spatial)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=CHANNELS).astype(np.float32), "b"),
        numpy_helper.from_array(np.array([-1, CHANNELS, 1, 1], np.int64), "out_shape"),
        numpy_helper.from_array(gamma.astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(size=CHANNELS).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(size=CHANNELS).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.1, 3.0, CHANNELS).astype(np.float32), "var"),
    ]
    nodes = [
        helper.make_node("Reshape", ["image", "in_shape"], ["x"]),
        helper.make_node("Conv", ["x", "w", "b"], ["conv"]),
        helper.make_node("Reshape", ["conv", "out_shape"], ["reshaped"]),
        helper.make_node("BatchNormalization", ["reshaped", "gamma", "beta", "mean", "var"], ["bn"],
                         epsilon=1e-3),
        helper.make_node("Flatten", ["bn"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, spatial, spatial])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, None])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, images):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("negative_gamma", [False, True])
def test_noop_reshapes_go_and_batchnorm_folds_into_the_conv(negative_gamma):
    images = np.random.default_rng(1).normal(size=(5, 3, 1, 1)).astype(np.float32)
    model = _graph(spatial=1, negative_gamma=negative_gamma)
    expected = _run(model, images)
    assert _onnx._without_identity_reshapes(model) == 2
    assert _onnx._fold_batchnorms(model.graph) == 1
    onnx.checker.check_model(model)
    assert _ops(model) == ["Conv", "Flatten"]
    assert {i.name for i in model.graph.initializer} == {"w", "bn_folded_bias"}  # BN's parameters dropped
    np.testing.assert_allclose(_run(model, images), expected, rtol=1e-5, atol=1e-5)


def test_a_reshape_that_changes_the_shape_stays():
    """With a 2x2 Conv output, Reshape(-1, C, 1, 1) really reshapes: it stays, BatchNorm stays."""
    images = np.random.default_rng(1).normal(size=(5, 3, 3, 3)).astype(np.float32)
    model = _graph(spatial=3)
    # Conv with a 2x2 kernel on 3x3 input: output (N, C, 2, 2), so the second Reshape is real.
    w = numpy_helper.from_array(np.ones((CHANNELS, 3, 2, 2), np.float32), "w")
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "w"))
    model.graph.initializer.append(w)
    expected = _run(model, images)
    assert _onnx._without_identity_reshapes(model) == 1  # only the input Reshape is a no-op
    assert _onnx._fold_batchnorms(model.graph) == 0
    assert _ops(model) == ["Conv", "Reshape", "BatchNormalization", "Flatten"]
    np.testing.assert_allclose(_run(model, images), expected, rtol=1e-6)


def test_batchnorm_after_a_shared_weight_is_left_alone():
    images = np.random.default_rng(1).normal(size=(2, 3, 1, 1)).astype(np.float32)
    model = _graph(spatial=1)
    # A second Conv reading the same weight: folding would change that Conv too.
    model.graph.node.append(helper.make_node("Conv", ["x", "w"], ["other"]))
    model.graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, [None, CHANNELS, 1, 1]))
    expected = _run(model, images)
    _onnx._without_identity_reshapes(model)
    assert _onnx._fold_batchnorms(model.graph) == 0
    assert "BatchNormalization" in _ops(model)
    np.testing.assert_allclose(_run(model, images), expected, rtol=1e-6)
