"""Merging a run's results.json into the previous one (bench.publish.merged_results)."""

from __future__ import annotations

from bench.publish import TIMING_FIELDS, merged_results

ENV = {"tensorflow": "2.21.0", "cpu": {"model": "AMD EPYC", "cores": 2}}


def _case(cid: str, recipe: str = "r1", **fields) -> dict:
    model, mode, backend = cid.split("-")
    return {"id": cid, "model": model, "mode": mode, "backend": backend, "accuracy": 0.9,
            "recipe_hash": recipe, **fields}


def _doc(cases: list[dict], environment: dict = ENV, created: str = "2026-11-30T03:00:00+00:00") -> dict:
    return {"schema": 1, "dataset_sha256": "d", "environment": environment, "created": created,
            "cases": cases, "agreement": [], "models": {}, "harness": {}, "layer_errors": {}}


TIMED = {"latency_ms_b1": 1.5, "throughput_ips": 900.0, "speedup_vs_float": 2.4,
         "speedup_target": 2.5, "speedup_gate": ">= 1.1x"}


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


def test_another_data_set_starts_over():
    previous = {**_doc([_case("cnn-float32-litert", **TIMED)]), "dataset_sha256": "other"}
    current = _doc([_case("cnn-ptq_int8-litert")])
    assert [c["id"] for c in merged_results(previous, current)["cases"]] == ["cnn-ptq_int8-litert"]


def test_the_report_says_which_timings_are_carried_over():
    from bench.report import render_full_matrix

    previous = _doc([_case("cnn-ptq_int8-litert", **TIMED)])
    merged = merged_results(previous, _doc([_case("cnn-ptq_int8-litert")], created="2026-11-30T04:00:00+00:00"))
    assert "Timings of 1 cases were measured by an earlier run on this machine (2026-11-30T03:00:00+00:00)" \
        in render_full_matrix(merged)
    assert "earlier run" not in render_full_matrix(_doc([_case("cnn-ptq_int8-litert", **TIMED)]))
