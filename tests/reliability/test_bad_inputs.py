"""Bad inputs, end to end: the user sees what was wrong and what to do, never a traceback.

Each test runs the bench as a user does (``python -m pytest bench/cases/test_cases.py --models
cnn --modes float32 --backends litert``) in a subprocess, on a private cache, with one thing wrong. Start-up problems stop the run before any case (exit code 4, pytest's usage error);
a corrupt cached artifact is not a problem for the user at all: it is detected and rebuilt.
"""

from __future__ import annotations

import json
import re

import pytest

from bench.cache import Cache

from .conftest import MODEL, bench_env, run_bench

SELECTION = ("--models", MODEL, "--modes", "float32", "--backends", "litert")
# How pytest shows an exception raised inside a test or fixture: source lines and "E   " lines.
TRACEBACK = re.compile(r"Traceback|^E {3}|^>\s|\.py:\d+: \w+(Error|Exception)\b", re.MULTILINE)


def _assert_clear(result, returncode: int, *phrases: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == returncode, output[-5000:]
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} not in:\n{output[-5000:]}"
    assert not TRACEBACK.search(output), output[-5000:]
    return output


def _message(output: str, start: str) -> str:
    """The first line holding ``start`` (for the report of what a user sees)."""
    return next(line for line in output.splitlines() if start in line)


def test_missing_data_says_what_is_missing_and_how_to_get_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_bench(*SELECTION, cache=tmp_path / "cache", reports=tmp_path / "reports",
                       env=bench_env(tmp_path / "cache", FASHION_MNIST_DIR=str(empty)))
    output = _assert_clear(result, pytest.ExitCode.USAGE_ERROR,
                           f"$FASHION_MNIST_DIR={empty} lacks train-images-idx3-ubyte",
                           "apt-get install -y dataset-fashion-mnist")
    print(_message(output, "FASHION_MNIST_DIR"))
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema": 1, "cases": {', ["smoke.json is not valid JSON", "pytest --pyargs bench.cases --tier smoke --update-baselines"]),
        ('{"schema": 99, "cases": {}}', ["smoke.json has schema 99: it was written by a newer version of the harness (this version reads schemas 1 to 3)",
                                         "pytest --pyargs bench.cases --tier smoke --update-baselines"]),
        ('{"schema": 2}', ["smoke.json has no 'cases' object", "pytest --pyargs bench.cases --tier smoke --update-baselines"]),
    ],
    ids=["malformed", "schema-99", "no-cases"],
)
def test_bad_baselines_file_stops_the_run_with_a_message(content, expected, tmp_path):
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "smoke.json").write_text(content)
    result = run_bench(*SELECTION, "--baselines-dir", str(folder), cache=tmp_path / "cache",
                       reports=tmp_path / "reports")
    output = _assert_clear(result, pytest.ExitCode.USAGE_ERROR, *expected)
    print(_message(output, "smoke.json"))
    assert (folder / "smoke.json").read_text() == content  # never overwritten without asking


def test_bad_baselines_file_under_xdist_stops_both_workers_cleanly(tmp_path):
    """pytest.exit in an xdist worker would crash the controller (INTERNALERROR): not here."""
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "smoke.json").write_text('{"schema": 99, "cases": {}}')
    result = run_bench("--models", MODEL, "--modes", "float32", "--backends", "litert,onnxruntime",
                       "-n", "2", "--baselines-dir", str(folder), cache=tmp_path / "cache",
                       reports=tmp_path / "reports")
    output = _assert_clear(result, pytest.ExitCode.INTERRUPTED,
                           "smoke.json has schema 99: it was written by a newer version of the harness (this version reads schemas 1 to 3)")
    assert "INTERNALERROR" not in output, output[-5000:]
    print(_message(output, "Interrupted"))


def test_reports_dir_that_is_a_file_is_a_usage_error(tmp_path):
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder")
    result = run_bench(*SELECTION, cache=tmp_path / "cache", reports=blocker)
    output = _assert_clear(result, pytest.ExitCode.USAGE_ERROR,
                           f"--reports-dir {blocker}: {blocker} is a file, not a folder",
                           "pass --reports-dir with a writable folder")
    print(_message(output, "--reports-dir"))


def test_unknown_model_is_a_usage_error_listing_the_valid_ones(tmp_path):
    result = run_bench("--models", "nosuch", cache=tmp_path / "cache", reports=tmp_path / "reports")
    output = _assert_clear(result, pytest.ExitCode.USAGE_ERROR,
                           "unknown model 'nosuch'; valid models are: cnn, mobilenet, vgg16")
    print(_message(output, "nosuch"))


@pytest.mark.bench
def test_corrupt_cached_artifact_is_detected_and_rebuilt(reference, trained_cache, tmp_path):
    artifact = reference.run.build.artifact(MODEL, "float32", "litert")
    expected = reference.records["float32"]
    with open(artifact, "r+b") as handle:  # truncated, as by a full disk or a killed copy
        handle.truncate(artifact.stat().st_size // 2)
    result = run_bench(*SELECTION, "-s", "--update-baselines", "--baselines-dir", str(tmp_path / "baselines"),
                       cache=trained_cache.root, reports=tmp_path / "reports")
    output = _assert_clear(result, pytest.ExitCode.OK,
                           f"[cache] discarding corrupt entry {artifact.parent}: model.tflite does not "
                           "match its recorded sha256; rebuilding it")
    print(_message(output, "[cache] discarding"))
    assert Cache(trained_cache.root).verify(artifact.parent) is None
    [case] = json.loads((tmp_path / "reports" / "smoke" / "results.json").read_text())["cases"]
    assert (case["accuracy"], case["size_bytes"]) == (expected.accuracy, expected.size_bytes)
