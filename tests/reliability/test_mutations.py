"""A gate proven to catch regressions: plant each one in the real run and watch it fail.

Each test runs the real :class:`bench.run.BenchRun` (smoke tier, cnn, LiteRT, the shared
trained cache) with one thing broken, and checks that the gates fail with a message naming the
case. Planted exporters replace ``ptq_int8``'s LiteRT file (its ``tflite`` export in
:mod:`bench.formats`) for one test only (``monkeypatch`` restores the registry entry), so budgets and size floors are the real ones.

A perturbed weight scale is covered by ``bench/cases/test_reality.py::test_weight_checks_have_teeth``
(real ptq_int8 weights, scale x(1 + 1/127): :mod:`bench.weight_checks` reports it), not repeated here.

Measured on the smoke cnn (2000 test images): calibration on noise x10 costs 1.40 pp against
float (budget 1.00 pp) and 1.60 pp against the real ptq_int8 baseline: caught by the drop budget
and by the paired verdict against the baseline; a single all-zero calibration image leaves 9.9 %
accuracy; the float model shipped as int8 has a size ratio of 1.00x (floor 2.80x).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import atomic, evidence, formats, gates
from bench import baseline as baselines
from bench.case_record import CaseRecord
from bench.modes import MODES, float32, ptq_int8

from .conftest import MODEL, make_run

pytestmark = pytest.mark.bench

CASE = f"{MODEL}-ptq_int8-litert"


@pytest.fixture
def plant(monkeypatch):
    """Replaces ptq_int8's LiteRT exporter with a broken one, for this test only."""
    original = formats.export("ptq_int8", "tflite")

    def plant(exporter) -> None:
        monkeypatch.setitem(formats._EXPORTS, ("ptq_int8", "tflite"), dataclasses.replace(original, make=exporter))

    return plant


def noisy_calibration(ctx, path):
    """Calibrates on uniform noise in [0, 10) instead of images in [0, 1]."""
    noise = np.random.default_rng(0).random(ctx.calibration.shape, dtype=np.float32) * 10
    ptq_int8.to_tflite(dataclasses.replace(ctx, calibration=noise), path)


def skipped_calibration(ctx, path):
    """Calibration "skipped": the representative data set is one all-zero image."""
    ptq_int8.to_tflite(dataclasses.replace(ctx, calibration=np.zeros_like(ctx.calibration[:1])), path)


def float_as_int8(ctx, path):
    """Ships the float32 model under the int8 name."""
    float32.to_tflite(ctx, path)


def _baseline_for(reference, mode: str, **overrides) -> dict:
    """A baselines document holding the real ``mode`` case (its environment, data, recipe)."""
    document = baselines.from_results(reference.run.document())
    entry = dict(document["cases"][f"{MODEL}-{mode}-litert"], **overrides)
    document["cases"] = {f"{MODEL}-{mode}-litert": entry}
    return document


def _run_planted(exporter, plant, private_cache, tmp_path, reference):
    """Runs the ptq_int8 case with ``exporter`` planted, gated against the real case's baseline.

    The planted exporter lives in this module, so the case's recipe hash differs from the
    baseline's: the verdict is computed all the same, with the change listed as its cause.
    """
    plant(exporter)
    document = _baseline_for(reference, "ptq_int8")
    atomic.write_json(tmp_path / "baselines" / "smoke.json", document)
    run = make_run(private_cache, tmp_path, modes=["float32", "ptq_int8"],
                   baselines_dir=tmp_path / "baselines")
    return run.run_case(MODEL, "ptq_int8", "litert")


def _show(record: CaseRecord) -> None:
    print(f"\n{record.id}: status {record.status}")
    for message in record.failures:
        print(f"  - {message}")


def test_the_real_case_passes_its_gates(reference):
    """The control: unbroken, the same case passes drop and size gates."""
    record = reference.records["ptq_int8"]
    assert gates.failures(gates.case_checks(reference.run.tier, MODES.get(record.mode), record.as_dict())) == []


def test_noise_calibration_is_caught(plant, private_cache, tmp_path, reference):
    """Both gates catch it, each on its own (1.40 pp against float, 1.60 pp against the baseline):
    the drop budget and the paired verdict against the baseline."""
    record = _run_planted(noisy_calibration, plant, private_cache, tmp_path, reference)
    _show(record)
    assert record.status == "failed"
    assert any(m.startswith(f"{CASE}: accuracy drop ") and "exceeds the budget of 1.00 pp" in m
               for m in record.failures), record.failures
    assert record.baseline_verdict == "regressed"
    assert any(m.startswith(f"{CASE}: regressed against the baseline: ") for m in record.failures), \
        record.failures


def test_skipped_calibration_is_caught(plant, private_cache, tmp_path, reference):
    record = _run_planted(skipped_calibration, plant, private_cache, tmp_path, reference)
    _show(record)
    assert record.status == "failed"
    assert any(m.startswith(f"{CASE}: accuracy drop ") and "exceeds the budget of 1.00 pp" in m
               for m in record.failures), record.failures
    assert record.baseline_verdict == "regressed"
    assert any(m.startswith(f"{CASE}: regressed against the baseline: ") for m in record.failures), \
        record.failures


def test_float_model_shipped_as_int8_fails_the_size_gate(plant, private_cache, tmp_path, reference):
    record = _run_planted(float_as_int8, plant, private_cache, tmp_path, reference)
    _show(record)
    assert record.status == "failed"
    expected = gates.size_ratio_check(CASE, 1.0, 2.8, record.size_bytes, record.float_size_bytes).failure
    assert record.size_ratio == 1.0
    assert expected in record.failures, record.failures
    assert "is the model really quantized?" in expected


@pytest.mark.parametrize("mode", ["float32", "ptq_int8"])
def test_baseline_claiming_two_points_more_is_caught(mode, reference, trained_cache, tmp_path):
    """A baseline whose per-image record has 40 more images right (2 pp) than this run gets."""
    record = reference.records[mode]
    folder = tmp_path / "baselines"
    # The control: the true baseline passes.
    atomic.write_json(folder / "smoke.json", _baseline_for(reference, mode))
    run = make_run(trained_cache.root, tmp_path, modes=["float32", mode], baselines_dir=folder)
    assert run.run_case(MODEL, mode, "litert").status == "passed"
    correct = evidence.unpack(record.correct_bits, record.n_test)
    claimed = correct.copy()
    claimed[np.flatnonzero(~correct)[:40]] = True
    raised = _baseline_for(reference, mode, correct_bits=evidence.pack(claimed),
                           accuracy=float(claimed.mean()))
    atomic.write_json(folder / "smoke.json", raised)
    run = make_run(trained_cache.root, tmp_path, modes=["float32", mode], baselines_dir=folder)
    result = run.run_case(MODEL, mode, "litert")
    _show(result)
    assert result.status == "failed" and result.baseline_verdict == "regressed"
    comparison = result.baseline_comparison
    assert (comparison["lost"], comparison["gained"]) == (40, 0)
    [message] = result.failures
    assert message.startswith(f"{MODEL}-{mode}-litert: regressed against the baseline: 40 images lost, 0 gained")
    assert f"{100 * claimed.mean():.2f} %" in message


def test_drop_just_past_the_budget_is_caught(reference, monkeypatch):
    """The real case with the largest drop, against a budget 0.01 pp below that drop."""
    record = max(reference.records.values(), key=lambda r: r.accuracy_drop_pp)
    tier = reference.run.tier
    drop = record.accuracy_drop_pp
    mode = MODES.get(record.mode)

    def with_budget(points: float):
        """The mode with this tier's drop budget set to ``points`` (the budget is the mode's fact)."""
        changed = dataclasses.replace(mode, drop_budget_pp={**mode.drop_budget_pp, tier.name: points})
        monkeypatch.setitem(MODES._entries, record.mode, changed)
        return changed

    assert gates.failures(gates.case_checks(tier, with_budget(drop), record.as_dict())) == []
    budget = round(drop - 0.01, 6)
    messages = gates.failures(gates.case_checks(tier, with_budget(budget), record.as_dict()))
    print(f"\n{messages}")
    assert messages == [
        f"{record.id}: accuracy drop {drop:.2f} pp exceeds the budget of {budget:.2f} pp "
        f"(float {100 * record.float_accuracy:.2f} %, this case {100 * record.accuracy:.2f} %, "
        f"95 % CI of the drop [{record.drop_ci95_pp[0]:.2f}, {record.drop_ci95_pp[1]:.2f}] pp)"
    ]
