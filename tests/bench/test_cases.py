"""The bench: one case per model x mode x backend, plus cross-case gates.

Each case trains (or loads) its model, converts (or loads) its artifact, evaluates it on the
tier's test images with a real runtime, and asserts its gates. Failure messages name the case,
the value, the baseline and the tolerance.
"""

from __future__ import annotations

import pytest

from bench import gates
from bench.modes import MODES
from bench.session import FLOAT_AGREEMENT_FLOOR, FLOAT_LOGIT_TOLERANCE, QUANTIZED_AGREEMENT_FLOOR

pytestmark = pytest.mark.bench


def _skip_if_unsupported(session, model: str, mode: str, backend: str) -> None:
    reason = MODES.get(mode).skip_reason(backend)
    if reason:
        pytest.skip(f"{mode} on {backend}: {reason}")
    reason = session.tier.skip_reason(model, mode)
    if reason:
        pytest.skip(f"{model}-{mode} in tier {session.tier.name}: {reason}")


def test_case(case, bench_session):
    """Accuracy drop within budget, size ratio at least its floor, both within baseline tolerance."""
    model, mode, backend = case
    _skip_if_unsupported(bench_session, model, mode, backend)
    record = bench_session.run_case(model, mode, backend)
    assert not record["failures"], "\n".join(record["failures"])


def test_qat_not_worse_than_ptq(model_backend, bench_session):
    """QAT fine-tunes from the converged float model: it must not lose to PTQ on the same model."""
    model, backend = model_backend
    modes = bench_session.options.modes
    if "qat_int8" not in modes or "ptq_int8" not in modes:
        pytest.skip("needs both qat_int8 and ptq_int8 selected")
    for mode in ("qat_int8", "ptq_int8"):
        _skip_if_unsupported(bench_session, model, mode, backend)
    qat = bench_session.run_case(model, "qat_int8", backend)
    ptq = bench_session.run_case(model, "ptq_int8", backend)
    message = gates.qat_vs_ptq_fails(model, backend, qat["accuracy"], ptq["accuracy"])
    if message:
        bench_session.extra_failures.append(message)
    assert message is None, message


def test_backends_agree(model_mode, bench_session):
    """Backends agree image by image: float32 almost always, quantized above measured floors."""
    model, mode = model_mode
    record = bench_session.agreement(model, mode)
    if record is None:
        pytest.skip(f"{mode} runs on fewer than two of the selected backends")
    floor = FLOAT_AGREEMENT_FLOOR if mode == "float32" else QUANTIZED_AGREEMENT_FLOOR.get(mode)
    problems = []
    for pair in record["pairs"]:
        names = "/".join(pair["backends"])
        if floor is not None and pair["top1_agreement"] < floor:
            problems.append(f"{model}-{mode} {names}: top-1 agreement {100 * pair['top1_agreement']:.2f} % "
                            f"below {100 * floor:.1f} %")
        if mode == "float32" and pair["max_abs_logit_diff"] > FLOAT_LOGIT_TOLERANCE:
            problems.append(f"{model}-float32 {names}: max |logit diff| {pair['max_abs_logit_diff']:.2e} "
                            f"above {FLOAT_LOGIT_TOLERANCE:.0e}")
    bench_session.extra_failures.extend(problems)
    assert not problems, "\n".join(problems)
