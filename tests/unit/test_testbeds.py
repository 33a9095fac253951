"""The testbed table: every recorded environment, and an emulated AVX2 CPU, map to their row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import environment, results, testbeds
from bench.errors import UnknownNameError

REPO = Path(__file__).resolve().parents[2]


def cpu(machine: str = "x86_64", **flags: bool) -> dict:
    return {"cpu": {"machine": machine, "flags": {f: flags.get(f, False) for f in environment.CPU_FLAGS}}}


# The CPUs this project has met (GUIDE.md sections 1, 1b and 1c), by their flags.
MET = {
    "AMD EPYC Zen 5 (recorded the first baselines)": (
        cpu(avx2=True, avx512f=True, avx512_vnni=True, avx_vnni=True, avx512_bf16=True), "avx512-vnni"),
    "AMD EPYC Zen 4": (cpu(avx2=True, avx512f=True, avx512_vnni=True, avx512_bf16=True), "avx512-vnni"),
    "Intel Xeon with AMX": (cpu(avx2=True, avx512f=True, avx512_vnni=True, avx_vnni=True, avx512_bf16=True,
                                amx_int8=True, amx_bf16=True), "avx512-amx"),
    "AMD EPYC Zen 3": (cpu(avx2=True), "x86-64-v3"),
    "Intel Alder Lake (AVX-VNNI, no AVX-512)": (cpu(avx2=True, avx_vnni=True), "avx-vnni"),
    "Graviton": (cpu(machine="aarch64"), "arm64"),
}


@pytest.mark.parametrize("name", list(MET))
def test_every_cpu_met_maps_to_its_row(name):
    env, expected = MET[name]
    assert testbeds.of_environment(env).name == expected


def test_every_environment_recorded_in_baselines_maps_to_the_folder_it_lies_in():
    files = sorted((REPO / "baselines").glob("*/*.json"))
    assert files, "no baselines/<testbed>/<tier>.json committed"
    for path in files:
        document = results.load_baselines(path)
        assert document["testbed"] == path.parent.name, path
        for env in document["environments"].values():
            assert testbeds.of_environment(env).name == path.parent.name, path


def test_nearest_is_defined_by_the_table_and_names_real_rows():
    for testbed in testbeds.TESTBEDS:
        assert testbed.name not in testbed.nearest
        for name in testbed.nearest:
            assert testbeds.get(name)
    assert testbeds.nearest_with(testbeds.get("x86-64-v3"), {"avx512-vnni"}).name == "avx512-vnni"
    assert testbeds.nearest_with(testbeds.get("avx512-amx"), {"avx512-vnni", "x86-64-v3"}).name == "avx512-vnni"
    assert testbeds.nearest_with(testbeds.get("arm64"), {"avx512-vnni"}) is None


def test_only_cpus_without_int8_dot_products_saturate():
    assert testbeds.get("x86-64-v3").int8_saturates
    assert not testbeds.get("avx512-vnni").int8_saturates
    assert not testbeds.get("avx-vnni").int8_saturates


def test_unknown_testbed_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        testbeds.get("avx9000")
    assert "x86-64-v3" in str(info.value)


def test_this_cpu_is_a_row_and_the_fingerprint_names_it():
    assert environment.cpu()["testbed"] == testbeds.current().name
    assert environment.cpu()["flags_source"] in ("cpuid", "/proc/cpuinfo")


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None or not sys.platform.startswith("linux"),
                    reason="qemu-user is not installed (`apt-get install -y qemu-user`; .ci/run installs it)")
def test_an_emulated_haswell_is_x86_64_v3_although_proc_cpuinfo_describes_the_host(tmp_path):
    """Under qemu CPUID answers for the emulated CPU, and the testbed follows CPUID."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    out = subprocess.run(
        ["qemu-x86_64", "-cpu", "Haswell-v4", sys.executable, "-c",
         "import json; from bench import cpuid, testbeds; "
         "print(json.dumps({'testbed': testbeds.current().name, **cpuid.features()}))"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["source"] == "cpuid"
    assert found["testbed"] == "x86-64-v3", found
    assert found["flags"]["avx2"] and not found["flags"]["avx512_vnni"]
    assert "Haswell" in found["model"]
