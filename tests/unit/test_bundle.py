"""Tests of the bundle file (bench.bundle.archive) on real tar and .npy files, without TensorFlow.

Each refusal is shown on a bundle written for it: what the format must refuse before any
TensorFlow runs (digest, members, manifest, tensor files, pickles). The architecture and key
checks, which need the registered models, are in ``tests/reliability/test_bundle.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench.bundle import archive, checks
from bench.bundle.archive import MANIFEST, BundleError, read_bundle
from bench.cache import Cache, describe_origin, file_sha256

_RNG = np.random.default_rng(66)


def sample_weights() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per stage, (variable name, array) as a small model's weights would be, with the scalars and
    int32 step counters a QAT wrapper has."""
    kernel = _RNG.standard_normal((3, 3, 1, 4)).astype(np.float32)
    return {
        "float": [("conv1/kernel:0", kernel), ("bn1/gamma:0", np.ones(4, np.float32))],
        "qat": [("quantize_layer/quantize_layer_min:0", np.array(-1.5, np.float32)),
                ("quantize_layer/optimizer_step:0", np.array(62, np.int32)),
                ("conv1/kernel:0", kernel), ("quant_conv1/optimizer_step:0", np.array(62, np.int32))],
    }


def sample(weights=None, model: str = "cnn") -> tuple[dict, dict[str, bytes]]:
    """A manifest and its tensor files, as :func:`bench.transfer.export` lays them out."""
    weights = weights or sample_weights()
    files: dict[str, bytes] = {}
    stages = {}
    for stage, tensors in weights.items():
        records = []
        for index, (name, array) in enumerate(tensors):
            file = archive.tensor_file(model, stage, index, name)
            files[file] = archive.npy_bytes(array)
            records.append(archive.tensor_record(file, name, files[file], array))
        stages[stage] = {"key": f"{stage}key", "label": f"{model}-smoke" + ("-qat" if stage == "qat" else ""),
                         "components": {"model": model}, "val_accuracy": 0.85, "train_seconds": 1.0,
                         "built_on": {"testbed": "avx512-vnni", "cpu": "AMD EPYC", "date": "2026-12-04"},
                         "tensors": records}
    return {"schema": archive.SCHEMA, "kind": archive.KIND, "tier": "smoke", "models": {model: stages}}, files


def write(tmp_path: Path, manifest: dict, files: dict[str, bytes], name: str = "b.tar") -> tuple[Path, str]:
    path = tmp_path / name
    return path, archive.write_bundle(path, manifest, files)


def raw_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    """A tar written member by member, whatever they are (the exporter never writes such)."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return file_sha256(path)


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest).encode()


# ---------------------------------------------------------------------------------------------
# Writing


def test_a_bundle_round_trips_bit_for_bit_scalars_and_counters_included(tmp_path):
    weights = sample_weights()
    path, digest = write(tmp_path, *sample(weights))
    read = read_bundle(path, digest)
    assert read.sha256 == digest == file_sha256(path)
    for stage, tensors in weights.items():
        got = read.tensors("cnn", stage)
        assert [a.dtype for a in got] == [a.dtype for _, a in tensors]
        assert [a.shape for a in got] == [a.shape for _, a in tensors]  # () stays (), not (1,)
        assert all(np.array_equal(a, b) for a, (_, b) in zip(got, tensors, strict=True))


def test_a_bundle_is_byte_deterministic_and_plain(tmp_path):
    manifest, files = sample()
    first, digest = write(tmp_path, manifest, files, "one.tar")
    second, again = write(tmp_path, manifest, dict(reversed(list(files.items()))), "two.tar")
    assert digest == again and first.read_bytes() == second.read_bytes()
    assert (tmp_path / "one.tar.sha256").read_text() == f"{digest}  one.tar\n"
    with tarfile.open(first) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted([MANIFEST, *files])
    assert {(i.mtime, i.uid, i.gid, i.mode, i.type) for i in infos} == {(0, 0, 0, 0o644, tarfile.REGTYPE)}


def test_writing_over_another_bundle_needs_replace(tmp_path):
    manifest, files = sample()
    path, _ = write(tmp_path, manifest, files)
    archive.write_bundle(path, manifest, files)  # the same bytes: nothing to refuse
    other = sample_weights()
    other["float"][1] = ("bn1/gamma:0", np.full(4, 2.0, np.float32))
    with pytest.raises(BundleError, match="already exists and holds other weights"):
        archive.write_bundle(path, *sample(other))
    digest = archive.write_bundle(path, *sample(other), replace=True)
    assert file_sha256(path) == digest


# ---------------------------------------------------------------------------------------------
# The digest from outside the bundle


def test_a_wrong_digest_is_refused_before_the_file_is_opened(tmp_path):
    path, digest = write(tmp_path, *sample())
    with pytest.raises(BundleError, match=f"has sha256 {digest}, but {'0' * 64} was expected"):
        read_bundle(path, "0" * 64)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_bundle_fails_its_digest(tmp_path, damage):
    path, digest = write(tmp_path, *sample())
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2:]
    else:
        data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="truncated, damaged or edited"):
        read_bundle(path, digest)


def test_a_tensor_edited_with_its_manifest_entry_passes_only_its_own_digest(tmp_path):
    """The manifest's hashes only check the bundle against itself: the digest from outside is what
    catches an edit made consistently."""
    manifest, files = sample()
    path, digest = write(tmp_path, manifest, files, "genuine.tar")
    record = manifest["models"]["cnn"]["float"]["tensors"][1]
    edited = np.full(4, 3.0, np.float32)
    files[record["file"]] = archive.npy_bytes(edited)
    record["sha256"] = hashlib.sha256(files[record["file"]]).hexdigest()
    planted, own = write(tmp_path, manifest, files, "planted.tar")
    assert np.array_equal(read_bundle(planted, own).tensors("cnn", "float")[1], edited)
    with pytest.raises(BundleError, match="was expected"):
        read_bundle(planted, digest)


def test_a_truncated_tar_with_a_matching_digest_is_not_readable(tmp_path):
    path, _ = write(tmp_path, *sample())
    path.write_bytes(path.read_bytes()[:1000])  # inside the first tensor file
    with pytest.raises(BundleError, match="not a readable tar|does not hold|does not match"):
        read_bundle(path, file_sha256(path))


def test_digest_files_in_sha256sum_format(tmp_path):
    a, b = "a" * 64, "B" * 64
    digests = tmp_path / "SHA256SUMS"
    digests.write_text(f"# committed digests\n{a}  quantbench-smoke.tar\n{b} *quantbench-full.tar\n")
    assert archive.read_digest_file(digests, Path("/x/quantbench-full.tar")) == b.lower()
    assert archive.read_digest_file(digests, Path("quantbench-smoke.tar")) == a
    with pytest.raises(BundleError, match="no line"):
        archive.read_digest_file(digests, Path("renamed.tar"))
    single = tmp_path / "one.sha256"
    single.write_text(f"{a}  quantbench-smoke.tar\n")
    assert archive.read_digest_file(single, Path("downloads/renamed.tar")) == a
    single.write_text("not-a-digest  quantbench-smoke.tar\n")
    with pytest.raises(BundleError, match="is not a sha256"):
        archive.read_digest_file(single, Path("quantbench-smoke.tar"))
    with pytest.raises(BundleError, match="cannot read the digest file"):
        archive.read_digest_file(tmp_path / "absent.sha256", Path("quantbench-smoke.tar"))


# ---------------------------------------------------------------------------------------------
# Members


@pytest.mark.parametrize(("info", "message"), [
    (member("../evil.npy"), "unsafe name"),
    (member("/tmp/evil.npy"), "unsafe name"),
    (member("weights/../../evil.npy"), "unsafe name"),
    (member("weights/link.npy", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
    (member("weights/hard.npy", tarfile.LNKTYPE, MANIFEST), "not a regular file"),
    (member("weights", tarfile.DIRTYPE), "not a regular file"),
    (member("weights/fifo.npy", tarfile.FIFOTYPE), "not a regular file"),
], ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "folder", "fifo"])
def test_unsafe_members_are_refused_and_nothing_is_extracted(tmp_path, info, message):
    manifest, files = sample()
    folder = tmp_path / "in" / "deep"
    folder.mkdir(parents=True)
    path = folder / "b.tar"
    members = [(member(MANIFEST), manifest_bytes(manifest)), (info, b"\x93NUMPY")]
    members += [(member(name), data) for name, data in files.items()]
    digest = raw_tar(path, members)
    with pytest.raises(BundleError, match=message):
        read_bundle(path, digest)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.tar", "deep", "in"]


@pytest.mark.parametrize("change", ["unlisted", "missing", "duplicate", "no-manifest"])
def test_members_must_be_exactly_the_manifests_files(tmp_path, change):
    manifest, files = sample()
    members = [(member(name), data) for name, data in files.items()]
    first = next(iter(files))
    if change == "unlisted":
        members.append((member("weights/cnn/float/9999-extra.npy"), files[first]))
    elif change == "missing":
        members = members[1:]
    elif change == "duplicate":
        members.append((member(first), files[first]))
    if change != "no-manifest":
        members.insert(0, (member(MANIFEST), manifest_bytes(manifest)))
    path = tmp_path / "b.tar"
    digest = raw_tar(path, members)
    message = {"unlisted": "is not listed in the manifest", "missing": "which the bundle does not hold",
               "duplicate": "appears twice", "no-manifest": "holds no manifest.json"}[change]
    with pytest.raises(BundleError, match=message):
        read_bundle(path, digest)


def test_an_oversized_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path, digest = write(tmp_path, *sample())
    monkeypatch.setattr(archive, "MAX_TENSOR_BYTES", 256)
    with pytest.raises(BundleError, match="over the limit of 256"):
        read_bundle(path, digest)


# ---------------------------------------------------------------------------------------------
# Tensor files and the manifest


class _Planted:
    """Unpickling this creates a file: the proof that a bundle's pickle would run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (self.marker.touch, ())


def replace_tensor(manifest: dict, files: dict[str, bytes], data: bytes, **record) -> None:
    """Puts ``data`` in place of the first float tensor, its manifest entry made consistent."""
    entry = manifest["models"]["cnn"]["float"]["tensors"][0]
    files[entry["file"]] = data
    entry.update(sha256=hashlib.sha256(data).hexdigest(), **record)


def test_a_pickled_tensor_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Planted(marker)], dtype=object), allow_pickle=True)
    assert pickle.loads(pickle.dumps(_Planted(tmp_path / "probe"))) is None  # the plant works...
    assert (tmp_path / "probe").exists()
    manifest, files = sample()
    replace_tensor(manifest, files, buffer.getvalue(), shape=[1])
    path, digest = write(tmp_path, manifest, files)
    with pytest.raises(BundleError, match="is not a plain .npy array"):
        read_bundle(path, digest)
    assert not marker.exists()  # ...and the bundle's did not run


@pytest.mark.parametrize(("array", "record", "message"), [
    (np.zeros((3, 3, 1, 4), np.float64), {}, "holds <f8"),
    (np.zeros((3, 3, 1, 4), ">f4"), {}, "holds >f4"),
    (np.zeros((3, 3, 4, 1), np.float32), {}, r"holds <f4 \[3, 3, 4, 1\], but its manifest entry says <f4 \[3, 3, 1, 4\]"),
    (np.zeros(4, np.float64), {"dtype": "float64", "shape": [4]}, "a bundle holds only float32, int32"),
], ids=["float64", "big-endian", "shape", "float64-declared"])
def test_a_tensor_file_must_be_what_its_entry_says(tmp_path, array, record, message):
    manifest, files = sample()
    replace_tensor(manifest, files, archive.npy_bytes(array), **record)
    path, digest = write(tmp_path, manifest, files)
    with pytest.raises(BundleError, match=message):
        read_bundle(path, digest)


def test_bytes_after_the_array_are_refused(tmp_path):
    manifest, files = sample()
    first = manifest["models"]["cnn"]["float"]["tensors"][0]["file"]
    replace_tensor(manifest, files, files[first] + b"\x00" * 8)
    path, digest = write(tmp_path, manifest, files)
    with pytest.raises(BundleError, match="has 8 bytes after its array"):
        read_bundle(path, digest)


def test_a_tensor_edited_alone_fails_its_manifest_entry(tmp_path):
    manifest, files = sample()
    first = manifest["models"]["cnn"]["float"]["tensors"][0]["file"]
    files[first] = files[first][:-1] + b"\x01"
    path, digest = write(tmp_path, manifest, files)
    with pytest.raises(BundleError, match=f"{first} does not match the sha256"):
        read_bundle(path, digest)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(schema=2), "has schema 2; this checkout reads schema 1"),
    (lambda m: m.update(models={}), "lists no models"),
    (lambda m: m["models"]["cnn"].pop("qat"), "must hold exactly the stages float, qat"),
    (lambda m: m["models"]["cnn"]["float"].pop("components"), r"models\.cnn\.float\.components is missing"),
    (lambda m: m["models"]["cnn"]["float"]["tensors"][0].update(shape=[3, -3]), "is not a list of sizes"),
    (lambda m: m["models"]["cnn"]["float"]["tensors"][0].update(file="weights/x.pkl"), "not a safe .npy"),
    (lambda m: m["models"]["cnn"]["qat"]["tensors"][0].update(
        file=m["models"]["cnn"]["float"]["tensors"][0]["file"]), "is listed twice"),
], ids=["schema", "no-models", "no-qat", "no-components", "shape", "not-npy", "listed-twice"])
def test_a_malformed_manifest_is_refused(tmp_path, edit, message):
    manifest, files = sample()
    edit(manifest)
    path, digest = write(tmp_path, manifest, files)
    with pytest.raises(BundleError, match=message):
        read_bundle(path, digest)


# ---------------------------------------------------------------------------------------------
# What a refusal names, and where weights came from


def test_key_differences_name_each_component():
    bundled = {"model": "cnn", "recipe": "aaaa", "data": "d", "code": "c",
               "versions": {"tensorflow": "2.20.0", "numpy": "2.4.6", "tfmot": "0.8.1"}}
    here = {**bundled, "recipe": "bbbb", "versions": {**bundled["versions"], "tensorflow": "2.21.0"}}
    assert checks.key_differences(bundled, bundled) == []
    assert checks.key_differences(bundled, here) == [
        "training recipe (the model's ModelSpec.recipes, Tier.recipe_hash): aaaa in the bundle, bbbb here",
        "library tensorflow: 2.20.0 in the bundle, 2.21.0 here",
    ]


def test_entries_record_where_they_were_built_and_reports_say_it(tmp_path):
    cache = Cache(tmp_path)
    entry, _ = cache.get_or_build("models", "cnn-smoke", "k", lambda folder: {})
    built = cache.read_meta(entry)["built_on"]
    assert set(built) == {"testbed", "cpu", "date"} and built["date"].endswith("Z")
    assert cache.weights_source("models", "cnn-smoke", "k") == \
        f"cache, trained on {built['testbed']} ({built['cpu']}) {built['date'][:10]}"
    assert cache.weights_source("models", "cnn-smoke", "absent") == "cache"
    assert describe_origin({}) == "cache (where it was trained is not recorded)"
    assert describe_origin({"weights_from": {"bundle": "1a2b3c4d5e6f7a8b", "built_on": {
        "testbed": "avx512-vnni", "cpu": "AMD EPYC", "date": "2026-12-04T00:00:00Z"}}}) == \
        "bundle 1a2b3c4d5e6f (trained on avx512-vnni (AMD EPYC))"
    assert describe_origin({"weights_from": {"bundle": "1a2b3c4d5e6f7a8b", "built_on": None}}) == \
        "bundle 1a2b3c4d5e6f (where it was trained is not recorded)"
