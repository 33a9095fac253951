"""File formats and the (mode, format) exporter table: which file a case runs, and clear errors."""

from __future__ import annotations

import pytest

from bench import formats
from bench.backends import BACKENDS
from bench.formats import Export
from bench.modes import MODES
from bench.registry import PluginError


def test_every_backend_runs_formats_that_are_defined():
    for name, backend in BACKENDS.items():
        assert backend.formats, name
        for fmt in backend.formats:
            assert formats.get(fmt).name == fmt


def test_a_case_runs_the_file_of_the_backends_first_format_that_the_mode_has():
    assert formats.artifact_format("ptq_int8", "openvino") == "openvino"  # NNCF's own file
    assert formats.artifact_format("qat_int8", "openvino") == "onnx"  # ONNX Runtime's very file
    assert formats.home("qat_int8", "openvino") == "onnxruntime"
    assert formats.artifact_format("ptq_int8", "keras") is None


def test_modes_name_formats_never_backends():
    backend_names = set(BACKENDS.names()) - {fmt for b in BACKENDS.names() for fmt in BACKENDS.get(b).formats}
    registered = {fmt for (mode, fmt) in formats._EXPORTS if mode in MODES}
    assert registered and not registered & backend_names, registered & backend_names


def test_a_registered_reason_is_the_skip_and_a_missing_exporter_says_what_is_missing():
    assert formats.skip_reason("ptq_int8", "keras") == "Keras cannot run integer kernels; see litert and onnxruntime"
    assert formats.skip_reason("ptq_int8", "litert") is None
    # No registration either way for this pair: the reason names the backend's formats.
    formats._EXPORTS.pop(("ptq_float16", "onnx"))
    try:
        assert formats.skip_reason("ptq_float16", "onnxruntime") == (
            "ptq_float16 has no exporter for onnxruntime's file formats (onnx)")
    finally:
        formats._EXPORTS[("ptq_float16", "onnx")] = (
            "ONNX float16 conversion needs onnxconverter-common, not a dependency of this harness")


def test_registering_one_file_twice_is_refused_naming_both_registrants():
    existing = formats.export("float32", "tflite")
    with pytest.raises(PluginError, match=r"the tflite file of mode 'float32' is registered twice \(by "
                       r"bench.modes.float32 and .*test_formats\)"):
        formats.register("float32", "tflite", Export(existing.make))
    assert formats.export("float32", "tflite") is existing


def test_a_format_defined_twice_differently_is_refused():
    formats.get("onnx")
    with pytest.raises(PluginError, match="format 'onnx' is defined twice, differently"):
        formats.define("onnx", ".xml", "another", home="someone_else")
    with pytest.raises(PluginError, match="format name 'ONNX-2' is not valid"):
        formats.define("ONNX-2", ".onnx", "x", home="x")


def test_an_unknown_format_lists_the_defined_ones():
    with pytest.raises(Exception, match="unknown format 'tflight'; valid formats are: .*tflite"):
        formats.get("tflight")


def test_what_a_file_promises_is_read_from_its_export():
    assert MODES.get("ptq_dynamic").batch_dependence("onnxruntime")
    assert MODES.get("ptq_dynamic").eval_batch("onnxruntime") == 1
    assert MODES.get("ptq_dynamic").batch_dependence("litert") is None
    assert MODES.get("ptq_int8").per_channel_on("onnxruntime") and not MODES.get("qat_int8").per_channel_on("litert")
    # NNCF's file lowers the floor of its pairs; ORT's file on OpenVINO keeps the mode's own.
    assert MODES.get("ptq_int8").pair_agreement_floor("litert", "openvino") == 0.96
    assert MODES.get("qat_int8").pair_agreement_floor("litert", "onnxruntime") == 0.99


def test_a_format_whose_defining_backend_runs_another_file_is_refused(monkeypatch):
    """The file is cached and timed under the backend defining its format, so that backend must
    run it too: a backend preferring another format for the mode is a plugin error, not a silent
    swap of files."""
    import dataclasses

    ort = BACKENDS.get("onnxruntime")
    monkeypatch.setitem(BACKENDS._entries, "onnxruntime", dataclasses.replace(ort, formats=("tflite", "onnx")))
    with pytest.raises(PluginError, match="openvino runs the onnx file of mode 'qat_int8', but onnxruntime, "
                       "which defines format 'onnx', runs its tflite file instead"):
        formats.home("qat_int8", "openvino")
