"""ONNX Runtime's int8 format per testbed (bench/backends/onnxruntime.py) and where it goes.

The format is chosen in one place from whether the testbed's int8 sums saturate; these tests
hold the choice for every row of the testbed table, its place in the recipe hash (and so the
artifact key), and the U8U8 weight storage of the QAT rewrite, which must keep the trained grid.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench import testbeds, tiers  # noqa: E402
from bench.backends import onnxruntime as ort_backend  # noqa: E402
from bench.build import Builder  # noqa: E402
from bench.modes import ExportContext, _onnx  # noqa: E402

SATURATING = [t for t in testbeds.TESTBEDS if t.int8_saturates]
EXACT = [t for t in testbeds.TESTBEDS if not t.int8_saturates]


@pytest.mark.parametrize("testbed", EXACT, ids=lambda t: t.name)
def test_exact_int8_sums_keep_todays_formats(testbed):
    assert ort_backend.int8_format(testbed, "ptq_int8").name == "S8S8"
    assert ort_backend.int8_format(testbed, "qat_int8").name == "U8S8"


@pytest.mark.parametrize("testbed", SATURATING, ids=lambda t: t.name)
def test_saturating_int8_sums_take_formats_that_fit_16_bit_pairs(testbed):
    ptq = ort_backend.int8_format(testbed, "ptq_int8")
    qat = ort_backend.int8_format(testbed, "qat_int8")
    assert ptq.name == ort_backend.PTQ_SATURATING
    # Neither u8 x s8 at full range: both unsigned, or 7-bit weights.
    assert (ptq.activation_type, ptq.weight_type) == ("uint8", "uint8") or ptq.reduce_range
    # QAT keeps the trained grid: U8U8, never reduce_range.
    assert (qat.name, qat.weight_type, qat.reduce_range) == ("U8U8", "uint8", False)


def test_modes_without_an_int8_recipe_have_no_format():
    vnni = testbeds.get("avx512-vnni")
    for mode in ("float32", "ptq_dynamic", "ptq_float16", "no_such_mode"):
        assert ort_backend.int8_format(vnni, mode) is None


def test_every_format_named_by_a_recipe_exists_with_valid_types():
    for names in ort_backend.INT8_RECIPES.values():
        for name in names.values():
            fmt = ort_backend.INT8_FORMATS[name]
            assert {fmt.activation_type, fmt.weight_type} <= {"int8", "uint8"}
            assert len(fmt.quant_types()) == 2


@pytest.mark.parametrize(("name", "other"), [("avx512-vnni", "x86-64-v3"), ("avx512-amx", "x86-64-v3"),
                                             ("x86-64-v3", "avx-vnni"), ("x86-64", "avx512-vnni")])
def test_the_other_recipe_comes_from_the_nearest_testbed_of_the_other_kind(name, other):
    found = ort_backend.other_recipe_testbed(testbeds.get(name))
    assert found.name == other
    assert found.int8_saturates != testbeds.get(name).int8_saturates


def test_arm64_has_no_other_recipe():
    assert ort_backend.other_recipe_testbed(testbeds.get("arm64")) is None


def test_the_format_is_part_of_the_recipe_hash_of_the_cases_that_run_ort_files():
    vnni = Builder(tiers.SMOKE, testbed=testbeds.get("avx512-vnni"))
    avx2 = vnni.for_testbed(testbeds.get("x86-64-v3"))
    for mode in ("ptq_int8", "qat_int8"):
        assert vnni.int8_format(mode, "onnxruntime") != avx2.int8_format(mode, "onnxruntime")
        assert vnni.recipe_hash("cnn", mode, "onnxruntime") != avx2.recipe_hash("cnn", mode, "onnxruntime")
        assert vnni.recipe_hash("cnn", mode, "litert") == avx2.recipe_hash("cnn", mode, "litert")
    # OpenVINO runs ORT's very QAT file, so it carries that file's format; its PTQ file is NNCF's.
    assert avx2.int8_format("qat_int8", "openvino") == "U8U8"
    assert avx2.int8_format("ptq_int8", "openvino") is None
    assert avx2.int8_format("float32", "onnxruntime") is None


def test_export_context_defaults_to_this_cpus_testbed():
    ctx = ExportContext(model_name="m", input_shape=(1, 1, 1), float_model=None, qat_model=lambda: None,
                        calibration=np.zeros((1, 1, 1, 1), np.float32), float_onnx=lambda: None)
    assert ctx.testbed == testbeds.current()


def _grid_conv(path):
    """image (N, 2, 3, 3) -> Conv with weights on a per-tensor int8 grid -> Flatten."""
    rng = np.random.default_rng(66)
    step = np.float32(0.01)
    codes = rng.integers(-127, 128, size=(4, 2, 3, 3))
    codes[0, 0, 0, 0] = 127  # the largest code on 127, as a fake quant leaves it
    weight = (codes * step).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["conv"]), helper.make_node("Flatten", ["conv"], ["logits"])],
        "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 2, 3, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, None])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return weight


def _run(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


def _stored(path):
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    return inits["w_int8"], inits["w_zero_point"], inits["w_scale"]


def test_u8u8_qat_weights_keep_the_trained_grid(tmp_path):
    images = np.random.default_rng(1).normal(size=(3, 2, 3, 3)).astype(np.float32)
    weight = _grid_conv(tmp_path / "float.onnx")
    expected = _run(tmp_path / "float.onnx", images)
    outputs = {}
    for weight_type in ("int8", "uint8"):
        path = tmp_path / f"{weight_type}.onnx"
        path.write_bytes((tmp_path / "float.onnx").read_bytes())
        assert _onnx.store_weights_as_int8(path, "tiny", weight_type=weight_type) == 1
        codes, zero_point, scale = _stored(path)
        assert codes.dtype == np.dtype(weight_type)
        dequantized = (codes.astype(np.int64) - zero_point.astype(np.int64)) * scale
        np.testing.assert_allclose(dequantized, weight, rtol=0, atol=1e-6)
        outputs[weight_type] = _run(path, images)
    assert int(_stored(tmp_path / "uint8.onnx")[1]) == 128
    np.testing.assert_allclose(outputs["uint8"], outputs["int8"], atol=1e-5)
    np.testing.assert_allclose(outputs["int8"], expected, atol=1e-4)


def test_stored_weights_reads_uint8_codes(tmp_path):
    _grid_conv(tmp_path / "m.onnx")
    _onnx.store_weights_as_int8(tmp_path / "m.onnx", "tiny", weight_type="uint8")
    [found] = ort_backend.stored_weights(tmp_path / "m.onnx")
    assert found.unreadable is None and found.values.dtype == np.uint8
    assert np.all(found.zero_points == 128)


def test_only_the_u8u8_ptq_file_lowers_the_agreement_floor():
    """U8U8 PTQ puts weights on another grid than LiteRT's (measured 98.25 % agreement on the
    smoke mobilenet): its floor is the backend's; every other recipe keeps the mode's."""
    from bench import gates, testbeds
    from bench.agreement_record import PairAgreement
    from bench.backends import onnxruntime as ort
    from bench.run import pair_floor

    avx2, vnni = testbeds.get("x86-64-v3"), testbeds.get("avx512-vnni")
    assert ort.agreement_floor(avx2, "ptq_int8") == 0.97
    assert ort.agreement_floor(avx2, "qat_int8") is None
    assert ort.agreement_floor(vnni, "ptq_int8") is None
    assert pair_floor("avx512-vnni", "ptq_int8", "litert", "onnxruntime") == 0.99  # the mode's
    assert pair_floor("x86-64-v3", "ptq_int8", "litert", "onnxruntime") == 0.97
    pair = PairAgreement(["litert", "onnxruntime"], 0.9825, 1.0, 0.99)
    assert gates.failures(gates.agreement_checks("mobilenet-ptq_int8", [pair], reference=False))  # the mode's 0.99
    lowered = dataclasses.replace(pair, floor=0.97)
    assert not gates.failures(gates.agreement_checks("mobilenet-ptq_int8", [lowered], reference=False))
    assert gates.failures(gates.agreement_checks("mobilenet-ptq_int8", [dataclasses.replace(lowered, top1_agreement=0.5)],
                                                 reference=False))
