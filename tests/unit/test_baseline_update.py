"""What an update of the baselines takes (bench.baseline.decide_update), the history it keeps, and
how rows of other runs and cases that did not run reach a report (bench.publish.merged_results,
REPORT.md, compare)."""

from __future__ import annotations

import pytest

from bench import baseline, environment
from bench.publish import merged_results, summary_lines
from bench.report.compare import compare
from bench.report.compare_render import render_compare
from bench.report.sections import render_markdown
from bench.results import BASELINE_SCHEMA

ENV = {"tensorflow": "2.21.0", "cpu": {"model": "AMD EPYC", "cores": 2, "machine": "x86_64",
                                       "flags": {"avx512_vnni": True, "avx512f": True, "avx2": True}}}
ENV_ID = environment.fingerprint_id(ENV)
AVX2 = {**ENV, "cpu": {**ENV["cpu"], "flags": {"avx2": True}}}
AVX2_ID = environment.fingerprint_id(AVX2)
WHEN = "2026-12-03T10:00:00+00:00"
PATH = "baselines/avx512-vnni/smoke.json"


def result(cid: str, status: str = "passed", verdict: str = "identical", lost: int = 0, gained: int = 0,
           **extra) -> dict:
    comparison = None if verdict == "no_baseline" else {
        "verdict": verdict, "lost": lost, "gained": gained, "net_loss_pp": 100 * (lost - gained) / 2000,
        "accuracy": 0.85, "baseline_accuracy": 0.85 + (lost - gained) / 2000}
    return {"id": cid, "status": status, "baseline_verdict": verdict, "baseline_comparison": comparison,
            "accuracy": 0.85, "failures": ["drop too large"] if status == "failed" else [], **extra}


# --------------------------------------------------------------------------------------------
# --accept


def test_accepts_parse_case_and_reason():
    assert baseline.parse_accepts(["cnn-ptq_int8-litert=new converter rounds differently (#123)"]) == {
        "cnn-ptq_int8-litert": "new converter rounds differently (#123)"}


@pytest.mark.parametrize("value", ["cnn-ptq_int8-litert", "cnn-ptq_int8-litert=", "=why", "cnn=why",
                                   "cnn-ptq_int8-litert=  "])
def test_an_accept_without_a_case_or_a_reason_is_refused_with_the_form_expected(value):
    with pytest.raises(ValueError, match="expected CASE=REASON"):
        baseline.parse_accepts([value])


def test_an_accept_naming_a_case_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        baseline.parse_accepts(["cnn-ptq_int8-litert=a", "cnn-ptq_int8-litert=b"])


# --------------------------------------------------------------------------------------------
# Which cases an update takes


@pytest.mark.parametrize("verdict", ["identical", "drift", "improved", "no_baseline"])
def test_new_identical_drift_and_improved_cases_are_taken_without_accept(verdict):
    decision = baseline.decide_update([result("cnn-float32-litert", verdict=verdict)], {}, WHEN, "abc", PATH)
    assert decision.taken == {"cnn-float32-litert"}
    assert decision.refused == decision.history == decision.notes == []


@pytest.mark.parametrize(("status", "verdict", "why"), [("failed", "regressed", "regressed"),
                                                         ("passed", "regressed", "regressed"),
                                                         ("failed", "drift", "failed"),
                                                         ("failed", "no_baseline", "failed")])
def test_a_regressed_or_failed_case_is_refused_with_how_to_accept_it(status, verdict, why):
    case = result("cnn-ptq_int8-litert", status=status, verdict=verdict, lost=40, gained=2)
    decision = baseline.decide_update([case], {}, WHEN, "abc", PATH)
    assert decision.taken == set() and decision.history == []
    (message,) = decision.refused
    assert message.startswith(f"cnn-ptq_int8-litert: {why}, refused") and PATH in message
    assert '--accept "cnn-ptq_int8-litert=<why the change is intended>"' in message
    assert ("no entry" in message) == (verdict == "no_baseline")


def test_an_accepted_regression_is_taken_and_recorded_in_the_history():
    case = result("cnn-ptq_int8-litert", verdict="regressed", lost=40, gained=2)
    decision = baseline.decide_update([case, result("cnn-float32-litert")],
                                      {"cnn-ptq_int8-litert": "new converter (#123)"}, WHEN, "abc123", PATH)
    assert decision.taken == {"cnn-ptq_int8-litert", "cnn-float32-litert"}
    (entry,) = decision.history
    assert entry == {"when": WHEN, "case": "cnn-ptq_int8-litert", "verdict": "regressed", "status": "passed",
                     "accepted": "regressed", "lost": 40, "gained": 2, "net_change_pp": -1.9,
                     "accuracy": 0.85, "baseline_accuracy": 0.869, "failures": [],
                     "reason": "new converter (#123)", "commit": "abc123"}


def test_an_accept_that_is_not_needed_or_names_a_case_not_run_is_a_note_and_records_nothing():
    decision = baseline.decide_update([result("cnn-float32-litert", verdict="drift")],
                                      {"cnn-float32-litert": "x", "cnn-bf16-openvino": "y"}, WHEN, None, PATH)
    assert decision.taken == {"cnn-float32-litert"} and decision.history == []
    assert decision.notes == [
        "--accept cnn-float32-litert: not needed, the case is drift and passed; its entry is updated and "
        "no history is recorded",
        "--accept cnn-bf16-openvino: the case did not run, nothing was accepted"]
    # A pytest-xdist worker runs a share: the other cases' accepts are not its business.
    assert len(baseline.decide_update([], {"cnn-bf16-openvino": "y"}, WHEN, None, PATH, ran_all=False).notes) == 0


def test_the_history_keeps_the_newest_entries_only():
    old = {"schema": BASELINE_SCHEMA, "tier": "smoke", "testbed": "avx512-vnni", "dataset_sha256": "d",
           "history": [{"case": f"old-{i}"} for i in range(baseline.HISTORY_KEPT)],
           "environments": {}, "cases": {}}
    new = {**old, "history": [{"case": "new"}]}
    merged = baseline.merge(old, new)
    assert len(merged["history"]) == baseline.HISTORY_KEPT
    assert merged["history"][0] == {"case": "old-1"} and merged["history"][-1] == {"case": "new"}
    # Another data set drops the cases (their bits are of other images), never the history.
    assert baseline.merge(old, {**new, "dataset_sha256": "e"})["history"][-1] == {"case": "new"}


def test_from_results_writes_only_the_cases_the_update_takes():
    results = {"tier": "smoke", "environment": ENV, "dataset_sha256": "d",
               "cases": [result("cnn-float32-litert"), result("cnn-ptq_int8-litert", verdict="regressed")]}
    assert set(baseline.from_results(results, {"cnn-float32-litert"})["cases"]) == {"cnn-float32-litert"}


# --------------------------------------------------------------------------------------------
# Rows of earlier runs and of other testbeds


def doc(cases: list[dict], env: dict = ENV, run_id: str = "run-2", created: str = "2026-12-03T04:00:00+00:00",
        **extra) -> dict:
    env_id = environment.fingerprint_id(env)
    return {"schema": 2, "dataset_sha256": "d", "environment": env, "environments": {env_id: env},
            "created": created, "run_id": run_id, "testbed": environment.testbed_name(env), "tier": "smoke",
            "command": "pytest", "cases": [{"environment": env_id, **c} for c in cases],
            "agreement": [], "models": {}, "harness": {}, "layer_errors": {}, **extra}


def row(cid: str, **fields) -> dict:
    model, mode, backend = cid.split("-")
    return {"id": cid, "model": model, "mode": mode, "backend": backend, "accuracy": 0.85,
            "status": "passed", "recipe_hash": "r", **fields}


def test_rows_of_another_testbed_are_never_merged_into_a_run():
    committed = doc([row("cnn-bf16-openvino", baseline_verdict="identical")], run_id="run-1")
    mine = doc([row("cnn-float32-litert")], env=AVX2)
    merged = merged_results(committed, mine)
    assert [c["id"] for c in merged["cases"]] == ["cnn-float32-litert"]
    assert merged["environments"] == {AVX2_ID: AVX2}


def test_rows_of_an_earlier_run_on_this_testbed_are_kept_marked_with_that_run():
    earlier = doc([row("vgg16-float32-litert")], run_id="run-1", created="2026-12-01T04:00:00+00:00")
    merged = merged_results(earlier, doc([row("cnn-float32-litert")]))
    kept = {c["id"]: c for c in merged["cases"]}
    assert "measured_by" not in kept["cnn-float32-litert"]
    assert kept["vgg16-float32-litert"]["measured_by"] == {
        "run_id": "run-1", "created": "2026-12-01T04:00:00+00:00", "testbed": "avx512-vnni",
        "command": "pytest"}
    # A third run keeps the first mark, not the second run's.
    third = merged_results(merged, doc([row("cnn-float32-litert")], run_id="run-3"))
    assert {c["id"]: c for c in third["cases"]}["vgg16-float32-litert"]["measured_by"]["run_id"] == "run-1"


def test_rows_of_another_worker_of_the_same_run_are_not_marked():
    merged = merged_results(doc([row("vgg16-float32-litert")]), doc([row("cnn-float32-litert")]))
    assert all("measured_by" not in c for c in merged["cases"])


def test_a_case_this_run_did_not_run_replaces_the_earlier_row():
    earlier = doc([row("cnn-bf16-openvino")], run_id="run-1")
    not_run = [{"id": "cnn-bf16-openvino", "reason": "no BF16", "kind": "capability", "in_baseline": True,
                "fails": False}]
    merged = merged_results(earlier, doc([row("cnn-float32-litert")], not_run=not_run))
    assert [c["id"] for c in merged["cases"]] == ["cnn-float32-litert"]
    assert merged["not_run"] == not_run


# --------------------------------------------------------------------------------------------
# Not run and the history, as the summary, REPORT.md and compare show them


NOT_RUN = [{"id": "cnn-bf16-openvino", "reason": "bf16 on openvino on this machine: no BF16 kernels",
            "kind": "capability", "in_baseline": True, "fails": False}]
HISTORY = [{"when": WHEN, "case": "cnn-ptq_int8-litert", "verdict": "regressed", "status": "passed",
            "accepted": "regressed", "lost": 40, "gained": 2, "net_change_pp": -1.9, "accuracy": 0.85,
            "baseline_accuracy": 0.869, "failures": [], "reason": "new converter (#123)", "commit": "abc123"}]


def test_the_summary_says_not_run_with_the_reason():
    lines = summary_lines(doc([row("cnn-float32-litert")], not_run=NOT_RUN), [], None)
    assert "  - cnn-bf16-openvino: not run: bf16 on openvino on this machine: no BF16 kernels" in lines


def test_report_lists_cases_not_run_and_the_baseline_history_and_marks_earlier_rows():
    results = doc([row("cnn-float32-litert"),
                   row("vgg16-float32-litert", measured_by={"created": "2026-12-01T04:00:00+00:00",
                                                            "testbed": "avx512-vnni"})],
                  not_run=NOT_RUN, baseline={"path": PATH, "history": HISTORY, "note": "n"})
    text = render_markdown(results)
    assert "## Not run" in text and "not run: bf16 on openvino on this machine: no BF16 kernels" in text
    assert "1 baseline case not run." in text
    assert "passed (earlier run 2026-12-01, testbed avx512-vnni)" in text
    history = text.split("## Baseline history", 1)[1]
    assert "new converter (#123)" in history and "40 / 2" in history and "-1.90" in history and "abc123" in history
    # Without any accepted change the section says so (it is never silently absent).
    empty = render_markdown({**results, "baseline": {"path": PATH, "history": []}})
    assert "No accepted changes in the history" in empty


def test_compare_shows_a_case_the_run_did_not_run_as_not_run_never_identical_and_the_history():
    bits = {"correct_bits": "AA==", "n_test": 8}
    before = {"schema": BASELINE_SCHEMA, "tier": "smoke", "testbed": "avx512-vnni", "history": HISTORY,
              "environments": {ENV_ID: ENV}, "dataset_sha256": "d",
              "cases": {"cnn-bf16-openvino": {"accuracy": 0.85, "environment": ENV_ID, **bits},
                        "cnn-float32-litert": {"accuracy": 0.85, "environment": ENV_ID, **bits}}}
    after = doc([row("cnn-float32-litert", **bits)], not_run=NOT_RUN)
    comparison = compare(before, after)
    assert [case.case_id for case in comparison.verdicts] == ["cnn-float32-litert"]
    assert comparison.not_run == (("cnn-bf16-openvino", NOT_RUN[0]["reason"]),)
    text = render_compare(comparison, include_unchanged=True)
    assert f"`cnn-bf16-openvino` | not run: {NOT_RUN[0]['reason']}" in text
    assert "1 not run" in text and "only in before" not in text
    assert "## Baseline history" in text and "new converter (#123)" in text
