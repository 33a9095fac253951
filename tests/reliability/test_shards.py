"""Three shards run as separate processes and merged equal one run, case by case and image by image.

On the trained cache (``trained_cache``: the cnn's float and QAT models are in it), a single run
of one selection comes first and converts every artifact; then three ``pytest --shard K/3``
processes run at once on the same selection, each into a reports folder of its own, and
``python -m bench.merge`` combines their results. With every model trained, ``--shard-by auto``
splits by (model, backend): three units, one per shard, and backend agreement is left to the
merge, which computes it from the cases' per-image predictions.

The merged results must equal the single run's in every case's accuracy, per-image outcomes,
per-image predictions, verdict and status, and in every agreement pair's top-1 agreement and gate
outcome; the merge must refuse (exit 2) a shard left out or given twice.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import MODEL, ROOT, SUBPROCESS_TIMEOUT, bench_env

pytestmark = pytest.mark.bench

SELECTION = ["--models", MODEL, "--modes", "float32,ptq_int8,qat_int8", "--backends", "keras,litert,onnxruntime",
             "-m", "not latency"]
# The cases and the cross-case checks (QAT against PTQ, agreement, portability): what a merge combines.
TESTS = ["bench/cases/test_cases.py", "bench/cases/test_portability.py"]
SHARDS = 3
CASE_FIELDS = ("accuracy", "correct_bits", "predictions", "baseline_verdict", "baseline_comparison", "status",
               "failures", "size_bytes", "artifact_sha256")


def _pytest(*args: str, reports) -> list[str]:
    return [sys.executable, "-m", "pytest", *TESTS, "-p", "no:cacheprovider", "-p", "no:randomly",
            "--reports-dir", str(reports), *SELECTION, *args]


def _items(output: str) -> int:
    """Test items pytest ran (passed, failed, skipped, errors), from its last line."""
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)][-1]
    return sum(int(n) for n, _ in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last))


def _merge(out, *paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.merge", "--out", str(out), *map(str, paths)],
                          cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)


@pytest.fixture(scope="module")
def runs(trained_cache, tmp_path_factory):
    """(single run, the shards' processes, their results paths, the merge, folder)."""
    assert trained_cache.resumed_returncode == 0, trained_cache.resumed_log[-3000:]
    tmp = tmp_path_factory.mktemp("shards")
    env = bench_env(trained_cache.root)
    single = subprocess.run(_pytest(reports=tmp / "single"), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    processes = [subprocess.Popen(_pytest("--shard", f"{k}/{SHARDS}", reports=tmp / f"shard-{k}"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k in range(1, SHARDS + 1)]
    shards = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=SUBPROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        shards.append(subprocess.CompletedProcess(process.args, process.returncode, output, ""))
    paths = [tmp / f"shard-{k}" / "smoke" / "results.json" for k in range(1, SHARDS + 1)]
    merged = _merge(tmp / "merged", *paths)
    return single, shards, paths, merged, tmp


def _load(path):
    return json.loads(path.read_text())


def test_every_shard_ran_one_unit_of_the_split_by_backend(runs):
    single, shards, paths, _, tmp = runs
    assert single.returncode in (0, 1), single.stdout[-5000:] + single.stderr[-3000:]
    fields = [_load(path)["shard"] for path in paths]
    for k, (process, field) in enumerate(zip(shards, fields, strict=True), start=1):
        assert process.returncode in (0, 1), process.stdout[-5000:]
        assert field["index"] == k and field["total"] == SHARDS and field["by"] == "backend"
        assert len(field["units"]) == 1 and isinstance(field["outcome"], dict)
    assert sorted(u for f in fields for u in f["units"]) == [f"{MODEL}-keras", f"{MODEL}-litert", f"{MODEL}-onnxruntime"]
    assert len({f["plan"] for f in fields}) == 1
    # Every shard judged with the whole run's count, and between them they ran every case once.
    ran = [c["id"] for c in _load(tmp / "single" / "smoke" / "results.json")["cases"]]
    assert {f["cases_total"] for f in fields} == {len(ran)}
    assert sorted(cid for f in fields for cid in f["cases"]) == sorted(ran)
    # Every item of the single run ran in exactly one shard, but the agreement the merge computes.
    deferred = fields[0]["deferred"]
    assert deferred == [f"agreement:{MODEL}-{mode}" for mode in ("float32", "ptq_int8", "qat_int8")]
    assert sum(_items(p.stdout) for p in shards) + len(deferred) == _items(single.stdout)


def test_merged_results_equal_the_single_run_case_by_case(runs):
    single, _, _, merged, tmp = runs
    assert merged.returncode in (0, 1), merged.stdout[-3000:] + merged.stderr[-3000:]
    assert (merged.returncode == 0) == (single.returncode == 0), merged.stdout[-3000:] + single.stdout[-3000:]
    one = _load(tmp / "single" / "smoke" / "results.json")
    combined = _load(tmp / "merged" / "smoke" / "results.json")
    assert [c["id"] for c in combined["cases"]] == [c["id"] for c in one["cases"]]
    assert len(one["cases"]) == 7  # keras runs float32 only
    for mine, theirs in zip(combined["cases"], one["cases"], strict=True):
        assert "predictions" in theirs
        for key in CASE_FIELDS:
            assert mine[key] == theirs[key], (mine["id"], key)
    assert combined["not_run"] == one["not_run"]
    assert combined["portability"] == one["portability"]
    assert combined["lost_images"] == one["lost_images"]
    assert (tmp / "merged" / "smoke" / "REPORT.md").is_file()


def test_agreement_at_the_merge_matches_the_single_runs(runs):
    _, _, _, _, tmp = runs
    one = _load(tmp / "single" / "smoke" / "results.json")["agreement"]
    combined = _load(tmp / "merged" / "smoke" / "results.json")["agreement"]
    assert [(a["model"], a["mode"]) for a in combined] == [(a["model"], a["mode"]) for a in one]
    assert len(one) == 3
    for mine, theirs in zip(combined, one, strict=True):
        assert mine["computed_at"] == "merge"
        assert [(p["backends"], p["top1_agreement"], p["floor"]) for p in mine["pairs"]] == \
            [(p["backends"], p["top1_agreement"], p["floor"]) for p in theirs["pairs"]]
        assert mine["failures"] == theirs["failures"]
        assert mine["accuracy"] == theirs["accuracy"] and mine["size_bytes"] == theirs["size_bytes"]


def test_the_merge_prints_the_single_runs_verdicts(runs):
    single, _, _, merged, _ = runs
    verdicts = [line for line in single.stdout.splitlines() if line.startswith("quantbench against the baseline")]
    assert verdicts and verdicts[0] in merged.stdout


def test_a_shard_left_out_or_given_twice_is_refused(runs):
    _, _, paths, _, tmp = runs
    left_out = _merge(tmp / "refused", paths[0], paths[2])
    assert left_out.returncode == 2, left_out.stdout + left_out.stderr
    assert f"shard 2/{SHARDS} missing" in left_out.stderr
    twice = _merge(tmp / "refused", paths[0], paths[1], paths[1], paths[2])
    assert twice.returncode == 2, twice.stdout + twice.stderr
    assert f"shard 2/{SHARDS} is given 2 times" in twice.stderr
    assert not (tmp / "refused" / "smoke" / "results.json").exists()
