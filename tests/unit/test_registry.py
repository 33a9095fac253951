"""Built-in entries are found by module: a new model, mode or backend is one file, listed nowhere."""

from __future__ import annotations

from bench.registry import builtin_modules


def test_a_new_builtin_is_one_file_found_without_being_listed(tmp_path, monkeypatch):
    package = tmp_path / "somepkg"
    package.mkdir()
    for name in ("__init__", "_helper", "zeta", "alpha", "mid"):
        (package / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Listed ones first, in report order; a new file after them, by name; helpers never.
    assert builtin_modules("somepkg", ("zeta", "mid", "gone")) == ("somepkg.zeta", "somepkg.mid", "somepkg.alpha")


def test_the_builtin_registries_find_their_files():
    from bench.backends import BACKENDS
    from bench.models import MODELS
    from bench.modes import MODES

    assert MODELS.names()[:3] == ["cnn", "mobilenet", "vgg16"]
    assert MODES.names()[:2] == ["float32", "bf16"] and "bench.modes._onnx" not in MODES.builtins
    assert BACKENDS.names()[:4] == ["keras", "litert", "onnxruntime", "openvino"]
