"""Tests of the report tool (bench.report): markdown and compare golden files, plots, writing,
the command line, the verdicts against the baseline and the paired comparison of two runs. Reading
results files is tested with its loader, in test_results.py.

Golden files change only on purpose: rerun with ``UPDATE_GOLDEN=1`` to rewrite them, then review
the diff before committing. (An environment variable rather than a pytest option: an option added
in this folder's conftest is only known when pytest starts from here.)
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from bench import evidence, stats
from bench.errors import ReportError
from bench.report import compare as cmp
from bench.report import plots, significance
from bench.report.cli import REPORT_FILE, main, write_report
from bench.report.compare_render import render_compare, verdict_row
from bench.report.format import format_size
from bench.report.lookup import worst_case_per_model
from bench.report.sections import render_markdown
from bench.results import load_results, load_results_or_baselines

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
                     "layer_error": "layer_error.png", "lost_images": "lost_images.png"}


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
    results = {"schema": 2, "tier": "smoke", "cases": [
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
    comparison = cmp.compare(sample, sample_b)
    assert_matches_golden(render_compare(comparison), GOLDEN_DIR / "compare_sample.md")


def test_sample_covers_every_section(sample, sample_b):
    """The golden samples are only worth their name if they exercise every section."""
    statuses = {case["status"] for case in sample["cases"]}
    assert statuses == {"passed", "failed", "skipped"}
    assert {case["model"] for case in sample["cases"]} == {"cnn", "mobilenet", "vgg16"}
    assert any(case.get("latency_ms_b1") is None and case["status"] == "passed"
               for case in sample["cases"])
    assert sample["agreement"] and sample["layer_errors"]
    assert {case.get("baseline_verdict") for case in sample["cases"]} >= set(stats.VERDICTS)
    assert any(case.get("eval_batch") == 1 for case in sample["cases"])
    assert len(sample["lost_images"]["images"]) == 16
    # The comparison of the two samples: a regression, a recipe change, cases on one side only.
    verdicts = {case.case_id: case for case in cmp.compare(sample, sample_b).verdicts}
    assert verdicts["vgg16-qat_int8-litert"].name == "regressed"
    assert "case definition (recipe hash) changed" in verdicts["vgg16-qat_int8-onnxruntime"].causes


# --------------------------------------------------------------------------------------------
# Rendering without optional data


def test_a_schema_1_results_file_still_renders(tmp_path):
    """An older run renders: what schema 1 lacks reads as missing optional data."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(minimal_results(schema=1)), encoding="utf-8")
    text = render_markdown(load_results(path))
    assert "No case in these results was judged against a baseline." in text


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


def test_cli_compare_out_below_a_file_names_the_folder(tmp_path, capsys):
    (tmp_path / "plain_file").write_text("x", encoding="utf-8")
    out = tmp_path / "plain_file" / "compare.md"
    assert main(["compare", str(SAMPLE), str(SAMPLE), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: cannot write into the folder") and "plain_file" in error
    assert "--out with a writable folder" in error


# --------------------------------------------------------------------------------------------
# Compare


def baseline(**cases) -> dict:
    """A baselines dict with the given cases."""
    return {"schema": 2, "tier": "smoke", "cases": cases}


def results_with(n_test: int | None, **cases) -> dict:
    """A results dict with the given cases (metrics by id) and test-set size."""
    return {"schema": 2, "tier": "smoke", "n_test": n_test,
            "cases": [{"id": case_id, **metrics} for case_id, metrics in cases.items()]}


def only_row(comparison: cmp.Comparison, metric: str) -> cmp.Row:
    [row] = [row for row in comparison.rows if row.metric == metric]
    return row


def outcomes(right: int, n: int) -> np.ndarray:
    """Per-image outcomes of ``n`` images: the first ``right`` right, the rest wrong."""
    correct = np.zeros(n, dtype=bool)
    correct[:right] = True
    return correct


def measured(correct: np.ndarray, **fields) -> dict:
    """A case's fields as the session records them: accuracy and per-image outcomes."""
    return {"accuracy": float(correct.mean()), "n_test": len(correct),
            "correct_bits": evidence.pack(correct), **fields}


CASE = "cnn-ptq_int8-litert"


@pytest.mark.parametrize(("metric", "before", "after", "direction"), [
    ("accuracy", 0.90, 0.95, significance.BETTER),
    ("accuracy", 0.95, 0.90, significance.WORSE),
    ("throughput_ips", 1000.0, 2000.0, significance.BETTER),
    ("size_bytes", 31000, 40000, significance.WORSE),
    ("latency_ms_b1", 0.2, 0.1, significance.BETTER),
    ("accuracy_drop_pp", 0.3, 1.3, significance.WORSE),
    ("size_bytes", 31000, 31000, significance.SAME),
])
def test_compare_knows_which_way_is_better(metric, before, after, direction):
    comparison = cmp.compare(baseline(**{CASE: {metric: before}}), baseline(**{CASE: {metric: after}}))
    row = only_row(comparison, metric)
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
    comparison = cmp.compare(results_with(n_test, **{CASE: {"accuracy": before}}),
                             results_with(n_test, **{CASE: {"accuracy": after}}))
    assert only_row(comparison, "accuracy").significant is significant


def test_accuracy_below_threshold_is_never_significant():
    comparison = cmp.compare(results_with(10**9, **{CASE: {"accuracy": 0.9}}),
                             results_with(10**9, **{CASE: {"accuracy": 0.9008}}), threshold_pp=0.1)
    assert not only_row(comparison, "accuracy").significant


def test_smaller_test_set_sets_the_noise():
    comparison = cmp.compare(results_with(10_000, **{CASE: {"accuracy": 0.90}}),
                             results_with(2_000, **{CASE: {"accuracy": 0.91}}))
    assert not only_row(comparison, "accuracy").significant


@pytest.mark.parametrize(("metric", "before", "after", "significant"), [
    ("size_bytes", 100_000, 100_400, False),   # 0.4 %
    ("size_bytes", 100_000, 101_000, True),    # 1 %
    ("latency_ms_b1", 1.00, 1.05, False),      # 5 %
    ("latency_ms_b1", 1.00, 1.20, True),       # 20 %
    ("throughput_ips", 1000.0, 920.0, False),  # 8 %
    ("throughput_ips", 1000.0, 850.0, True),   # 15 %
])
def test_size_and_timing_significance_are_relative(metric, before, after, significant):
    comparison = cmp.compare(baseline(**{CASE: {metric: before}}), baseline(**{CASE: {metric: after}}))
    assert only_row(comparison, metric).significant is significant


def test_compare_lists_added_and_removed_and_compares_a_changed_recipe():
    before = baseline(**{"cnn-float32-litert": {"accuracy": 0.9},
                         CASE: {"accuracy": 0.9, "recipe_hash": "aaa"}})
    after = results_with(2000, **{"vgg16-float32-litert": {"accuracy": 0.93},
                                  CASE: {"accuracy": 0.8, "recipe_hash": "bbb"}})
    directions = {row.case_id: row.direction for row in cmp.compare(before, after).rows}
    assert directions == {"cnn-float32-litert": cmp.REMOVED, "vgg16-float32-litert": cmp.ADDED,
                          CASE: significance.WORSE}


def test_compare_skips_metrics_missing_on_either_side():
    comparison = cmp.compare(baseline(**{CASE: {"accuracy": 0.9, "latency_ms_b1": None}}),
                             baseline(**{CASE: {"accuracy": 0.9, "latency_ms_b1": 0.1}}))
    assert [row.metric for row in comparison.rows] == ["accuracy"]


def test_render_compare_summary_and_markers():
    before = baseline(**{CASE: {"accuracy": 0.90, "size_bytes": 1000, "latency_ms_b1": 1.0}})
    after = baseline(**{CASE: {"accuracy": 0.80, "size_bytes": 900, "latency_ms_b1": 1.01}})
    text = render_compare(cmp.compare(before, after))
    first_line = text.splitlines()[0]
    assert first_line.startswith("**1 cases compared**: 1 no per-image record; metrics: 1 worse "
                                 "(significant), 1 better")
    metric_table = text.split("## Metrics")[1]
    table = [line for line in metric_table.splitlines() if CASE in line]
    assert [line.split("|")[1].strip() for line in table] == ["+", "-", "~"]


def test_compare_accepts_the_sample_against_itself(sample):
    comparison = cmp.compare(sample, copy.deepcopy(sample))
    assert comparison.rows and all(row.direction == significance.SAME for row in comparison.rows)
    assert {case.name for case in comparison.verdicts} == {"identical"}
    assert not comparison.regressed
    text = render_compare(comparison)
    assert "No differences." in text
    assert "22 identical cases with nothing changed not shown" in text


# --------------------------------------------------------------------------------------------
# Compare: paired verdicts


def test_compare_judges_a_regressed_case_with_its_numbers():
    before = outcomes(right=180, n=200)
    after = outcomes(right=160, n=200)  # the last 20 the baseline got right are now wrong
    comparison = cmp.compare(baseline(**{CASE: measured(before, size_bytes=31_000)}),
                             results_with(200, **{CASE: measured(after, size_bytes=31_500)}))
    [case] = comparison.verdicts
    assert case.name == "regressed"
    assert (case.verdict.lost, case.verdict.gained) == (20, 0)
    assert case.verdict.alpha == stats.per_case_alpha(1)
    assert case.verdict.ceiling_pp == 0.5  # the smoke tier's
    assert comparison.regressed == [CASE]
    text = render_compare(comparison)
    assert re.search(r"`cnn-ptq_int8-litert` +\| \*\*regressed\*\* +\| 20 / 0 +\| -10\.00 +\| 9\.5e-07 +"
                     r"\| 90\.00 -> 80\.00 +\| 31\.0 KB -> 31\.5 KB \(\+500 B\) +\| none ", text)
    # The accuracy row agrees with the verdict.
    assert only_row(comparison, "accuracy").significant


def test_compare_gives_a_changed_recipe_a_verdict_with_numbers():
    before = outcomes(right=150, n=200)
    after = before.copy()
    after[[0, 1]] = False  # lost
    after[199] = True  # gained
    comparison = cmp.compare(
        baseline(**{CASE: measured(before, recipe_hash="aaa")}),
        results_with(200, **{CASE: measured(after, recipe_hash="bbb")}))
    [case] = comparison.verdicts
    assert case.name == "drift"
    assert (case.verdict.lost, case.verdict.gained) == (2, 1)
    assert "case definition (recipe hash) changed" in case.causes
    text = render_compare(comparison)
    assert "not comparable" not in text
    assert re.search(r"`cnn-ptq_int8-litert` +\| drift +\| 2 / 1 +\| -0\.50 +\| 0\.5 +"
                     r"\| 75\.00 -> 74\.50 ", text)
    assert "case definition (recipe hash) changed" in text
    assert only_row(comparison, "accuracy").change == pytest.approx(-0.005)


def test_compare_without_per_image_record_shows_the_accuracies():
    after = outcomes(right=170, n=200)
    comparison = cmp.compare(baseline(**{CASE: {"accuracy": 0.9}}),
                             results_with(200, **{CASE: measured(after)}))
    [case] = comparison.verdicts
    assert case.verdict is None and case.unpaired == "no per-image record before"
    assert not comparison.regressed
    assert re.search(r"\| no per-image record before +\| n/a +\| -5\.00 +\| n/a +\| 90\.00 -> 85\.00 ",
                     render_compare(comparison))


def test_compare_does_not_pair_records_of_different_test_sets():
    comparison = cmp.compare(baseline(**{CASE: measured(outcomes(right=90, n=100))}),
                             results_with(200, **{CASE: measured(outcomes(right=180, n=200))}))
    assert comparison.verdicts[0].unpaired == "not paired: 100 vs 200 test images"


def test_compare_lists_environment_differences_as_causes():
    correct = outcomes(right=90, n=100)
    environment = {"lock_sha256": "a" * 64, "tensorflow": "2.21.0", "cpu": {"flags": {"avx2": True}}}
    before = {**baseline(**{CASE: measured(correct, environment="old")}),
              "environments": {"old": environment}}
    after = {**results_with(100, **{CASE: measured(correct, environment="new")}),
             "environments": {"new": {**environment, "tensorflow": "2.22.0"}}}
    [case] = cmp.compare(before, after).verdicts
    assert case.name == "identical"
    assert case.causes == ("tensorflow 2.21.0 -> 2.22.0",)


def test_compare_refuses_damaged_bits(tmp_path):
    broken = {**measured(outcomes(right=90, n=100)), "correct_bits": "not base64!"}
    with pytest.raises(ReportError, match=r"cnn-ptq_int8-litert.*correct_bits"):
        cmp.compare(baseline(**{CASE: measured(outcomes(right=90, n=100))}),
                    results_with(100, **{CASE: broken}))


def test_compare_without_a_known_tier_cannot_judge():
    correct = measured(outcomes(right=90, n=100))
    with pytest.raises(ReportError, match="tier"):
        cmp.compare({"schema": 2, "cases": {CASE: correct}},
                    {"schema": 2, "cases": [{"id": CASE, **correct}]})


def test_a_migrated_schema_1_baselines_file_compares(tmp_path):
    """The committed baselines may still be schema 1: bench.results migrates them for compare."""
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"schema": 1, "tier": "smoke", "dataset_sha256": "d",
                                "environment": {"tensorflow": "2.21.0"},
                                "cases": {CASE: {"accuracy": 0.9, "size_bytes": 31_000}}}),
                    encoding="utf-8")
    document = load_results_or_baselines(path)
    assert document["schema"] == 3 and document["cases"][CASE]["environment"] in document["environments"]
    after = results_with(200, **{CASE: measured(outcomes(right=170, n=200), size_bytes=31_000)})
    [case] = cmp.compare(document, after).verdicts
    assert case.unpaired == "no per-image record before"


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_render_and_compare(tmp_path, capsys):
    results_path = tmp_path / "results.json"
    results_path.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["render", str(results_path), "--out-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / REPORT_FILE).exists()
    out = tmp_path / "compare.md"
    # The sample pair holds a regressed case: the table is written and the command fails.
    assert main(["compare", str(SAMPLE), str(SAMPLE_B), "--out", str(out)]) == cmp.REGRESSED_EXIT_STATUS
    assert out.read_text(encoding="utf-8") == (GOLDEN_DIR / "compare_sample.md").read_text(
        encoding="utf-8")
    assert "vgg16-qat_int8-litert" in capsys.readouterr().err
    assert main(["compare", str(SAMPLE), str(SAMPLE_B), "--all"]) == cmp.REGRESSED_EXIT_STATUS
    assert "unchanged metrics not shown" not in capsys.readouterr().out
    assert main(["compare", str(SAMPLE), str(SAMPLE)]) == 0


def test_cli_compare_fails_on_a_regressed_case_and_says_so(tmp_path, capsys):
    before, after = tmp_path / "smoke.json", tmp_path / "results.json"
    before.write_text(json.dumps({
        "schema": 2, "tier": "smoke", "dataset_sha256": "d", "environments": {"e": {}},
        "cases": {CASE: measured(outcomes(right=180, n=200), environment="e")}}), encoding="utf-8")
    after.write_text(json.dumps(results_with(200, **{CASE: measured(outcomes(right=160, n=200))})),
                     encoding="utf-8")
    assert main(["compare", str(before), str(after)]) == cmp.REGRESSED_EXIT_STATUS
    captured = capsys.readouterr()
    assert "**regressed** | 20 / 0" in captured.out
    assert captured.err.startswith("regressed from") and CASE in captured.err


def test_cli_compare_help_says_a_regression_fails(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert f"{cmp.REGRESSED_EXIT_STATUS} when a case is 'regressed'" in " ".join(
        capsys.readouterr().out.split())


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
    assert worst_case_per_model(results["layer_errors"], results) == {"cnn": "cnn-ptq_int8-litert"}


# --------------------------------------------------------------------------------------------
# Against the baseline, batch-1 cases and the lost images


def test_against_the_baseline_renders_each_verdict_with_its_numbers(sample):
    text = render_markdown(sample)
    section = text.split("## Against the baseline")[1].split("\n## ")[0]
    assert "22 cases judged against the baseline: 18 identical, 1 drift, 1 improved, 1 regressed, " \
           "1 no baseline." in section
    assert re.search(r"`vgg16-ptq_int8-litert` +\| \*\*regressed\*\* +\| 31 / 4 +\| -0\.27 +\| 1\.7e-06 +"
                     r"\| 92\.09 -> 91\.82 +\| artifact bytes differ", section)
    assert re.search(r"`mobilenet-qat_int8-litert` +\| improved +\| 2 / 30 +\| \+0\.28 +\| 1\.2e-07 \(gain\)",
                     section)
    assert re.search(r"`cnn-ptq_dynamic-onnxruntime` +\| no baseline +\| n/a ", section)
    # A changed recipe is a cause beside the verdict, not a status instead of it.
    assert re.search(r"`mobilenet-ptq_float16-litert` +\| identical .*case definition \(recipe hash\) "
                     r"changed", section)
    assert "not comparable" not in text


def test_causes_every_case_shares_are_stated_once():
    results = minimal_results()
    results["cases"].append({**results["cases"][0], "id": "cnn-qat_int8-litert", "mode": "qat_int8"})
    for case in results["cases"]:
        case["baseline_verdict"] = "identical"
        case["baseline_comparison"] = stats.Verdict(
            "identical", 0, 0, 1.0, 1.0, 0.005, 0.5, 100, 0.9, 0.9,
            causes=("tensorflow 2.21.0 -> 2.22.0",)).as_dict()
    results["cases"][1]["baseline_comparison"]["causes"].append("case definition (recipe hash) changed")
    # A case without a baseline shares no differences, and must not hide those the others share.
    results["cases"].append({**results["cases"][0], "id": "cnn-ptq_int8-onnxruntime",
                             "backend": "onnxruntime", "baseline_verdict": "no_baseline",
                             "baseline_comparison": None})
    section = render_markdown(results).split("## Against the baseline")[1]
    assert section.count("tensorflow 2.21.0 -> 2.22.0") == 1
    assert re.search(r"`cnn-qat_int8-litert` .*\| as above; case definition \(recipe hash\) changed", section)


def test_cases_evaluated_one_image_at_a_time_are_named(sample):
    text = render_markdown(sample)
    assert ("Evaluated one image at a time: outputs depend on the batch: `cnn-ptq_dynamic-onnxruntime` "
            "(batch 256 against batch 1 on 48 sampled images: logits up to 0.31 apart, 2 top-1 "
            "changed)") in text
    assert "21 cases evaluated in batches give the outputs of batch 1" in text
    assert "one image at a time" not in render_markdown(minimal_results())


def square_pixels(side: int = 12) -> str:
    """base64 of a 28x28 uint8 image holding a bright square: a stand-in for a test image."""
    image = np.zeros((plots.IMAGE_SIDE, plots.IMAGE_SIDE), dtype=np.uint8)
    image[8:8 + side, 8:8 + side] = 220
    return base64.b64encode(image.tobytes()).decode("ascii")


def lost_images(count: int) -> dict:
    return {"case": "vgg16-ptq_int8-litert", "float_case": "vgg16-float32-litert", "images_lost": 40,
            "images": [{"position": index, "label": index % 10, "predicted": (index + 1) % 10,
                        "float_predicted": index % 10, "pixels": square_pixels(4 + index % 12)}
                       for index in range(count)]}


def test_lost_images_grid_is_written_and_embedded_under_the_case(tmp_path):
    results = minimal_results(lost_images=lost_images(16))
    path = plots.plot_lost_images(results, tmp_path)
    assert path == tmp_path / "lost_images.png"
    assert_is_png(path)
    assert [title for _, title in plots.lost_image_tiles(results)][:2] == [
        "true T-shirt/top\nint8 Trouser", "true Trouser\nint8 Pullover"]
    text = render_markdown(results, {"lost_images": path.name})
    assert "## Images `vgg16-ptq_int8-litert` lost against `vgg16-float32-litert`" in text
    assert "16 of the 40 test images" in text
    assert text.count("](lost_images.png)") == 1  # in its section, not again among the plots


def test_lost_images_grid_skips_unreadable_pixels(tmp_path):
    lost = lost_images(3)
    lost["images"][1]["pixels"] = "AAAA"  # 3 bytes, not 784
    assert len(plots.lost_image_tiles(minimal_results(lost_images=lost))) == 2


@pytest.mark.parametrize("lost", [None, {"case": "cnn-ptq_int8-litert", "images_lost": 0, "images": []}])
def test_without_lost_images_there_is_no_picture_and_a_note(tmp_path, lost):
    stale = tmp_path / plots.PLOT_FILES["lost_images"]
    stale.write_bytes(b"from an earlier run")
    results = minimal_results(lost_images=lost)
    assert plots.plot_lost_images(results, tmp_path) is None
    assert not stale.exists()
    text = render_markdown(results, {})
    assert "No int8 case lost an image that float32 classified correctly in these results." in text
    assert "lost_images.png" not in text


def test_a_first_run_without_baselines_gets_the_count_but_no_rule():
    results = minimal_results()
    results["cases"][0].update({"baseline_verdict": "no_baseline", "baseline_comparison": None})
    section = render_markdown(results).split("## Against the baseline")[1].split("\n## ")[0]
    assert "1 case judged against the baseline: 1 no baseline." in section
    assert "A case regresses" not in section
    assert re.search(r"`cnn-ptq_int8-litert` +\| no baseline +\| n/a ", section)


def churned(correct: np.ndarray, lost: list[int], gained: list[int]) -> np.ndarray:
    """``correct`` with the images at ``lost`` made wrong and those at ``gained`` made right."""
    changed = correct.copy()
    changed[lost], changed[gained] = False, True
    return changed


def test_compare_keeps_the_tiers_ceiling_however_the_float32_sibling_churned():
    """3 lost, 1 gained of 200: a net loss of 1 pp, over the smoke ceiling (0.5 pp) but not
    significant: regressed, as the session judges it, whether or not the case's float32 sibling
    flipped images too (the ceiling is never widened by the model's own churn)."""
    float_before = outcomes(right=180, n=200)
    case_before = outcomes(right=170, n=200)
    case_after = churned(case_before, lost=[0, 1, 2], gained=[199])
    sibling = "cnn-float32-litert"

    def judge(float_after: np.ndarray) -> cmp.CaseVerdict:
        before = baseline(**{sibling: measured(float_before), CASE: measured(case_before)})
        after = results_with(200, **{sibling: measured(float_after), CASE: measured(case_after)})
        return {case.case_id: case for case in cmp.compare(before, after).verdicts}[CASE]

    for float_after in (float_before, churned(float_before, lost=[3, 4], gained=[190, 191])):
        verdict = judge(float_after)
        assert verdict.name == "regressed" and verdict.verdict.ceiling_pp == pytest.approx(0.5)
        assert verdict_row(verdict, ())[1] == "**regressed** (net loss over 0.50 pp)"
