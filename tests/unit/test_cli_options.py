"""The bench's command-line options, as a user meets them: a bad name is a usage error listing the
valid names, and a good selection collects exactly the chosen cases.

Each check runs ``pytest --collect-only`` on ``bench/cases`` in a subprocess from the repository
root (collection imports no TensorFlow: about a second per call).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def collect(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench/cases", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("option", "valid"),
    [
        ("--models", "valid models are: cnn, mobilenet, vgg16"),
        ("--modes", "valid modes are: bf16, float32, ptq_dynamic, ptq_float16, ptq_int16x8, ptq_int8, qat_int8"),
        ("--backends", "valid backends are: keras, litert, onnxruntime, openvino"),
        ("--tier", "valid tiers are: full, smoke"),
        ("--calibration-method", "valid calibration methods are: Entropy, MinMax, Percentile"),
    ],
)
def test_unknown_name_is_a_usage_error_listing_the_valid_ones(option, valid):
    result = collect(option, "nosuch")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "'nosuch'" in output and valid in output, output
    assert "Traceback" not in output, output


def test_one_bad_name_in_a_list_is_caught():
    result = collect("--models", "cnn,vgg", "--tier", "smoke")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unknown model 'vgg'" in result.stderr + result.stdout


def test_selection_collects_exactly_the_chosen_cases():
    result = collect("--models", "cnn", "--modes", "float32,ptq_int8", "--backends", "litert")
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line.split("::", 1)[1] for line in result.stdout.splitlines() if "test_cases.py::" in line]
    assert ids == [
        "test_case[cnn-float32-litert]",
        "test_case[cnn-ptq_int8-litert]",
        "test_qat_not_worse_than_ptq[cnn-litert]",
        "test_backends_agree[cnn-float32]",
        "test_backends_agree[cnn-ptq_int8]",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--accept", "cnn-ptq_int8-litert=why"], "--accept only applies to an update of the baselines"),
        (["--update-baselines", "--accept", "cnn-ptq_int8-litert"], "expected CASE=REASON"),
        (["--update-baselines", "--models", "cnn", "--accept", "vgg16-ptq_int8-litert=why"],
         "--accept names vgg16-ptq_int8-litert, not a case of this selection"),
        (["--publish-reports", "--reports-dir", "/tmp/x"], "cannot be combined with --reports-dir"),
    ],
)
def test_accept_and_publish_reports_misuse_is_a_usage_error_before_the_run(args, says, tmp_path):
    result = collect("--baselines-dir", str(tmp_path), *args)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert says in output and "Traceback" not in output, output


def test_a_local_run_writes_its_reports_where_git_ignores_them():
    from bench import project

    local = project.local_reports(ROOT)
    assert local == ROOT / "reports" / "local"
    for written in ("smoke/results.json", "smoke/REPORT.md", "full/plots/accuracy.png"):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(local / written)], cwd=ROOT)
        assert ignored.returncode == 0, f"{written} under {local} is not ignored by git"
    # The committed reports are not ignored: --publish-reports rewrites them on purpose.
    assert subprocess.run(["git", "check-ignore", "-q", "reports/smoke/REPORT.md"], cwd=ROOT).returncode == 1
