"""The registries are open: a model, a mode and a backend of another package, through the pipeline.

The three modules beside this file register themselves the way a separate package would: a
``*.dist-info`` folder with an ``entry_points.txt`` on ``sys.path`` (what ``pip install`` writes)
names them under ``quantbench.models``, ``quantbench.modes`` and ``quantbench.backends``. Nothing
in this repository names them. The real bench then trains the toy model on real Fashion-MNIST
images (600), converts it, runs it on LiteRT, on the toy backend and on Keras, gates it against a
baseline it records, and renders it into results.json and REPORT.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.bench

ENTRY_POINTS = """\
[quantbench.models]
toy = toy_model

[quantbench.modes]
int8_per_tensor = toy_mode

[quantbench.backends]
tf_lite = toy_backend
keras_h5 = toy_h5_backend
"""
SELECTION = ["--models", "toy", "--modes", "float32,int8_per_tensor", "--backends", "keras,litert,tf_lite,keras_h5"]
TIMEOUT = 900


def _installed_plugin(site: Path) -> Path:
    """A dist-info folder declaring the toy entry points, as ``pip install`` would write it."""
    dist = site / "quantbench_toy_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: quantbench-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _bench(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # The plugin's folder and its metadata on the path, as an installed package would be.
    env["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), str(HERE), env.get("PYTHONPATH", "")])
    env["QUANTBENCH_CACHE"] = str(tmp / "cache")
    command = [sys.executable, "-m", "pytest", "bench/cases/test_cases.py", "-p", "no:cacheprovider", "-q",
               *SELECTION, "--reports-dir", str(tmp / "reports"), "--baselines-dir", str(tmp / "baselines"),
               *extra]
    return subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def plugin_runs(tmp_path_factory) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("plugin")
    _installed_plugin(tmp / "site")
    recorded = _bench(tmp, "--update-baselines")
    gated = _bench(tmp)
    return recorded, gated, tmp


def test_the_toy_plugin_runs_through_the_pipeline_and_its_gates(plugin_runs):
    recorded, gated, tmp = plugin_runs
    assert recorded.returncode == 0, recorded.stdout[-4000:] + recorded.stderr[-4000:]
    assert gated.returncode == 0, gated.stdout[-4000:] + gated.stderr[-4000:]
    results = json.loads((tmp / "reports" / "smoke" / "results.json").read_text())
    cases = {case["id"]: case for case in results["cases"]}
    assert set(cases) == {"toy-float32-keras", "toy-float32-litert", "toy-float32-tf_lite", "toy-float32-keras_h5",
                          "toy-int8_per_tensor-litert", "toy-int8_per_tensor-tf_lite"}
    assert all(case["status"] == "passed" for case in cases.values())
    # Judged against the baseline the first run recorded, image by image.
    assert {case["baseline_verdict"] for case in cases.values()} == {"identical"}
    # The toy backend runs LiteRT's very file: the same bytes, and the same answers here.
    assert cases["toy-int8_per_tensor-tf_lite"]["artifact_sha256"] == cases["toy-int8_per_tensor-litert"]["artifact_sha256"]
    [agreement] = [a for a in results["agreement"] if a["mode"] == "int8_per_tensor"]
    assert agreement["pairs"][0]["backends"] == ["litert", "tf_lite"]
    # The backend with a format of its own ran its own file, a real HDF5 file, judged like any.
    [h5_file] = (tmp / "cache").rglob("model.h5")
    assert h5_file.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert cases["toy-float32-keras_h5"]["size_bytes"] == h5_file.stat().st_size
    assert cases["toy-float32-keras_h5"]["artifact_sha256"] != cases["toy-float32-keras"]["artifact_sha256"]
    [float_agreement] = [a for a in results["agreement"] if a["mode"] == "float32"]
    assert {tuple(pair["backends"]) for pair in float_agreement["pairs"]} >= {("keras", "keras_h5")}
    assert all(pair["top1_agreement"] >= pair["floor"] for pair in float_agreement["pairs"])
    report = (tmp / "reports" / "smoke" / "REPORT.md").read_text()
    for name in ("toy", "int8_per_tensor", "tf_lite", "keras_h5"):
        assert name in report


def test_a_backend_with_its_own_format_is_one_file():
    """Nothing of the harness names the toy format or its backend: only its own module does."""
    mentions = [str(path.relative_to(ROOT)) for path in (ROOT / "bench").rglob("*.py")
                if "keras_h5" in path.read_text() or '"h5"' in path.read_text()]
    assert mentions == []


def test_a_tier_without_the_plugin_models_recipe_is_a_usage_error(plugin_runs, tmp_path):
    *_, tmp = plugin_runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), str(HERE)])
    run = subprocess.run([sys.executable, "-m", "pytest", "bench/cases/test_cases.py", "-p", "no:cacheprovider",
                          "--tier", "full", "--models", "toy", "--co", "-q"],
                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "tier 'full' has no training recipe for model 'toy'" in run.stderr
