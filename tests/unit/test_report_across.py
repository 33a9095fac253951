"""Tests of the report across testbeds (bench.report.across, ``python -m bench.report across``).

The documents are results files as the bench writes them, built with the real packers of
``bench.evidence`` on ten images whose answers are chosen by hand, so every agreement below is
counted on paper; one test reads the committed smoke results.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from bench import evidence
from bench.errors import ReportError
from bench.report import across, across_render
from bench.report.cli import ACROSS_BAD_INPUT_EXIT_STATUS, main, write_across
from bench.results import load_results, sort_case_ids

REPO = Path(__file__).resolve().parents[2]
SMOKE_RESULTS = REPO / "reports" / "smoke" / "results.json"

N = 10
LABELS = np.arange(N) % 10
# The float answers: right on every image but the last (a 9 taken for a 0).
FLOAT = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0])
# The AVX2 int8 answers: image 0 now wrong (3), image 9 wrong in another way (5): two images
# differ in class, but only image 0 differs in outcome (image 9 is wrong on both sides).
AVX2_INT8 = np.array([3, 1, 2, 3, 4, 5, 6, 7, 8, 5])

CPUS = {
    "avx512-vnni": {"model": "AMD EPYC (family 25 model 17)", "cores": 2, "machine": "x86_64",
                    "flags": {"avx2": True, "avx512f": True, "avx512_vnni": True, "avx_vnni": False,
                              "amx_int8": False, "avx512_bf16": True, "amx_bf16": False}},
    "x86-64-v3": {"model": "Intel Core Processor (Haswell, no TSX)", "cores": 2, "machine": "x86_64",
                  "flags": {"avx2": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False,
                            "amx_int8": False, "avx512_bf16": False, "amx_bf16": False}},
}


def case(cid: str, predicted: np.ndarray, sha: str, recipe: str, *, predictions: bool = True, **fields) -> dict:
    """A measured case as the bench records it: accuracy and per-image records from ``predicted``."""
    model, mode, backend = cid.split("-")
    correct = predicted == LABELS
    record = {"id": cid, "model": model, "mode": mode, "backend": backend, "status": "passed",
              "environment": "env", "n_test": N, "accuracy": float(correct.mean()),
              "accuracy_drop_pp": 0.0, "size_bytes": 30936, "artifact_sha256": sha, "recipe_hash": recipe,
              "int8_format": None, "correct_bits": evidence.pack(correct), "failures": []}
    if predictions:
        record["predictions"] = evidence.pack_predictions(predicted)
    return {**record, **fields}


def results(testbed: str, cases: list[dict], *, not_run: list[dict] | None = None, cpu_model: str | None = None,
            models: dict | None = None, **fields) -> dict:
    """A results document of ``testbed``: its CPU in the environment, its name in ``testbed``."""
    cpu = {**CPUS[testbed], "testbed": testbed}
    if cpu_model:
        cpu["model"] = cpu_model
    env = {"cpu": cpu, "lock_sha256": "93f7", "tensorflow": "2.21.0"}
    return {"schema": 2, "tier": "smoke", "created": "2026-12-04T05:00:00+00:00", "command": "pytest tests/bench",
            "n_test": N, "dataset_sha256": "d1fd" * 16, "run_id": f"run-{testbed}", "testbed": testbed,
            "environment": env, "environments": {"env": env}, "models": models or {"cnn": {"params": 23962}},
            "cases": cases, "not_run": not_run or [], **fields}


def native(**fields) -> dict:
    return results("avx512-vnni", [
        case("cnn-float32-keras", FLOAT, "keras-a", "r-keras"),
        case("cnn-float32-litert", FLOAT, "float-tflite", "r-float"),
        case("cnn-ptq_int8-litert", FLOAT, "int8-tflite", "r-int8"),
        case("cnn-ptq_int8-onnxruntime", FLOAT, "s8s8", "r-s8s8", int8_format="S8S8", speedup_vs_float=1.5836,
             accuracy_drop_pp=0.0),
        case("cnn-ptq_int16x8-litert", FLOAT, "int16x8", "r-int16x8"),
        case("cnn-qat_int8-litert", FLOAT, "qat-tflite", "r-qat"),
    ], **fields)


QAT_NOT_RUN = [{"id": "cnn-qat_int8-litert", "reason": "declared: no QAT model for this testbed",
                "kind": "declared", "in_baseline": True, "fails": False}]


def emulated(not_run: list[dict] | None = QAT_NOT_RUN, **fields) -> dict:
    return results("x86-64-v3", [
        case("cnn-float32-keras", FLOAT, "keras-b", "r-keras"),
        case("cnn-float32-litert", FLOAT, "float-tflite", "r-float"),
        # The same file on other kernels: image 0 changes class.
        case("cnn-ptq_int8-litert", np.array([3, *FLOAT[1:]]), "int8-tflite", "r-int8"),
        case("cnn-ptq_int8-onnxruntime", AVX2_INT8, "u8u8", "r-u8u8", int8_format="U8U8", accuracy_drop_pp=0.1),
    ], not_run=not_run, **fields)


def write(folder: Path, name: str, document: dict) -> Path:
    path = folder / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def document_of(tmp_path: Path, *documents: dict) -> dict:
    paths = [write(tmp_path, f"run{index}", doc) for index, doc in enumerate(documents)]
    return across.across_document(across.load_runs(paths))


def pair_of(document: dict, cid: str) -> dict:
    (pair,) = [pair for pair in document["pairs"] if pair["case"] == cid]
    return pair


def table(markdown: str, section: str) -> dict[str, list[str]]:
    """The rows of the first table under ``## section``: first cell (a case id) -> the other cells."""
    lines = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines if line.startswith("| `")]
    return {row[0].strip("`"): row[1:] for row in rows}


# --------------------------------------------------------------------------------------------
# The document


def test_every_case_of_either_testbed_in_registry_order(tmp_path):
    document = document_of(tmp_path, native(), emulated())
    ids = [entry["id"] for entry in document["cases"]]
    assert ids == sort_case_ids(ids)
    assert set(ids) == {"cnn-float32-keras", "cnn-float32-litert", "cnn-ptq_int8-litert", "cnn-ptq_int8-onnxruntime",
                        "cnn-ptq_int16x8-litert", "cnn-qat_int8-litert"}
    assert document["schema"] == across.ACROSS_SCHEMA
    assert [entry["label"] for entry in document["testbeds"]] == ["avx512-vnni", "x86-64-v3"]
    avx2 = document["testbeds"][1]
    assert avx2["cpu_flags"] == ["avx2"] and avx2["int8_sums"] == "int16_pairs"
    assert avx2["run_ids"] == ["run-x86-64-v3"]


def test_top1_agreement_is_counted_image_by_image(tmp_path):
    document = document_of(tmp_path, native(), emulated())
    onnx = pair_of(document, "cnn-ptq_int8-onnxruntime")
    # Images 0 and 9 get another class: 8 of 10 agree.
    assert onnx["images"] == {"basis": across.BASIS_TOP1, "n": N, "agree": 8, "differ": 2, "agreement": 0.8}
    assert onnx["file"] == across.CPU_FITTING_RECIPE and onnx["int8_format"] == ["S8S8", "U8U8"]
    assert onnx["accuracy_change_pp"] == pytest.approx(-10.0)
    litert = pair_of(document, "cnn-ptq_int8-litert")
    assert litert["file"] == across.SAME_FILE and litert["images"]["differ"] == 1
    assert pair_of(document, "cnn-float32-litert")["images"]["agreement"] == 1.0
    assert pair_of(document, "cnn-float32-keras")["file"] == across.SAME_RECIPE
    # Measured on one testbed only: no pair.
    assert not [pair for pair in document["pairs"] if pair["case"] in ("cnn-qat_int8-litert", "cnn-ptq_int16x8-litert")]


def test_without_predictions_the_outcomes_are_compared_and_labelled(tmp_path):
    old = emulated()
    for record in old["cases"]:
        del record["predictions"]
    document = document_of(tmp_path, native(), old)
    # Image 9 is wrong on both sides (0 against 5): its outcome agrees though its class does not.
    assert pair_of(document, "cnn-ptq_int8-onnxruntime")["images"] == {
        "basis": across.BASIS_OUTCOME, "n": N, "agree": 9, "differ": 1, "agreement": 0.9}
    markdown = across_render.render_across(document)
    assert table(markdown, "Same case across testbeds")["cnn-ptq_int8-onnxruntime"][1:4] == ["outcome only", "90.00", "1"]
    assert "upper bound of the top-1 agreement" in markdown


def test_same_weights_are_shown_by_an_identical_float_file(tmp_path):
    document = document_of(tmp_path, native(), emulated())
    (weights,) = document["weights"]
    assert (weights["float"], weights["qat"]) == (across.WEIGHTS_SAME, across.WEIGHTS_UNKNOWN)
    assert pair_of(document, "cnn-ptq_int8-onnxruntime")["weights_note"] == "same weights (identical float32 file: litert)"


def test_a_bundle_source_names_the_same_weights(tmp_path):
    models = {"cnn": {"params": 23962, "key": "k1", "qat_key": "q1", "weights": "bundle quantbench-smoke.tar 1a2b3c4d"}}
    document = document_of(tmp_path, native(models=models), emulated(models=copy.deepcopy(models)))
    assert pair_of(document, "cnn-float32-keras")["weights_note"] == "same weights (bundle quantbench-smoke.tar 1a2b3c4d)"


def test_weights_trained_separately_by_their_keys_or_digests(tmp_path):
    by_keys = document_of(tmp_path / "keys", native(models={"cnn": {"key": "k1", "qat_key": "q1"}}),
                          emulated(models={"cnn": {"key": "k2", "qat_key": "q2"}}))
    assert pair_of(by_keys, "cnn-float32-litert")["weights_note"] == (
        "weights trained separately (model keys differ): differences include training")
    # The same key trained on two CPU classes: only the digests tell, and they outrank the identical file.
    by_digests = document_of(tmp_path / "digests", native(models={"cnn": {"key": "k1", "weights_sha256": "aa"}}),
                             emulated(models={"cnn": {"key": "k1", "weights_sha256": "bb"}}))
    assert by_digests["weights"][0]["float"] == across.WEIGHTS_SEPARATE
    assert "(weights digests differ)" in pair_of(by_digests, "cnn-ptq_int8-litert")["weights_note"]


def test_differing_float_files_alone_say_nothing_about_the_weights(tmp_path):
    # As measured: the float32 LiteRT file converted under emulation differs from the native one
    # from the same weights; the .keras archive differs on every save.
    other = emulated()
    other["cases"][1]["artifact_sha256"] = "float-tflite-converted-elsewhere"
    verdict = document_of(tmp_path / "a", native(), other)["weights"][0]
    assert verdict["float"] == across.WEIGHTS_UNKNOWN
    assert verdict["note"] == "weights not compared (no weights digest or key recorded, and no identical file)"
    keyed = document_of(tmp_path / "b", native(models={"cnn": {"key": "k1"}}), {**other, "models": {"cnn": {"key": "k1"}}})
    assert keyed["weights"][0]["evidence"]["float"] == "model keys match, but no digest or identical file shows the weights"


def test_separate_float_weights_make_the_qat_ones_separate(tmp_path):
    a = native()
    a["models"] = {"cnn": {"key": "k1"}}
    b = emulated(not_run=[], models={"cnn": {"key": "k2"}})
    b["cases"].append(case("cnn-qat_int8-litert", FLOAT, "qat-tflite-b", "r-qat"))
    pair = pair_of(document_of(tmp_path, a, b), "cnn-qat_int8-litert")
    assert pair["weights"] == across.WEIGHTS_SEPARATE
    assert "fine-tuned from other float weights" in pair["weights_note"]


# --------------------------------------------------------------------------------------------
# ACROSS.md


def test_by_testbed_table_shows_each_testbeds_numbers_and_why_a_case_is_missing(tmp_path):
    markdown = across_render.render_across(document_of(tmp_path, native(), emulated()))
    header = [line for line in markdown.splitlines() if line.startswith("| case ") and "acc %" in line][0]
    assert "avx512-vnni acc %" in header and "x86-64-v3 int8 speedup" in header
    rows = table(markdown, "By testbed")
    assert rows["cnn-ptq_int8-onnxruntime"] == ["90.00 (S8S8)", "0.00", "30.9 KB", "1.58x",
                                                "80.00 (U8U8)", "0.10", "30.9 KB", "-"]
    assert rows["cnn-qat_int8-litert"][4:] == ["not run [1]", "-", "-", "-"]
    assert "[1] x86-64-v3: not run: declared: no QAT model for this testbed" in markdown
    assert rows["cnn-ptq_int16x8-litert"][4:] == ["-", "-", "-", "-"]


def test_pairs_table_says_which_file_ran(tmp_path):
    markdown = across_render.render_across(document_of(tmp_path, native(), emulated()))
    cells = table(markdown, "Same case across testbeds")["cnn-ptq_int8-onnxruntime"]
    assert cells[:6] == ["avx512-vnni vs x86-64-v3", "top-1 class", "80.00", "2", "-10.00",
                          "other file: S8S8 vs U8U8 (CPU-fitting recipe)"]
    assert "- avx512-vnni vs x86-64-v3: 4 cases on both; 2 of 4 compared agree on every image" in markdown
    assert "Intel Core Processor (Haswell, no TSX)" in markdown


# --------------------------------------------------------------------------------------------
# Refusals


def test_refuses_fewer_than_two_files(tmp_path):
    with pytest.raises(ReportError, match="at least 2 results files"):
        across.load_runs([write(tmp_path, "a", native())])


@pytest.mark.parametrize(("field", "value", "what"), [
    ("tier", "full", "tier"), ("dataset_sha256", "ffff" * 16, "data set"), ("n_test", 20, "number of test images")])
def test_refuses_runs_of_other_test_sets(tmp_path, field, value, what):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", emulated(**{field: value}))]
    with pytest.raises(ReportError, match=f"differ in their {what}"):
        across.load_runs(paths)


def test_refuses_the_same_testbed_and_cpu_twice(tmp_path):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", native(run_id="another"))]
    with pytest.raises(ReportError, match="both measured on testbed avx512-vnni .*bench.report compare"):
        across.load_runs(paths)


def test_the_same_testbed_on_two_cpu_models_gets_numbered_labels(tmp_path):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", native(run_id="zen5")), write(tmp_path, "c", emulated())]
    zen5 = json.loads(paths[1].read_text())
    zen5["environment"]["cpu"]["model"] = zen5["environments"]["env"]["cpu"]["model"] = "AMD EPYC (family 26 model 2)"
    paths[1].write_text(json.dumps(zen5))
    labels = [run.label for run in across.load_runs(paths)]
    assert labels == ["avx512-vnni (1)", "avx512-vnni (2)", "x86-64-v3"]


def test_the_testbed_comes_from_the_environment_when_the_file_has_none(tmp_path):
    old = emulated()
    del old["testbed"]
    runs = across.load_runs([write(tmp_path, "a", native()), write(tmp_path, "b", old)])
    assert runs[1].testbed == "x86-64-v3"


def test_refuses_a_file_without_a_known_testbed(tmp_path):
    unknown = emulated()
    del unknown["testbed"]
    unknown["environment"]["cpu"]["machine"] = unknown["environments"]["env"]["cpu"]["machine"] = "riscv64"
    with pytest.raises(ReportError, match="names no testbed"):
        across.load_runs([write(tmp_path, "a", native()), write(tmp_path, "b", unknown)])


def test_refuses_a_file_whose_cases_come_from_two_testbeds(tmp_path):
    mixed = native()
    mixed["environments"]["other"] = {"cpu": CPUS["x86-64-v3"]}
    mixed["cases"][0]["environment"] = "other"
    with pytest.raises(ReportError, match="several testbeds"):
        across.load_runs([write(tmp_path, "a", mixed), write(tmp_path, "b", emulated())])


def test_refuses_a_damaged_per_image_record(tmp_path):
    damaged = emulated()
    damaged["cases"][3]["predictions"] = base64.b64encode(b"\x00" * 2).decode()
    with pytest.raises(ReportError, match="case cnn-ptq_int8-onnxruntime: its per-image record 'predictions'"):
        document_of(tmp_path, native(), damaged)


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_writes_both_files(tmp_path, capsys):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", emulated())]
    out = tmp_path / "across"
    assert main(["across", "--out", str(out), *map(str, paths)]) == 0
    assert sorted(path.name for path in out.iterdir()) == [across.ACROSS_MD, across.ACROSS_JSON]
    written = json.loads((out / across.ACROSS_JSON).read_text())
    assert written == document_of(tmp_path / "again", native(), emulated()) | {
        "testbeds": written["testbeds"]}
    assert (out / across.ACROSS_MD).read_text() == across_render.render_across(written)
    assert f"wrote {out / across.ACROSS_MD}\n" in capsys.readouterr().out
    assert main(["across", "--out", str(out), *map(str, paths)]) == 0
    assert f"wrote {out / across.ACROSS_MD} (replacing the earlier one)" in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_the_message(tmp_path, capsys):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", emulated(tier="full"))]
    assert main(["across", "--out", str(tmp_path / "out"), *map(str, paths)]) == ACROSS_BAD_INPUT_EXIT_STATUS
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "differ in their tier" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_unwritable_folder_exits_2(tmp_path, capsys):
    paths = [write(tmp_path, "a", native()), write(tmp_path, "b", emulated())]
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["across", "--out", str(blocker / "out"), *map(str, paths)]) == ACROSS_BAD_INPUT_EXIT_STATUS
    assert "cannot write into the folder" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# A committed results file (no predictions: outcomes only)


def test_committed_smoke_results_against_an_altered_copy(tmp_path):
    """The committed results keep every case's predictions: the copy changes the class of three
    images of one case (and whether each was right), so agreement is counted by top-1 class."""
    original = json.loads(SMOKE_RESULTS.read_text(encoding="utf-8"))
    assert all("predictions" in record for record in original["cases"])
    other = copy.deepcopy(original)
    other["testbed"] = "x86-64-v3"
    for env in [other["environment"], *other["environments"].values()]:
        env["cpu"] = {**CPUS["x86-64-v3"], "testbed": "x86-64-v3"}
    changed = next(record for record in other["cases"] if record["id"] == "cnn-ptq_int8-onnxruntime")
    n = changed["n_test"]
    flipped = [0, 17, 1999]
    outcomes = evidence.unpack(changed["correct_bits"], n)
    outcomes[flipped] = ~outcomes[flipped]
    classes = evidence.unpack_predictions(changed["predictions"], n)
    classes[flipped] = (classes[flipped] + 1) % 10
    changed.update(correct_bits=evidence.pack(outcomes), predictions=evidence.pack_predictions(classes),
                   int8_format="U8U8", artifact_sha256="0" * 64)
    changed_path = write(tmp_path, "avx2", other)

    written, markdown_path = write_across([SMOKE_RESULTS, changed_path], tmp_path / "out")
    document = json.loads(written.read_text())
    pairs = {pair["case"]: pair for pair in document["pairs"]}
    assert len(pairs) == len(load_results(SMOKE_RESULTS)["cases"])
    assert pairs["cnn-ptq_int8-onnxruntime"]["images"] == {
        "basis": across.BASIS_TOP1, "n": n, "agree": n - 3, "differ": 3, "agreement": (n - 3) / n}
    assert pairs["cnn-ptq_int8-onnxruntime"]["file"] == across.CPU_FITTING_RECIPE
    unchanged = [pair for cid, pair in pairs.items() if cid != "cnn-ptq_int8-onnxruntime"]
    assert all(pair["images"]["differ"] == 0 and pair["file"] == across.SAME_FILE for pair in unchanged)
    markdown = markdown_path.read_text()
    assert table(markdown, "Same case across testbeds")["cnn-ptq_int8-onnxruntime"][1:4] == [
        "top-1 class", "99.85", "3"]
    assert "other file: S8S8 vs U8U8 (CPU-fitting recipe)" in markdown
