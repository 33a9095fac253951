"""Merging shards' results (bench.merge): equal to one run's, judged with the whole run's count,
cross-backend agreement computed from the predictions, and every input it must refuse.

The documents are small but real: per-image records packed by bench.evidence, verdicts judged by
bench.stats against a baselines file on disk, as a shard writes them. Two shards split by backend
(litert, onnxruntime) of one model and two modes; the "single run" is the same four cases judged
with the whole run's count, and its agreement is computed the way ``BenchRun.agreement`` does,
from logits.
"""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path

import numpy as np
import pytest

from bench import evidence, gates, metrics, stats
from bench import merge as merging
from bench.environment import fingerprint_id
from bench.errors import ReportError
from bench.results import load_results
from bench.run import pair_floor

N = 2000
TESTBED = "avx512-vnni"
ENV = {"tensorflow": "2.21.0", "cpu": {"model": "AMD EPYC", "cores": 2, "testbed": TESTBED}}
ENV_ID = fingerprint_id(ENV)
MODES, BACKENDS = ("float32", "ptq_int8"), ("litert", "onnxruntime")
CASES = [f"cnn-{mode}-{backend}" for mode in MODES for backend in BACKENDS]
LABELS = np.random.default_rng(66).integers(0, 10, N)
# Images lost against the baseline by the borderline case: one-sided McNemar p = 0.5 ** 9 = 0.00195,
# between the whole run's alpha (4 cases: 0.00125) and one shard's own (2 cases: 0.0025).
BORDERLINE, LOST = "cnn-ptq_int8-litert", 9
SELECTION = {"models": ["cnn"], "modes": list(MODES), "backends": list(BACKENDS)}
DEFERRED = [f"agreement:cnn-{mode}" for mode in MODES]


def _wrong(predicted: np.ndarray, *ranges: range) -> np.ndarray:
    """``predicted`` with the images of ``ranges`` classified wrong."""
    out = predicted.copy()
    images = [i for r in ranges for i in r]
    out[images] = (LABELS[images] + 1) % 10
    return out


def _predictions(disagree: int = 0) -> dict[str, np.ndarray]:
    """Top-1 classes per case: float32 identical on both backends; ptq_int8 differing on 15 images
    (99.25 % agreement, above the 99 % floor), plus ``disagree`` more that both get wrong, each
    its own way (so that the per-image outcomes, and the verdicts, stay the same)."""
    right = LABELS.copy()
    other_wrong = _wrong(right, range(15, 200 + LOST))
    other_wrong[100:100 + disagree] = (LABELS[100:100 + disagree] + 2) % 10
    return {
        "cnn-float32-litert": _wrong(right, range(0, 200)),
        "cnn-float32-onnxruntime": _wrong(right, range(0, 200)),
        "cnn-ptq_int8-litert": _wrong(right, range(0, 200 + LOST)),
        "cnn-ptq_int8-onnxruntime": other_wrong,
    }


def _baseline_correct(predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The baseline's outcomes: the same as now, except the borderline case's last 9 losses."""
    out = {cid: p == LABELS for cid, p in predictions.items()}
    out[BORDERLINE] = out[BORDERLINE].copy()
    out[BORDERLINE][200:200 + LOST] = True
    return out


def _case(cid: str, predicted: np.ndarray, baseline: np.ndarray, cases_judged: int) -> dict:
    """A case as BenchRun.run_case records it, judged with ``cases_judged``'s per-case alpha."""
    model, mode, backend = cid.split("-")
    correct = predicted == LABELS
    verdict = stats.judge(correct, baseline, alpha=stats.per_case_alpha(cases_judged), ceiling_pp=0.5)
    failures = gates.failures([gates.verdict_check(cid, verdict)])
    return {"id": cid, "model": model, "mode": mode, "backend": backend, "accuracy": float(correct.mean()),
            "float_accuracy": 0.9, "accuracy_drop_pp": 100 * (0.9 - float(correct.mean())), "drop_ci95_pp": [0, 0],
            "images_lost": 5 if mode == "ptq_int8" else 0, "images_gained": 0,
            "size_bytes": 1000 if mode == "ptq_int8" else 4000, "float_size_bytes": 4000,
            "size_ratio": 4.0 if mode == "ptq_int8" else 1.0, "params": 100, "n_test": N, "recipe_hash": "r",
            "int8_format": None, "eval_batch": 256, "environment": ENV_ID,
            "correct_bits": evidence.pack(correct), "predictions": evidence.pack_predictions(predicted),
            "baseline_verdict": verdict.verdict, "baseline_comparison": verdict.as_dict(),
            "failures": failures, "status": "failed" if failures else "passed"}


def _document(cases: list[dict], baseline_path: Path, **extra) -> dict:
    return {"schema": 2, "tier": "smoke", "created": "2026-12-04T00:00:00+00:00", "command": "pytest",
            "run_id": "r", "testbed": TESTBED, "dataset_sha256": "d", "n_test": N, "environment": ENV,
            "environments": {ENV_ID: ENV}, "models": {"cnn": {"params": 100, "train_seconds": 1.0}},
            "baseline": {"path": str(baseline_path), "testbed": TESTBED, "own": True, "note": "own", "history": []},
            "cases": cases, "not_run": [], "agreement": [], "portability": [], "layer_errors": {}, "harness": {},
            "lost_images": None, **extra}


def _shard_field(index: int, backend: str, **changes) -> dict:
    field = {"index": index, "total": 2, "by": "backend", "units": [f"cnn-{backend}"], "plan": "plan-1",
             "cases_total": 4, "cases": [f"cnn-{mode}-{backend}" for mode in MODES], "deferred": DEFERRED,
             "selection": SELECTION, "outcome": {"exitstatus": 0, "failed_tests": [], "failures": []}}
    return {**field, **changes}


@pytest.fixture
def run(tmp_path):
    """Files of a sharded run: the baselines, shard 1 (litert), shard 2 (onnxruntime), and the
    single run's documents to compare with. ``write`` (re)writes the shard files."""
    predictions = _predictions()
    baseline = _baseline_correct(predictions)
    baseline_path = tmp_path / "baselines" / "smoke.json"
    baseline_path.parent.mkdir()
    baseline_path.write_text(json.dumps({
        "schema": 3, "tier": "smoke", "testbed": TESTBED, "dataset_sha256": "d", "history": [],
        "environments": {ENV_ID: ENV},
        "cases": {cid: {"environment": ENV_ID, "n_test": N, "correct_bits": evidence.pack(bits),
                        "accuracy": float(bits.mean()), "size_bytes": 1000} for cid, bits in baseline.items()}}))
    whole = [_case(cid, predictions[cid], baseline[cid], cases_judged=4) for cid in CASES]
    shards = [
        _document([c for c in whole if c["backend"] == backend], baseline_path, shard=_shard_field(k, backend))
        for k, backend in enumerate(BACKENDS, start=1)
    ]
    ns = types.SimpleNamespace(tmp=tmp_path, predictions=predictions, baseline=baseline,
                               baseline_path=baseline_path, whole=whole, shards=shards, paths=[])

    def write() -> list[str]:
        ns.paths = []
        for k, document in enumerate(ns.shards, start=1):
            path = tmp_path / f"shard-{k}" / "smoke" / "results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document))
            ns.paths.append(str(path))
        return ns.paths

    ns.write = write
    write()
    return ns


def _merge(run, *paths, out: Path | None = None, capsys=None) -> tuple[int, dict | None]:
    out = out or run.tmp / "merged"
    code = merging.main(["--out", str(out), *(paths or run.paths)])
    results = out / "smoke" / "results.json"
    return code, json.loads(results.read_text()) if code != merging.EXIT_BAD_INPUT and results.exists() else None


def _logits(predicted: np.ndarray) -> np.ndarray:
    """Logits whose top-1 is ``predicted``: what a single run's agreement reads."""
    return np.eye(10, dtype=np.float32)[predicted]


# --- The merge equals one run --------------------------------------------------------------------


def test_merged_shards_equal_one_run_case_by_case_and_image_by_image(run, capsys):
    code, merged = _merge(run)
    output = capsys.readouterr().out
    assert code == merging.EXIT_PASSED, output
    assert [c["id"] for c in merged["cases"]] == CASES  # the order of a single run
    for mine, theirs in zip(merged["cases"], run.whole, strict=True):
        for key in ("accuracy", "correct_bits", "predictions", "baseline_verdict", "baseline_comparison",
                    "status", "failures"):
            assert mine[key] == theirs[key], (mine["id"], key)
    assert "shard" not in merged and merged["merged"]["total"] == 2 and merged["merged"]["by"] == "backend"
    assert [s["index"] for s in merged["merged"]["shards"]] == [1, 2]
    assert (run.tmp / "merged" / "smoke" / "REPORT.md").is_file()
    assert "quantbench against the baseline: 3 identical, 1 drift" in output
    assert "quantbench merge: passed" in output


def test_agreement_at_the_merge_equals_the_single_runs_from_logits(run):
    _, merged = _merge(run)
    assert [(a["model"], a["mode"]) for a in merged["agreement"]] == [("cnn", "float32"), ("cnn", "ptq_int8")]
    for record in merged["agreement"]:
        (pair,) = record["pairs"]
        a, b = (f"cnn-{record['mode']}-{backend}" for backend in pair["backends"])
        assert pair["backends"] == list(BACKENDS)
        assert pair["top1_agreement"] == metrics.agreement(_logits(run.predictions[a]), _logits(run.predictions[b]))
        assert pair["floor"] == pair_floor(TESTBED, record["mode"], *BACKENDS)
        assert pair["max_abs_logit_diff"] is None and record["computed_at"] == "merge"
        assert record["failures"] == []
        assert record["accuracy"] == {backend: c["accuracy"] for c in run.whole if c["mode"] == record["mode"]
                                      for backend in [c["backend"]]}
    assert merged["agreement"][1]["pairs"][0]["top1_agreement"] == 0.9925
    assert "logit_check" in merged["agreement"][0] and "logit_check" not in merged["agreement"][1]


def test_agreement_below_the_floor_at_the_merge_fails_it(run, capsys):
    predicted = _predictions(disagree=10)  # 25 images differ: 98.75 %, under the 99 % floor
    cid = "cnn-ptq_int8-onnxruntime"
    run.shards[1]["cases"][1] = _case(cid, predicted[cid], run.baseline[cid], cases_judged=4)
    run.write()
    code, merged = _merge(run)
    output = capsys.readouterr().out
    assert code == merging.EXIT_FAILED
    assert "cnn-ptq_int8 litert/onnxruntime: top-1 agreement 98.75 % below 99.0 %" in output
    assert merged["agreement"][1]["failures"]


def test_a_shards_own_looser_alpha_never_decides_a_verdict(run, capsys):
    """Shard 1 judged its cases as if the run had only its 2 cases: the borderline case regressed.
    The merge judges with the whole run's 4: drift, as the single run says, and the run passes."""
    loose = _case(BORDERLINE, run.predictions[BORDERLINE], run.baseline[BORDERLINE], cases_judged=2)
    assert loose["baseline_verdict"] == "regressed" and loose["failures"]
    run.shards[0]["cases"][1] = loose
    run.write()
    code, merged = _merge(run)
    assert code == merging.EXIT_PASSED, capsys.readouterr().out
    case = next(c for c in merged["cases"] if c["id"] == BORDERLINE)
    single = next(c for c in run.whole if c["id"] == BORDERLINE)
    assert case["baseline_verdict"] == single["baseline_verdict"] == "drift"
    assert case["baseline_comparison"] == single["baseline_comparison"]
    assert case["failures"] == [] and case["status"] == "passed"


def test_a_shard_that_ended_with_failed_tests_fails_the_merge(run, capsys):
    run.shards[1]["shard"]["outcome"] = {"exitstatus": 1, "failed_tests": ["tests/bench/test_reality.py::x"],
                                         "failures": ["cnn-onnxruntime: qat_int8 loses to ptq_int8"]}
    run.write()
    code, _ = _merge(run)
    output = capsys.readouterr().out
    assert code == merging.EXIT_FAILED
    assert "shard 2/2 ended with exit status 1: 1 failed (tests/bench/test_reality.py::x)" in output
    assert "cnn-onnxruntime: qat_int8 loses to ptq_int8" in output


def test_lost_images_come_from_the_shard_that_ran_the_worst_case(run):
    drawing = {"case": BORDERLINE, "images": [{"position": 200}]}
    run.shards[0]["lost_images"] = drawing
    run.shards[1]["lost_images"] = {"case": "cnn-ptq_int8-onnxruntime", "images": []}
    run.write()
    _, merged = _merge(run)
    assert merged["lost_images"] == drawing


def test_a_whole_run_alone_is_taken_as_it_is(run, capsys):
    path = run.tmp / "whole" / "smoke" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_document(run.whole, run.baseline_path)))
    code, merged = _merge(run, str(path))
    assert code == merging.EXIT_PASSED, capsys.readouterr().out
    assert merged["cases"] == run.whole and merged["merged"]["total"] == 1


def test_the_merge_rewrites_its_own_output_but_no_other_file(run, capsys):
    assert _merge(run)[0] == merging.EXIT_PASSED
    assert _merge(run)[0] == merging.EXIT_PASSED  # its own earlier output: replaced
    capsys.readouterr()
    code, _ = _merge(run, out=Path(run.paths[0]).parent.parent)  # shard 1's folder
    assert code == merging.EXIT_BAD_INPUT
    assert "exists and is not a merge's output" in capsys.readouterr().err
    assert "shard" in json.loads(Path(run.paths[0]).read_text())  # untouched


# --- What the merge refuses ----------------------------------------------------------------------


def _change(*keys, value):
    """Sets ``keys`` (a path into shard 2's document) to ``value``."""
    def apply(run):
        target = run.shards[1]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return apply


REFUSALS = {
    "a shard missing": (lambda run: run.shards.pop(), "shard 2/2 missing"),
    "a shard given twice": (lambda run: run.shards.append(copy.deepcopy(run.shards[0])), "shard 1/2 is given 2 times"),
    "a file that is not a shard's": (lambda run: run.shards[1].pop("shard"), "is not a shard's results"),
    "another tier": (_change("tier", value="full"), "differ in tier"),
    "another plan": (_change("shard", "plan", value="plan-2"), "differ in plan"),
    "another N": (_change("shard", "total", value=3), "differ in shard count N"),
    "another unit": (_change("shard", "by", value="model"), "differ in unit (--shard-by)"),
    "another testbed": (_change("testbed", value="x86-64-v3"), "differ in testbed"),
    "another data set": (_change("dataset_sha256", value="e"), "differ in data set"),
    "another case count": (_change("shard", "cases_total", value=2), "differ in whole run's case count"),
    "another baseline": (_change("baseline", "own", value=False), "differ in baselines judged against"),
    "an interrupted shard": (lambda run: run.shards[1]["shard"].pop("outcome"), "has no recorded outcome"),
    "a shard that lacks a case": (lambda run: run.shards[1]["cases"].pop(), "lacks cases it was to judge"),
    "a case in two shards": (lambda run: run.shards[1]["cases"].append(copy.deepcopy(run.shards[0]["cases"][0])),
                             "case cnn-float32-litert is in two shards"),
    "rows of an earlier run": (lambda run: run.shards[1]["cases"][0].update(measured_by={"run_id": "old"}),
                               "holds rows of an earlier run"),
    "a count the shards do not add up to": (
        lambda run: [s["shard"].update(cases_total=5) for s in run.shards], "judge 4 cases in all, but each counted 5"),
    "a baselines file that is not here": (
        lambda run: [s["baseline"].update(path=str(run.tmp / "gone" / "smoke.json")) for s in run.shards],
        "cannot re-judge the verdicts"),
    "a baselines file that changed": (
        lambda run: run.baseline_path.write_text(run.baseline_path.read_text().replace(
            json.loads(run.baseline_path.read_text())["cases"][BORDERLINE]["correct_bits"],
            evidence.pack(run.predictions[BORDERLINE] == LABELS))),
        "the baselines file changed since the shards ran"),
    "damaged predictions": (lambda run: run.shards[1]["cases"][0].update(predictions="AAAA"),
                            "its per-image record 'predictions' holds 3 bytes"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_inputs_that_cannot_be_merged_are_refused_with_exit_2(run, capsys, name):
    mutate, says = REFUSALS[name]
    mutate(run)
    run.write()
    code, _ = _merge(run)
    error = capsys.readouterr().err
    assert code == merging.EXIT_BAD_INPUT, error
    assert says in error, error
    assert "Traceback" not in error
    assert not (run.tmp / "merged" / "smoke" / "results.json").exists()


def test_the_results_loader_checks_predictions_like_correct_bits(run):
    path = Path(run.paths[0])
    assert load_results(path)["cases"][0]["predictions"]
    document = json.loads(path.read_text())
    document["cases"][0]["predictions"] = evidence.pack_predictions(run.predictions["cnn-float32-litert"][:-2])
    path.write_text(json.dumps(document))
    with pytest.raises(ReportError, match=r"case cnn-float32-litert: its per-image record 'predictions' holds 999"):
        load_results(path)
    document["cases"][0]["correct_bits"] = "not base64!"
    path.write_text(json.dumps(document))
    with pytest.raises(ReportError, match=r"'correct_bits' is not valid base64"):
        load_results(path)
