"""Entry points: `nox -s tests`, `nox -s bench`, `nox -s update_baselines`, `nox -s publish`,
`nox -s ab -- REF`, `nox -s report`, `nox -s lint`, `nox -s lock`.

Everything after `--` goes to pytest (or to the report tool), e.g. `nox -s bench -- --tier full`.
`tests` and `bench` write their reports to reports/local/<tier>/, which git ignores, so a local run
leaves the checkout clean; only `update_baselines` and `publish` rewrite the committed files.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests"]
# TensorFlow is large: keep each session's virtualenv between runs (pip then only checks it).
nox.options.reuse_venv = "yes"
# uv where it is installed (seconds to install the locked stack), else virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"
STRICT = ["--strict-markers", "--strict-config"]
# Every dependency, transitive ones included, at an exact version with its hashes: the
# environment every session, CI run and baseline uses. `nox -s lock` refreshes it.
LOCK = "requirements.lock"
# The platform the lock resolves for: the project's machines (Linux x86_64, CPython 3.11).
LOCK_TARGET = ["--python-version", PYTHON, "--python-platform", "x86_64-manylinux_2_28"]
UV = "uv==0.13.9"


def _install(session: nox.Session) -> None:
    session.install("--require-hashes", "-r", LOCK)
    # The package itself, without resolving anything more: setuptools comes from the lock.
    session.install("--no-deps", "--no-build-isolation", "-e", ".")
    _ensure_dataset(session)


def _ensure_dataset(session: nox.Session) -> None:
    """Makes sure the real Fashion-MNIST files are there; on Debian as root, installs them.

    The harness looks in $FASHION_MNIST_DIR, /usr/share/datasets/fashion-mnist and the Keras
    cache, and downloads through Keras where the network allows; this step only adds the Debian
    package where none of that is possible (machines that reach package registries only).
    """
    status = session.run("python", "-m", "bench.data", "--download", success_codes=[0, 1], silent=True)
    if "verified" not in str(status):
        if shutil.which("apt-get") and os.geteuid() == 0:
            session.run("apt-get", "update", "-qq", external=True)
            session.run("apt-get", "install", "-y", "-qq", "dataset-fashion-mnist", external=True)
        session.run("python", "-m", "bench.data", "--download")


def _tier(posargs: list[str]) -> str:
    return posargs[posargs.index("--tier") + 1] if "--tier" in posargs else "smoke"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit and property tests, then the smoke bench (no latency cases): what CI runs."""
    _install(session)
    session.run("pytest", *STRICT, "-m", "not latency", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """The benchmark (default tier smoke; `-- --tier full` for the full table)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    # Every run's timings are kept in pytest-benchmark's own JSON (.benchmarks/), so a later
    # `nox -s bench -- --benchmark-compare` compares against the last stored run.
    session.run("pytest", *STRICT, "--benchmark-autosave", "tests/bench", *args)


@nox.session(python=PYTHON, default=False)
def update_baselines(session: nox.Session) -> None:
    """Reruns the bench (latency included), rewrites its cases in baselines/<testbed>/<tier>.json and
    the committed reports/<tier>/ (`-- --accept CASE=REASON` takes a regressed or failed case)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    # Latency too: the bench gates each int8 speedup against the one recorded here. A case run
    # with `-m "not latency"` keeps its recorded timings where the CPU's ISA flags are the same.
    # The committed reports go with the baselines they were judged against.
    session.run("pytest", *STRICT, "--benchmark-autosave", "tests/bench", "--update-baselines",
                "--publish-reports", *args)


@nox.session(python=PYTHON, default=False)
def publish(session: nox.Session) -> None:
    """Reruns the bench and rewrites the committed reports/<tier>/ (the baselines stay as they are)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    session.run("pytest", *STRICT, "--benchmark-autosave", "tests/bench", "--publish-reports", *args)


@nox.session(python=PYTHON, default=False)
def ab(session: nox.Session) -> None:
    """Judges the working tree against git REF on this machine: `-- REF [pytest args]` (bench.ab)."""
    if not session.posargs:
        session.error("name the commit to judge against: nox -s ab -- REF [--tier full] [--models cnn]")
    _install(session)
    session.run("python", "-m", "bench.ab", *session.posargs)


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Re-renders a report (`-- render FILE`, default the local smoke run's) or compares two runs
    (`-- --compare A B`)."""
    _install(session)
    args = list(session.posargs)
    if args and args[0] == "--compare":
        args = ["compare", *args[1:]]
    session.run("python", "-m", "bench.report", *(args or ["render", "reports/local/smoke/results.json"]))


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Re-resolves requirements.lock from pyproject.toml (`-- --upgrade` takes newer releases)."""
    session.install(UV)
    # Without --upgrade, uv keeps every version already in the lock that still fits pyproject.toml.
    session.run("uv", "pip", "compile", "pyproject.toml", "--extra", "test", *LOCK_TARGET,
                "--generate-hashes", "--quiet", "-o", LOCK, *session.posargs)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """Ruff over the package, tests and entry points."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", "bench", "tests", "conftest.py", "noxfile.py")
