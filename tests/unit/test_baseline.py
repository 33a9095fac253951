"""Tests of bench.baseline: strict loading, atomic writing with a diff, merging, and what is kept."""

from __future__ import annotations

import json

import pytest

from bench import baseline
from bench.errors import BaselineError


def payload(**cases) -> dict:
    return {
        "schema": baseline.SCHEMA,
        "tier": "smoke",
        "environment": {"tensorflow": "2.21.0", "numpy": "2.1.0"},
        "dataset_sha256": "abc",
        "cases": cases or {"cnn-float32-litert": {"accuracy": 0.9, "size_bytes": 100_000}},
    }


@pytest.fixture
def path(tmp_path):
    return baseline.baseline_path(tmp_path, "smoke")


def test_baseline_path_and_update_command(tmp_path):
    assert baseline.baseline_path(tmp_path, "full") == tmp_path / "baselines" / "full.json"
    assert "--tier full" in baseline.update_command("full")


# --- load --------------------------------------------------------------------------------------


def test_load_missing_file_is_none(path):
    assert not path.exists()
    assert baseline.load(path) is None


def test_load_round_trip(path):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload()))
    assert baseline.load(path) == payload()


def test_load_malformed_json_says_how_to_restore_or_regenerate(path):
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "cases": {')
    with pytest.raises(BaselineError) as info:
        baseline.load(path)
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message
    assert f"git checkout {path}" in message
    assert baseline.update_command("smoke") in message


@pytest.mark.parametrize("text", ["[1, 2]", '{"cases": {}}', '{"schema": "1", "cases": {}}'])
def test_load_without_integer_schema_is_refused(path, text):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(BaselineError, match="no integer 'schema'"):
        baseline.load(path)


def test_load_newer_schema_is_refused(path):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**payload(), "schema": 99}))
    with pytest.raises(BaselineError) as info:
        baseline.load(path)
    message = str(info.value)
    assert "schema 99" in message and "newer" in message
    assert baseline.update_command("smoke") in message


@pytest.mark.parametrize("schema", [0, -1])
def test_load_older_schema_without_migration_is_refused(path, schema):
    """No migration exists to schema 1: an older file is a BaselineError, not a KeyError."""
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**payload(), "schema": schema}))
    with pytest.raises(BaselineError) as info:
        baseline.load(path)
    assert f"schema {schema}" in str(info.value)
    assert baseline.update_command("smoke") in str(info.value)


@pytest.mark.parametrize("cases", [None, [], "x"])
def test_load_without_cases_object_is_refused(path, cases):
    document = payload()
    if cases is None:
        del document["cases"]
    else:
        document["cases"] = cases
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineError) as info:
        baseline.load(path)
    assert "'cases'" in str(info.value) and baseline.update_command("smoke") in str(info.value)


# --- write -------------------------------------------------------------------------------------


def test_write_creates_the_file_atomically(path):
    diff = baseline.write(path, payload())
    assert sorted(p.name for p in path.parent.iterdir()) == ["smoke.json"]
    assert baseline.load(path) == payload()
    assert path.read_text().endswith("\n")
    assert (path.stat().st_mode & 0o777) == 0o644
    assert f"+++ {path} (new)" in diff
    assert '+  "schema": 1' in diff
    assert not any(line.startswith("-") and not line.startswith("---") for line in diff.splitlines())


def test_write_returns_a_diff_of_the_changed_value(path):
    baseline.write(path, payload())
    changed = payload(**{"cnn-float32-litert": {"accuracy": 0.91, "size_bytes": 100_000}})
    diff = baseline.write(path, changed)
    assert f"--- {path} (old)" in diff and f"+++ {path} (new)" in diff
    assert '-      "accuracy": 0.9,' in diff
    assert '+      "accuracy": 0.91,' in diff
    assert "size_bytes" not in "".join(line for line in diff.splitlines(True) if line[:1] in "+-"
                                       and not line.startswith(("+++", "---")))
    assert baseline.load(path)["cases"]["cnn-float32-litert"]["accuracy"] == 0.91
    assert sorted(p.name for p in path.parent.iterdir()) == ["smoke.json"]


def test_write_of_the_same_content_is_an_empty_diff(path):
    baseline.write(path, payload())
    before = path.read_text()
    assert baseline.write(path, payload()) == ""
    assert path.read_text() == before


# --- merge and from_results --------------------------------------------------------------------


def test_merge_keeps_cases_not_in_the_new_run():
    old = payload(**{"cnn-float32-litert": {"accuracy": 0.90}, "vgg16-ptq_int8-litert": {"accuracy": 0.93}})
    new = payload(**{"cnn-float32-litert": {"accuracy": 0.91}, "cnn-ptq_int8-litert": {"accuracy": 0.905}})
    new["environment"] = {"tensorflow": "2.21.1"}
    merged = baseline.merge(old, new)
    assert merged["cases"] == {
        "cnn-float32-litert": {"accuracy": 0.91},  # the new run wins
        "vgg16-ptq_int8-litert": {"accuracy": 0.93},  # kept, not dropped
        "cnn-ptq_int8-litert": {"accuracy": 0.905},
    }
    assert merged["environment"] == {"tensorflow": "2.21.1"}
    assert set(old["cases"]) == {"cnn-float32-litert", "vgg16-ptq_int8-litert"}  # inputs untouched


def test_merge_with_no_old_baseline_is_the_new_one():
    new = payload()
    assert baseline.merge(None, new) == new


def result_record(case_id: str, status: str, **extra) -> dict:
    record = {
        "id": case_id, "status": status, "accuracy": 0.9, "accuracy_drop_pp": 0.2, "size_bytes": 1234,
        "recipe_hash": "r1", "latency_ms_b1": 1.5, "speedup_vs_float": None,
        "float_accuracy": 0.902, "failures": [], "notes": ["x"], "mcnemar_p": 0.3, "model": "cnn",
    }
    return {**record, **extra}


def test_from_results_keeps_only_the_kept_fields_of_judged_cases():
    results = {
        "tier": "smoke", "environment": {"numpy": "2.1.0"}, "dataset_sha256": "abc",
        "cases": [
            result_record("cnn-ptq_int8-litert", "passed"),
            result_record("cnn-ptq_int8-onnxruntime", "failed"),
            result_record("cnn-ptq_dynamic-litert", "not_comparable"),
            result_record("cnn-ptq_int8-keras", "skipped"),
            result_record("cnn-qat_int8-litert", "error"),
        ],
    }
    out = baseline.from_results(results)
    assert out["schema"] == baseline.SCHEMA and out["tier"] == "smoke"
    assert out["environment"] == {"numpy": "2.1.0"} and out["dataset_sha256"] == "abc"
    assert set(out["cases"]) == {"cnn-ptq_int8-litert", "cnn-ptq_int8-onnxruntime", "cnn-ptq_dynamic-litert"}
    for case in out["cases"].values():
        assert set(case) <= set(baseline.KEPT_FIELDS)
        # None values (no speedup measured) are left out rather than stored as null.
        assert case == {"accuracy": 0.9, "accuracy_drop_pp": 0.2, "size_bytes": 1234,
                        "recipe_hash": "r1", "latency_ms_b1": 1.5}


def test_from_results_then_write_then_load(path):
    results = {"tier": "smoke", "environment": {}, "dataset_sha256": "abc",
               "cases": [result_record("cnn-float32-litert", "passed")]}
    baseline.write(path, baseline.merge(baseline.load(path), baseline.from_results(results)))
    loaded = baseline.load(path)
    assert loaded["cases"]["cnn-float32-litert"]["accuracy"] == 0.9
