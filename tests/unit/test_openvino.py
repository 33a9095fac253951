"""The openvino backend: its crash-safe start-up probe, its runner, and the modes that reach it.

The runner tests use a tiny ONNX model made here with onnx.helper (NHWC input like the
harness's models), so they need no trained model and take well under a second each.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from bench import environment, formats  # noqa: E402
from bench.backends import BACKENDS  # noqa: E402
from bench.backends import openvino as ov_backend  # noqa: E402
from bench.errors import ArtifactError  # noqa: E402
from bench.modes import MODES, ExportContext  # noqa: E402

CRASH = "import os, signal\nos.kill(os.getpid(), signal.SIGFPE)\n"
FAIL = "raise RuntimeError('CPU plugin unavailable in this test')\n"


@pytest.fixture
def fresh_probe():
    """Clears the per-process memo of the probe before and after the test."""
    ov_backend.probe.cache_clear()
    yield
    ov_backend.probe.cache_clear()


def _bf16_mode():
    from bench.modes import bf16

    return bf16.MODE


# --------------------------------------------------------------------------------------------
# Start-up probe


def test_the_real_probe_succeeds_on_this_machine(fresh_probe):
    found = ov_backend.probe()
    assert found["ok"], found
    assert "FP32" in found["capabilities"] and found["version"] and found["device"]
    facts = ov_backend.facts()
    assert set(facts) == {"version", "capabilities", "default_precision"}
    assert ov_backend.unsupported(MODES.get("float32")) is None


def test_a_probe_killed_by_sigfpe_skips_every_case_naming_the_signal_and_the_cpu(fresh_probe, monkeypatch):
    monkeypatch.setattr(ov_backend, "PROBE_CODE", CRASH)
    cpu = environment.cpu()["model"]
    for mode in (MODES.get("float32"), MODES.get("ptq_int8"), _bf16_mode()):
        reason = ov_backend.unsupported(mode)
        assert reason is not None and "SIGFPE" in reason and cpu in reason, reason
    assert "SIGFPE" in ov_backend.facts()["probe_failed"]


def test_a_probe_that_raises_skips_naming_the_error(fresh_probe, monkeypatch):
    monkeypatch.setattr(ov_backend, "PROBE_CODE", FAIL)
    reason = ov_backend.unsupported(MODES.get("float32"))
    assert reason is not None
    assert "exited with status 1" in reason and "CPU plugin unavailable in this test" in reason
    assert environment.cpu()["model"] in reason


def test_a_probe_printing_no_report_or_hanging_is_a_failure(fresh_probe, monkeypatch):
    monkeypatch.setattr(ov_backend, "PROBE_CODE", "print('hello')\n")
    assert "printed no probe report" in ov_backend.probe()["error"]
    ov_backend.probe.cache_clear()
    monkeypatch.setattr(ov_backend, "PROBE_CODE", "import time\ntime.sleep(60)\n")
    monkeypatch.setattr(ov_backend, "PROBE_TIMEOUT_S", 1)
    assert ov_backend.probe() == {"ok": False, "error": "did not finish within 1 s"}


def test_the_probe_runs_once_per_process(fresh_probe, monkeypatch):
    calls = []
    real = ov_backend.subprocess.run
    monkeypatch.setattr(ov_backend.subprocess, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    ov_backend.unsupported(MODES.get("float32"))
    ov_backend.unsupported(MODES.get("ptq_int8"))
    ov_backend.facts()
    assert len(calls) == 1


def test_bf16_without_bf16_kernels_names_the_missing_cpu_flags(monkeypatch):
    monkeypatch.setattr(ov_backend, "probe", lambda: {
        "ok": True, "version": "x", "capabilities": ["FP32", "INT8"], "device": "d", "default_precision": "f32"})
    cpu = {"model": "Old CPU", "cores": 2, "flags": {"avx512_bf16": False, "amx_bf16": False}}
    monkeypatch.setattr(ov_backend.environment, "cpu", lambda: cpu)
    reason = ov_backend.unsupported(_bf16_mode())
    assert reason is not None
    assert "BF16" in reason and "avx512_bf16" in reason and "amx_bf16" in reason and "Old CPU" in reason
    assert ov_backend.unsupported(MODES.get("float32")) is None


# --------------------------------------------------------------------------------------------
# Runner


def _tiny_onnx(path, reshape_to=None):
    """NHWC image (?, 4, 4, 1) -> Transpose -> 3x3 Conv (2 filters) -> Relu -> Flatten: (?, 32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(2, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"])]
    initializers = [numpy_helper.from_array(weights, "w")]
    if reshape_to is None:
        nodes.append(helper.make_node("Flatten", ["relu"], ["logits"]))
    else:
        initializers.append(numpy_helper.from_array(np.array(reshape_to, np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["relu", "shape"], ["logits"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 4, 4, 1])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_runner_matches_onnxruntime_and_is_batch_invariant(tmp_path):
    from bench.backends import onnxruntime

    path = _tiny_onnx(tmp_path / "model.onnx")
    images = np.random.default_rng(1).random((300, 4, 4, 1), dtype=np.float32)  # a padded last batch
    runner = ov_backend.load(path)
    logits = runner.predict(images)
    assert logits.shape == (300, 32) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, onnxruntime.load(path).predict(images), atol=1e-5)
    alone = np.concatenate([runner.run_batch(images[i:i + 1]) for i in (0, 150, 299)])
    assert np.max(np.abs(alone - logits[[0, 150, 299]])) <= 1e-3
    assert sorted(runner._requests) == [1, 256]  # one compiled model per batch size
    ov_backend.raw_loop(runner, [images[:1]] * 3)()


def test_every_load_sets_the_precision_hint_and_threads(tmp_path):
    path = _tiny_onnx(tmp_path / "model.onnx")
    compiled = ov_backend.load(path, threads=1).request(1).get_compiled_model()
    assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    if "BF16" in ov_backend.probe().get("capabilities", []):
        compiled = ov_backend.load(path, precision="bf16").request(1).get_compiled_model()
        assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"


def test_load_errors_say_what_failed_and_what_to_do(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match=r"garbage.onnx is not an ONNX model OpenVINO can read .*delete it"):
        ov_backend.load(garbage)
    fixed_batch = _tiny_onnx(tmp_path / "fixed.onnx", reshape_to=[2, 32])  # reads; batch 1 cannot reshape
    with pytest.raises(ArtifactError, match=r"cannot compile .*fixed.onnx at batch 1 .*--backends"):
        ov_backend.load(fixed_batch)


# --------------------------------------------------------------------------------------------
# Modes on openvino


def test_openvino_runs_onnxruntimes_files_where_it_has_no_exporter_of_its_own():
    assert BACKENDS.get("openvino").formats == ("openvino", "onnx")
    assert formats.home("float32", "openvino") == "onnxruntime"
    assert formats.home("qat_int8", "openvino") == "onnxruntime"
    for mode in ("ptq_int8", "ptq_dynamic"):
        assert formats.home(mode, "openvino") == "openvino"
        assert MODES.get(mode).exporter("openvino") is not None
    for mode in ("ptq_float16", "ptq_int16x8"):  # ORT's reasons, as it is ORT's file that is missing
        assert MODES.get(mode).skip_reason("openvino") == MODES.get(mode).skip_reason("onnxruntime")


def test_bf16_runs_on_openvino_only_on_the_float32_file(tmp_path):
    mode = _bf16_mode()
    assert mode.compute_precision == "bf16" and mode.min_size_ratio("cnn") is None
    for backend in ("keras", "litert", "onnxruntime"):
        assert mode.skip_reason(backend)
    source = _tiny_onnx(tmp_path / "float.onnx")
    ctx = ExportContext(model_name="tiny", input_shape=(4, 4, 1), float_model=None, qat_model=lambda: None,
                        calibration=np.zeros((1, 4, 4, 1), np.float32), float_onnx=lambda: source)
    mode.exporter("openvino")(ctx, tmp_path / "bf16.onnx")
    assert (tmp_path / "bf16.onnx").read_bytes() == source.read_bytes()
