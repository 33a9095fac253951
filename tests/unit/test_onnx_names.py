"""Short ONNX names (bench.modes._onnx_names) on real ONNX files run by real ONNX Runtime sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.modes import _onnx_names  # noqa: E402

LONG = "model/block_{}/conv2d/Conv2D_weights_fused_bn_DequantizeLinear_Output"


def _conv_model(input_name: str = "image", output_name: str = "logits"):
    """A small Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm model with tf2onnx-like names."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 1, 3, 3)).astype(np.float32), LONG.format("w"))
    bias = numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), LONG.format("b"))
    dense = numpy_helper.from_array(rng.normal(size=(8, 10)).astype(np.float32), LONG.format("dense"))
    nodes = [
        helper.make_node("Conv", [input_name, weight.name, bias.name], [LONG.format(1)], name="block_1/conv",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", [LONG.format(1)], [LONG.format(2)], name="block_1/relu", doc_string="why"),
        helper.make_node("GlobalAveragePool", [LONG.format(2)], [LONG.format(3)], name="block_1/gap"),
        helper.make_node("Flatten", [LONG.format(3)], [LONG.format(4)], name="block_1/flatten"),
        helper.make_node("Gemm", [LONG.format(4), dense.name], [output_name], name="head/gemm"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, 1, 12, 12])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [None, 10])],
        [weight, bias, dense],
        value_info=[helper.make_tensor_value_info(LONG.format(1), TensorProto.FLOAT, [None, 8, 12, 12])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _run(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _names(model) -> list:
    graph = model.graph
    return ([i.name for i in graph.initializer] + [n.name for n in graph.node]
            + [t for n in graph.node for t in (*n.input, *n.output)])


@pytest.fixture
def images():
    return np.random.default_rng(1).random((4, 1, 12, 12)).astype(np.float32)


def test_compacted_file_is_smaller_and_computes_the_same(tmp_path, images):
    original, compacted = tmp_path / "original.onnx", tmp_path / "model.onnx"
    for path in (original, compacted):
        onnx.save(_conv_model(), str(path))
    _onnx_names.compact_file(compacted)
    assert compacted.stat().st_size < original.stat().st_size - 300  # 13 long names, several repeated
    np.testing.assert_array_equal(_run(compacted, images), _run(original, images))
    stored = onnx.load(str(compacted))
    assert [v.name for v in stored.graph.input] == ["image"]
    assert [v.name for v in stored.graph.output] == ["logits"]
    assert not any("block" in name for name in _names(stored))
    assert len(stored.graph.value_info) == 0


def test_load_named_restores_every_name(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(_conv_model(), str(path))
    _onnx_names.compact_file(path)
    sidecar = json.loads(_onnx_names.names_path(path).read_text())
    assert sidecar["schema"] == _onnx_names.NAMES_SCHEMA
    assert _onnx_names.names_path(path).name == "model.names.json"
    assert _names(_onnx_names.load_named(path)) == _names(_conv_model())


def test_named_copy_is_a_runnable_named_model(tmp_path, images):
    path = tmp_path / "model.onnx"
    onnx.save(_conv_model(), str(path))
    _onnx_names.compact_file(path)
    copy = _onnx_names.named_copy(path, tmp_path / "named.onnx")
    assert LONG.format(1) in {t for n in onnx.load(str(copy)).graph.node for t in n.output}
    np.testing.assert_array_equal(_run(copy, images), _run(path, images))


def test_short_names_never_shadow_the_interface(tmp_path, images):
    """An input literally named like the first short name must not be merged with a weight."""
    model = _conv_model(input_name="t0", output_name="t1")
    reference = tmp_path / "reference.onnx"
    onnx.save(model, str(reference))
    names = _onnx_names.compact(model)
    internal = [i.name for i in model.graph.initializer] + [t for n in model.graph.node for t in n.output]
    assert "t0" not in internal
    assert len(set(names["tensors"])) == len(names["tensors"])
    compacted = tmp_path / "model.onnx"
    onnx.save(model, str(compacted))
    np.testing.assert_array_equal(_run(compacted, images), _run(reference, images))


def test_graph_with_subgraphs_is_left_alone(tmp_path):
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["inner_long_name"])], "branch", [],
        [helper.make_tensor_value_info("inner_long_name", TensorProto.FLOAT, [1])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    before = path.read_bytes()
    _onnx_names.compact_file(path)
    assert path.read_bytes() == before
    assert not _onnx_names.names_path(path).exists()


def test_load_named_reads_a_file_without_sidecar_as_written(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(_conv_model(), str(path))
    assert _names(_onnx_names.load_named(path)) == _names(_conv_model())


@pytest.mark.parametrize("index, expected", [(0, "t0"), (35, "tz"), (36, "t10"), (1295, "tzz")])
def test_short_names_are_base36(index, expected):
    assert _onnx_names._short(index) == expected


@pytest.mark.parametrize("damage", ["not json", '{"schema": 1, "tensors": {}, "nodes": []}', '{"schema": 99}'])
def test_a_sidecar_that_does_not_fit_is_a_clear_error(tmp_path, damage):
    from bench.errors import ArtifactError

    path = tmp_path / "model.onnx"
    onnx.save(_conv_model(), str(path))
    _onnx_names.compact_file(path)
    _onnx_names.names_path(path).write_text(damage)
    with pytest.raises(ArtifactError, match="delete both and rerun"):
        _onnx_names.load_named(path)


def test_an_onnx_artifact_does_not_depend_on_what_the_process_converted_before(tmp_path):
    """tf2onnx numbers tensors and symbolic dimensions with process-wide counters. The same
    model, converted first and again after another model, must still give the same bytes: a
    shard or a ``--models`` subset converts with another history than the run that recorded the
    baseline, and the size gate compares bytes exactly (before the fix: 95,304 and 95,306 bytes
    for the cnn's float32 file; the smoke mobilenet's 26 bytes apart)."""
    from bench import train
    from bench.backends.onnxruntime import INT8_FORMATS
    from bench.models import MODELS
    from bench.modes import _onnx

    def convert(name: str, tag: str) -> tuple[bytes, bytes]:
        spec = MODELS.get(name)
        float_path, int8_path = tmp_path / f"{name}-{tag}.onnx", tmp_path / f"{name}-{tag}-int8.onnx"
        _onnx.export_keras(train.build_model(spec, 1), spec.input_shape, float_path, name)
        _onnx.package(float_path)
        images = np.random.default_rng(0).random((4, *spec.input_shape), dtype=np.float32)
        _onnx.quantize_static(float_path, int8_path, images, "MinMax", name, INT8_FORMATS["S8S8"])
        _onnx.package(int8_path)
        return float_path.read_bytes(), int8_path.read_bytes()

    first = convert("cnn", "first")
    convert("mobilenet", "between")
    again = convert("cnn", "again")
    assert len(first[0]) == len(again[0]) and first[0] == again[0]
    assert len(first[1]) == len(again[1]) and first[1] == again[1]
