"""Safe in parallel: ``pytest -n 2`` gives a serial run's results, trains once, writes one file.

The parallel run starts on an empty private cache: both workers need the float cnn, its QAT model
and the float32 artifacts at once, so they race for the cache's locks. Then a serial run on the
same (now warm) cache is the reference. Both update baselines, each into its own temporary folder,
so the test also covers the locked read-merge-write of the baselines file.
"""

from __future__ import annotations

import collections
import json
import re

import pytest

from .conftest import MODEL, bench_env, run_bench

pytestmark = pytest.mark.bench

BACKENDS = "litert,onnxruntime"
TRAINING = f"[train] {MODEL}-smoke: training "
CONVERTED = re.compile(r"^\[convert\] (\S+): \d+\.\ds$", re.MULTILINE)


def _outcomes(output: str) -> dict[str, int]:
    """``{"passed": 16, "skipped": 4}`` from pytest's last line."""
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)][-1]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}


def _headline(output: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index("quantbench headline (litert), as in REPORT.md")
    return lines[start:start + 4]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(parallel run, serial run, folder) on the cache described in the module docstring."""
    tmp = tmp_path_factory.mktemp("parallel")
    cache = tmp / "cache"
    common = ["--models", MODEL, "--backends", BACKENDS, "--update-baselines", "-rP"]
    parallel = run_bench(*common, "-n", "2", "--baselines-dir", str(tmp / "baselines-n2"),
                         cache=cache, reports=tmp / "reports-n2", env=bench_env(cache))
    serial = run_bench(*common, "--baselines-dir", str(tmp / "baselines-serial"),
                       cache=cache, reports=tmp / "reports-serial", env=bench_env(cache))
    return parallel, serial, tmp


def test_parallel_run_passes_like_the_serial_one(runs):
    parallel, serial, _ = runs
    assert parallel.returncode == 0, parallel.stdout[-5000:] + parallel.stderr[-3000:]
    assert serial.returncode == 0, serial.stdout[-5000:] + serial.stderr[-3000:]
    assert _outcomes(parallel.stdout) == _outcomes(serial.stdout)
    assert "[gw0]" in parallel.stdout and "[gw1]" in parallel.stdout  # both workers ran cases


def test_each_model_is_trained_and_each_artifact_converted_once(runs):
    parallel, serial, _ = runs
    out = parallel.stdout + parallel.stderr
    assert out.count(TRAINING) == 1, out[-5000:]
    assert out.count(f"[train] {MODEL}-smoke-qat: QAT fine-tuning") == 1, out[-5000:]
    # The other worker waited on the cache lock, then loaded what the first one trained.
    assert f"[train] {MODEL}-smoke: reusing cached weights" in out, out[-5000:]
    converted = collections.Counter(CONVERTED.findall(out))
    assert converted, out[-5000:]
    assert all(n == 1 for n in converted.values()), converted
    assert "[cache] discarding" not in out
    # The serial run found everything in the cache.
    assert TRAINING not in serial.stdout + serial.stderr
    assert not CONVERTED.findall(serial.stdout + serial.stderr)


def test_one_results_file_with_every_case_identical_to_serial(runs):
    _, _, tmp = runs
    par = json.loads((tmp / "reports-n2" / "smoke" / "results.json").read_text())
    ser = json.loads((tmp / "reports-serial" / "smoke" / "results.json").read_text())
    ids = [c["id"] for c in ser["cases"]]
    assert len(ids) == len(set(ids)) >= 10
    assert [c["id"] for c in par["cases"]] == ids
    for mine, theirs in zip(par["cases"], ser["cases"], strict=True):
        for key in ("accuracy", "size_bytes", "accuracy_drop_pp", "status"):
            assert mine[key] == theirs[key], (mine["id"], key, mine[key], theirs[key])
    assert set(par["models"]) == {MODEL}
    assert [(a["model"], a["mode"]) for a in par["agreement"]] == \
        [(a["model"], a["mode"]) for a in ser["agreement"]]
    # REPORT.md was rendered from the complete file (under the same lock, after the last write).
    report = tmp / "reports-n2" / "smoke" / "REPORT.md"
    assert report.stat().st_mtime >= (tmp / "reports-n2" / "smoke" / "results.json").stat().st_mtime


def test_baselines_written_by_both_workers_hold_every_case(runs):
    _, _, tmp = runs
    par = json.loads((tmp / "baselines-n2" / "smoke.json").read_text())
    ser = json.loads((tmp / "baselines-serial" / "smoke.json").read_text())
    assert par["cases"] == ser["cases"]


def test_controller_prints_the_serial_summary_once(runs):
    parallel, serial, tmp = runs
    assert _headline(parallel.stdout) == _headline(serial.stdout)
    assert parallel.stdout.count("quantbench results: ") == 1
    assert f"quantbench results: {tmp / 'reports-n2' / 'smoke' / 'results.json'}" in parallel.stdout
    assert "quantbench baselines updated:" in parallel.stdout


def test_concurrent_publishers_lose_no_case(tmp_path, monkeypatch):
    """Eight publishers at once, each slowed between read and write: every case survives.

    ``flock`` locks belong to open file descriptions, so threads exclude each other as processes
    do; the report rendering is stubbed (matplotlib is not thread-safe, and not under test here).
    """
    import threading
    import time
    import types

    from bench import baseline as baselines
    from bench import environment, publish, report
    from bench.run import Options
    from bench.selection import Selection
    from bench.tiers import SMOKE

    def slow(read):
        def wrapped(path):
            value = read(path)
            time.sleep(0.05)  # widen the read-merge-write window
            return value
        return wrapped

    monkeypatch.setattr(publish, "_read_previous", slow(publish._read_previous))
    monkeypatch.setattr(baselines, "load_for_update", slow(baselines.load_for_update))
    monkeypatch.setattr(report, "write_report", lambda path: None)
    options = Options(tier=SMOKE, models=[MODEL], modes=[], backends=[], root=tmp_path,
                      reports_dir=tmp_path / "reports", update_baselines=True,
                      baselines_dir=tmp_path / "baselines")

    # Eight real cases: an update drops baseline entries of cases the tier does not run.
    combos = [(model, mode) for model in ("cnn", "mobilenet")
              for mode in ("float32", "ptq_dynamic", "ptq_int8", "qat_int8")]
    ids = sorted(f"{model}-{mode}-litert" for model, mode in combos)

    def run(i: int):
        model, mode = combos[i]
        case = {"id": f"{model}-{mode}-litert", "model": model, "mode": mode, "backend": "litert",
                "status": "passed", "accuracy": 0.5 + i / 100, "size_bytes": 1000 + i,
                "environment": environment.fingerprint_id({})}
        # One run's workers share its id (xdist's testrunuid): their rows merge unmarked.
        document = {"schema": 2, "tier": "smoke", "dataset_sha256": "d", "environment": {}, "run_id": "r",
                    "environments": {environment.fingerprint_id({}): {}},
                    "cases": [case], "agreement": [], "models": {}, "harness": {}, "layer_errors": {}}
        return types.SimpleNamespace(options=options, tier=SMOKE, selection=Selection.of(options),
                                     document=lambda: document)

    threads = [threading.Thread(target=publish.publish, args=(run(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = json.loads((tmp_path / "reports" / "smoke" / "results.json").read_text())
    assert sorted(c["id"] for c in results["cases"]) == ids
    written = json.loads((tmp_path / "baselines" / "smoke.json").read_text())
    assert sorted(written["cases"]) == ids
