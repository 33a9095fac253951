"""Trained-model bundles end to end (``python -m bench.bundle``): real TensorFlow, real cache files.

The smoke cnn is exported from a private copy of the user's cache (trained there first, about a
minute, where the user's cache lacks it) and imported into empty caches: the imported weights are
the originals bit for bit, ``bench.train`` and the bench reuse them, and a bench case run on them
gets the verdict the testbed's baseline recorded. Each way of spoiling a bundle is planted as a
real file and refused with a message naming the problem, the cache left empty.

Nothing here touches the repository's reports/, baselines/ or the user's cache.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench import data as data_mod
from bench import train
from bench.bundle import archive, checks, transfer
from bench.bundle.archive import STAGES, BundleError, read_bundle
from bench.bundle.transfer import import_bundle
from bench.cache import Cache
from bench.environment import library_versions
from bench.models import MODELS
from bench.tiers import SMOKE

from .conftest import MODEL, ROOT, SUBPROCESS_TIMEOUT, bench_env, run_bench

pytestmark = pytest.mark.bench


@dataclasses.dataclass
class Exported:
    path: Path
    digest: str
    source: Path
    keys: checks.Keys
    log: str


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=bench_env(cache), capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT)


def entries(root: Path) -> list[str]:
    """The cache's model entries (folders), not their lock files."""
    models = root / "models"
    return sorted(p.name for p in models.iterdir() if p.is_dir()) if models.is_dir() else []


@pytest.fixture(scope="module")
def keys() -> checks.Keys:
    return checks.checkout_keys(MODEL, SMOKE, data_mod.load().sha256)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, keys) -> Exported:
    """The smoke cnn's bundle, exported by the command line from a private copy of the user's cache."""
    source = tmp_path_factory.mktemp("bundle-source")
    user, private = Cache(), Cache(source)
    for label, key in ((f"{MODEL}-smoke", keys.float_key), (f"{MODEL}-smoke-qat", keys.qat_key)):
        entry = user.entry_dir("models", label, key)
        if entry.is_dir() and user.verify(entry) is None:
            shutil.copytree(entry, private.entry_dir("models", label, key))
    if len(entries(source)) < 2:  # not in the user's cache: train it here (about a minute)
        done = cli("bench.train", "--tier", "smoke", "--models", MODEL, cache=source)
        assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path_factory.mktemp("bundle-out")
    done = cli("bench.bundle", "export", "--tier", "smoke", "--models", MODEL, "--out", str(out), cache=source)
    assert done.returncode == 0, done.stderr[-3000:]
    path = out / archive.bundle_name("smoke")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in done.stdout
    return Exported(path, digest, source, keys, done.stdout + done.stderr)


def trained(root: Path) -> tuple[train.Trained, train.Trained]:
    """The float and QAT models as the bench itself gets them from the cache ``root``."""
    dataset = data_mod.load()
    splits = data_mod.split(dataset, val_size=SMOKE.val_size, train_size=None, test_size=SMOKE.test_size,
                            calibration_size=SMOKE.calibration_size, seed=SMOKE.seed)
    inputs = data_mod.ModelInputs(splits, MODELS.get(MODEL).input_shape)
    float_model = train.float_model(MODEL, SMOKE, inputs, dataset.sha256, Cache(root))
    return float_model, train.qat_model(MODEL, SMOKE, inputs, float_model, Cache(root))


def assert_same_weights(a, b) -> None:
    got, want = checks.weights_of(a), checks.weights_of(b)
    assert len(got) == len(want)
    for x, y, variable in zip(got, want, a.weights, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y), variable.name


# ---------------------------------------------------------------------------------------------
# The round trip


@pytest.fixture(scope="module")
def imported(exported, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """An empty cache into which the command line imported the bundle (digest from its file)."""
    root = tmp_path_factory.mktemp("bundle-imported")
    done = cli("bench.bundle", "import", str(exported.path), "--digest-file", f"{exported.path}.sha256",
               cache=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, done


def test_the_bundle_is_data_with_keys_versions_and_hashes(exported):
    genuine = read_bundle(exported.path, exported.digest)
    manifest = genuine.manifest
    assert manifest["tier"] == "smoke" and list(manifest["models"]) == [MODEL]
    stages = manifest["models"][MODEL]
    assert stages["float"]["key"] == exported.keys.float_key and stages["qat"]["key"] == exported.keys.qat_key
    assert stages["float"]["components"]["versions"] == library_versions()
    assert stages["float"]["components"]["recipe"] == SMOKE.recipe_hash(MODEL)
    assert stages["qat"]["components"]["qat"] == SMOKE.qat_hash(MODEL)
    with tarfile.open(exported.path) as tar:
        names = tar.getnames()
    assert names == sorted(names) and all(n == archive.MANIFEST or n.endswith(".npy") for n in names)
    assert {a.dtype.name for a in genuine.arrays.values()} == {"float32", "int32"}  # QAT step counters


def test_an_export_is_byte_deterministic(exported, tmp_path):
    path, digest = transfer.export("smoke", [MODEL], tmp_path, Cache(exported.source))
    assert digest == exported.digest and path.read_bytes() == exported.path.read_bytes()


def test_imported_weights_are_the_originals_bit_for_bit(exported, imported):
    root, done = imported
    assert entries(root) == sorted([f"{MODEL}-smoke-{exported.keys.float_key}",
                                    f"{MODEL}-smoke-qat-{exported.keys.qat_key}"]), done.stdout
    assert "imported into" in done.stdout and f"bundle {exported.digest[:12]} verified" in done.stdout
    original_float, original_qat = trained(exported.source)
    float_model, qat_model = trained(root)
    assert float_model.cached and qat_model.cached  # loaded from the imported entries, not trained
    assert_same_weights(float_model.model, original_float.model)
    assert_same_weights(qat_model.model, original_qat.model)
    meta = Cache(root).read_meta(root / "models" / f"{MODEL}-smoke-{exported.keys.float_key}")
    assert meta["weights_from"]["bundle"] == exported.digest
    assert Cache(root).weights_source("models", f"{MODEL}-smoke", exported.keys.float_key).startswith(
        f"bundle {exported.digest[:12]} (")


def test_re_exporting_imported_weights_gives_the_same_bundle(exported, imported, tmp_path):
    """An imported entry keeps its trainer's facts (accuracy, time, where trained), not the
    importer's: passing a bundle on changes nothing in it."""
    root, _ = imported
    path, digest = transfer.export("smoke", [MODEL], tmp_path, Cache(root))
    assert digest == exported.digest and path.read_bytes() == exported.path.read_bytes()


def test_bench_train_reuses_imported_weights_and_a_second_import_leaves_them(exported, imported):
    root, _ = imported
    done = cli("bench.train", "--tier", "smoke", "--models", MODEL, cache=root)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "reusing cached weights" in log and "reusing cached QAT weights" in log
    assert "epoch" not in log, log
    again = import_bundle(exported.path, exported.digest, Cache(root))
    assert all("already holds these weights; left alone" in line for line in again), again


def test_a_bench_case_on_imported_weights_matches_the_baseline_without_training(exported, imported, tmp_path):
    """A runner with the bundle benchmarks the team's weights: the verdicts against the testbed's
    baseline are those of the machine that trained them (identical where both share a testbed)."""
    root, _ = imported
    done = run_bench("--models", MODEL, "--modes", "float32,ptq_int8", "--backends", "litert",
                     "-m", "not latency", cache=root, reports=tmp_path / "reports")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert not re.search(r"\[train\].*epoch", log), log[-4000:]
    results = json.loads((tmp_path / "reports" / "smoke" / "results.json").read_text())
    assert results["models"][MODEL]["weights"].startswith(f"bundle {exported.digest[:12]} ")
    assert results["models"][MODEL]["cached"] is True
    baseline = ROOT / "baselines" / results["testbed"] / "smoke.json"
    verdicts = {case["id"]: case.get("baseline_verdict") for case in results["cases"]}
    if baseline.is_file():
        assert set(verdicts.values()) == {"identical"}, verdicts
    report = (tmp_path / "reports" / "smoke" / "REPORT.md").read_text()
    assert f"bundle {exported.digest[:12]}" in report


# ---------------------------------------------------------------------------------------------
# Refusals: each leaves the cache empty


def plant(exported: Exported, tmp_path: Path, edit) -> tuple[Path, str]:
    """A bundle made from the genuine one with ``edit(manifest, arrays)`` applied, every hash in it
    recomputed: only the digest from outside, or the checks against this checkout, can refuse it."""
    genuine = read_bundle(exported.path, exported.digest)
    manifest, arrays = copy.deepcopy(genuine.manifest), dict(genuine.arrays)
    edit(manifest, arrays)
    files = {}
    for stages in manifest["models"].values():
        for stage in STAGES:
            for record in stages[stage]["tensors"]:
                array = arrays[record["file"]]
                files[record["file"]] = archive.npy_bytes(array)
                record.update(sha256=hashlib.sha256(files[record["file"]]).hexdigest(),
                              dtype=array.dtype.name, shape=list(array.shape))
    path = tmp_path / "planted" / archive.bundle_name("smoke")
    return path, archive.write_bundle(path, manifest, files)


def tensors(manifest: dict, stage: str) -> list[dict]:
    return manifest["models"][MODEL][stage]["tensors"]


def refused(path: Path, digest: str, root: Path, message: str) -> str:
    with pytest.raises(BundleError, match=message) as caught:
        import_bundle(path, digest, Cache(root))
    assert entries(root) == [], "a refused bundle imported something"
    return str(caught.value)


def test_a_truncated_bundle_is_refused(exported, tmp_path):
    path = tmp_path / "truncated.tar"
    path.write_bytes(exported.path.read_bytes()[: exported.path.stat().st_size // 2])
    refused(path, exported.digest, tmp_path / "cache", "truncated, damaged or edited")


def test_a_bundle_with_one_byte_flipped_is_refused(exported, tmp_path):
    data = bytearray(exported.path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path = tmp_path / "flipped.tar"
    path.write_bytes(bytes(data))
    refused(path, exported.digest, tmp_path / "cache", "truncated, damaged or edited")


def test_a_wrong_digest_is_refused(exported, tmp_path):
    refused(exported.path, hashlib.sha256(b"another bundle").hexdigest(), tmp_path / "cache", "was expected")


def test_a_tensor_edited_with_its_manifest_entry_is_refused_by_the_digest(exported, tmp_path):
    def edit(manifest, arrays):
        file = tensors(manifest, "float")[0]["file"]
        arrays[file] = arrays[file] * np.float32(1.01)

    path, own = plant(exported, tmp_path, edit)
    assert read_bundle(path, own).manifest  # consistent in itself: the manifest's hashes pass
    refused(path, exported.digest, tmp_path / "cache", "was expected")


@pytest.mark.parametrize(("spoil", "message"), [
    ("shape", r"do not fit the registered cnn architecture .*#1 'bn1/gamma:0': shape \[16\] registered, "
              r"\[17\] in the bundle"),
    ("extra", r"23 tensors in the bundle\): #22 'extra/kernel:0': in the bundle, not in the architecture"),
    ("missing", r"cnn-smoke-qat: .*#62 'quant_logits/post_activation_max:0': in the architecture, not in "
                r"the bundle"),
    ("dtype", r"#2 'bn1/beta:0': dtype 'float32' registered, 'int32' in the bundle"),
])
def test_weights_that_do_not_fit_the_registered_architecture_are_refused(exported, tmp_path, spoil, message):
    """Planted bundles whose digest is right: the architecture check is what refuses them."""

    def edit(manifest, arrays):
        records = tensors(manifest, "float")
        if spoil == "shape":
            arrays[records[1]["file"]] = np.ones(17, np.float32)
        elif spoil == "extra":
            file = archive.tensor_file(MODEL, "float", len(records), "extra/kernel:0")
            records.append({"file": file, "name": "extra/kernel:0"})
            arrays[file] = np.zeros((3, 3), np.float32)
        elif spoil == "missing":
            tensors(manifest, "qat").pop()
        else:
            arrays[records[2]["file"]] = arrays[records[2]["file"]].astype(np.int32)

    path, digest = plant(exported, tmp_path, edit)
    text = refused(path, digest, tmp_path / "cache", message)
    assert "Nothing was imported" in text


@pytest.mark.parametrize(("spoil", "message"), [
    ("recipe", r"cnn-smoke: training recipe \(the model's ModelSpec.recipes, Tier.recipe_hash\): 0{16} in the bundle"),
    ("library", r"cnn-smoke: library tensorflow: 2\.0\.0 in the bundle, {version} here"),
    ("qat", r"cnn-smoke-qat: QAT recipe \(the model's ModelSpec.qat_recipes, Tier.qat_hash\): 0{16} in the bundle"),
    ("data", r"cnn-smoke: data set .*: 0{64} in the bundle"),
    ("key", r"cnn-smoke: the manifest says key 0{20} \(cnn-smoke\), but its components hash to"),
])
def test_a_bundle_for_other_inputs_is_refused_naming_what_differs(exported, tmp_path, spoil, message):
    def edit(manifest, arrays):
        stages = manifest["models"][MODEL]
        components = stages["float"]["components"]
        if spoil == "recipe":
            components["recipe"] = "0" * 16
        elif spoil == "library":
            components["versions"]["tensorflow"] = "2.0.0"
        elif spoil == "qat":
            stages["qat"]["components"]["qat"] = "0" * 16
        elif spoil == "data":
            components["data"] = "0" * 64
        else:
            stages["float"]["key"] = "0" * 20

    path, digest = plant(exported, tmp_path, edit)
    text = refused(path, digest, tmp_path / "cache",
                   message.replace("{version}", str(library_versions()["tensorflow"])))
    assert "nothing was imported" in text


def test_a_member_escaping_the_folder_is_refused(exported, tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    path = folder / "evil.tar"
    with tarfile.open(exported.path) as genuine, tarfile.open(path, "w") as tar:
        for info in genuine.getmembers():
            tar.addfile(info, genuine.extractfile(info))
        escape = tarfile.TarInfo("../escaped.npy")
        escape.size = 8
        tar.addfile(escape, io.BytesIO(b"\x93NUMPY\x01\x00"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    refused(path, digest, tmp_path / "cache", "member '../escaped.npy' has an unsafe name")
    assert not (tmp_path / "escaped.npy").exists()


def test_other_weights_under_the_same_key_are_kept_unless_replace(exported, tmp_path):
    """Keys do not name the testbed: weights trained here may sit under the bundle's keys. They are
    neither silently kept (the runner would benchmark other weights) nor silently replaced."""
    root = tmp_path / "cache"
    import_bundle(exported.path, exported.digest, Cache(root))

    def edit(manifest, arrays):
        file = tensors(manifest, "float")[0]["file"]
        arrays[file] = arrays[file] + np.float32(0.25)

    path, digest = plant(exported, tmp_path, edit)
    before = {p.name: p.read_bytes() for p in (root / "models").rglob("*") if p.is_file()}
    with pytest.raises(BundleError, match="already holds other weights under this key .*--replace"):
        import_bundle(path, digest, Cache(root))
    assert {p.name: p.read_bytes() for p in (root / "models").rglob("*") if p.is_file()} == before
    lines = import_bundle(path, digest, Cache(root), replace=True)
    assert lines[0].startswith(f"{MODEL}-smoke: replaced the weights") and "left alone" in lines[1]
    float_model, _ = trained(root)
    assert np.array_equal(checks.weights_of(float_model.model)[0],
                          read_bundle(path, digest).tensors(MODEL, "float")[0])


# ---------------------------------------------------------------------------------------------
# The command line's refusals


def test_the_command_line_refuses_without_a_traceback(exported, tmp_path):
    root = tmp_path / "cache"
    done = cli("bench.bundle", "import", str(exported.path), "--sha256", "0" * 64, cache=root)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"(?m)^error: .* was expected", done.stderr) and entries(root) == []
    done = cli("bench.bundle", "import", str(exported.path), cache=root)
    assert done.returncode == 2 and "one of the arguments --sha256 --digest-file is required" in done.stderr
    done = cli("bench.bundle", "export", "--tier", "smoke", "--models", MODEL, "--out", str(tmp_path / "out"),
               cache=root)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"run python -m bench.train --tier smoke --models {MODEL} first" in done.stderr
    assert not (tmp_path / "out").exists()
