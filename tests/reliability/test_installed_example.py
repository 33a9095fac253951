"""quantbench installed into another project, as a user gets it: wheel, fresh virtualenv, example.

The test builds quantbench's wheel from this checkout's sources (setuptools' PEP 517 hook, no
network, in a copy so nothing is written here), makes a virtualenv outside the checkout with
uv, installs the locked wheels (``--require-hashes``), the quantbench wheel and the example
project ``examples/fashion-toy`` (both ``--no-deps``), and runs the example's bench from a copy of
the example's folder: plain ``pytest`` there, whose ini runs quantbench's cases from the
installed package (``--pyargs``, ``testpaths = ["bench.cases"]``) on the example's own model, on
the real Fashion-MNIST images, with a private model cache (its tiny model trains in seconds).

It checks what a project that uses quantbench relies on:

* the cases ran from the installed wheel, not from this checkout (JUnit's ``file`` of each test);
* results.json and REPORT.md were written below the example's folder, and the verdicts were
  judged against the example's own baselines: ``identical`` on every case where the example
  holds baselines of this machine's testbed (elsewhere they are shown, not gated, as in any
  project: the run must still pass);
* the fingerprint's lock is the example's: it has no requirements.lock, so ``lock_sha256`` is None.

Measured on a 2-core AMD EPYC Zen 4 (avx512-vnni) with a warm uv cache: 28 s in all (wheel,
virtualenv and installs about 4 s; the example's run, training its model, about 23 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from .conftest import ROOT, SUBPROCESS_TIMEOUT

pytestmark = pytest.mark.bench

EXAMPLE = ROOT / "examples" / "fashion-toy"
# What the wheel is built from (pyproject.toml names README.md as the long description).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "bench")
LOCK = ROOT / "requirements.lock"
TIER = "smoke"
# The lock's install (TensorFlow and the runtimes) is linked from uv's cache in seconds; a cold
# cache downloads about 1 GB.
INSTALL_TIMEOUT = 900
# Variables that would let the run see this checkout or this test's pytest instead of the
# fresh environment: the import path, the active virtualenv, pytest's own (PYTEST_ADDOPTS, xdist).
LEAKS = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in LEAKS}
    env.update(extra)
    return env


def checked(command: list, cwd: Path, timeout: int, env: dict[str, str] | None = None) -> str:
    """Runs ``command``; fails the test with its output when it fails. Returns its stdout."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env or clean_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed ({done.returncode}):\n" \
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def uv_command() -> list[str]:
    """uv, as nox and CI install it; skips where there is none."""
    if shutil.which("uv"):
        return [shutil.which("uv")]
    if subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.skip("needs uv to build the fresh virtualenv (`python -m pip install uv`; nox and CI install it)")


def build_wheel(tmp: Path) -> Path:
    """quantbench's wheel, built from a copy of its sources by setuptools' own PEP 517 hook:
    no build isolation, so no network, and no build/ or egg-info written into the checkout."""
    source, dist = tmp / "source", tmp / "dist"
    source.mkdir()
    for name in WHEEL_SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    built = checked([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                     "print(build_meta.build_wheel(sys.argv[1]))", dist], source, SUBPROCESS_TIMEOUT)
    return dist / built.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh virtualenv holding the lock, quantbench's wheel and the example; the example's copy."""
    uv = uv_command()
    tmp = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    checked([*uv, "venv", "--quiet", "--python", sys.executable, venv], tmp, SUBPROCESS_TIMEOUT)
    python = venv / "bin" / "python"
    checked([*uv, "pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", LOCK], tmp,
            INSTALL_TIMEOUT)
    checked([*uv, "pip", "install", "--quiet", "--python", python, "--no-deps", wheel], tmp, SUBPROCESS_TIMEOUT)
    example = tmp / "fashion-toy"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__", "reports", "build",
                                                                      "*.egg-info"))
    checked([*uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "--no-build-isolation", example],
            tmp, SUBPROCESS_TIMEOUT)
    return python, example


@pytest.fixture(scope="module")
def example_run(installed, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, Path, Path]:
    """The example's bench (no latency cases), run in the example's folder as its users run it."""
    python, example = installed
    tmp = tmp_path_factory.mktemp("example-run")
    junit = tmp / "junit.xml"
    done = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-m", "not latency", "--tier", TIER,
         "--junitxml", str(junit), "-o", "junit_family=xunit1"],
        cwd=example, env=clean_env(QUANTBENCH_CACHE=str(tmp / "cache")), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    return done, python, example, junit


def test_the_example_runs_quantbenchs_cases_from_the_installed_wheel(example_run):
    done, python, example, junit = example_run
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    site = Path(checked([python, "-c", "import bench; print(bench.__file__)"], example, 60).strip()).parent
    assert ROOT not in site.parents and site.parent.name == "site-packages", site
    files = {(example / case.get("file")).resolve()
             for case in ElementTree.parse(junit).getroot().iter("testcase")}
    assert files and all(path.parent == site / "cases" for path in files), sorted(files)


def test_its_reports_and_verdicts_are_the_examples_own(example_run):
    done, _, example, _ = example_run
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    reports = example / "reports" / "local" / TIER
    results = json.loads((reports / "results.json").read_text())
    assert (reports / "REPORT.md").is_file()
    assert f"quantbench results: {reports / 'results.json'}" in done.stdout
    # The lock is the project's: the example has none.
    assert results["environment"]["lock_sha256"] is None
    baseline = results["baseline"]
    assert Path(baseline["path"]).parent.parent == example / "baselines", baseline
    cases = {case["id"]: case for case in results["cases"]}
    assert cases and all(case["status"] == "passed" for case in cases.values()), cases
    if not baseline["own"]:
        pytest.skip(f"the example has no baselines of testbed {results['testbed']}: {baseline['note']}")
    recorded = json.loads(Path(baseline["path"]).read_text())["cases"]
    assert set(cases) == set(recorded)
    assert {cid: case["baseline_verdict"] for cid, case in cases.items()} == dict.fromkeys(cases, "identical")
