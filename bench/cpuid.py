"""CPU features as the runtimes see them: the CPUID instruction, not ``/proc/cpuinfo``.

ONNX Runtime (MLAS), OpenVINO (oneDNN), XNNPACK and TensorFlow choose their kernels from CPUID.
Under an emulator (``qemu-x86_64 -cpu Haswell-v4``) CPUID answers for the emulated CPU while
``/proc/cpuinfo`` still describes the host, so the features that decide numerics and speed are
read the way the runtimes read them. The instruction runs from a few bytes of machine code in an
executable page (ctypes and mmap, no compiler); where that is impossible (not x86-64, or a
system that forbids executable pages) the kernel's ``/proc/cpuinfo`` flags are used, and the
source says which.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import platform
from pathlib import Path

# The features the harness cares about (the names /proc/cpuinfo uses), each as
# (leaf, subleaf, register, bit) of CPUID: Intel SDM vol. 2A, CPUID, tables 3-8 and 3-9.
FEATURE_BITS = {
    "avx2": (7, 0, "ebx", 5),
    "avx512f": (7, 0, "ebx", 16),
    "avx512_vnni": (7, 0, "ecx", 11),
    "amx_bf16": (7, 0, "edx", 22),
    "amx_int8": (7, 0, "edx", 25),
    "avx_vnni": (7, 1, "eax", 4),
    "avx512_bf16": (7, 1, "eax", 5),
}
_REGISTERS = ("eax", "ebx", "ecx", "edx")

# System V x86-64: cpuid(uint32 leaf [edi], uint32 subleaf [esi], uint32 out[4] [rdx]).
_CPUID_CODE = bytes([
    0x53,                    # push rbx (callee-saved, CPUID overwrites it)
    0x89, 0xF8,              # mov eax, edi
    0x89, 0xF1,              # mov ecx, esi
    0x49, 0x89, 0xD0,        # mov r8, rdx
    0x0F, 0xA2,              # cpuid
    0x41, 0x89, 0x00,        # mov [r8], eax
    0x41, 0x89, 0x58, 0x04,  # mov [r8+4], ebx
    0x41, 0x89, 0x48, 0x08,  # mov [r8+8], ecx
    0x41, 0x89, 0x50, 0x0C,  # mov [r8+12], edx
    0x5B,                    # pop rbx
    0xC3,                    # ret
])


class _Cpuid:
    """The CPUID instruction as a Python callable (x86-64 only)."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_CPUID_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        prototype = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))
        self._call = prototype(address)

    def __call__(self, leaf: int, subleaf: int = 0) -> dict[str, int]:
        out = (ctypes.c_uint32 * 4)()
        self._call(leaf, subleaf, out)
        return dict(zip(_REGISTERS, out, strict=True))


def _signature(eax: int) -> str:
    """``family F model M``, decoded from CPUID leaf 1 EAX as /proc/cpuinfo decodes it."""
    family, model = (eax >> 8) & 0xF, (eax >> 4) & 0xF
    if family == 0xF:
        family += (eax >> 20) & 0xFF
    if family in (0x6, 0xF) or family > 0xF:
        model += ((eax >> 16) & 0xF) << 4
    return f"family {family} model {model}"


def _from_cpuid() -> tuple[dict[str, bool], str]:
    cpuid = _Cpuid()
    highest = cpuid(0)["eax"]
    vendor = b"".join(cpuid(0)[r].to_bytes(4, "little") for r in ("ebx", "edx", "ecx")).decode("ascii", "replace")
    brand = ""
    if cpuid(0x80000000)["eax"] >= 0x80000004:
        raw = b"".join(v.to_bytes(4, "little") for leaf in (0x80000002, 0x80000003, 0x80000004)
                       for v in cpuid(leaf).values())
        brand = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    subleaves = cpuid(7, 0)["eax"] if highest >= 7 else -1
    features = {}
    for name, (leaf, subleaf, register, bit) in FEATURE_BITS.items():
        present = highest >= leaf and subleaf <= subleaves
        features[name] = bool(present and (cpuid(leaf, subleaf)[register] >> bit) & 1)
    return features, f"{brand or vendor} ({_signature(cpuid(1)['eax'])})"


def _from_proc_cpuinfo() -> tuple[dict[str, bool], str]:
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):  # x86, arm64
                flags = set(value.split())
    return {name: name in flags for name in FEATURE_BITS}, model


@functools.lru_cache(maxsize=1)
def features() -> dict:
    """``{"flags": {name: bool}, "model": brand string, "source": "cpuid" | "/proc/cpuinfo"}``."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        try:
            flags, model = _from_cpuid()
            return {"flags": flags, "model": model, "source": "cpuid"}
        except (OSError, ValueError, AttributeError):  # no executable pages here: ask the kernel
            pass
    flags, model = _from_proc_cpuinfo()
    return {"flags": flags, "model": model, "source": "/proc/cpuinfo"}


if __name__ == "__main__":  # python -m bench.cpuid: what the runtimes see on this CPU
    import json

    print(json.dumps(features(), indent=2))
