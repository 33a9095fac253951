"""What deployment gets: no image's result may depend on the other images of its batch.

ONNX Runtime's dynamic quantization takes each activation's range over the whole batch tensor, so
``ptq_dynamic`` declares ORT batch-dependent and the harness evaluates it one image at a time. The
test takes that declaration away and checks that the real artifact, evaluated batched, fails its
case with a message that says why; the declared mode passes, evaluated at batch 1.

Real run on the shared trained cache (smoke cnn, ONNX Runtime).
"""

from __future__ import annotations

import dataclasses

import pytest

from bench import atomic, formats
from bench import baseline as baselines
from bench.case_record import CaseRecord

from .conftest import MODEL, make_run

pytestmark = pytest.mark.bench

CASE = f"{MODEL}-ptq_dynamic-onnxruntime"


def _run(cache_root, tmp_path, baselines_dir) -> CaseRecord:
    run = make_run(cache_root, tmp_path, modes=["float32", "ptq_dynamic"], baselines_dir=baselines_dir)
    run.options = dataclasses.replace(run.options, backends=["onnxruntime"])
    return run.run_case(MODEL, "ptq_dynamic", "onnxruntime")


def _run_against_itself(cache_root, tmp_path) -> CaseRecord:
    """The case judged against a baseline recorded from the same code on this machine, so that
    its verdict is ``identical`` and any failure left is one of its own gates (without a baseline
    every case fails for want of an entry, whatever the batch did)."""
    folder = tmp_path / "baselines"
    first = make_run(cache_root, tmp_path, modes=["float32", "ptq_dynamic"])
    first.options = dataclasses.replace(first.options, backends=["onnxruntime"])
    first.run_case(MODEL, "ptq_dynamic", "onnxruntime")
    atomic.write_json(folder / "smoke.json", baselines.from_results(first.document()))
    record = _run(cache_root, tmp_path, folder)
    assert record.baseline_verdict == "identical", record.baseline_comparison
    return record


def test_the_declared_batch_dependent_artifact_is_evaluated_one_image_at_a_time(trained_cache, tmp_path):
    record = _run_against_itself(trained_cache.root, tmp_path)
    invariance = record.batch_invariance
    print(f"\n{CASE}: {invariance}")
    assert record.eval_batch == 1 and invariance["eval_batch"] == 1
    assert invariance["depends_on_batch"], "ORT dynamic quantization measured batch-invariant"
    assert record.status == "passed" and record.failures == [], record.failures


def test_a_batch_dependent_artifact_evaluated_batched_fails(monkeypatch, trained_cache, tmp_path):
    original = formats.export("ptq_dynamic", "onnx")
    monkeypatch.setitem(formats._EXPORTS, ("ptq_dynamic", "onnx"), dataclasses.replace(original, batch_dependent=None))
    record = _run_against_itself(trained_cache.root, tmp_path)
    print(f"\n{CASE}: {record.failures}")
    # The batch gate is the only failure: the status says it, not a missing baseline.
    [message] = record.failures
    assert record.eval_batch == 256 and record.status == "failed"
    assert message.startswith(f"{CASE}: outputs depend on the batch: 48 images run one at a time differ "
                              "from the batch-256 evaluation by up to ")
    assert "say why in its Export's batch_dependent" in message
