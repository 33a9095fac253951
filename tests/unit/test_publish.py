"""Merging a run's results.json into the previous one (bench.publish.merged_results), and the verdict
lines of the terminal summary (bench.publish.verdict_lines)."""

from __future__ import annotations

import numpy as np

from bench import environment, stats
from bench.environment import fingerprint_id
from bench.publish import TIMING_FIELDS, Published, merged_results, summary_lines, verdict_lines

ENV = {"tensorflow": "2.21.0", "cpu": {"model": "AMD EPYC", "cores": 2}}
ENV_ID = environment.fingerprint_id(ENV)


def _case(cid: str, recipe: str = "r1", **fields) -> dict:
    model, mode, backend = cid.split("-")
    return {"id": cid, "model": model, "mode": mode, "backend": backend, "accuracy": 0.9,
            "recipe_hash": recipe, **fields}


def _doc(cases: list[dict], environment: dict = ENV, created: str = "2026-11-30T03:00:00+00:00") -> dict:
    """A schema-2 results document; each case is stamped with the document's environment id."""
    env_id = fingerprint_id(environment)
    return {"schema": 2, "dataset_sha256": "d", "environment": environment,
            "environments": {env_id: environment}, "created": created,
            "cases": [{"environment": env_id, **c} for c in cases],
            "agreement": [], "models": {}, "harness": {}, "layer_errors": {}}


TIMED = {"latency_ms_b1": 1.5, "throughput_ips": 900.0, "speedup_vs_float": 2.4,
         "speedup_target": 2.5, "speedup_gate": ">= 1.1x",
         "speedup_vs_baseline": "2.40x against the baseline's 2.30x (floor 1.61x = 0.7 x baseline)"}


def test_timed_covers_every_timing_field():
    assert set(TIMED) == set(TIMING_FIELDS)


def test_a_run_without_latency_tests_keeps_the_timings_measured_before():
    previous = _doc([_case("cnn-ptq_int8-litert", **TIMED)])
    current = _doc([_case("cnn-ptq_int8-litert", accuracy=0.91)], created="2026-11-30T04:00:00+00:00")
    (case,) = merged_results(previous, current)["cases"]
    assert case["accuracy"] == 0.91  # the new measurement wins
    assert {f: case[f] for f in TIMING_FIELDS} == TIMED
    assert case["timings_from"] == "2026-11-30T03:00:00+00:00"


def test_new_timings_replace_old_ones():
    previous = _doc([_case("cnn-ptq_int8-litert", **TIMED)])
    current = _doc([_case("cnn-ptq_int8-litert", latency_ms_b1=1.2, throughput_ips=1000.0)])
    (case,) = merged_results(previous, current)["cases"]
    assert case["latency_ms_b1"] == 1.2 and "speedup_vs_float" not in case
    assert "timings_from" not in case


def test_timings_of_another_case_definition_are_not_carried():
    previous = _doc([_case("cnn-ptq_int8-litert", recipe="old", **TIMED)])
    current = _doc([_case("cnn-ptq_int8-litert", recipe="new")])
    (case,) = merged_results(previous, current)["cases"]
    assert not any(f in case for f in TIMING_FIELDS)


def test_timings_from_another_machine_are_not_carried():
    other = {**ENV, "cpu": {"model": "Intel Xeon", "cores": 8}}
    previous = _doc([_case("cnn-ptq_int8-litert", **TIMED)], environment=other)
    current = _doc([_case("cnn-ptq_int8-litert")])
    (case,) = merged_results(previous, current)["cases"]
    assert not any(f in case for f in TIMING_FIELDS)


def test_carried_timings_keep_their_first_date_over_several_runs():
    first = _doc([_case("cnn-ptq_int8-litert", **TIMED)], created="2026-11-30T03:00:00+00:00")
    second = merged_results(first, _doc([_case("cnn-ptq_int8-litert")], created="2026-11-30T04:00:00+00:00"))
    third = merged_results(second, _doc([_case("cnn-ptq_int8-litert")], created="2026-11-30T05:00:00+00:00"))
    assert third["cases"][0]["timings_from"] == "2026-11-30T03:00:00+00:00"


def test_cases_this_run_did_not_repeat_are_kept_in_session_order():
    previous = _doc([_case("vgg16-float32-litert"), _case("cnn-float32-litert")])
    current = _doc([_case("cnn-ptq_int8-litert")])
    ids = [c["id"] for c in merged_results(previous, current)["cases"]]
    assert ids == ["cnn-float32-litert", "cnn-ptq_int8-litert", "vgg16-float32-litert"]


def test_another_results_schema_starts_over():
    previous = {**_doc([_case("cnn-float32-litert")]), "schema": 1}
    current = _doc([_case("cnn-ptq_int8-litert")])
    assert merged_results(previous, current) == current


def test_kept_rows_keep_the_environment_they_were_measured_in():
    other = {**ENV, "tensorflow": "2.20.0"}
    other_id = environment.fingerprint_id(other)
    previous = _doc([_case("vgg16-float32-litert"), _case("cnn-ptq_int8-litert")], environment=other)
    current = _doc([_case("cnn-ptq_int8-litert")])
    merged = merged_results(previous, current)
    by_id = {c["id"]: c for c in merged["cases"]}
    assert by_id["vgg16-float32-litert"]["environment"] == other_id  # kept, not re-stamped
    assert by_id["cnn-ptq_int8-litert"]["environment"] == ENV_ID  # repeated: this run's
    assert merged["environments"] == {other_id: other, ENV_ID: ENV}
    assert merged["environment"] == ENV


def test_environments_no_row_uses_are_dropped():
    other = {**ENV, "tensorflow": "2.20.0"}
    previous = _doc([_case("cnn-ptq_int8-litert")], environment=other)
    current = _doc([_case("cnn-ptq_int8-litert")])
    assert merged_results(previous, current)["environments"] == {ENV_ID: ENV}


def test_another_data_set_starts_over():
    previous = {**_doc([_case("cnn-float32-litert", **TIMED)]), "dataset_sha256": "other"}
    current = _doc([_case("cnn-ptq_int8-litert")])
    assert [c["id"] for c in merged_results(previous, current)["cases"]] == ["cnn-ptq_int8-litert"]


def test_the_report_says_which_timings_are_carried_over():
    from bench.report.sections import render_full_matrix

    previous = _doc([_case("cnn-ptq_int8-litert", **TIMED)])
    merged = merged_results(previous, _doc([_case("cnn-ptq_int8-litert")], created="2026-11-30T04:00:00+00:00"))
    assert "Timings of 1 cases were measured by an earlier run on this machine (2026-11-30T03:00:00+00:00)" \
        in render_full_matrix(merged)
    assert "earlier run" not in render_full_matrix(_doc([_case("cnn-ptq_int8-litert", **TIMED)]))


# --- verdict lines ------------------------------------------------------------------------------

ALPHA = stats.per_case_alpha(32)


def _judged(cid: str, lost: int, gained: int, causes: tuple[str, ...] = (), n: int = 2000) -> dict:
    baseline = np.zeros(n, bool)
    baseline[: n // 2] = True
    current = baseline.copy()
    current[:lost] = False
    current[n // 2: n // 2 + gained] = True
    verdict = stats.judge(current, baseline, ALPHA, 0.5, causes=causes)
    return _case(cid, baseline_verdict=verdict.verdict, baseline_comparison=verdict.as_dict())


def test_verdict_lines_count_verdicts_and_list_every_case_that_is_not_identical():
    cases = [
        _judged("cnn-float32-litert", 0, 0),
        _judged("cnn-ptq_int8-litert", 3, 4, causes=("onnxruntime 1.32.0 -> 1.33.0",)),
        _judged("cnn-ptq_int8-onnxruntime", 20, 0),
        _judged("cnn-qat_int8-litert", 0, 20),
        _judged("vgg16-float32-litert", 0, 0, causes=("lock aaa -> bbb",)),
        _case("vgg16-ptq_int8-litert", baseline_verdict="no_baseline", baseline_comparison=None),
        _case("mobilenet-ptq_int8-litert"),  # not judged at all (an older row): not counted
    ]
    lines = verdict_lines(cases)
    assert lines[0] == ""
    assert lines[1] == ("quantbench against the baseline: "
                        "2 identical, 1 drift, 1 improved, 1 regressed, 1 no_baseline")
    assert lines[2:] == [
        "  - cnn-ptq_int8-litert: drift: 3 lost, 4 gained against the baseline "
        "(one-sided McNemar p 0.77, alpha 0.00016); differences: onnxruntime 1.32.0 -> 1.33.0",
        "  - cnn-ptq_int8-onnxruntime: regressed: 20 lost, 0 gained against the baseline "
        "(one-sided McNemar p 9.5e-07, alpha 0.00016)",
        "  - cnn-qat_int8-litert: improved: 0 lost, 20 gained against the baseline "
        "(one-sided McNemar p 9.5e-07, alpha 0.00016); update the baselines to keep the gain",
        "  - identical on every image despite lock aaa -> bbb: vgg16-float32-litert",
    ]


def test_verdict_lines_are_empty_when_nothing_was_judged():
    assert verdict_lines([]) == []
    assert verdict_lines([_case("cnn-float32-litert"), _case("cnn-ptq_int8-litert")]) == []


def test_verdict_lines_of_an_all_identical_run_are_only_the_count():
    cases = [_judged("cnn-float32-litert", 0, 0), _judged("cnn-ptq_int8-litert", 0, 0)]
    assert verdict_lines(cases) == ["", "quantbench against the baseline: 2 identical"]


def test_the_summary_shows_the_verdicts_before_the_regressions_and_the_baselines_diff():
    regressed = {**_judged("cnn-ptq_int8-litert", 20, 0), "failures": ["cnn-ptq_int8-litert: regressed ..."]}
    results = {**_doc([_judged("cnn-float32-litert", 0, 0), regressed]), "models": {}}
    lines = summary_lines(results, [], Published(results_path="r.json", report_path=None,
                                                 baseline_diff="~ cnn-ptq_int8-litert: accuracy 1 -> 2\n"))
    verdicts = lines.index("quantbench against the baseline: 1 identical, 1 regressed")
    regressions = lines.index("quantbench regressions (1):")
    assert verdicts < regressions
    assert lines[regressions + 1] == "  - cnn-ptq_int8-litert: regressed ..."
    assert lines[-2:] == ["quantbench baselines updated:", "~ cnn-ptq_int8-litert: accuracy 1 -> 2"]


def test_the_summary_says_when_an_update_changed_nothing():
    results = {**_doc([]), "models": {}}
    lines = summary_lines(results, [], Published(results_path="r.json", report_path=None, baseline_diff=""))
    assert lines[-2:] == ["quantbench baselines updated:", "(no change)"]


def test_portability_rows_of_models_this_run_did_not_try_are_kept():
    row = {"file": "cnn-ptq_int8-onnxruntime", "runtime": "openvino", "runs": True}
    previous = {**_doc([_case("cnn-ptq_int8-onnxruntime")]),
                "portability": [{"model": "cnn", **row}, {"model": "vgg16", **row, "file": "vgg16-x"}]}
    current = {**_doc([_case("vgg16-ptq_int8-onnxruntime")]),
               "portability": [{"model": "vgg16", **row, "file": "vgg16-y"}]}
    merged = merged_results(previous, current)["portability"]
    assert [(r["model"], r["file"]) for r in merged] == [("cnn", "cnn-ptq_int8-onnxruntime"), ("vgg16", "vgg16-y")]
