"""A case's typed record serializes to the results.json row it always was: same keys, same order."""

from __future__ import annotations

import dataclasses

from bench.case_record import CaseRecord

# The row's keys in the order results.json has always written them (the order of the dict that
# BenchRun.run_case built before the record was typed): a reorder changes every results.json.
ROW_KEYS = [
    "id", "model", "mode", "backend", "accuracy", "float_accuracy", "accuracy_drop_pp", "drop_ci95_pp",
    "mcnemar_p", "images_lost", "images_gained", "size_bytes", "float_size_bytes", "size_ratio", "params",
    "n_test", "recipe_hash", "int8_format", "artifact_sha256", "eval_batch", "batch_invariance",
    "correct_bits", "predictions", "environment", "baseline_verdict", "baseline_comparison", "status",
    "failures",
]


def record() -> CaseRecord:
    measured = {field.name: f"<{field.name}>" for field in dataclasses.fields(CaseRecord) if field.name in ROW_KEYS[:24]}
    return CaseRecord(**measured)


def test_the_row_has_the_results_json_keys_in_their_order():
    assert list(record().as_dict()) == ROW_KEYS


def test_the_row_holds_the_fields_values_and_shares_them():
    case = record()
    case.batch_invariance = invariance = {"eval_batch": 1}
    case.failures.append("cnn-ptq_int8-litert: a failure")
    row = case.as_dict()
    assert row["batch_invariance"] is invariance
    assert row["failures"] == ["cnn-ptq_int8-litert: a failure"]
    assert row["id"] == "<id>" and row["status"] is None
