"""Tests of bench.cache and bench.atomic on real files, the cache keys' coverage of the code on
their path, and the LiteRT backend's pure helpers.

The lock test runs two real processes. The key tests plant one-token changes in copies of the
real modules (TensorFlow is imported for them, a few seconds; nothing is trained or converted).
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from bench import atomic
from bench.backends import EVAL_BATCH, predict_batched
from bench.backends.litert import dequantize_output, quantize_input
from bench.cache import META, Cache, cache_root, code_hash, file_sha256, key_of

# ---------------------------------------------------------------------------------------------
# Cache


class Builder:
    """A build function that writes two files and counts its calls."""

    def __init__(self, payload: bytes = b"weights" * 100) -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, folder):
        self.calls += 1
        (folder / "model.bin").write_bytes(self.payload)
        (folder / "history.json").write_text('{"loss": [1.0, 0.5]}')
        return {"epochs": 3}


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_get_or_build_builds_once_then_reads_the_cache(tmp_path):
    cache, build = Cache(tmp_path), Builder()
    entry, cached = cache.get_or_build("models", "cnn-smoke", "k1", build)
    assert (cached, build.calls) == (False, 1)
    assert entry == tmp_path / "models" / "cnn-smoke-k1"
    assert (entry / "model.bin").read_bytes() == build.payload
    meta = cache.read_meta(entry)
    assert meta["key"] == "k1" and meta["label"] == "cnn-smoke" and meta["epochs"] == 3
    assert meta["files"] == {"history.json": file_sha256(entry / "history.json"),
                             "model.bin": file_sha256(entry / "model.bin")}
    assert cache.verify(entry) is None

    again, cached = cache.get_or_build("models", "cnn-smoke", "k1", build)
    assert (again, cached, build.calls) == (entry, True, 1)
    # No staging folders left beside the entry; only the entry and its lock file.
    assert listing(tmp_path / "models") == ["cnn-smoke-k1", "cnn-smoke-k1.lock"]


def test_another_key_is_another_entry(tmp_path):
    cache, build = Cache(tmp_path), Builder()
    a, _ = cache.get_or_build("models", "cnn", "k1", build)
    b, cached = cache.get_or_build("models", "cnn", "k2", build)
    assert a != b and not cached and build.calls == 2


def test_corrupted_file_is_detected_discarded_and_rebuilt(tmp_path, capfd):
    cache, build = Cache(tmp_path), Builder()
    entry, _ = cache.get_or_build("artifacts", "cnn-ptq_int8", "k", build)
    damaged = bytearray((entry / "model.bin").read_bytes())
    damaged[10] ^= 0xFF
    (entry / "model.bin").write_bytes(bytes(damaged))

    problem = cache.verify(entry)
    assert problem is not None and "model.bin" in problem and "sha256" in problem

    again, cached = cache.get_or_build("artifacts", "cnn-ptq_int8", "k", build)
    assert (again, cached, build.calls) == (entry, False, 2)
    assert (entry / "model.bin").read_bytes() == build.payload
    assert cache.verify(entry) is None
    assert "discarding corrupt entry" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda e: (e / "model.bin").unlink(), "model.bin is missing"),
        (lambda e: (e / META).unlink(), "meta.json is missing"),
        (lambda e: (e / META).write_text("{not json"), "meta.json is unreadable"),
        (lambda e: (e / META).write_text('{"key": "k"}'), "meta.json is unreadable"),
    ],
    ids=["file-missing", "meta-missing", "meta-not-json", "meta-without-files"],
)
def test_verify_reports_each_kind_of_damage_and_rebuilds(tmp_path, damage, expected):
    cache, build = Cache(tmp_path), Builder()
    entry, _ = cache.get_or_build("models", "cnn", "k", build)
    damage(entry)
    assert expected in cache.verify(entry)
    _, cached = cache.get_or_build("models", "cnn", "k", build)
    assert not cached and build.calls == 2 and cache.verify(entry) is None


@pytest.mark.parametrize("error", [RuntimeError("training diverged"), KeyboardInterrupt()],
                         ids=["RuntimeError", "KeyboardInterrupt"])
def test_failed_build_leaves_no_entry_and_no_staging(tmp_path, error):
    cache = Cache(tmp_path)

    def build(folder):
        (folder / "model.bin").write_bytes(b"half written")
        raise error

    with pytest.raises(type(error)):
        cache.get_or_build("models", "cnn", "k", build)
    assert listing(tmp_path / "models") == ["cnn-k.lock"]
    # The lock was released: a later build goes through.
    good = Builder()
    _, cached = cache.get_or_build("models", "cnn", "k", good)
    assert not cached and good.calls == 1


def test_cache_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_CACHE", str(tmp_path / "qb"))
    assert cache_root() == tmp_path / "qb"
    assert Cache().root == tmp_path / "qb"
    monkeypatch.delenv("QUANTBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "quantbench"


def test_key_of_is_stable_and_order_independent():
    assert key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    assert key_of({"a": 1}) != key_of({"a": 2})
    assert len(key_of({})) == 20 and int(key_of({}), 16) >= 0


# ---------------------------------------------------------------------------------------------
# Cache keys: every source on an entry's path, blind to comments and docstrings


def _last_constant(tree: ast.AST) -> ast.Constant:
    """The last literal (a number, string, None, True or False) of ``tree`` that is not a docstring."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(getattr(node, "body", None), list) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in docstrings
             and type(node.value) in (int, float, str, bool, type(None))]
    return max(found, key=lambda node: (node.lineno, node.col_offset))


def one_token_changed(source: str, within: str | None = None) -> str:
    """``source`` with its last literal (of the definition ``within``, "Class.member", if given)
    changed: one token, e.g. ``2`` -> ``3`` or ``None`` -> ``0``."""
    tree = ast.parse(source)
    for part in (within.split(".") if within else ()):
        tree = next(node for node in tree.body if getattr(node, "name", None) == part)
    node = _last_constant(tree)
    value = node.value
    new = repr(not value if isinstance(value, bool) else 0 if value is None
               else value + "x" if isinstance(value, str) else value + 1)
    lines = source.splitlines(keepends=True)
    line = lines[node.lineno - 1]
    # col_offset counts UTF-8 bytes.
    raw = line.encode()
    lines[node.lineno - 1] = (raw[:node.col_offset] + new.encode() + raw[node.end_col_offset:]).decode()
    assert node.lineno == node.end_lineno, "a one-line literal is changed"
    return "".join(lines)


def comments_changed(source: str) -> str:
    """``source`` with a comment added and its module docstring reworded: no code changed."""
    assert source.startswith('"""'), "the modules on a key's path open with a docstring"
    return '"""Reworded. ' + source[3:].replace("\n", "  # a comment\n", 1) + "# the end\n"


def copy_of(module: types.ModuleType, source: str, folder: Path) -> types.ModuleType:
    """A stand-in for ``module`` (same attributes) whose code is ``source``, in a file of its own."""
    path = folder / f"{module.__name__}.py"
    path.write_text(source)
    copy = types.ModuleType(module.__name__)
    copy.__dict__.update(vars(module))
    copy.__file__ = str(path)
    return copy


def source_of(name: str) -> str:
    return Path(sys.modules[name].__file__).read_text()


@pytest.fixture
def keys(monkeypatch):
    """The float, QAT and artifact keys of the smoke cnn as the modules in sys.modules give them
    (the architecture's hash is fixed: building the Keras model is not what is tested here)."""
    from bench import build, train
    from bench.models import MODELS
    from bench.tiers import SMOKE

    monkeypatch.setattr(train, "architecture_hash", lambda spec, seed: "architecture")

    def keys() -> dict[str, str]:
        float_key = train.float_key(MODELS.get("cnn"), SMOKE, "data-sha256")
        builder = build.Builder(SMOKE)
        return {
            "float": float_key,
            "qat": train.qat_key(float_key, SMOKE, "cnn"),
            **{f"{mode}-{backend}": builder.artifact_key("cnn", mode, backend, "fixed-float-key")
               for mode, backend in (("float32", "litert"), ("ptq_int8", "litert"),
                                     ("float32", "onnxruntime"), ("ptq_int8", "onnxruntime"))},
        }

    return keys


def plant(monkeypatch, tmp_path, name: str, source: str) -> None:
    """Puts a copy of module ``name`` with ``source`` in its place, where the keys look it up."""
    copy = copy_of(sys.modules[name], source, tmp_path)
    monkeypatch.setitem(sys.modules, name, copy)
    if name == "bench.modes._tflite":  # a helper is found through the mode module that imports it
        monkeypatch.setattr(sys.modules["bench.modes.ptq_int8"], "_tflite", copy)


TRAINED = ("float", "qat")
ARTIFACTS = ("float32-litert", "ptq_int8-litert", "float32-onnxruntime", "ptq_int8-onnxruntime")
ALL = TRAINED + ARTIFACTS


# The artifact keys are taken with a fixed float key: a change on the training path reaches them
# through the float key in a real run; here only the conversion path's own coverage shows.
@pytest.mark.parametrize(("name", "within", "changed"), [
    ("bench", None, TRAINED),
    ("bench.train", None, TRAINED),
    ("bench.data", None, ALL),
    ("bench.tfsetup", None, TRAINED),
    # The builder's members that hand training its data retrain; the rest only reconverts.
    ("bench.build", "Builder.splits", ALL),
    ("bench.build", "Builder.inputs", ARTIFACTS),
    ("bench.modes", None, ARTIFACTS),
    ("bench.modes.ptq_int8", None, ("ptq_int8-litert", "ptq_int8-onnxruntime")),
    ("bench.modes._tflite", None, ("ptq_int8-litert",)),
    ("bench.backends.litert", None, ("float32-litert", "ptq_int8-litert")),
    # ORT's int8 file quantizes the float ONNX file: how that is made is on its path.
    ("bench.modes.float32", None, ("float32-litert", "float32-onnxruntime", "ptq_int8-onnxruntime")),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_one_token_change_changes_exactly_the_keys_on_its_path(keys, monkeypatch, tmp_path, name,
                                                                 within, changed):
    before = keys()
    plant(monkeypatch, tmp_path, name, one_token_changed(source_of(name), within))
    after = keys()
    assert sorted(k for k in before if before[k] != after[k]) == sorted(changed)


def test_the_builder_member_that_prepares_training_inputs_is_on_the_training_path(keys, monkeypatch, tmp_path):
    # Builder.model_inputs holds no literal for one_token_changed: its one call is changed instead.
    source, call = source_of("bench.build"), "data_mod.ModelInputs(self.splits, shape)"
    assert source.count(call) == 1
    before = keys()
    plant(monkeypatch, tmp_path, "bench.build", source.replace(call, "data_mod.ModelInputs(self.splits, shape[:3])"))
    after = keys()
    assert sorted(k for k in before if before[k] != after[k]) == sorted(ALL)


@pytest.mark.parametrize("name", ["bench.train", "bench.data", "bench.build", "bench.modes.ptq_int8",
                                  "bench.backends.litert"])
def test_comments_and_docstrings_change_no_key(keys, monkeypatch, tmp_path, name):
    before = keys()
    plant(monkeypatch, tmp_path, name, comments_changed(source_of(name)))
    assert keys() == before


def test_code_hash_of_definitions_names_what_it_covers(tmp_path):
    source = '"""Doc."""\n\nclass A:\n    @property\n    def p(self):\n        return 1\n\n    def q(self):\n        return 2\n'
    module = copy_of(types.ModuleType("planted"), source, tmp_path)
    only_p = code_hash(module, ["A.p"])
    assert only_p != code_hash(module) and only_p != code_hash(module, ["A.q"])
    changed_q = copy_of(module, source.replace("return 2", "return 3"), tmp_path / "..")
    assert code_hash(changed_q, ["A.p"]) == only_p and code_hash(changed_q, ["A.q"]) != code_hash(module, ["A.q"])
    with pytest.raises(KeyError, match="A.r is not defined in planted"):
        code_hash(module, ["A.r"])


# ---------------------------------------------------------------------------------------------
# atomic


def test_write_json_leaves_no_temp_files_and_is_world_readable(tmp_path):
    target = tmp_path / "sub" / "results.json"
    old_umask = os.umask(0o077)
    try:
        atomic.write_json(target, {"b": 1, "a": [1, 2]})
        atomic.write_json(target, {"b": 2, "a": [1, 2]})
    finally:
        os.umask(old_umask)
    assert listing(target.parent) == ["results.json"]
    assert target.stat().st_mode & 0o777 == 0o644
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 2\n}\n'


def test_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    target = tmp_path / "report.md"
    atomic.write_text(target, "old")
    with pytest.raises(TypeError):
        atomic.write_bytes(target, "not bytes")  # the write itself fails, after the temp file exists
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["report.md"]


def test_staging_dir_replaces_on_success_and_vanishes_on_failure(tmp_path):
    final = tmp_path / "entry"
    with atomic.staging_dir(final) as staging:
        (staging / "a").write_text("1")
        assert not final.exists()
    assert listing(final) == ["a"]
    with atomic.staging_dir(final) as staging:
        (staging / "b").write_text("2")
    assert listing(final) == ["b"]
    with pytest.raises(KeyboardInterrupt), atomic.staging_dir(tmp_path / "other") as staging:
        (staging / "c").write_text("3")
        raise KeyboardInterrupt
    assert listing(tmp_path) == ["entry"]


HOLD_S = 0.3


def _hold_lock(lock_path: str, log_path: str, name: str) -> None:
    with atomic.file_lock(lock_path):
        start = time.monotonic()
        time.sleep(HOLD_S)
        end = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"{name} {start!r} {end!r}\n")


def test_file_lock_serializes_two_processes(tmp_path):
    lock, log = tmp_path / "entry.lock", tmp_path / "log.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hold_lock, args=(str(lock), str(log), name)) for name in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0
    spans = sorted((float(s), float(e)) for _, s, e in (line.split() for line in log.read_text().splitlines()))
    assert len(spans) == 2
    (first_start, first_end), (second_start, second_end) = spans
    assert first_end - first_start >= HOLD_S and second_end - second_start >= HOLD_S
    assert second_start >= first_end  # the second holder waited for the first to let go


# ---------------------------------------------------------------------------------------------
# LiteRT helpers and batching

INT8 = {"dtype": np.int8, "quantization": (0.5, -3)}


def test_quantize_input_known_values():
    x = np.array([0.0, 1.0, 0.25, 0.76, -1.0, 100.0, -100.0], np.float32)
    q = quantize_input(x, INT8)
    assert q.dtype == np.int8
    # round(x / 0.5) - 3, clipped to int8: 0.25/0.5 = 0.5 rounds to even (0).
    assert q.tolist() == [-3, -1, -3, -1, -5, 127, -128]


def test_int8_round_trip_within_half_a_step():
    x = np.linspace(-60.0, 60.0, 481, dtype=np.float32)
    back = dequantize_output(quantize_input(x, INT8), INT8)
    assert back.dtype == np.float32
    assert np.max(np.abs(back - x)) <= 0.25 + 1e-6
    exact = np.array([-3.0, 0.0, 2.5], np.float32)  # multiples of the scale come back exactly
    np.testing.assert_array_equal(dequantize_output(quantize_input(exact, INT8), INT8), exact)


def test_dequantize_output_known_values():
    assert dequantize_output(np.array([-3, 7, 127], np.int8), INT8).tolist() == [0.0, 5.0, 65.0]


def test_float_tensors_pass_through():
    x = np.array([[0.1, -2.5]], np.float64)
    f32 = {"dtype": np.float32, "quantization": (0.0, 0)}
    q = quantize_input(x, f32)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, x.astype(np.float32))
    out = dequantize_output(np.array([1.5, -3.25], np.float16), {"dtype": np.float16, "quantization": (0.0, 0)})
    assert out.dtype == np.float32 and out.tolist() == [1.5, -3.25]


class FixedBatchModel:
    """A numpy 'model' that insists on one batch size, as a resized interpreter would."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.sizes.append(len(images))
        assert len(images) == self.sizes[0], f"batch of {len(images)} after {self.sizes[0]}"
        flat = images.reshape(len(images), -1)
        return np.stack([flat.sum(axis=1), flat[:, 0]], axis=1).astype(np.float64)


@pytest.mark.parametrize(("n", "batch", "calls"), [(600, 256, 3), (512, 256, 2), (257, 256, 2),
                                                   (10, 4, 3), (3, 4, 1), (4, 4, 1)])
def test_predict_batched_pads_and_returns_exactly_n_rows(n, batch, calls):
    rng = np.random.default_rng(n)
    images = rng.random((n, 6, 6, 1), dtype=np.float32) + 0.1  # never zero, so padding rows differ
    model = FixedBatchModel()
    out = predict_batched(model, images, batch=batch)
    assert out.shape == (n, 2) and out.dtype == np.float32
    assert len(model.sizes) == calls
    np.testing.assert_allclose(out[:, 0], images.reshape(n, -1).sum(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(out[:, 1], images[:, 0, 0, 0])


def test_predict_batched_default_batch():
    model = FixedBatchModel()
    out = predict_batched(model, np.ones((EVAL_BATCH + 1, 2, 2, 1), np.float32))
    assert model.sizes == [EVAL_BATCH, EVAL_BATCH] and out.shape == (EVAL_BATCH + 1, 2)


def test_a_models_architecture_key_covers_its_code_not_its_recipes(tmp_path, monkeypatch):
    """Editing one tier's recipe in a model's file re-keys that tier only (Tier.recipe_hash);
    editing its code re-keys every tier."""
    import importlib

    from bench import train
    from bench.cache import definitions_of

    versions = {"base": ("{'full': 30}", 1), "recipe_edited": ("{'full': 40}", 1), "code_edited": ("{'full': 30}", 2)}
    monkeypatch.syspath_prepend(str(tmp_path))
    hashes = {}
    for name, (recipes, value) in versions.items():
        (tmp_path / f"model_{name}.py").write_text(f"RECIPES = {recipes}\n\n\ndef build():\n    return {value}\n")
        module = importlib.import_module(f"model_{name}")
        assert definitions_of(module) == ("build",)
        hashes[name] = code_hash(module, definitions_of(module))
    assert hashes["recipe_edited"] == hashes["base"] != hashes["code_edited"]
    assert "definitions_of" in train.architecture_hash.__code__.co_names
