"""Real cnn runs: an update refuses a regressed case unless accepted (and records the acceptance),
a dropped baseline case fails the run as "not run", and a local run leaves the checkout clean."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from bench import evidence
from bench.results import load_baselines
from tests.reliability.conftest import MODEL, ROOT, bench_env, run_bench

CASE = f"{MODEL}-ptq_int8-litert"
PLANTED_LOST = 40


def _run(cache_root, tmp, baselines_dir, accepts=None):
    """A real update run of cnn float32 and ptq_int8 on litert (see conftest.make_run)."""
    from bench.cache import Cache
    from bench.run import BenchRun, Options
    from bench.tiers import SMOKE

    options = Options(tier=SMOKE, models=[MODEL], modes=["float32", "ptq_int8"], backends=["litert"],
                      root=ROOT, reports_dir=tmp / "reports", baselines_dir=baselines_dir,
                      update_baselines=True, accepts=accepts or {}, command="tests/reliability")
    run = BenchRun(options, cache=Cache(cache_root))
    records = {mode: run.run_case(MODEL, mode, "litert") for mode in options.modes}
    return run, records


def _plant_a_better_baseline(path):
    """Makes the stored ptq_int8 entry right on 40 images the case gets wrong: it then loses them."""
    document = json.loads(path.read_text())
    entry = document["cases"][CASE]
    correct = evidence.unpack(entry["correct_bits"], entry["n_test"]).copy()
    correct[np.flatnonzero(~correct)[:PLANTED_LOST]] = True
    entry["correct_bits"] = evidence.pack(correct)
    path.write_text(json.dumps(document))
    return entry["correct_bits"]


def test_an_update_refuses_a_regressed_case_until_it_is_accepted_and_records_why(reference, tmp_path):
    from bench.publish import publish
    from bench.report import cli

    cache, folder = reference.run.build.cache.root, tmp_path / "baselines"
    path = folder / "smoke.json"
    run, _ = _run(cache, tmp_path / "first", folder)
    publish(run)
    planted = _plant_a_better_baseline(path)

    run, records = _run(cache, tmp_path / "refused", folder)
    assert records["ptq_int8"].baseline_verdict == "regressed"
    (failure,) = [m for m in records["ptq_int8"].failures if "refuses" in m]
    assert f'--accept "{CASE}=<why the change is intended>"' in failure
    published = publish(run)
    assert load_baselines(path)["cases"][CASE]["correct_bits"] == planted  # the old entry is kept
    assert published.refused and published.refused[0].startswith(f"{CASE}: regressed, refused")
    assert load_baselines(path)["history"] == []

    reason = "planted: calibration changed on purpose (#19)"
    run, records = _run(cache, tmp_path / "accepted", folder, accepts={CASE: reason})
    assert records["ptq_int8"].baseline_verdict == "regressed" and records["ptq_int8"].status == "passed"
    published = publish(run)
    stored = load_baselines(path)
    assert stored["cases"][CASE]["correct_bits"] == records["ptq_int8"].correct_bits
    (entry,) = stored["history"]
    assert (entry["case"], entry["verdict"], entry["lost"], entry["gained"], entry["reason"]) == \
        (CASE, "regressed", PLANTED_LOST, 0, reason)
    assert entry["net_change_pp"] == -2.0 and entry["when"] and "commit" in entry
    report = published.report_path.read_text()
    assert "## Baseline history" in report and reason in report
    compared = tmp_path / "COMPARE.md"
    assert cli.main(["compare", str(path), str(published.results_path), "--out", str(compared)]) == 0
    assert reason in compared.read_text()


def test_a_dropped_baseline_case_fails_the_run_and_reads_not_run(trained_cache, tmp_path):
    """A baseline case that a declaration now skips (not a capability this CPU lacks) fails the
    run, named with its reason; a case deselected with -k is not dropped."""
    folder, reports = tmp_path / "baselines", tmp_path / "reports"
    selection = ("--models", MODEL, "--modes", "float32,ptq_float16", "--backends", "litert,onnxruntime",
                 "-m", "not latency", "--baselines-dir", str(folder))
    recorded = run_bench(*selection, "-k", "test_case and float32-litert", "--update-baselines",
                         cache=trained_cache.root, reports=reports)
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    document = json.loads((folder / "smoke.json").read_text())
    entry = document["cases"][f"{MODEL}-float32-litert"]
    # ptq_float16 is declared unsupported on onnxruntime; pretend an earlier version ran it.
    document["cases"][f"{MODEL}-ptq_float16-onnxruntime"] = dict(entry)
    document["cases"][f"{MODEL}-float32-onnxruntime"] = dict(entry)  # deselected below: not dropped
    (folder / "smoke.json").write_text(json.dumps(document))

    result = run_bench(*selection, "-k", "test_case and (float32-litert or ptq_float16-onnxruntime)",
                       cache=trained_cache.root, reports=reports)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    dropped = f"{MODEL}-ptq_float16-onnxruntime"
    assert f"{dropped}: did not run (ptq_float16 on onnxruntime:" in output
    assert f"  - {dropped}: not run: ptq_float16 on onnxruntime:" in output
    results = json.loads((reports / "smoke" / "results.json").read_text())
    assert [e["id"] for e in results["not_run"]] == [dropped] and results["not_run"][0]["fails"]
    assert dropped not in {c["id"] for c in results["cases"]}
    report = (reports / "smoke" / "REPORT.md").read_text()
    assert f"`{dropped}` | not run: ptq_float16 on onnxruntime" in report
    assert f"{MODEL}-float32-onnxruntime" not in report.split("## Not run", 1)[1].split("##", 1)[0]


def _tracked_changes() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "reports", "baselines"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_a_local_run_leaves_the_checkout_clean(trained_cache):
    """A run with no --reports-dir, from the repository, as a newcomer's `nox -s bench` runs."""
    from bench import project

    local_reports = project.local_reports(ROOT)
    before = _tracked_changes()
    result = subprocess.run(
        [__import__("sys").executable, "-m", "pytest", "bench/cases/test_cases.py", "-p", "no:cacheprovider",
         "--models", MODEL, "--modes", "float32", "--backends", "litert", "-m", "not latency"],
        cwd=ROOT, env=bench_env(trained_cache.root), capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert f"quantbench results: {local_reports / 'smoke' / 'results.json'}" in output, output[-3000:]
    assert _tracked_changes() == before
