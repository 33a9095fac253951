"""The bundle file: a deterministic tar of ``manifest.json`` and ``.npy`` tensors, and its checks.

Everything here is numpy and tarfile: a bundle is checked against the digest from outside it and
against itself (members, manifest, tensor files) before TensorFlow sees any of it. Nothing is
extracted to disk and nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np

from bench import atomic
from bench.cache import file_sha256
from bench.errors import BenchError

SCHEMA = 1
KIND = "quantbench trained-model bundle"
MANIFEST = "manifest.json"
STAGES = ("float", "qat")
# The dtypes the registered models' variables have: float32 weights (mixed-precision training
# keeps its variables in float32 too) and tfmot's int32 ``optimizer_step`` counters in QAT wrappers.
TENSOR_DTYPES = ("float32", "int32")
# Limits that bound what reading a bundle may cost, far above what the registered models need:
# the full tier's three-model manifest is ~60 KB, and the largest tensor (vgg16's block-5
# kernels, 3x3x512x512 float32) is 9.4 MB.
MAX_MANIFEST_BYTES = 16 << 20
MAX_TENSOR_BYTES = 1 << 30
MAX_MEMBERS = 100_000
# Member files as the tar holds them: read-only data, no owner, no time (a bundle of the same
# weights is the same bytes, and so the same digest, whoever exports it and whenever).
MEMBER_MODE = 0o644
NPY_VERSION = (1, 0)
# A member path: safe components only (no absolute path, no "..", no backslash).
_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BundleError(BenchError):
    """A bundle that cannot be exported or imported; nothing was written to the cache."""


@dataclasses.dataclass
class Bundle:
    """A bundle read and checked against itself (digest, members, manifest, tensor files).

    Attributes:
        sha256: The digest of the whole file.
        manifest: The parsed manifest.
        arrays: Tensor file name -> its array, as the manifest describes it.
    """

    sha256: str
    manifest: dict
    arrays: dict[str, np.ndarray]

    def tensors(self, model: str, stage: str) -> list[np.ndarray]:
        return [self.arrays[record["file"]] for record in self.manifest["models"][model][stage]["tensors"]]



def bundle_name(tier: str) -> str:
    return f"quantbench-{tier}.tar"


def tensor_file(model: str, stage: str, index: int, variable: str) -> str:
    """The member name of a tensor: indexed, since QAT wrappers repeat variable names."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", variable).strip("._-")[:64] or "tensor"
    return f"weights/{model}/{stage}/{index:04d}-{readable}.npy"


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in the .npy format (version 1.0, no pickle)."""
    buffer = io.BytesIO()
    # Not np.ascontiguousarray: it turns a scalar (tfmot's step counters) into shape (1,).
    np.lib.format.write_array(buffer, np.asarray(array, order="C"), version=NPY_VERSION, allow_pickle=False)
    return buffer.getvalue()


def tensor_record(file: str, variable: str, data: bytes, array: np.ndarray) -> dict:
    """The manifest entry of one tensor file."""
    return {"file": file, "name": variable, "dtype": array.dtype.name, "shape": list(array.shape),
            "sha256": hashlib.sha256(data).hexdigest()}


def bundle_bytes(manifest: dict, files: dict[str, bytes]) -> bytes:
    """The tar of ``manifest.json`` and ``files``, deterministic: same input, same bytes."""
    members = {MANIFEST: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), **files}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 0, MEMBER_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def write_bundle(path: Path, manifest: dict, files: dict[str, bytes], replace: bool = False) -> str:
    """Writes the bundle and its ``.sha256`` file atomically; returns the digest.

    Raises:
        BundleError: ``path`` holds another bundle and ``replace`` is False.
    """
    path = Path(path)
    data = bundle_bytes(manifest, files)
    digest = hashlib.sha256(data).hexdigest()
    if path.exists() and not replace and file_sha256(path) != digest:
        raise BundleError(f"{path} already exists and holds other weights; remove it, choose another "
                          "--out, or pass --replace")
    atomic.write_bytes(path, data)
    atomic.write_text(digest_path(path), f"{digest}  {path.name}\n")
    return digest


def digest_path(bundle: Path) -> Path:
    return Path(f"{bundle}.sha256")


def parse_sha256(text: str, source: str) -> str:
    digest = text.strip().lower()
    if not _HEX64.fullmatch(digest):
        raise BundleError(f"{source}: {text.strip()!r} is not a sha256 (64 hexadecimal digits)")
    return digest


def read_digest_file(path: Path, bundle: Path) -> str:
    """The expected digest of ``bundle`` from a file in ``sha256sum`` format.

    The line naming the bundle's file name wins; a file of one line is taken whatever name it
    gives (a bundle may be saved under another name, and its bytes decide anyway).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read the digest file {path} ({exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    entries = []
    for line in lines:
        digest, _, name = line.partition(" ")
        entries.append((parse_sha256(digest, str(path)), name.strip().lstrip("*")))
    named = [digest for digest, name in entries if Path(name).name == Path(bundle).name]
    if len(named) == 1:
        return named[0]
    if len(entries) == 1 and not named:
        return entries[0][0]
    raise BundleError(f"the digest file {path} has {len(named) or 'no'} line(s) for {Path(bundle).name} "
                      f"among {len(entries)}: give exactly one, or pass --sha256")


def check_digest(path: Path, expected: str) -> str:
    """The sha256 of the whole file, if it is ``expected``; else BundleError."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path} is not a file")
    actual = file_sha256(path)
    if actual != expected:
        raise BundleError(
            f"{path} has sha256 {actual}, but {expected} was expected: the bundle is truncated, "
            "damaged or edited, or the digest is for another bundle. Nothing was imported; fetch "
            "the bundle again and check the digest's source")
    return actual


def read_bundle(path: Path, expected_sha256: str) -> Bundle:
    """Checks the digest, then reads and checks every member and the manifest.

    Nothing is extracted to disk: members are read into memory, regular files only, each listed
    by the manifest, each at most :data:`MAX_TENSOR_BYTES` (the manifest
    :data:`MAX_MANIFEST_BYTES`), and every tensor file must match its manifest entry (sha256,
    dtype, shape, no bytes beyond the array).

    Raises:
        BundleError: Whatever is wrong, first problem first.
    """
    digest = check_digest(path, expected_sha256)
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = _members(tar)
            if MANIFEST not in members:
                raise BundleError(f"{path} holds no {MANIFEST}: not a quantbench bundle")
            manifest = _parse_manifest(tar.extractfile(members[MANIFEST]).read())
            records = {record["file"]: record for record in _tensor_records(manifest)}
            unlisted = sorted(set(members) - set(records) - {MANIFEST})
            if unlisted:
                raise BundleError(f"{path}: member {unlisted[0]!r} is not listed in the manifest "
                                  f"({len(unlisted)} unlisted); a bundle holds the manifest's files only")
            missing = sorted(set(records) - set(members))
            if missing:
                raise BundleError(f"{path}: the manifest lists {missing[0]!r}, which the bundle "
                                  f"does not hold ({len(missing)} missing)")
            arrays = {name: _read_tensor(tar.extractfile(members[name]).read(), record)
                      for name, record in records.items()}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{path} is not a readable tar ({exc}); nothing was imported") from None
    return Bundle(digest, manifest, arrays)


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise BundleError(f"the bundle has more than {MAX_MEMBERS} members")
        name = member.name
        if not _SAFE_PATH.fullmatch(name) or ".." in name.split("/"):
            raise BundleError(f"member {name!r} has an unsafe name (absolute, '..', or characters "
                              "outside A-Z a-z 0-9 _ . - /): refused")
        if not member.isreg():
            raise BundleError(f"member {name!r} is not a regular file (links, folders and devices "
                              "are refused)")
        if name in members:
            raise BundleError(f"member {name!r} appears twice")
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_TENSOR_BYTES
        if member.size > limit:
            raise BundleError(f"member {name!r} is {member.size} bytes, over the limit of {limit}")
        members[name] = member
    return members


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST} is not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise BundleError(f"{MANIFEST} has schema {manifest.get('schema')!r}; this checkout reads schema "
                          f"{SCHEMA}: export the bundle again with this checkout")
    _expect(manifest, "tier", str, "")
    models = _expect(manifest, "models", dict, "")
    if not models:
        raise BundleError(f"{MANIFEST} lists no models")
    files: set[str] = set()
    for model, stages in models.items():
        where = f"models.{model}"
        if not isinstance(stages, dict) or sorted(stages) != sorted(STAGES):
            raise BundleError(f"{MANIFEST}: {where} must hold exactly the stages {', '.join(STAGES)}")
        for stage in STAGES:
            _check_stage(stages[stage], f"{where}.{stage}", files)
    return manifest


def _expect(mapping: dict, field: str, kind: type, where: str):
    value = mapping.get(field) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BundleError(f"{MANIFEST}: {where + '.' if where else ''}{field} is missing or not a "
                          f"{kind.__name__}")
    return value


def _check_stage(entry: dict, where: str, files: set[str]) -> None:
    for field in ("key", "label"):
        _expect(entry, field, str, where)
    _expect(entry, "components", dict, where)
    tensors = _expect(entry, "tensors", list, where)
    if not tensors:
        raise BundleError(f"{MANIFEST}: {where}.tensors is empty")
    for index, record in enumerate(tensors):
        at = f"{where}.tensors[{index}]"
        file = _expect(record, "file", str, at)
        _expect(record, "name", str, at)
        dtype = _expect(record, "dtype", str, at)
        shape = _expect(record, "shape", list, at)
        digest = _expect(record, "sha256", str, at)
        if not _SAFE_PATH.fullmatch(file) or ".." in file.split("/") or not file.endswith(".npy") \
                or file == MANIFEST:
            raise BundleError(f"{MANIFEST}: {at}.file {file!r} is not a safe .npy member name")
        if file in files:
            raise BundleError(f"{MANIFEST}: {at}.file {file!r} is listed twice")
        files.add(file)
        if dtype not in TENSOR_DTYPES:
            raise BundleError(f"{MANIFEST}: {at}.dtype is {dtype!r}; a bundle holds only "
                              f"{', '.join(TENSOR_DTYPES)} tensors")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise BundleError(f"{MANIFEST}: {at}.shape {shape!r} is not a list of sizes")
        if not _HEX64.fullmatch(digest):
            raise BundleError(f"{MANIFEST}: {at}.sha256 is not a sha256")


def _tensor_records(manifest: dict) -> list[dict]:
    return [record for stages in manifest["models"].values() for stage in STAGES
            for record in stages[stage]["tensors"]]


def _read_tensor(data: bytes, record: dict) -> np.ndarray:
    """The array of one tensor file, once it matches its manifest entry; never unpickles."""
    name = record["file"]
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise BundleError(f"{name} does not match the sha256 its manifest entry records")
    buffer = io.BytesIO(data)
    try:
        array = np.load(buffer, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # numpy's words for a bad or object-dtype file
        raise BundleError(f"{name} is not a plain .npy array ({exc})") from None
    if buffer.tell() != len(data):
        raise BundleError(f"{name} has {len(data) - buffer.tell()} bytes after its array")
    expected = np.dtype(record["dtype"])
    if array.dtype != expected or list(array.shape) != record["shape"]:
        raise BundleError(f"{name} holds {array.dtype.str} {list(array.shape)}, but its manifest "
                          f"entry says {expected.str} {record['shape']}")
    return array
