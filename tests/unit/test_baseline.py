"""Tests of the baselines file: its strict loading and migration (bench.results), and what an
update writes (bench.baseline): per-case environments, merging, and the per-case diff it prints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from bench import baseline, environment, evidence
from bench.errors import BaselineError
from bench.results import BASELINE_SCHEMA, baseline_path, load_baselines, update_command

REPO = Path(__file__).resolve().parents[2]
ENV = {"tensorflow": "2.21.0", "numpy": "2.1.0"}
ENV_ID = environment.fingerprint_id(ENV)
N = 2000


def bits(n: int = N, seed: int = 0, right: float = 0.9) -> str:
    return evidence.pack(np.random.default_rng(seed).random(n) < right)


def case(**fields) -> dict:
    """A schema-2 case entry measured in ENV (with per-image bits of N images)."""
    return {"accuracy": 0.9, "size_bytes": 100_000, "n_test": N, "correct_bits": bits(),
            "environment": ENV_ID, **fields}


def payload(**cases) -> dict:
    return {
        "schema": BASELINE_SCHEMA,
        "tier": "smoke",
        "testbed": environment.testbed_name(ENV),
        "history": [],
        "dataset_sha256": "abc",
        "environments": {ENV_ID: ENV},
        "cases": cases or {"cnn-float32-litert": case()},
    }


def write_raw(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


@pytest.fixture
def path(tmp_path):
    return baseline_path(tmp_path, "smoke", "avx512-vnni")


def test_schema_is_3():
    assert BASELINE_SCHEMA == 3


def test_baseline_path_and_update_command(tmp_path):
    assert baseline_path(tmp_path, "full", "x86-64-v3") == tmp_path / "baselines" / "x86-64-v3" / "full.json"
    assert "--tier full" in update_command("full")
    assert update_command("smoke", ["cnn", "vgg16"]).endswith("--tier smoke --models cnn,vgg16 --update-baselines")


# --- load --------------------------------------------------------------------------------------


def test_load_missing_file_is_none(path):
    assert not path.exists()
    assert load_baselines(path) is None


def test_load_round_trip(path):
    write_raw(path, payload())
    assert load_baselines(path) == payload()


def test_load_malformed_json_says_how_to_restore_or_regenerate(path):
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 2, "cases": {')
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message
    assert f"git checkout {path}" in message
    assert update_command("smoke") in message


@pytest.mark.parametrize(("text", "says"), [
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"cases": {}}', "no integer 'schema'"),
    ('{"schema": "1", "cases": {}}', "no integer 'schema'"),
    ('{"schema": true, "cases": {}}', "no integer 'schema'"),  # bool is an int in Python
])
def test_load_without_integer_schema_is_refused(path, text, says):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(BaselineError, match=says):
        load_baselines(path)


def test_load_newer_schema_is_refused(path):
    write_raw(path, {**payload(), "schema": 99})
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    message = str(info.value)
    assert "schema 99" in message and "newer" in message
    assert update_command("smoke") in message


@pytest.mark.parametrize("schema", [0, -1])
def test_load_older_schema_without_migration_is_refused(path, schema):
    """No migration exists to schema 1: an older file is a BaselineError, not a KeyError."""
    write_raw(path, {**payload(), "schema": schema})
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    assert f"schema {schema}" in str(info.value)
    assert update_command("smoke") in str(info.value)


@pytest.mark.parametrize("cases", [None, [], "x"])
def test_load_without_cases_object_is_refused(path, cases):
    document = payload()
    if cases is None:
        del document["cases"]
    else:
        document["cases"] = cases
    write_raw(path, document)
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    assert "'cases'" in str(info.value) and update_command("smoke") in str(info.value)


def assert_names_file_case_and_fix(message: str, path: Path, case_id: str) -> None:
    assert str(path) in message
    assert f"case {case_id}" in message
    assert f"git checkout {path}" in message
    model = case_id.partition("-")[0]
    assert update_command("smoke", [model]) in message


@pytest.mark.parametrize(
    ("correct_bits", "n_test", "says"),
    [
        ("not base64!", N, "not valid base64"),
        (bits(1000), N, "holds 125 bytes, but 2,000 images need 250"),  # recorded on fewer images
        (bits(10_000), N, "holds 1250 bytes, but 2,000 images need 250"),  # on more
        (evidence.pack(np.ones(2000, bool)), 1999, "bits set past image 1,999"),  # same bytes, one image less
        (12345, N, "is int, not a base64 string"),
        (None, N, "is NoneType, not a base64 string"),
    ],
)
def test_load_refuses_a_case_with_corrupt_or_wrong_length_bits(path, correct_bits, n_test, says):
    good = case()
    bad = case(correct_bits=correct_bits, n_test=n_test)
    write_raw(path, payload(**{"cnn-float32-litert": good, "vgg16-ptq_int8-litert": bad}))
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    message = str(info.value)
    assert_names_file_case_and_fix(message, path, "vgg16-ptq_int8-litert")
    assert "correct_bits" in message and says in message
    assert "cnn-float32-litert" not in message


@pytest.mark.parametrize("n_test", [None, 0, -5, "2000", 2000.0])
def test_load_refuses_bits_without_a_usable_image_count(path, n_test):
    entry = case()
    if n_test is None:
        del entry["n_test"]
    else:
        entry["n_test"] = n_test
    write_raw(path, payload(**{"mobilenet-qat_int8-onnxruntime": entry}))
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    assert_names_file_case_and_fix(str(info.value), path, "mobilenet-qat_int8-onnxruntime")
    assert "'n_test'" in str(info.value)


def test_load_accepts_a_case_without_bits(path):
    """A case recorded before per-image evidence loads; the session asks for it to be re-recorded."""
    entry = case()
    del entry["correct_bits"], entry["n_test"]
    write_raw(path, payload(**{"cnn-float32-litert": entry}))
    assert load_baselines(path)["cases"]["cnn-float32-litert"] == entry


@pytest.mark.parametrize("environment_id", ["0123456789ab", None])
def test_load_refuses_a_case_naming_an_environment_the_file_lacks(path, environment_id):
    entry = case(environment=environment_id)
    if environment_id is None:
        del entry["environment"]
    write_raw(path, payload(**{"cnn-ptq_int8-litert": entry}))
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    message = str(info.value)
    assert_names_file_case_and_fix(message, path, "cnn-ptq_int8-litert")
    assert repr(environment_id) in message and "'environments'" in message


@pytest.mark.parametrize("entry", [[], "x", 3])
def test_load_refuses_a_case_that_is_not_an_object(path, entry):
    write_raw(path, payload(**{"cnn-ptq_int8-litert": entry}))
    with pytest.raises(BaselineError) as info:
        load_baselines(path)
    assert_names_file_case_and_fix(str(info.value), path, "cnn-ptq_int8-litert")
    assert "not an object" in str(info.value)


# --- migration from schema 1 -------------------------------------------------------------------


def schema_1(**cases) -> dict:
    return {"schema": 1, "tier": "smoke", "environment": ENV, "dataset_sha256": "abc",
            "cases": cases or {"cnn-float32-litert": {"accuracy": 0.9, "size_bytes": 100_000},
                               "cnn-ptq_int8-litert": {"accuracy": 0.89, "size_bytes": 30_000}}}


def test_schema_1_migrates_its_one_environment_to_every_case(path):
    write_raw(path, schema_1())
    loaded = load_baselines(path)
    assert loaded["schema"] == 3 and loaded["history"] == []
    assert loaded["testbed"] == environment.testbed_name(ENV)
    assert "environment" not in loaded
    assert loaded["environments"] == {ENV_ID: ENV}
    assert loaded["cases"] == {
        "cnn-float32-litert": {"accuracy": 0.9, "size_bytes": 100_000, "environment": ENV_ID},
        "cnn-ptq_int8-litert": {"accuracy": 0.89, "size_bytes": 30_000, "environment": ENV_ID},
    }
    assert json.loads(path.read_text())["schema"] == 1  # loading never rewrites the file


def test_schema_1_without_an_environment_migrates_to_the_empty_one(path):
    document = schema_1()
    del document["environment"]
    write_raw(path, document)
    loaded = load_baselines(path)
    assert loaded["environments"] == {environment.fingerprint_id({}): {}}
    assert {c["environment"] for c in loaded["cases"].values()} == {environment.fingerprint_id({})}


# The smoke baselines as the last schema-1 harness wrote them (git show 9399c39:baselines/smoke.json).
SCHEMA1_SMOKE = REPO / "tests" / "unit" / "golden" / "baselines_schema1_smoke.json"


def test_real_schema1_baselines_migrate_to_one_environment():
    """A real schema-1 file, read only: every case gets its one environment."""
    committed = SCHEMA1_SMOKE
    before = committed.read_bytes()
    raw = json.loads(before)
    assert raw["schema"] == 1
    loaded = load_baselines(committed)
    assert committed.read_bytes() == before
    expected_id = environment.fingerprint_id(raw["environment"])
    assert loaded["schema"] == 3 and "environment" not in loaded
    assert loaded["environments"] == {expected_id: raw["environment"]}
    assert set(loaded["cases"]) == set(raw["cases"]) and len(loaded["cases"]) > 0
    for case_id, entry in loaded["cases"].items():
        assert entry == {**raw["cases"][case_id], "environment": expected_id}, case_id
    assert {k: loaded[k] for k in ("tier", "dataset_sha256")} == {k: raw[k] for k in ("tier", "dataset_sha256")}


def test_a_migrated_file_merged_with_one_new_case_keeps_the_old_environment_for_the_rest():
    committed = SCHEMA1_SMOKE
    old = load_baselines(committed)
    (old_id,) = old["environments"]
    new_env = {**old["environments"][old_id], "onnxruntime": "9.9.9"}
    new = {"schema": 2, "tier": "smoke", "dataset_sha256": old["dataset_sha256"],
           "environments": {environment.fingerprint_id(new_env): new_env},
           "cases": {"cnn-ptq_int8-litert": case(environment=environment.fingerprint_id(new_env))}}
    merged = baseline.merge(old, new)
    assert set(merged["environments"]) == {old_id, environment.fingerprint_id(new_env)}
    assert merged["cases"]["cnn-ptq_int8-litert"]["environment"] == environment.fingerprint_id(new_env)
    untouched = {cid: e for cid, e in merged["cases"].items() if cid != "cnn-ptq_int8-litert"}
    assert untouched and all(e["environment"] == old_id for e in untouched.values())
    assert untouched == {cid: e for cid, e in old["cases"].items() if cid != "cnn-ptq_int8-litert"}


# --- correct_of --------------------------------------------------------------------------------


def test_correct_of_returns_the_bits_for_the_same_image_count(path):
    outcomes = np.random.default_rng(3).random(N) < 0.8
    entry = case(correct_bits=evidence.pack(outcomes))
    assert np.array_equal(baseline.correct_of(path, "cnn-ptq_int8-litert", entry, N), outcomes)


@pytest.mark.parametrize("n", [1999, 10_000])
def test_correct_of_refuses_another_image_count(path, n):
    with pytest.raises(BaselineError) as info:
        baseline.correct_of(path, "cnn-ptq_int8-litert", case(), n)
    message = str(info.value)
    assert str(path) in message and "cnn-ptq_int8-litert" in message
    assert "records 2000 test images" in message and f"this run has {n:,}" in message
    assert update_command("smoke") in message


# --- write and the per-case diff ---------------------------------------------------------------


def test_write_creates_the_file_atomically(path):
    diff = baseline.write(path, payload())
    assert sorted(p.name for p in path.parent.iterdir()) == ["smoke.json"]
    assert load_baselines(path) == payload()
    assert path.read_text().endswith("\n")
    assert (path.stat().st_mode & 0o777) == 0o644
    assert diff == "+ cnn-float32-litert: added, accuracy 90.00 %, 100,000 bytes\n"


def test_write_returns_the_changed_value_per_case(path):
    baseline.write(path, payload())
    changed = payload(**{"cnn-float32-litert": case(accuracy=0.91)})
    diff = baseline.write(path, changed)
    assert diff == "~ cnn-float32-litert: accuracy 90.00 % -> 91.00 %\n"
    assert load_baselines(path)["cases"]["cnn-float32-litert"]["accuracy"] == 0.91
    assert sorted(p.name for p in path.parent.iterdir()) == ["smoke.json"]


def test_write_of_the_same_content_changes_no_case(path):
    baseline.write(path, payload())
    before = path.read_text()
    assert baseline.write(path, payload()) == "  (1 cases unchanged)\n"
    assert path.read_text() == before


def test_write_over_an_unreadable_file_lists_every_case_as_added(path):
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    diff = baseline.write(path, payload())
    assert diff.startswith("+ cnn-float32-litert: added")
    assert load_baselines(path) == payload()


def outcomes_with(lost: int, gained: int, n: int = N) -> tuple[str, str]:
    """(before, after) bits where ``after`` loses ``lost`` and gains ``gained`` images."""
    was = np.zeros(n, bool)
    was[: n // 2] = True
    now = was.copy()
    now[:lost] = False
    now[n // 2: n // 2 + gained] = True
    return evidence.pack(was), evidence.pack(now)


def test_case_diff_wording_for_added_removed_changed_and_unchanged():
    was, now = outcomes_with(lost=7, gained=2)
    new_env = {**ENV, "tensorflow": "2.22.0"}
    new_id = environment.fingerprint_id(new_env)
    old = payload(**{
        "cnn-float32-litert": case(),
        "cnn-ptq_int8-litert": case(accuracy=0.9, correct_bits=was, size_bytes=30_000, recipe_hash="r1"),
        "vgg16-ptq_dynamic-litert": case(),
        "mobilenet-float32-litert": case(accuracy=0.8),
    })
    new = copy.deepcopy(old)
    new["environments"][new_id] = new_env
    del new["cases"]["vgg16-ptq_dynamic-litert"]
    new["cases"]["cnn-ptq_int8-litert"] = case(accuracy=0.8975, correct_bits=now, size_bytes=30_100,
                                               recipe_hash="r2", environment=new_id)
    new["cases"]["cnn-qat_int8-litert"] = case(accuracy=0.8912, size_bytes=29_000)
    lines = baseline.case_diff(old, new).splitlines()
    assert lines == [
        "~ cnn-ptq_int8-litert: accuracy 90.00 % -> 89.75 %; 7 images lost, 2 gained; "
        "size 30,000 -> 30,100 bytes; case definition changed; environment: tensorflow 2.21.0 -> 2.22.0",
        "+ cnn-qat_int8-litert: added, accuracy 89.12 %, 29,000 bytes",
        "- vgg16-ptq_dynamic-litert: removed (this tier no longer runs it)",
        "  (2 cases unchanged)",
    ]


def test_case_diff_lists_cases_in_id_order_and_counts_the_unchanged_last():
    old = payload(**{"b-x-y": case(), "d-x-y": case(), "e-x-y": case()})
    new = payload(**{"a-x-y": case(), "b-x-y": case(accuracy=0.5), "e-x-y": case()})
    assert baseline.case_diff(old, new).splitlines() == [
        "+ a-x-y: added, accuracy 90.00 %, 100,000 bytes",
        "~ b-x-y: accuracy 90.00 % -> 50.00 %",
        "- d-x-y: removed (this tier no longer runs it)",
        "  (1 cases unchanged)",
    ]


def test_case_diff_of_bits_only_counts_lost_and_gained_images():
    was, now = outcomes_with(lost=3, gained=3)
    old = payload(**{"cnn-ptq_int8-litert": case(correct_bits=was)})
    new = payload(**{"cnn-ptq_int8-litert": case(correct_bits=now)})
    assert baseline.case_diff(old, new) == "~ cnn-ptq_int8-litert: 3 images lost, 3 gained\n"


def test_case_diff_of_a_case_migrated_without_bits_says_the_record_was_added():
    before = case()
    del before["correct_bits"], before["n_test"]
    old = payload(**{"cnn-ptq_int8-litert": before})
    new = payload(**{"cnn-ptq_int8-litert": case()})
    assert baseline.case_diff(old, new) == "~ cnn-ptq_int8-litert: per-image record added\n"


def test_case_diff_of_timings_and_of_a_plain_re_recording():
    old = payload(**{"cnn-ptq_int8-litert": case(latency_ms_b1=1.5, artifact_sha256="aa")})
    timed = payload(**{"cnn-ptq_int8-litert": case(latency_ms_b1=1.25, speedup_vs_float=2.4, artifact_sha256="aa")})
    assert baseline.case_diff(old, timed) == \
        "~ cnn-ptq_int8-litert: latency_ms_b1 1.5 -> 1.25; speedup_vs_float 0 -> 2.4\n"
    rebuilt = payload(**{"cnn-ptq_int8-litert": case(latency_ms_b1=1.5, artifact_sha256="bb")})
    assert baseline.case_diff(old, rebuilt) == "~ cnn-ptq_int8-litert: re-recorded, nothing measured changed\n"


def test_case_diff_names_the_environment_change_of_a_case_only():
    new_env = {**ENV, "numpy": "2.2.0", "cpu": {"flags": {"avx512f": False}}}
    new_id = environment.fingerprint_id(new_env)
    old = payload(**{"cnn-ptq_int8-litert": case(), "cnn-float32-litert": case()})
    new = payload(**{"cnn-ptq_int8-litert": case(environment=new_id), "cnn-float32-litert": case()})
    new["environments"][new_id] = new_env
    assert baseline.case_diff(old, new).splitlines() == [
        "~ cnn-ptq_int8-litert: environment: numpy 2.1.0 -> 2.2.0; cpu flag avx512f None -> False",
        "  (1 cases unchanged)",
    ]


def test_case_diff_against_no_baselines_adds_every_case():
    new = payload(**{"cnn-float32-litert": case(), "cnn-ptq_int8-litert": case(accuracy=0.885, size_bytes=1)})
    assert baseline.case_diff(None, new).splitlines() == [
        "+ cnn-float32-litert: added, accuracy 90.00 %, 100,000 bytes",
        "+ cnn-ptq_int8-litert: added, accuracy 88.50 %, 1 bytes",
    ]


# --- merge and from_results --------------------------------------------------------------------


def test_merge_keeps_cases_not_in_the_new_run():
    old = payload(**{"cnn-float32-litert": case(accuracy=0.90), "vgg16-ptq_int8-litert": case(accuracy=0.93)})
    new = payload(**{"cnn-float32-litert": case(accuracy=0.91), "cnn-ptq_int8-litert": case(accuracy=0.905)})
    snapshot = copy.deepcopy((old, new))
    merged = baseline.merge(old, new)
    assert merged["cases"] == {
        "cnn-float32-litert": case(accuracy=0.91),  # the new run wins
        "cnn-ptq_int8-litert": case(accuracy=0.905),
        "vgg16-ptq_int8-litert": case(accuracy=0.93),  # kept, not dropped
    }
    assert list(merged["cases"]) == sorted(merged["cases"])
    assert (old, new) == snapshot  # inputs untouched


def test_merge_never_re_stamps_untouched_cases():
    old_env, new_env = {**ENV, "tensorflow": "2.20.0"}, {**ENV, "tensorflow": "2.21.1"}
    old_id, new_id = environment.fingerprint_id(old_env), environment.fingerprint_id(new_env)
    assert old_id != new_id
    old = {**payload(**{"vgg16-ptq_int8-litert": case(environment=old_id),
                        "cnn-float32-litert": case(environment=old_id)}),
           "environments": {old_id: old_env}}
    new = {**payload(**{"cnn-float32-litert": case(accuracy=0.91, environment=new_id)}),
           "environments": {new_id: new_env}}
    merged = baseline.merge(old, new)
    assert merged["cases"]["vgg16-ptq_int8-litert"]["environment"] == old_id
    assert merged["cases"]["cnn-float32-litert"]["environment"] == new_id
    assert merged["environments"] == {old_id: old_env, new_id: new_env}


def test_merge_drops_environments_no_case_uses_any_more():
    old_env, new_env = {**ENV, "tensorflow": "2.20.0"}, {**ENV, "tensorflow": "2.21.1"}
    old_id, new_id = environment.fingerprint_id(old_env), environment.fingerprint_id(new_env)
    old = {**payload(**{"cnn-float32-litert": case(environment=old_id)}), "environments": {old_id: old_env}}
    new = {**payload(**{"cnn-float32-litert": case(environment=new_id)}), "environments": {new_id: new_env}}
    assert baseline.merge(old, new)["environments"] == {new_id: new_env}


def test_merge_starts_over_on_another_data_set():
    old = payload(**{"vgg16-ptq_int8-litert": case()})
    new = {**payload(**{"cnn-float32-litert": case()}), "dataset_sha256": "other"}
    assert baseline.merge(old, new) == new


def test_merge_with_no_old_baseline_is_the_new_one():
    new = payload()
    assert baseline.merge(None, new) == new


def result_record(case_id: str, status: str, **extra) -> dict:
    record = {
        "id": case_id, "status": status, "accuracy": 0.9, "accuracy_drop_pp": 0.2, "size_bytes": 1234,
        "recipe_hash": "r1", "latency_ms_b1": 1.5, "speedup_vs_float": None, "n_test": N,
        "correct_bits": bits(), "artifact_sha256": "f" * 64, "eval_batch": 256,
        "float_accuracy": 0.902, "failures": [], "notes": ["x"], "mcnemar_p": 0.3, "model": "cnn",
        "environment": "run-specific-id", "baseline_verdict": "drift", "baseline_comparison": {"lost": 1},
    }
    return {**record, **extra}


def test_from_results_keeps_only_the_kept_fields_of_passed_and_failed_cases():
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
    env_id = environment.fingerprint_id({"numpy": "2.1.0"})
    assert out["schema"] == BASELINE_SCHEMA and out["tier"] == "smoke" and out["dataset_sha256"] == "abc"
    assert out["environments"] == {env_id: {"numpy": "2.1.0"}} and "environment" not in out
    assert set(out["cases"]) == {"cnn-ptq_int8-litert", "cnn-ptq_int8-onnxruntime"}
    for entry in out["cases"].values():
        assert set(entry) <= set(baseline.KEPT_FIELDS) | {"environment"}
        # None values (no speedup measured) are left out rather than stored as null.
        assert entry == {"accuracy": 0.9, "accuracy_drop_pp": 0.2, "size_bytes": 1234, "recipe_hash": "r1",
                         "latency_ms_b1": 1.5, "n_test": N, "correct_bits": bits(),
                         "artifact_sha256": "f" * 64, "eval_batch": 256, "environment": env_id}


def test_from_results_then_write_then_load(path):
    results = {"tier": "smoke", "environment": ENV, "dataset_sha256": "abc",
               "cases": [result_record("cnn-float32-litert", "passed")]}
    diff = baseline.write(path, baseline.merge(load_baselines(path), baseline.from_results(results)))
    assert diff == "+ cnn-float32-litert: added, accuracy 90.00 %, 1,234 bytes\n"
    loaded = load_baselines(path)
    entry = loaded["cases"]["cnn-float32-litert"]
    assert entry["accuracy"] == 0.9 and entry["environment"] == ENV_ID
    assert loaded["environments"] == {ENV_ID: ENV}
    assert np.array_equal(baseline.correct_of(path, "cnn-float32-litert", entry, N),
                          evidence.unpack(bits(), N))


def test_an_update_over_a_schema_1_file_adds_records_and_keeps_the_others(path):
    """What `update_baselines` does to a committed schema-1 file when one case is re-run."""
    write_raw(path, schema_1())
    results = {"tier": "smoke", "environment": {**ENV, "numpy": "2.2.0"}, "dataset_sha256": "abc",
               "cases": [result_record("cnn-ptq_int8-litert", "passed", accuracy=0.89, size_bytes=30_000)]}
    diff = baseline.write(path, baseline.merge(baseline.load_for_update(path), baseline.from_results(results)))
    assert diff.splitlines() == [
        "~ cnn-ptq_int8-litert: per-image record added; case definition changed; "
        "environment: numpy 2.1.0 -> 2.2.0; latency_ms_b1 0 -> 1.5",
        "  (1 cases unchanged)",
    ]
    loaded = load_baselines(path)
    assert loaded["cases"]["cnn-float32-litert"]["environment"] == ENV_ID
    assert set(loaded["environments"]) == {ENV_ID, environment.fingerprint_id(results["environment"])}
