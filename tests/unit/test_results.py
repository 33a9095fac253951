"""Tests of bench.results: case ids, case order, and the versioned loader of results.json (the
baselines loader is tested in test_baseline.py, beside what an update writes)."""

from __future__ import annotations

import json
import re

import pytest

from bench import environment, results
from bench.errors import BaselineError, ReportError
from bench.models import MODELS
from bench.modes import MODES


def write(path, document) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def case(cid: str, **fields) -> dict:
    return {"id": cid, "status": "passed", **fields}


# --------------------------------------------------------------------------------------------
# Case ids


def test_case_id_round_trips():
    assert results.case_id("cnn", "ptq_int8", "litert") == "cnn-ptq_int8-litert"
    assert results.parse_case_id("cnn-ptq_int8-litert") == ("cnn", "ptq_int8", "litert")


@pytest.mark.parametrize("cid", ["cnn-ptq_int8", "cnn-ptq-int8-litert", "cnn--litert", "", None, 3])
def test_parse_case_id_refuses_what_is_not_three_names(cid):
    with pytest.raises(ValueError, match="not a case id"):
        results.parse_case_id(cid)
    assert not results.is_case_id(cid)


@pytest.mark.parametrize("names", [("cnn", "ptq-int8", "litert"), ("", "float32", "keras")])
def test_case_id_refuses_names_it_could_not_read_back(names):
    with pytest.raises(ValueError):
        results.case_id(*names)


def test_case_parts_prefer_the_fields_and_fall_back_to_the_id():
    assert results.case_parts({"id": "vgg16-qat_int8-keras"}) == ("vgg16", "qat_int8", "keras")
    assert results.case_parts({"id": "x", "model": "cnn", "mode": "float32", "backend": "litert"}) \
        == ("cnn", "float32", "litert")
    assert results.case_parts({"id": "vgg16-qat_int8-keras", "model": None, "mode": "float32"}) \
        == ("vgg16", "float32", "keras")


# --------------------------------------------------------------------------------------------
# Case order


def test_cases_sort_in_registration_order_with_unknown_names_last_alphabetically():
    model, mode, backend = MODELS.names()[-1], MODES.names()[0], results._backend_names()[0]
    ids = [f"zeta-{mode}-{backend}", f"alpha-{mode}-{backend}", f"{model}-{mode}-zzz",
           f"{model}-{mode}-aaa", f"{model}-{mode}-{backend}", f"{MODELS.names()[0]}-{mode}-{backend}"]
    assert results.sort_case_ids(ids) == [
        f"{MODELS.names()[0]}-{mode}-{backend}", f"{model}-{mode}-{backend}", f"{model}-{mode}-aaa",
        f"{model}-{mode}-zzz", f"alpha-{mode}-{backend}", f"zeta-{mode}-{backend}"]


def test_every_registered_combination_sorts_as_the_registries_list_it():
    combinations = [(model, mode, backend) for model in MODELS.names() for mode in MODES.names()
                    for backend in results._backend_names()]
    records = [{"model": model, "mode": mode, "backend": backend}
               for model, mode, backend in reversed(combinations)]
    assert [results.case_parts(record) for record in results.sort_cases(records)] == combinations


# --------------------------------------------------------------------------------------------
# results.json


def test_load_results_missing_file_says_to_run_the_bench(tmp_path):
    with pytest.raises(ReportError, match=r"results file .* does not exist.*nox -s bench"):
        results.load_results(tmp_path / "results.json")


def test_load_results_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema": 2, "cases": [', encoding="utf-8")
    with pytest.raises(ReportError, match=r"not valid JSON.*line 1"):
        results.load_results(path)


def test_load_results_newer_schema_says_newer_version_and_what_to_do(tmp_path):
    path = tmp_path / "results.json"
    write(path, {"schema": 99, "cases": []})
    with pytest.raises(ReportError, match=r"schema 99.*newer version.*reads schemas 1 to 2.*update "
                                          r"this checkout.*nox -s bench"):
        results.load_results(path)


@pytest.mark.parametrize("document", [
    {"cases": []},
    {"schema": True, "cases": []},
    {"schema": "1", "cases": []},
    {"schema": 0, "cases": []},
    {"schema": 3, "cases": []},
    [1, 2],
    {"schema": 1},
    {"schema": 1, "cases": [{"model": "cnn"}]},
    {"schema": 2, "cases": [{"id": "cnn-float32"}]},
])
def test_load_results_refuses_what_it_does_not_know(tmp_path, document):
    path = tmp_path / "results.json"
    write(path, document)
    with pytest.raises(ReportError, match=re.escape(str(path))):
        results.load_results(path)


def test_schema_1_results_migrate_their_one_environment_to_every_case(tmp_path):
    env = {"tensorflow": "2.21.0"}
    path = tmp_path / "results.json"
    write(path, {"schema": 1, "environment": env, "cases": [case("cnn-float32-litert")]})
    loaded = results.load_results(path)
    name = environment.fingerprint_id(env)
    assert loaded["schema"] == results.RESULTS_SCHEMA == 2
    assert loaded["environment"] == env and loaded["environments"] == {name: env}
    assert loaded["cases"][0]["environment"] == name


def test_schema_2_results_load_unchanged(tmp_path):
    document = {"schema": 2, "environments": {}, "cases": [case("cnn-float32-litert")]}
    path = tmp_path / "results.json"
    write(path, document)
    assert results.load_results(path) == document


# --------------------------------------------------------------------------------------------
# Either document


def test_either_loader_tells_the_documents_apart(tmp_path):
    results_path, baselines_path = tmp_path / "results.json", tmp_path / "smoke.json"
    write(results_path, {"schema": 2, "cases": [case("cnn-float32-litert")]})
    write(baselines_path, {"schema": 1, "tier": "smoke", "cases": {"cnn-float32-litert": {}}})
    assert isinstance(results.load_results_or_baselines(results_path)["cases"], list)
    migrated = results.load_results_or_baselines(baselines_path)
    assert migrated["schema"] == 3 and "environment" in migrated["cases"]["cnn-float32-litert"]


def test_either_loader_refuses_each_document_by_its_own_rules(tmp_path):
    path = tmp_path / "smoke.json"
    write(path, {"schema": 2, "tier": "smoke", "environments": {}, "cases": {"cnn-float32-litert": {}}})
    with pytest.raises(BaselineError, match="names environment"):
        results.load_results_or_baselines(path)
    write(path, {"schema": 2, "cases": [{"id": 3}]})
    with pytest.raises(ReportError, match="case #0"):
        results.load_results_or_baselines(path)
    write(path, {"schema": 2, "cases": "none"})
    with pytest.raises(ReportError, match="no 'cases' list or object"):
        results.load_results_or_baselines(path)
