"""The cheap int8 speed check of `nox -s tests` (the CI gate): an int8 path 2x slower fails.

`nox -s bench` times every artifact (``test_latency.py``, marked ``latency``, which CI skips).
This check times only ``ptq_int8`` against float32 at batch 1, interleaved, for about a second
per model and backend, and gates the speedup (a machine-relative ratio) against the baseline's
where it was measured on this testbed and CPU model, with the same tolerance as the bench
(:data:`bench.gates.SPEEDUP_KEPT_FRACTION`). A 2x slower int8 path halves the speedup, below
the 0.7 floor; a second test plants exactly that and checks that the gate catches it against
the speedup stored in the baseline.
"""

from __future__ import annotations

import time

import pytest

from bench import environment, gates, latency
from bench.backends import BACKENDS
from bench.models import MODELS
from bench.modes import REFERENCE_MODE
from bench.results import case_id

pytestmark = pytest.mark.bench

CHECK_MODE = "ptq_int8"
# Wall time of the float32 side of one check; the int8 side adds about half of it again.
CHECK_SECONDS = 0.5


def _skip_unless_checked(run, model: str, backend: str) -> None:
    untimed = BACKENDS.get(backend).untimed
    if untimed:
        pytest.skip(f"{backend} is not timed: {untimed}")
    if CHECK_MODE not in run.options.modes or REFERENCE_MODE not in run.options.modes:
        pytest.skip(f"needs {REFERENCE_MODE} and {CHECK_MODE} selected")
    reason = run.skip_reason(model, CHECK_MODE, backend)
    if reason:
        pytest.skip(reason)


def measure_speedup(run, model: str, backend: str, slowdown: float = 1.0) -> float:
    """float32 / int8 median batch-1 latency, interleaved, one thread.

    Args:
        slowdown: Each int8 call is stretched to this multiple of its own duration (busy wait):
            2 plants an int8 path exactly twice as slow. (Invoking twice is not: the second
            invoke finds weights and activations in cache, measured 1.4x, not 2x.)
    """
    one = run.build.inputs("test", model)[:1]
    float_runner = run.build.runner(model, REFERENCE_MODE, backend, threads=1)
    int8_runner = run.build.runner(model, CHECK_MODE, backend, threads=1)

    def int8_call() -> None:
        began = time.perf_counter()
        int8_runner.run_batch(one)
        until = began + slowdown * (time.perf_counter() - began)
        while time.perf_counter() < until:
            pass

    calls = {REFERENCE_MODE: lambda: float_runner.run_batch(one), CHECK_MODE: int8_call}
    medians = latency.interleaved_medians(calls, latency.rounds_for(calls[REFERENCE_MODE], CHECK_SECONDS))
    return medians[REFERENCE_MODE] / medians[CHECK_MODE]


def against_baseline(run, model: str, backend: str, speedup: float) -> tuple[gates.Check, float | None]:
    """``speedup`` of ptq_int8 judged against the stored baseline's, as the check judges it.

    Returns:
        ``(the check, the baseline's speedup where it applies here)``: it applies where the entry
        records one and was measured on this testbed and CPU model.
    """
    cid = case_id(model, CHECK_MODE, backend)
    entry, recorded = run.baseline_entry(cid)
    stored = (entry or {}).get("speedup_vs_float")
    same_isa = environment.same_isa(recorded, run.environment)
    check = gates.speedup_vs_baseline_check(cid, speedup, stored, same_isa, model)
    return check, stored if stored is not None and same_isa else None


def test_int8_speed_check(model_backend, bench_run):
    """ptq_int8 keeps 0.7 of its baseline speedup (same ISA flags; mobilenet and vgg16), and the
    VNNI floor."""
    model, backend = model_backend
    _skip_unless_checked(bench_run, model, backend)
    cid = case_id(model, CHECK_MODE, backend)
    speedup = measure_speedup(bench_run, model, backend)
    kept, _ = against_baseline(bench_run, model, backend, speedup)
    floor = gates.int8_speedup_check(cid, model, speedup, bench_run.environment["cpu"])
    bench_run.record.add_harness_item("speed_check", cid, {"speedup_vs_float": speedup, "verdict": kept.note})
    print(f"\n{cid}: {kept.note}")
    assert kept.passed, kept.failure
    assert floor.passed, floor.failure


def test_planted_int8_slowdown_is_caught(bench_run):
    """The check's teeth: an int8 path made exactly twice as slow fails against the speedup stored
    in the baseline, through the same lookup and gate as the check itself. Skipped where the
    stored speedup does not apply (another CPU model or testbed, or none recorded), as the check
    then gates nothing either."""
    gated = [name for name, spec in MODELS.items() if spec.speedup_gated]
    model = next((m for m in bench_run.options.models if m in gated), None)
    backend = "litert"
    if model is None or backend not in bench_run.options.backends:
        pytest.skip(f"needs litert and one of the speed-gated models {tuple(gated)} selected "
                    "(ModelSpec.speedup_gated)")
    _skip_unless_checked(bench_run, model, backend)
    cid = case_id(model, CHECK_MODE, backend)
    unmeasured, stored = against_baseline(bench_run, model, backend, float("nan"))
    if stored is None:
        pytest.skip(f"{cid}: the stored baseline speedup does not apply here: {unmeasured.note.split('; ', 1)[-1]}")
    planted = measure_speedup(bench_run, model, backend, slowdown=2.0)
    regression, _ = against_baseline(bench_run, model, backend, planted)
    print(f"\n{cid}: stored baseline {stored:.2f}x, planted 2x slowdown {planted:.2f}x: {regression.note}")
    assert regression.fails, f"a 2x slower int8 path passed against the stored baseline: {regression.note}"
    assert f"fell to {planted:.2f}x from the baseline's {stored:.2f}x" in regression.failure
