"""Progress lines reach the terminal live despite pytest's capturing, the plan line says what a run
will do and for how long, and TensorFlow's C++ log lines are off unless asked for.

The live-output checks run an inner pytest in a subprocess (pytester), whose tiny conftest
attaches :mod:`bench.progress` the way the bench's plugin does; the log-level checks import
TensorFlow in a subprocess (about ten seconds each), since its level is fixed at import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import progress
from bench.progress import PlanItem, history_from_results, plan_line

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------
# The plan line


def _smoke_plan() -> list[PlanItem]:
    return [
        PlanItem("train", "cnn", cached=True),
        PlanItem("train", "mobilenet"),
        PlanItem("train", "vgg16"),
        PlanItem("qat", "cnn"),
        *(PlanItem("convert", f"cnn-mode{i}-litert") for i in range(14)),
        *(PlanItem("convert", f"vgg16-mode{i}-litert", cached=True) for i in range(18)),
    ]


def test_plan_line_lists_the_work_the_cache_and_the_estimate():
    # 132.8 + 375.7 + 10 + 14 * 2 s: 9.1 min.
    history = {"train:mobilenet": 132.8, "train:vgg16": 375.7, "qat:cnn": 10.0,
               **{f"convert:cnn-mode{i}-litert": 2.0 for i in range(14)}}
    line = plan_line(_smoke_plan(), history, tier="smoke", source="reports/smoke/results.json")
    assert line == (
        "quantbench plan (smoke): train mobilenet, vgg16; QAT cnn; convert 14 artifacts; "
        "cached: cnn (model), 18 artifacts; estimated ~9 min from earlier runs (reports/smoke/results.json)"
    )


def test_plan_line_without_history_says_there_is_no_estimate():
    assert plan_line(_smoke_plan(), {}).endswith("; no estimate: no earlier run recorded")
    assert plan_line(_smoke_plan(), {}).startswith("quantbench plan: train mobilenet")


def test_plan_line_with_history_of_other_items_says_so():
    line = plan_line(_smoke_plan(), {"train:cnn": 40.0}, source="old.json")
    assert line.endswith("; no estimate: earlier runs (old.json) timed none of this")


def test_estimate_names_what_it_does_not_count():
    line = plan_line([PlanItem("train", "vgg16"), PlanItem("evaluate", "vgg16-float32-keras"),
                      PlanItem("evaluate", "vgg16-ptq_int8-litert")], {"train:vgg16": 30.0})
    assert line == ("quantbench plan: train vgg16; evaluate 2 cases; "
                    "estimated ~30 s from earlier runs, not counting 2 items never timed")


def test_everything_cached_is_nothing_to_do():
    line = plan_line([PlanItem("train", "cnn", True), PlanItem("train", "vgg16", True),
                      PlanItem("qat", "cnn", True), PlanItem("convert", "cnn-ptq_int8-litert", True)],
                     {"train:cnn": 40.0})
    assert line == "quantbench plan: nothing to do; cached: cnn, vgg16 (models), cnn (QAT model), 1 artifact"


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.2, "~1 s"), (89, "~89 s"), (90, "~2 min"), (540, "~9 min"), (89 * 60, "~89 min"),
    (5400, "~1.5 h"), (4 * 3600, "~4.0 h"),
])
def test_estimate_rounds_to_a_readable_unit(seconds, shown):
    line = plan_line([PlanItem("train", "vgg16")], {"train:vgg16": seconds})
    assert line.endswith(f"estimated {shown} from earlier runs")


def test_a_name_is_listed_once_and_an_unknown_kind_is_refused():
    assert plan_line([PlanItem("train", "cnn"), PlanItem("train", "cnn")], {}).startswith(
        "quantbench plan: train cnn; ")
    with pytest.raises(ValueError, match="unknown plan item kind 'fit'; use one of train, qat"):
        PlanItem("fit", "cnn")


def test_history_from_results_reads_the_recorded_seconds():
    results = {
        "schema": 2,
        "models": {
            "cnn": {"cached": True, "train_seconds": 40.5, "qat_seconds": 12.0},
            "vgg16": {"cached": True, "train_seconds": 0.0},  # an entry from before timings were kept
            "mobilenet": {"cached": False},
        },
        "cases": [
            {"id": "cnn-ptq_int8-litert", "convert_seconds": 3.1, "eval_seconds": 0.4},
            {"id": "cnn-float32-keras", "convert_seconds": True},  # not a number
            {"id": "cnn-float32-litert"},
        ],
    }
    assert history_from_results(results) == {
        "train:cnn": 40.5,
        "qat:cnn": 12.0,
        "convert:cnn-ptq_int8-litert": 3.1,
        "evaluate:cnn-ptq_int8-litert": 0.4,
    }
    assert history_from_results({"schema": 2}) == {}


# --------------------------------------------------------------------------------------------
# Live lines through pytest's terminal


def test_unattached_a_line_goes_to_stderr(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_sinks", [])  # as outside pytest
    progress.emit("[train] cnn-smoke: epoch 1/2")
    assert capsys.readouterr() == ("", "[train] cnn-smoke: epoch 1/2\n")


# Wired as bench/plugin.py wires it; the inner runs leave that plugin out (-p no:quantbench).
INNER_CONFTEST = """
    from bench import progress

    def pytest_sessionstart(session):
        progress.attach(session.config.pluginmanager.get_plugin("terminalreporter"))

    def pytest_unconfigure(config):
        progress.detach()
"""
INNER_ARGS = ("-p", "no:quantbench", "-p", "no:cacheprovider")

LINE = "[train] tiny-smoke: epoch 1/1 0.1s loss 2.3026 acc 0.1000 val_acc 0.1000"


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner pytest project whose conftest attaches bench.progress, run in a subprocess that
    depends only on what is set here, not on how this run was started."""
    for name in list(os.environ):
        if name.startswith(("PYTEST_", "PYTHON")) or name in ("FORCE_COLOR", "NO_COLOR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PY_COLORS", "0")
    pytester.makeconftest(INNER_CONFTEST)
    return pytester


def test_a_line_emitted_in_a_test_shows_live_without_dash_s(inner):
    inner.makepyfile(test_inner=f"""
        from bench import progress

        def test_trains():
            print("captured: not shown for a passing test")
            progress.emit({LINE!r})
    """)
    result = inner.runpytest_subprocess("-v", *INNER_ARGS)
    result.assert_outcomes(passed=1)
    out = result.stdout.lines
    assert LINE in out, result.stdout.str()
    shown = out.index(LINE)
    outcome = next(i for i, line in enumerate(out) if line.rstrip().endswith("[100%]"))
    summary = next(i for i, line in enumerate(out) if "1 passed" in line)
    assert shown < outcome < summary, result.stdout.str()
    assert "PASSED" in out[outcome], result.stdout.str()
    assert "captured: not shown" not in result.stdout.str() + result.stderr.str()


def test_a_test_capturing_output_itself_gets_the_line(inner):
    inner.makepyfile(test_inner=f"""
        from bench import progress

        def test_sees_it(capfd):
            progress.emit({LINE!r})
            assert capfd.readouterr().err == {LINE + chr(10)!r}
    """)
    result = inner.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=1)
    assert LINE not in result.stdout.lines + result.stderr.lines


def test_an_xdist_worker_shows_the_line_on_stderr(inner):
    inner.makepyfile(test_inner=f"""
        from bench import progress

        def test_trains():
            progress.emit({LINE!r})
    """)
    result = inner.runpytest_subprocess("-n", "1", *INNER_ARGS)
    result.assert_outcomes(passed=1)
    assert LINE in result.stderr.lines, result.stdout.str() + result.stderr.str()


# --------------------------------------------------------------------------------------------
# TensorFlow's C++ log lines

# What bench.train does each epoch (op determinism, fit on NumPy arrays, which Keras feeds
# through tf.data): on TF 2.21 without a GPU it logs the oneDNN notice and CUDA probing at
# import, cuInit's failure at the first op and node_def_util's NodeDef error at the fit.
FIT_ONE_EPOCH = """
import numpy as np
from bench.tfsetup import keras, seed_everything
seed_everything(0)
x = np.zeros((32, 8, 8, 1), np.float32)
y = np.eye(10, dtype=np.float32)[np.arange(32) % 10]
model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
print("fitted")
"""
ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] ", re.MULTILINE)
NOISE = ("All log messages before absl::InitializeLog()", "port.cc", "oneDNN custom operations",
         "cudart_stub.cc", "cuda_platform.cc", "cuInit", "node_def_util.cc", "NodeDef mentions")


def _python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root, in an environment made here: this run's own
    TensorFlow, pytest and quantbench settings left out."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "PYTHON", "TF_", "QUANTBENCH_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )


def test_tensorflow_cpp_lines_are_off_by_default():
    result = _python("-c", FIT_ONE_EPOCH)
    assert result.returncode == 0 and result.stdout == "fitted\n", result.stderr
    assert not ABSL_LINE.search(result.stderr), result.stderr
    assert not [noise for noise in NOISE if noise in result.stderr], result.stderr


def test_quantbench_tf_log_brings_them_back():
    result = _python("-c", FIT_ONE_EPOCH, QUANTBENCH_TF_LOG="1")
    assert result.returncode == 0 and result.stdout == "fitted\n", result.stderr
    assert ABSL_LINE.search(result.stderr), result.stderr


def test_native_logs_overrides_the_level_and_says_when_too_late(monkeypatch):
    # Registered, so that the test's changes are undone afterwards.
    monkeypatch.delenv(progress.TF_LOG_ENV, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert progress.native_logs(False) is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1" and progress.TF_LOG_ENV not in os.environ
    assert progress.native_logs(True) is True
    assert os.environ[progress.TF_LOG_ENV] == "1" and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.warns(RuntimeWarning, match="TensorFlow is already imported"):
        assert progress.native_logs(True) is False


def test_the_quiet_level_is_a_default_and_the_knob_overrides_it(monkeypatch):
    monkeypatch.delenv(progress.TF_LOG_ENV, raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    progress.set_native_log_level()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == progress.QUIET_LOG_LEVEL
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    progress.set_native_log_level()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.setenv(progress.TF_LOG_ENV, "1")
    progress.set_native_log_level()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_bench_train_has_a_tf_log_flag():
    result = _python("-m", "bench.train", "--help")
    assert result.returncode == 0, result.stderr
    assert "--tf-log show TensorFlow's C++ log lines (or set QUANTBENCH_TF_LOG=1)" in " ".join(
        result.stdout.split()), result.stdout
