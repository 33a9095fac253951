"""Tests of the reporting layer: markdown and compare golden files, loading errors, plots, writing.

Golden files change only on purpose: rerun with ``UPDATE_GOLDEN=1`` to rewrite them, then review
the diff before committing. (An environment variable rather than a pytest option: an option added
in this folder's conftest is only known when pytest starts from here.)
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from pathlib import Path

import pytest

from bench import compare as cmp
from bench import plots
from bench.errors import ReportError
from bench.report import (
    REPORT_FILE,
    format_size,
    load_results,
    main,
    render_markdown,
    write_report,
    write_text_atomically,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
SAMPLE = GOLDEN_DIR / "results_sample.json"
SAMPLE_B = GOLDEN_DIR / "results_sample_b.json"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A readable 120-dpi plot with text and markers is tens of kilobytes; an empty canvas is far less.
MIN_PLOT_BYTES = 10_000
# The plot names the sample report links to, fixed so the golden file does not depend on which
# plots happen to be drawn.
SAMPLE_PLOT_NAMES = {"accuracy_vs_size": "accuracy_vs_size.png",
                     "layer_error": "layer_error.png"}


def assert_matches_golden(text: str, golden: Path) -> None:
    """Fails with a unified diff when ``text`` differs from ``golden``; rewrites it on request."""
    if UPDATE_GOLDEN:
        golden.write_text(text, encoding="utf-8")
        return
    expected = golden.read_text(encoding="utf-8") if golden.exists() else ""
    if text != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"{golden.name} (golden)", tofile=f"{golden.name} (rendered)"))
        pytest.fail(f"rendered text differs from {golden}:\n{diff}\n"
                    "If the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff.",
                    pytrace=False)


@pytest.fixture
def sample() -> dict:
    return load_results(SAMPLE)


@pytest.fixture
def sample_b() -> dict:
    return load_results(SAMPLE_B)


def minimal_results(**overrides) -> dict:
    """The smallest valid results: one case, none of the optional sections."""
    results = {"schema": 1, "tier": "smoke", "cases": [
        {"id": "cnn-ptq_int8-litert", "model": "cnn", "mode": "ptq_int8", "backend": "litert",
         "accuracy": 0.9, "size_bytes": 31000, "status": "passed"}]}
    results.update(overrides)
    return results


# --------------------------------------------------------------------------------------------
# Golden files


def test_report_matches_golden(sample):
    assert_matches_golden(render_markdown(sample, SAMPLE_PLOT_NAMES),
                          GOLDEN_DIR / "REPORT_sample.md")


def test_compare_matches_golden(sample, sample_b):
    rows = cmp.compare(sample, sample_b)
    assert_matches_golden(cmp.render_compare(rows), GOLDEN_DIR / "compare_sample.md")


def test_sample_covers_every_section(sample):
    """The golden sample is only worth its name if it exercises every section."""
    statuses = {case["status"] for case in sample["cases"]}
    assert {"passed", "failed", "skipped", "not_comparable"} <= statuses
    assert {case["model"] for case in sample["cases"]} == {"cnn", "mobilenet", "vgg16"}
    assert any(case.get("latency_ms_b1") is None and case["status"] == "passed"
               for case in sample["cases"])
    assert sample["agreement"] and sample["layer_errors"]


# --------------------------------------------------------------------------------------------
# Loading


def test_load_results_missing_file_says_to_run_the_bench(tmp_path):
    with pytest.raises(ReportError, match=r"does not exist.*nox -s bench"):
        load_results(tmp_path / "results.json")


def test_load_results_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema": 1, "cases": [', encoding="utf-8")
    with pytest.raises(ReportError, match=r"not valid JSON.*line 1"):
        load_results(path)


def test_load_results_newer_schema_says_newer_version(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": 99, "cases": []}), encoding="utf-8")
    with pytest.raises(ReportError, match=r"schema 99.*newer version"):
        load_results(path)


@pytest.mark.parametrize("document", [
    {"cases": []},
    {"schema": True, "cases": []},
    {"schema": "1", "cases": []},
    {"schema": 0, "cases": []},
    [1, 2],
    {"schema": 1},
    {"schema": 1, "cases": [{"model": "cnn"}]},
])
def test_load_results_refuses_what_it_does_not_know(tmp_path, document):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError):
        load_results(path)


# --------------------------------------------------------------------------------------------
# Rendering without optional data


def test_render_without_optional_sections_says_so():
    text = render_markdown(minimal_results())
    assert "No backend agreement was measured" in text
    assert "No per-layer errors were measured" in text
    assert "Plots were not drawn" in text
    assert re.search(r"\| cnn +\| ptq_int8 +\| litert +\| 90\.00 ", text)
    assert "n/a" in text  # latency, throughput, speedup, environment


def test_render_survives_nulls_everywhere():
    results = minimal_results(environment=None, models=None, agreement=None, layer_errors=None,
                              n_test=None, created=None, command=None)
    results["cases"][0].update({"accuracy": None, "size_bytes": None, "drop_ci95_pp": [None, 1]})
    results["cases"].append({"id": "vgg16-qat_int8-keras"})  # only an id: the rest from it
    results["layer_errors"] = {"cnn-ptq_int8-litert": [{"layer": "conv1", "snr_db": None},
                                                       {"layer": "conv2", "snr_db": math.inf}]}
    text = render_markdown(results)
    assert re.search(r"\| vgg16 +\| qat_int8 +\| keras +\| n/a ", text)
    assert re.search(r"\| conv2 +\| inf ", text)


def test_headline_falls_back_to_keras_float_and_says_so():
    results = minimal_results()
    results["cases"].append({"id": "cnn-float32-keras", "accuracy": 0.91, "status": "passed"})
    assert "91.00 % (keras)" in render_markdown(results)


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.00 KB"), (31000, "31.0 KB"), (999_600, "1.00 MB"),
    (59_120_000, "59.1 MB"), (3_251_259_000, "3.25 GB"), (None, "n/a"),
])
def test_format_size_uses_decimal_units_and_three_digits(size, text):
    assert format_size(size) == text


# --------------------------------------------------------------------------------------------
# Writing and plots


def assert_is_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert len(data) > MIN_PLOT_BYTES, f"{path} is only {len(data)} bytes"


def test_write_report_writes_report_and_plots(tmp_path, sample):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(sample), encoding="utf-8")
    report = write_report(results_path)
    assert report == tmp_path / REPORT_FILE
    text = report.read_text(encoding="utf-8")
    for name in plots.PLOT_FILES.values():
        assert_is_png(tmp_path / name)
        assert f"]({name})" in text  # linked by a relative name
    assert not list(tmp_path.glob("*.tmp*")), "a temporary file was left behind"


def test_plots_are_skipped_without_their_data(tmp_path):
    results = minimal_results()
    stale = tmp_path / plots.PLOT_FILES["speedup"]
    stale.write_bytes(b"from an earlier run")
    assert plots.plot_speedup(results, tmp_path) is None
    assert not stale.exists(), "a stale plot would be shown beside a report that omits it"
    assert plots.plot_layer_error(results, tmp_path) is None
    assert plots.plot_accuracy_vs_size({"schema": 1, "cases": []}, tmp_path) is None
    drawn = plots.draw_all(results, tmp_path)
    assert set(drawn) == {"accuracy_vs_size"}


def test_accuracy_plot_falls_back_to_another_backend(tmp_path):
    results = minimal_results()
    results["cases"][0].update({"id": "cnn-ptq_int8-onnxruntime", "backend": "onnxruntime"})
    assert plots.choose_backend(results) == "onnxruntime"
    assert plots.plot_accuracy_vs_size(results, tmp_path) is not None


def test_write_report_into_unwritable_folder_names_it(tmp_path, sample):
    # A folder below a regular file cannot exist, even for root (who ignores permissions).
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x", encoding="utf-8")
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(sample), encoding="utf-8")
    with pytest.raises(ReportError, match=r"not_a_folder.*writable"):
        write_report(results_path, out_dir=blocker / "report")


def test_atomic_write_below_a_file_names_the_folder(tmp_path):
    (tmp_path / "plain_file").write_text("x", encoding="utf-8")
    with pytest.raises(ReportError, match="plain_file"):
        write_text_atomically(tmp_path / "plain_file" / REPORT_FILE, "text")


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / REPORT_FILE
    write_text_atomically(target, "old")
    write_text_atomically(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert [path.name for path in tmp_path.iterdir()] == [REPORT_FILE]


# --------------------------------------------------------------------------------------------
# Compare


def baseline(**cases) -> dict:
    """A baselines dict with the given cases."""
    return {"schema": 1, "tier": "smoke", "cases": cases}


def results_with(n_test: int | None, **cases) -> dict:
    """A results dict with the given cases (metrics by id) and test-set size."""
    return {"schema": 1, "n_test": n_test,
            "cases": [{"id": case_id, **metrics} for case_id, metrics in cases.items()]}


def only_row(rows: list[cmp.Row], metric: str) -> cmp.Row:
    [row] = [row for row in rows if row.metric == metric]
    return row


CASE = "cnn-ptq_int8-litert"


@pytest.mark.parametrize(("metric", "before", "after", "direction"), [
    ("accuracy", 0.90, 0.95, cmp.BETTER),
    ("accuracy", 0.95, 0.90, cmp.WORSE),
    ("throughput_ips", 1000.0, 2000.0, cmp.BETTER),
    ("size_bytes", 31000, 40000, cmp.WORSE),
    ("latency_ms_b1", 0.2, 0.1, cmp.BETTER),
    ("accuracy_drop_pp", 0.3, 1.3, cmp.WORSE),
    ("size_bytes", 31000, 31000, cmp.SAME),
])
def test_compare_knows_which_way_is_better(metric, before, after, direction):
    rows = cmp.compare(baseline(**{CASE: {metric: before}}), baseline(**{CASE: {metric: after}}))
    row = only_row(rows, metric)
    assert row.direction == direction
    assert row.change == pytest.approx(after - before)
    assert row.ratio == pytest.approx(after / before)


@pytest.mark.parametrize(("n_test", "before", "after", "significant"), [
    # n = 10,000, p = 0.9: noise = 1.96 * sqrt(2 * 0.09 / 10,000) = 0.83 pp.
    (10_000, 0.900, 0.910, True),
    (10_000, 0.900, 0.895, False),
    # n = 2,000: noise = 1.86 pp, so a 1 pp change is noise.
    (2_000, 0.900, 0.910, False),
    (2_000, 0.900, 0.880, True),
    # No n on either side: the full 10,000-image test set is assumed.
    (None, 0.900, 0.910, True),
])
def test_accuracy_significance_follows_the_binomial_noise(n_test, before, after, significant):
    rows = cmp.compare(results_with(n_test, **{CASE: {"accuracy": before}}),
                       results_with(n_test, **{CASE: {"accuracy": after}}))
    assert only_row(rows, "accuracy").significant is significant


def test_accuracy_below_threshold_is_never_significant():
    rows = cmp.compare(results_with(10**9, **{CASE: {"accuracy": 0.9}}),
                       results_with(10**9, **{CASE: {"accuracy": 0.9008}}), threshold_pp=0.1)
    assert not only_row(rows, "accuracy").significant


def test_smaller_test_set_sets_the_noise():
    rows = cmp.compare(results_with(10_000, **{CASE: {"accuracy": 0.90}}),
                       results_with(2_000, **{CASE: {"accuracy": 0.91}}))
    assert not only_row(rows, "accuracy").significant


@pytest.mark.parametrize(("metric", "before", "after", "significant"), [
    ("size_bytes", 100_000, 100_400, False),   # 0.4 %
    ("size_bytes", 100_000, 101_000, True),    # 1 %
    ("latency_ms_b1", 1.00, 1.05, False),      # 5 %
    ("latency_ms_b1", 1.00, 1.20, True),       # 20 %
    ("throughput_ips", 1000.0, 920.0, False),  # 8 %
    ("throughput_ips", 1000.0, 850.0, True),   # 15 %
])
def test_size_and_timing_significance_are_relative(metric, before, after, significant):
    rows = cmp.compare(baseline(**{CASE: {metric: before}}), baseline(**{CASE: {metric: after}}))
    assert only_row(rows, metric).significant is significant


def test_compare_lists_added_removed_and_not_comparable():
    before = baseline(**{"cnn-float32-litert": {"accuracy": 0.9},
                         CASE: {"accuracy": 0.9, "recipe_hash": "aaa"}})
    after = results_with(2000, **{"vgg16-float32-litert": {"accuracy": 0.93},
                                  CASE: {"accuracy": 0.8, "recipe_hash": "bbb"}})
    directions = {row.case_id: row.direction for row in cmp.compare(before, after)}
    assert directions == {"cnn-float32-litert": cmp.REMOVED, "vgg16-float32-litert": cmp.ADDED,
                          CASE: cmp.NOT_COMPARABLE}


def test_compare_skips_metrics_missing_on_either_side():
    rows = cmp.compare(baseline(**{CASE: {"accuracy": 0.9, "latency_ms_b1": None}}),
                       baseline(**{CASE: {"accuracy": 0.9, "latency_ms_b1": 0.1}}))
    assert [row.metric for row in rows] == ["accuracy"]


def test_render_compare_summary_and_markers():
    before = baseline(**{CASE: {"accuracy": 0.90, "size_bytes": 1000, "latency_ms_b1": 1.0}})
    after = baseline(**{CASE: {"accuracy": 0.80, "size_bytes": 900, "latency_ms_b1": 1.01}})
    text = cmp.render_compare(cmp.compare(before, after))
    first_line = text.splitlines()[0]
    assert first_line.startswith("**1 cases compared**: 1 worse (significant), 1 better")
    table = [line for line in text.splitlines() if CASE in line]
    assert [line.split("|")[1].strip() for line in table] == ["+", "-", "~"]


def test_compare_accepts_the_sample_against_itself(sample):
    rows = cmp.compare(sample, copy.deepcopy(sample))
    assert rows and all(row.direction == cmp.SAME for row in rows)
    assert "No differences." in cmp.render_compare(rows)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_render_and_compare(tmp_path, capsys):
    results_path = tmp_path / "results.json"
    results_path.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["render", str(results_path), "--out-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / REPORT_FILE).exists()
    out = tmp_path / "compare.md"
    assert main(["compare", str(SAMPLE), str(SAMPLE_B), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == (GOLDEN_DIR / "compare_sample.md").read_text(
        encoding="utf-8")
    assert main(["compare", str(SAMPLE), str(SAMPLE_B), "--all"]) == 0
    assert "unchanged metrics not shown" not in capsys.readouterr().out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["render", str(tmp_path / "results.json")]) == 1
    assert capsys.readouterr().err.startswith("error: results file")


# --------------------------------------------------------------------------------------------
# Backend agreement: both shapes a results file may hold


def test_agreement_flat_entry_with_three_backends_shows_the_spread():
    results = minimal_results(agreement=[{
        "model": "vgg16", "mode": "float32", "backends": ["keras", "litert", "onnxruntime"],
        "top1_agreement": 0.999, "max_abs_logit_diff": 3.1e-4,
        "accuracy": {"keras": 0.9310, "litert": 0.9312, "onnxruntime": 0.9305},
        "size_bytes": {"keras": None, "litert": 59_120_000, "onnxruntime": 59_160_000}}])
    assert re.search(r"keras vs litert vs onnxruntime +\| 93\.10 / 93\.12 / 93\.05 +\| 0\.07 ",
                     render_markdown(results))


def test_agreement_entry_with_pairs_gives_one_row_per_pair():
    results = minimal_results(agreement=[{
        "model": "cnn", "mode": "float32", "accuracy": {"litert": 0.9, "onnxruntime": 0.9},
        "pairs": [{"backends": ["litert", "onnxruntime"], "top1_agreement": 0.9995,
                   "max_abs_logit_diff": 1.2e-5}]}])
    text = render_markdown(results)
    assert re.search(r"litert vs onnxruntime +\| 90\.00 / 90\.00 +\| 0\.00 +\| 99\.95 +\| 1\.2e-05 +"
                     r"\| n/a / n/a ", text)


def test_worst_layers_ignore_qat_drift():
    """A QAT case's layers differ from float by fine-tuning too: it must not be called the worst."""
    results = {
        "cases": [
            {"id": "cnn-ptq_int8-litert", "model": "cnn", "mode": "ptq_int8", "backend": "litert"},
            {"id": "cnn-qat_int8-litert", "model": "cnn", "mode": "qat_int8", "backend": "litert"},
        ],
        "layer_errors": {
            "cnn-ptq_int8-litert": [{"layer": "conv1", "snr_db": 30.0}],
            "cnn-qat_int8-litert": [{"layer": "conv1", "snr_db": 5.0}],
        },
    }
    from bench.report import worst_case_per_model

    assert worst_case_per_model(results["layer_errors"], results) == {"cnn": "cnn-ptq_int8-litert"}
