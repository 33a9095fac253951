"""The same-machine A/B gate (``python -m bench.ab``) end to end, on a clone of this repository.

A clone of HEAD gets one commit per test on a branch of its own: a slip planted in a mode file,
a slip planted in ``bench/build.py`` (both scale the calibration images by 0.78 before LiteRT's
conversion: about 1 pp lost on smoke ``cnn-ptq_int8-litert``), and a comment-only change. The gate
then runs as a subprocess in the clone, judging the branch against the clone's HEAD: REF's bench
and the branch's bench each run pytest on the smoke cnn (float32 and ptq_int8 on LiteRT), so this
is also the end-to-end test of a planted slip through pytest (issue 19, item 4.6): the branch's
pytest run fails the planted case and its results.json says ``regressed``.

Both sides share one private cache, seeded with copies of the user's trained smoke cnn where
there is one (else the first run trains it, about a minute): only the cases a commit changes are
rebuilt. Nothing here touches the repository's reports/, baselines/ or the user's cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cache import cache_root

from .conftest import ROOT, bench_env

pytestmark = pytest.mark.bench

CASE = "cnn-ptq_int8-litert"
SELECTION = ["--tests", "bench/cases/test_cases.py", "--models", "cnn", "--modes", "float32,ptq_int8",
             "--backends", "litert"]
# Two bench runs (REF's and the branch's) on a busy 2-core machine, a training included.
AB_TIMEOUT = 900
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "ab test", "GIT_AUTHOR_EMAIL": "ab@test.invalid",
                "GIT_COMMITTER_NAME": "ab test", "GIT_COMMITTER_EMAIL": "ab@test.invalid"}

# (file, text there at HEAD, its replacement): each scales the calibration images by 0.78.
MODE_SLIP = ("bench/modes/ptq_int8.py", "_tflite.full_integer(converter, ctx.calibration)",
             "_tflite.full_integer(converter, ctx.calibration * 0.78)")
BUILD_SLIP = ("bench/build.py", 'calibration=self.inputs("calib", model),',
              'calibration=self.inputs("calib", model) * 0.78,')
COMMENT_ONLY = ("bench/build.py", 'calibration=self.inputs("calib", model),',
                'calibration=self.inputs("calib", model),  # the tier\'s calibration images')


def git(clone: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=clone, env=bench_env(clone, **GIT_IDENTITY),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clone of this repository's HEAD (committed files only)."""
    path = tmp_path_factory.mktemp("ab") / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(path)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    return path


@pytest.fixture(scope="module")
def ab_cache(tmp_path_factory) -> Path:
    """A private cache holding copies (not links) of the user's trained smoke cnn entries."""
    root = tmp_path_factory.mktemp("ab-cache")
    models = cache_root() / "models"
    for entry in sorted(models.glob("cnn-smoke-*")) if models.is_dir() else []:
        if entry.is_dir() and not entry.name.endswith(".lock"):
            shutil.copytree(entry, root / "models" / entry.name)
    return root


def commit_on_branch(clone: Path, branch: str, change: tuple[str, str, str]) -> None:
    """A branch from the clone's HEAD (origin's) with ``change`` committed on it."""
    path, old, new = change
    git(clone, "checkout", "--quiet", "-B", branch, "origin/HEAD")
    text = (clone / path).read_text()
    assert text.count(old) == 1, f"{path} at HEAD no longer holds {old!r} once: update the plant"
    (clone / path).write_text(text.replace(old, new))
    git(clone, "commit", "--quiet", "-am", f"plant: {branch}")


def run_gate(clone: Path, cache: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """``python -m bench.ab origin/HEAD`` in the clone; returns the process, ab.json, results.json."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ab", "origin/HEAD", "--out", str(out), *SELECTION],
        cwd=clone, env=bench_env(cache, PYTHONPATH=str(clone)), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=AB_TIMEOUT,
    )
    log = (done.stdout + done.stderr)[-6000:]
    assert (out / "ab.json").is_file(), f"the gate reached no verdict (exit {done.returncode}):\n{log}"
    assert f"plugin {clone / 'bench' / 'plugin.py'}" in done.stdout, "the branch's run imports its own plugin"
    assert f"plugin {out / 'ref' / 'bench' / 'plugin.py'}" in done.stdout, "REF's run imports REF's plugin"
    summary = json.loads((out / "ab.json").read_text())
    results = {case["id"]: case for case in
               json.loads((out / "reports" / "smoke" / "results.json").read_text())["cases"]}
    return done, summary, results


@pytest.mark.parametrize("slip", [MODE_SLIP, BUILD_SLIP], ids=["mode-file", "build-py"])
def test_a_planted_calibration_slip_is_regressed_and_fails_the_gate(clone, ab_cache, tmp_path, slip):
    commit_on_branch(clone, f"slip-{Path(slip[0]).stem}", slip)
    done, summary, results = run_gate(clone, ab_cache, tmp_path / "ab")
    log = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 1, log
    assert results[CASE]["baseline_verdict"] == "regressed", log
    assert summary["regressed"] == [CASE]
    # The branch's own pytest run failed the case (item 4.6): REF's passed it.
    assert f"bench.cases.test_cases::test_case[{CASE}]" in summary["new_failures"]
    assert results["cnn-float32-litert"]["baseline_verdict"] == "identical"


def test_an_unchanged_branch_is_identical_on_every_case(clone, ab_cache, tmp_path):
    commit_on_branch(clone, "comment-only", COMMENT_ONLY)
    done, summary, results = run_gate(clone, ab_cache, tmp_path / "ab")
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert summary["status"] == 0 and not summary["new_failures"] and not summary["not_run"]
    assert {cid: case["baseline_verdict"] for cid, case in results.items()} == {
        "cnn-float32-litert": "identical", CASE: "identical"}
    # A comment changes no key: the branch's run reused every entry REF's run had made.
    branch_log = done.stdout.split("[ab] working tree:", 1)[-1].splitlines()
    built = [line for line in branch_log if line.startswith(("[convert]", "[train]")) and "reusing" not in line]
    assert not built, built
