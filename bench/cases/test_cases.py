"""The bench: one case per model x mode x backend, plus cross-case gates.

Each case trains (or loads) its model, converts (or loads) its artifact, evaluates it on the
tier's test images with a real runtime, and asserts its gates (:mod:`bench.gates`). Failure
messages name the case, the value, the baseline and the tolerance.
"""

from __future__ import annotations

import pytest

from bench import evidence, gates, stats

pytestmark = pytest.mark.bench

QAT_MODE, PTQ_MODE = "qat_int8", "ptq_int8"


def _skip_if_not_run(run, model: str, mode: str, backend: str) -> None:
    reason = run.skip_reason(model, mode, backend)
    if reason:
        pytest.skip(reason)


def test_case(case, bench_run):
    """Accuracy drop within budget, size ratio at least its floor, the verdict against the baseline."""
    model, mode, backend = case
    _skip_if_not_run(bench_run, model, mode, backend)
    record = bench_run.run_case(model, mode, backend)
    assert not record.failures, "\n".join(record.failures)


def test_qat_not_worse_than_ptq(model_backend, bench_run):
    """QAT fine-tunes from the converged float model: it must not lose to PTQ on the same model,
    judged image by image with the paired test every case gets (:func:`bench.gates.qat_vs_ptq_check`)."""
    model, backend = model_backend
    modes = bench_run.options.modes
    if QAT_MODE not in modes or PTQ_MODE not in modes:
        pytest.skip(f"needs both {QAT_MODE} and {PTQ_MODE} selected")
    for mode in (QAT_MODE, PTQ_MODE):
        _skip_if_not_run(bench_run, model, mode, backend)
    qat = bench_run.run_case(model, QAT_MODE, backend)
    ptq = bench_run.run_case(model, PTQ_MODE, backend)
    check = gates.qat_vs_ptq_check(
        model, backend, evidence.unpack(qat.correct_bits, qat.n_test),
        evidence.unpack(ptq.correct_bits, ptq.n_test), stats.per_case_alpha(bench_run.cases_judged))
    bench_run.record.add_failures(gates.failures([check]))
    assert check.passed, check.failure


def test_backends_agree(model_mode, bench_run):
    """Backends agree image by image: float32 almost always, quantized above the mode's floor."""
    model, mode = model_mode
    record = bench_run.agreement(model, mode)
    if record is None:
        pytest.skip(f"{model}-{mode} runs on fewer than two of the selected backends")
    assert not record.failures, "\n".join(record.failures)
