"""Testbeds: the CPU classes that change what the bench measures, as one named table.

A testbed is the class of CPU whose instructions change numerics or speed: which int8 dot
product the kernels have, whether bfloat16 and AMX exist, and (for training) which vector width
TensorFlow's float kernels use. Baselines are kept per tier and testbed, and a run is judged
against its own testbed's baseline. Speed is compared only within a testbed *and* CPU model
(the ``model`` in the environment), never across.

The table is ordered from the most specific row to the least; a CPU belongs to the first row
whose ``requires`` it has all of. Where a testbed has no baseline of its own, ``nearest`` names,
in order, whose baseline its verdicts are shown against (as information, never failing the run).
"""

from __future__ import annotations

import dataclasses
import platform

from bench.errors import unknown_name


@dataclasses.dataclass(frozen=True)
class Testbed:
    """One row of the testbed table.

    Attributes:
        name: Short name, also the baselines file name (``baselines/<tier>/<name>.json``).
        requires: CPU features (``bench.cpuid`` names) the class has, all of them.
        int8_sums: How x86 int8 kernels add u8 x s8 products: ``int32`` (VNNI/AMX dot products,
            exact) or ``int16_pairs`` (VPMADDUBSW: two products summed into a saturating 16-bit
            lane, so int8 files whose products can reach 2 x 255 x 127 overflow, as ONNX Runtime's
            quantization docs warn).
        changes: What the class changes against the others, in words (shown in reports).
        nearest: Testbeds whose baseline stands in, in order, where this one has none.
        machine: ``platform.machine()`` values of the class.
    """

    name: str
    requires: frozenset[str]
    int8_sums: str
    changes: str
    nearest: tuple[str, ...] = ()
    machine: tuple[str, ...] = ("x86_64", "amd64")

    @property
    def int8_saturates(self) -> bool:
        """Whether u8 x s8 int8 products are summed in saturating 16-bit pairs here."""
        return self.int8_sums == "int16_pairs"


TESTBEDS: tuple[Testbed, ...] = (
    Testbed(
        name="avx512-amx",
        requires=frozenset({"avx512f", "avx512_vnni", "amx_int8", "amx_bf16"}),
        int8_sums="int32",
        changes="AMX tile kernels for int8 and bf16 in oneDNN (OpenVINO); float training equals "
        "avx512-vnni's image for image (an Intel Xeon with AMX reproduced 31 of 32 smoke cases, "
        "guide 1b); speed differs",
        nearest=("avx512-vnni", "x86-64-v3"),
    ),
    Testbed(
        name="avx512-vnni",
        requires=frozenset({"avx512f", "avx512_vnni"}),
        int8_sums="int32",
        changes="AVX-512 float kernels in training; VNNI int8 dot products (exact int32 sums): "
        "the class that recorded the first baselines (AMD EPYC Zen 4 and Zen 5)",
        nearest=("avx512-amx", "x86-64-v3"),
    ),
    Testbed(
        name="avx-vnni",
        requires=frozenset({"avx2", "avx_vnni"}),
        int8_sums="int32",
        changes="AVX2 float kernels (training differs from AVX-512's) with VEX-encoded VNNI "
        "int8 dot products (exact int32 sums)",
        nearest=("x86-64-v3", "avx512-vnni"),
    ),
    Testbed(
        name="x86-64-v3",
        requires=frozenset({"avx2"}),
        int8_sums="int16_pairs",
        changes="AVX2 only: float training gives other weights than AVX-512 (tens to hundreds "
        "of smoke images flip); int8 products summed in saturating 16-bit pairs, so ONNX "
        "Runtime's int8 files take the U8U8 format here",
        nearest=("avx-vnni", "avx512-vnni"),
    ),
    Testbed(
        name="x86-64",
        requires=frozenset(),
        int8_sums="int16_pairs",
        changes="no AVX2: SSE kernels everywhere; slow, and never measured by this project",
        nearest=("x86-64-v3", "avx512-vnni"),
    ),
    Testbed(
        name="arm64",
        requires=frozenset(),
        int8_sums="int32",
        changes="NEON/SVE kernels (dot-product instructions on recent cores); not yet measured",
        nearest=(),
        machine=("aarch64", "arm64"),
    ),
)
BY_NAME = {testbed.name: testbed for testbed in TESTBEDS}


def get(name: str) -> Testbed:
    """The testbed called ``name``, or UnknownNameError listing the valid names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise unknown_name("testbed", name, list(BY_NAME)) from None


def of_environment(environment: dict) -> Testbed:
    """The testbed of a recorded environment (``environment.fingerprint()``'s ``cpu``).

    An environment recorded before the machine name was kept is x86-64 (the only kind measured
    then).
    """
    cpu = environment.get("cpu") or {}
    machine = (cpu.get("machine") or "x86_64").lower()
    flags = {name for name, present in (cpu.get("flags") or {}).items() if present}
    for testbed in TESTBEDS:
        if machine in testbed.machine and testbed.requires <= flags:
            return testbed
    raise ValueError(f"no testbed row matches machine {machine!r}; add one to bench/testbeds.py")


def current() -> Testbed:
    """The testbed of this process's CPU, as CPUID shows it to the runtimes."""
    from bench import cpuid

    return of_environment({"cpu": {"machine": platform.machine(), "flags": cpuid.features()["flags"]}})


def nearest_with(testbed: Testbed, available: set[str]) -> Testbed | None:
    """The first of ``testbed.nearest`` that has a baseline (``available``), or None."""
    return next((BY_NAME[name] for name in testbed.nearest if name in available), None)


def table_rows() -> list[dict]:
    """The table as rows for reports and the README."""
    return [{"testbed": t.name, "machine": "/".join(t.machine[:1]), "requires": ", ".join(sorted(t.requires)) or "-",
             "int8 sums": t.int8_sums, "nearest": ", ".join(t.nearest) or "-", "changes": t.changes}
            for t in TESTBEDS]
