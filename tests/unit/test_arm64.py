"""On an arm64 machine (Graviton, Ampere, GitHub's ubuntu-24.04-arm runners) there is no CPUID
instruction: the harness must read the kernel's flags instead and come out as testbed arm64.

Executing the x86 CPUID bytes there would not raise, it would kill the process (SIGILL), so the
machine check must keep that code from running at all; these tests make ``platform.machine()``
say ``aarch64`` on this x86 machine and fail if the CPUID path is taken.
"""

from __future__ import annotations

import platform

import pytest

from bench import cpuid, environment, testbeds
from bench.backends import onnxruntime


@pytest.fixture
def aarch64(monkeypatch):
    def no_cpuid():
        pytest.fail("the x86 CPUID instruction would run on an arm64 machine")

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(cpuid, "_from_cpuid", no_cpuid)
    cpuid.features.cache_clear()
    environment.cpu.cache_clear()
    yield
    cpuid.features.cache_clear()
    environment.cpu.cache_clear()


def test_on_arm64_the_flags_come_from_the_kernel_not_cpuid(aarch64):
    found = cpuid.features()
    assert found["source"] == "/proc/cpuinfo"
    assert set(found["flags"]) == set(cpuid.FEATURE_BITS)
    assert all(isinstance(value, bool) for value in found["flags"].values())
    assert isinstance(found["model"], str) and found["model"]


def test_on_arm64_the_testbed_is_arm64(aarch64):
    assert testbeds.current().name == "arm64"
    described = environment.cpu()
    assert described["machine"] == "aarch64"
    assert described["testbed"] == "arm64"
    assert described["flags_source"] == "/proc/cpuinfo"


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "AArch64"])
def test_an_arm_machine_is_arm64_whatever_flags_it_reports(machine):
    # x86 flag names never mean anything on arm; the machine decides before the flags.
    x86_flags = {flag: True for flag in environment.CPU_FLAGS}
    assert testbeds.of_environment({"cpu": {"machine": machine, "flags": x86_flags}}).name == "arm64"


def test_arm64_has_int8_formats_and_no_other_recipe_testbed():
    arm64 = testbeds.get("arm64")
    assert not arm64.int8_saturates
    assert onnxruntime.other_recipe_testbed(arm64) is None
    assert onnxruntime.int8_format(arm64, "ptq_int8") is not None
