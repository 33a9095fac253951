"""The project a run belongs to (bench.project), and the plugin as another project meets it.

Reports, baselines and the lock are found below the root of the project that runs pytest, not
quantbench's checkout; quantbench's own checkout is such a project, so there nothing moves. The
subprocess checks run ``pytest --collect-only`` in a project folder made in ``tmp_path``
(collection imports no TensorFlow: a few seconds each).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bench import plugin, project

ROOT = Path(__file__).resolve().parents[2]
# The other project's pytest settings: strict, as a careful project's are, listing no markers.
STRICT_PROJECT = '[tool.pytest.ini_options]\naddopts = ["--strict-markers", "--strict-config"]\n'
SELECTION = ["--models", "cnn", "--modes", "float32", "--backends", "litert"]


def other_project(folder: Path, ini: str = STRICT_PROJECT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(ini)
    return folder


def collect(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_the_root_is_pytests_rootdir_unless_the_ini_names_another(tmp_path):
    ini = tmp_path / "repo" / "pyproject.toml"
    assert project.root(tmp_path / "repo", ini, "") == tmp_path / "repo"
    assert project.root(tmp_path / "repo", ini, "bench-data") == tmp_path / "repo" / "bench-data"
    assert project.root(tmp_path / "repo", ini, "../shared") == tmp_path / "shared"
    # No ini file: relative to the rootdir pytest chose.
    assert project.root(tmp_path / "repo", None, "sub") == tmp_path / "repo" / "sub"


def test_reports_and_lock_sit_below_the_root(tmp_path):
    assert project.published_reports(tmp_path) == tmp_path / "reports"
    assert project.local_reports(tmp_path) == tmp_path / "reports" / "local"
    assert project.lock_file(tmp_path) == tmp_path / "requirements.lock"


def test_the_plugin_takes_the_root_from_pytests_config(tmp_path):
    config = types.SimpleNamespace(rootpath=tmp_path, inipath=tmp_path / "tox.ini",
                                   getini=lambda name: {project.ROOT_INI: "bench"}[name])
    assert plugin.project_root(config) == tmp_path / "bench"


def test_in_this_checkout_everything_stays_where_it_was():
    config = types.SimpleNamespace(rootpath=ROOT, inipath=ROOT / "pyproject.toml", getini=lambda name: "")
    root = plugin.project_root(config)
    assert root == ROOT
    assert project.local_reports(root) == ROOT / "reports" / "local"
    assert project.lock_file(root) == ROOT / "requirements.lock"


def test_a_project_without_a_lock_records_none(tmp_path):
    from bench import environment

    assert environment.lock_sha256(project.lock_file(tmp_path)) is None
    (tmp_path / "requirements.lock").write_text("numpy==2.4.6\n")
    environment.lock_sha256.cache_clear()  # the same path now holds a lock
    assert environment.lock_sha256(project.lock_file(tmp_path)) == hashlib.sha256(b"numpy==2.4.6\n").hexdigest()


def test_another_project_collects_the_cases_from_the_package_with_strict_markers(tmp_path):
    folder = other_project(tmp_path / "elsewhere")
    (folder / "test_own.py").write_text("import pytest\n\n\n@pytest.mark.bench\n@pytest.mark.latency\n"
                                        "def test_own():\n    pass\n")
    done = collect(folder, "--pyargs", "bench.cases", "test_own.py", *SELECTION)
    assert done.returncode == 0, done.stdout + done.stderr
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert "test_cases.py::test_case[cnn-float32-litert]" in collected
    assert "test_own.py::test_own" in collected


def test_a_root_that_is_no_folder_is_a_usage_error_naming_it(tmp_path):
    folder = other_project(tmp_path / "repo", STRICT_PROJECT + 'quantbench_root = "no-such-folder"\n')
    done = collect(folder, "--pyargs", "bench.cases", *SELECTION)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert f"{folder / 'no-such-folder'} is not a folder" in done.stderr


def test_the_update_command_is_the_projects_own(tmp_path):
    # quantbench's checkout has the nox session; another project (no noxfile, or one without the
    # session) is told the pytest command, which works anywhere.
    assert project.update_command(ROOT, "smoke", ["cnn"]) == "nox -s update_baselines -- --tier smoke --models cnn"
    pytest_form = "pytest --pyargs bench.cases --tier full --update-baselines"
    assert project.update_command(tmp_path, "full") == pytest_form
    (tmp_path / "noxfile.py").write_text("import nox\n\n@nox.session\ndef tests(session):\n    pass\n")
    assert project.update_command(tmp_path, "full") == pytest_form
    assert project.update_command(None, "full") == pytest_form
