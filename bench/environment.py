"""The environment fingerprint: library versions and CPU features that results depend on."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = {
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "tfmot": "tensorflow-model-optimization",
    "ai_edge_litert": "ai-edge-litert",
    "onnxruntime": "onnxruntime",
    "tf2onnx": "tf2onnx",
    "onnx": "onnx",
    "numpy": "numpy",
}
# CPU features that change which int8 and bfloat16 kernels run, and so the speed (and rarely the
# rounding; OpenVINO's CPU plugin runs float graphs in bfloat16 by default where they exist).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")
# The versions that decide trained weights and converted artifacts; part of every cache key.
TRAINING_PACKAGES = ("tensorflow", "tf_keras", "tfmot", "numpy")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """The versions of :data:`PACKAGES` and of every registered backend's own packages."""
    return {key: _version(dist) for key, dist in all_packages().items()}


def all_packages() -> dict[str, str]:
    """Fingerprint key -> distribution: the core stack, then what registered backends declare."""
    from bench.backends import BACKENDS

    packages = dict(PACKAGES)
    known = set(packages.values())
    for _, backend in BACKENDS.items():
        for dist in backend.packages:
            if dist not in known:
                packages[dist.replace("-", "_")] = dist
                known.add(dist)
    return packages


def library_versions() -> dict[str, str | None]:
    """Versions that training results depend on."""
    return {key: versions()[key] for key in TRAINING_PACKAGES}


@functools.lru_cache(maxsize=1)
def cpu() -> dict:
    """CPU model, machine, core count and the flags in CPU_FLAGS, as CPUID shows them to the
    runtimes (``bench.cpuid``; under an emulator, the emulated CPU), and the testbed they make."""
    from bench import cpuid, testbeds

    found = cpuid.features()
    described = {
        "model": found["model"],
        "machine": platform.machine(),
        # The cores this process may run on (taskset, cgroups), not the machine's: speed follows them.
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": {flag: bool(found["flags"].get(flag)) for flag in CPU_FLAGS},
        "flags_source": found["source"],
    }
    described["testbed"] = testbeds.of_environment({"cpu": described}).name
    return described


def testbed_name(environment: dict) -> str:
    """The testbed an environment (this run's or a recorded one) belongs to."""
    from bench import testbeds

    return testbeds.of_environment(environment).name


@functools.lru_cache(maxsize=4)
def lock_sha256(lock_file: Path) -> str | None:
    """sha256 of a project's lock file, one hash for every transitive pin; None where the project
    has none (its fingerprint then says nothing about the versions beyond :data:`PACKAGES`)."""
    return hashlib.sha256(lock_file.read_bytes()).hexdigest() if lock_file.is_file() else None


def fingerprint(backends: list[str] | None = None, root: Path | None = None) -> dict:
    """What a run's results may depend on besides the code: lock, libraries, Python, CPU, and
    what the selected ``backends`` report about this machine (``Backend.facts``).

    Args:
        backends: The run's backends, whose facts are recorded.
        root: The project root (:mod:`bench.project`) whose requirements.lock is hashed; None
            records no lock.
    """
    from bench import project

    lock = lock_sha256(project.lock_file(root)) if root is not None else None
    found = {"python": platform.python_version(), "lock_sha256": lock, **versions(), "cpu": cpu()}
    facts = backend_facts(backends or [])
    if facts:
        found["backends"] = facts
    return found


def backend_facts(backends: list[str]) -> dict:
    """``Backend.facts()`` of each selected backend that declares some."""
    from bench.backends import BACKENDS

    return {name: BACKENDS.get(name).facts() for name in backends if BACKENDS.get(name).facts}


def fingerprint_id(environment: dict) -> str:
    """A short stable name for a fingerprint (baselines keep each distinct one once)."""
    import json

    return hashlib.sha256(json.dumps(environment, sort_keys=True).encode()).hexdigest()[:12]


def differences(recorded: dict, current: dict) -> list[str]:
    """How two environments differ, one phrase each; empty when they are the same.

    The lock, library versions and CPU flags count; the CPU model name and core count do not
    (they change speed, not outcomes). These explain a verdict; they never replace it.
    """
    problems = []
    if recorded.get("lock_sha256") != current.get("lock_sha256"):
        problems.append(f"lock {_short(recorded.get('lock_sha256'))} -> {_short(current.get('lock_sha256'))}")
    for key in all_packages():
        if recorded.get(key) != current.get(key):
            problems.append(f"{key} {recorded.get(key)} -> {current.get(key)}")
    old_flags = (recorded.get("cpu") or {}).get("flags", {})
    new_flags = (current.get("cpu") or {}).get("flags", {})
    for flag in CPU_FLAGS:
        if old_flags.get(flag) != new_flags.get(flag):
            problems.append(f"cpu flag {flag} {old_flags.get(flag)} -> {new_flags.get(flag)}")
    old_facts, new_facts = recorded.get("backends") or {}, current.get("backends") or {}
    for name in sorted(set(old_facts) & set(new_facts)):
        old, new = old_facts[name], new_facts[name]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                problems.append(f"{name} {key} {old.get(key)} -> {new.get(key)}")
    return problems


def same_isa(recorded: dict, current: dict) -> bool:
    """Whether two environments may compare speed: the same testbed and the same CPU model.

    Speed is compared only within a testbed *and* CPU model: two CPUs of one testbed share
    numerics, not clocks, caches or core counts.
    """
    old_cpu, new_cpu = recorded.get("cpu") or {}, current.get("cpu") or {}
    return (old_cpu.get("flags") == new_cpu.get("flags") and old_cpu.get("model") == new_cpu.get("model")
            and old_cpu.get("cores") == new_cpu.get("cores"))


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"
