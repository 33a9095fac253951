"""Tests of bench.environment: what counts as a difference of environment, phrased for a verdict."""

from __future__ import annotations

from bench import environment

RECORDED = {
    "lock_sha256": "a" * 64, "onnxruntime": "1.32.0", "openvino": "2026.4.1",
    "cpu": {"model": "AMD EPYC", "cores": 2, "flags": {"avx512_vnni": True, "amx_int8": False}},
    "backends": {"openvino": {"version": "2026.4.1", "capabilities": ["BF16", "FP32", "INT8"]}},
}


def _with(**changes) -> dict:
    return {**RECORDED, **changes}


def test_the_same_environment_has_no_difference():
    assert environment.differences(RECORDED, RECORDED) == []


def test_cpu_model_and_core_count_are_not_differences():
    other_machine = _with(cpu={**RECORDED["cpu"], "model": "Intel Xeon", "cores": 64})
    assert environment.differences(RECORDED, other_machine) == []


def test_flags_versions_and_backend_facts_are_named_one_phrase_each():
    current = _with(
        onnxruntime="1.32.1",
        cpu={**RECORDED["cpu"], "flags": {"avx512_vnni": False, "amx_int8": True}},
        backends={"openvino": {"version": "2026.4.1", "capabilities": ["AMX", "BF16", "FP32", "INT8"]}},
    )
    assert environment.differences(RECORDED, current) == [
        "onnxruntime 1.32.0 -> 1.32.1",
        "cpu flag avx512_vnni True -> False",
        "cpu flag amx_int8 False -> True",
        "openvino capabilities ['BF16', 'FP32', 'INT8'] -> ['AMX', 'BF16', 'FP32', 'INT8']",
    ]


def test_a_registered_backends_packages_are_fingerprinted():
    assert environment.all_packages()["openvino"] == "openvino"
    assert environment.all_packages()["nncf"] == "nncf"
