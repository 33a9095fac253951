"""The cheap int8 speed check of `nox -s tests` (the CI gate): an int8 path 2x slower fails.

`nox -s bench` times every artifact (``test_latency.py``, marked ``latency``, which CI skips).
This check times only ``ptq_int8`` against float32 at batch 1, interleaved, for about a second
per model and backend, and gates the speedup (a machine-relative ratio) against the baseline's
where the CPU's ISA flags match, with the same tolerance as the bench
(:data:`bench.gates.SPEEDUP_KEPT_FRACTION`). A 2x slower int8 path halves the speedup, below
the 0.7 floor; a second test plants exactly that and checks that the gate catches it.
"""

from __future__ import annotations

import time

import pytest

from bench import environment, gates, latency
from bench.modes import MODES
from bench.session import case_id

pytestmark = pytest.mark.bench

CHECK_MODE = "ptq_int8"
CHECK_BACKENDS = ("litert", "onnxruntime")
# Wall time of the float32 side of one check; the int8 side adds about half of it again.
CHECK_SECONDS = 0.5


def _skip_unless_checked(session, model: str, backend: str) -> None:
    if backend not in CHECK_BACKENDS:
        pytest.skip(f"{backend} is not timed (only {', '.join(CHECK_BACKENDS)})")
    if CHECK_MODE not in session.options.modes or "float32" not in session.options.modes:
        pytest.skip(f"needs float32 and {CHECK_MODE} selected")
    reason = MODES.get(CHECK_MODE).skip_reason(backend) or session.tier.skip_reason(model, CHECK_MODE)
    if reason:
        pytest.skip(f"{case_id(model, CHECK_MODE, backend)}: {reason}")


def measure_speedup(session, model: str, backend: str, slowdown: float = 1.0) -> float:
    """float32 / int8 median batch-1 latency, interleaved, one thread.

    Args:
        slowdown: Each int8 call is stretched to this multiple of its own duration (busy wait):
            2 plants an int8 path exactly twice as slow. (Invoking twice is not: the second
            invoke finds weights and activations in cache, measured 1.4x, not 2x.)
    """
    one = session.inputs("test", model)[:1]
    float_runner = session.runner(model, "float32", backend, threads=1)
    int8_runner = session.runner(model, CHECK_MODE, backend, threads=1)

    def int8_call() -> None:
        began = time.perf_counter()
        int8_runner.run_batch(one)
        until = began + slowdown * (time.perf_counter() - began)
        while time.perf_counter() < until:
            pass

    calls = {"float32": lambda: float_runner.run_batch(one), CHECK_MODE: int8_call}
    medians = latency.interleaved_medians(calls, latency.rounds_for(calls["float32"], CHECK_SECONDS))
    return medians["float32"] / medians[CHECK_MODE]


def test_int8_speed_check(model_backend, bench_session):
    """ptq_int8 keeps 0.7 of its baseline speedup (same ISA flags; mobilenet and vgg16), and the
    VNNI floor."""
    model, backend = model_backend
    _skip_unless_checked(bench_session, model, backend)
    cid = case_id(model, CHECK_MODE, backend)
    speedup = measure_speedup(bench_session, model, backend)
    entry, recorded = bench_session.baseline_entry(cid)
    regression, verdict = gates.speedup_vs_baseline_fails(
        cid, speedup, (entry or {}).get("speedup_vs_float"),
        environment.same_isa(recorded, bench_session.environment), model)
    gated, why = latency.vnni_verdict(bench_session.environment["cpu"])
    floor_fails = gated and model in latency.SPEEDUP_GATED_MODELS and speedup < latency.INT8_SPEEDUP_FLOOR
    bench_session.harness.setdefault("speed_check", {})[cid] = {"speedup_vs_float": speedup, "verdict": verdict}
    print(f"\n{cid}: {verdict}")
    assert regression is None, regression
    assert not floor_fails, (f"{cid}: int8 is {speedup:.2f}x float32 at batch 1, below the "
                             f"{latency.INT8_SPEEDUP_FLOOR}x floor ({why})")


def test_planted_int8_slowdown_is_caught(bench_session):
    """The check's teeth: the same int8 path run twice per call fails against the real speedup."""
    model = next((m for m in ("mobilenet", "vgg16", "cnn") if m in bench_session.options.models), None)
    backend = "litert"
    if model is None or backend not in bench_session.options.backends:
        pytest.skip("needs a model and litert selected")
    _skip_unless_checked(bench_session, model, backend)
    cid = case_id(model, CHECK_MODE, backend)
    real = measure_speedup(bench_session, model, backend)
    planted = measure_speedup(bench_session, model, backend, slowdown=2.0)
    regression, verdict = gates.speedup_vs_baseline_fails(cid, planted, real, same_isa=True, model=model)
    print(f"\n{cid}: real {real:.2f}x, planted 2x slowdown {planted:.2f}x: {verdict}")
    assert regression is not None, f"a 2x slower int8 path passed: {verdict}"
    assert f"fell to {planted:.2f}x" in regression
