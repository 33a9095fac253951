"""Tests of bench.gates: None when passing, a message with case, value, limit and tolerance when not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import gates
from bench.modes import MODES
from bench.tiers import SMOKE

CASE = "cnn-ptq_int8-litert"


# --- drop budget -------------------------------------------------------------------------------


def test_drop_within_and_at_the_budget_passes():
    assert gates.drop_fails(CASE, 0.3, (0.1, 0.5), 1.0, 0.90, 0.897) is None
    assert gates.drop_fails(CASE, 1.0, (0.5, 1.5), 1.0, 0.90, 0.89) is None
    # As computed from counts: 20 images of 2000 is 1.0 pp up to float rounding.
    assert gates.drop_fails(CASE, 100 * 20 / 2000, (0.5, 1.5), 1.0, 0.9, 0.89) is None
    assert gates.drop_fails(CASE, -0.5, (-1.0, 0.0), 0.0, 0.90, 0.905) is None


def test_drop_over_the_budget_fails_with_the_numbers():
    message = gates.drop_fails(CASE, 1.05, (0.61, 1.49), 1.0, 0.9012, 0.8906)
    assert message is not None
    assert message.startswith(CASE)
    assert "1.05 pp" in message and "budget of 1.00 pp" in message
    assert "90.12 %" in message and "89.06 %" in message
    assert "[0.61, 1.49]" in message


def test_float32_budget_of_zero_fails_on_any_drop():
    assert gates.drop_fails("cnn-float32-litert", 0.05, (0.0, 0.1), 0.0, 0.9, 0.8995) is not None


# --- size ratio --------------------------------------------------------------------------------


def test_size_ratio_passes_at_and_above_the_minimum_and_without_one():
    assert gates.size_ratio_fails(CASE, 3.5, 2.8, 1000, 3500) is None
    assert gates.size_ratio_fails(CASE, 2.8, 2.8, 1000, 2800) is None
    assert gates.size_ratio_fails(CASE, 0.9, None, 1000, 900) is None


def test_size_ratio_below_the_minimum_fails_with_the_numbers():
    message = gates.size_ratio_fails(CASE, 1.02, 2.8, 95_000, 96_900)
    assert message is not None and message.startswith(CASE)
    assert "1.02x" in message and "2.80x" in message
    assert "95,000 bytes" in message and "96,900" in message
    assert "quantized" in message


@pytest.mark.parametrize(
    ("mode", "model", "expected"),
    [
        ("ptq_int8", "cnn", 2.8),
        ("ptq_dynamic", "cnn", 2.8),
        ("qat_int8", "cnn", 2.8),
        ("ptq_int8", "vgg16", 3.9),
        ("ptq_int8", "mobilenet", 3.6),
        ("ptq_int16x8", "mobilenet", 3.4),
        ("ptq_float16", "cnn", 1.8),
        ("ptq_float16", "vgg16", 1.95),
        ("ptq_int8", "a_model_of_another_package", 2.0),  # the mode's default floor
        ("float32", "cnn", None),  # float32 is the reference
    ],
)
def test_min_size_ratio_is_a_fact_of_the_mode(mode, model, expected):
    assert MODES.get(mode).min_size_ratio(model) == expected


def test_every_quantized_mode_has_a_size_gate_for_every_model():
    for name, mode in MODES.items():
        if mode.weights == "float32":  # float32 and bf16 ship the float file: nothing to shrink
            continue
        for model in ("cnn", "mobilenet", "vgg16", "a_model_of_another_package"):
            ratio = mode.min_size_ratio(model)
            assert ratio is not None and 1.0 < ratio < 4.0, (name, model)


# --- baseline size -----------------------------------------------------------------------------


def test_baseline_size_within_and_at_the_tolerance_passes():
    assert gates.baseline_size_fails(CASE, 100_000, 100_000, 0.02) is None
    assert gates.baseline_size_fails(CASE, 101_000, 100_000, 0.02) is None
    assert gates.baseline_size_fails(CASE, 102, 100, 0.02) is None  # +2 % exactly
    assert gates.baseline_size_fails(CASE, 98, 100, 0.02) is None  # -2 % exactly
    assert gates.baseline_size_fails(CASE, 102_000, 100_000, 0.02) is None


def test_baseline_size_change_fails_with_the_numbers():
    message = gates.baseline_size_fails(CASE, 103_000, 100_000, 0.02)
    assert message is not None and message.startswith(CASE)
    assert "103,000 bytes" in message and "+3.0 %" in message
    assert "baseline 100,000" in message and "±2.0 %" in message
    shrunk = gates.baseline_size_fails(CASE, 50_000, 100_000, 0.02)
    assert shrunk is not None and "-50.0 %" in shrunk


def test_baseline_size_without_a_tolerance_must_match_to_the_byte():
    """Same lock, case definition and CPU: the converters are deterministic, so one byte fails."""
    assert gates.baseline_size_fails(CASE, 100_000, 100_000, None) is None
    grown = gates.baseline_size_fails(CASE, 100_001, 100_000, None)
    assert grown is not None and grown.startswith(CASE)
    assert "100,001 bytes" in grown and "100,000" in grown and "+1 bytes" in grown
    assert "lock, case definition and CPU are unchanged" in grown
    shrunk = gates.baseline_size_fails(CASE, 99_000, 100_000, None)
    assert shrunk is not None and "-1,000 bytes" in shrunk
    # The same moves pass once a tolerance applies (something in the environment changed).
    assert gates.baseline_size_fails(CASE, 100_001, 100_000, 0.02) is None
    assert gates.baseline_size_fails(CASE, 99_000, 100_000, 0.02) is None


# --- the paired verdict against the baseline ---------------------------------------------------

SMOKE_ALPHA = gates.RUN_FALSE_ALARM / 32  # 32 cases judged in a smoke run


def outcomes(n: int = 2000, lost: int = 0, gained: int = 0, both_right: int = 1600, seed: int = 0):
    """(current, baseline) per-image outcomes with exactly ``lost`` and ``gained`` discordant images,
    placed at random positions."""
    assert both_right + lost + gained <= n
    order = np.random.default_rng(seed).permutation(n)
    current, baseline = np.zeros(n, bool), np.zeros(n, bool)
    right, lost_at, gained_at = np.split(order[:both_right + lost + gained], [both_right, both_right + lost])
    current[right] = baseline[right] = True
    baseline[lost_at] = True
    current[gained_at] = True
    return current, baseline


def test_per_case_alpha_divides_the_run_false_alarm_rate():
    assert gates.RUN_FALSE_ALARM == 0.01
    assert gates.per_case_alpha(32) == pytest.approx(0.01 / 32)
    assert gates.per_case_alpha(1) == 0.01
    assert gates.per_case_alpha(0) == 0.01  # nothing judged: no division by zero


def test_judge_identical():
    current, baseline = outcomes(lost=0, gained=0)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, reference_flips=0)
    assert verdict.verdict == "identical"
    assert (verdict.lost, verdict.gained, verdict.p_loss, verdict.p_gain) == (0, 0, 1.0, 1.0)
    assert verdict.lost_indices == () and verdict.net_loss_pp == 0.0
    assert verdict.accuracy == verdict.baseline_accuracy == pytest.approx(0.8)
    assert gates.verdict_fails(CASE, verdict) is None
    assert verdict.summary() == "identical: 0 lost, 0 gained against the baseline"


def test_judge_drift_of_a_few_images_either_way():
    current, baseline = outcomes(lost=3, gained=4)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, causes=["onnxruntime 1.32.0 -> 1.33.0"], reference_flips=0)
    assert verdict.verdict == "drift"
    assert (verdict.lost, verdict.gained, verdict.n) == (3, 4, 2000)
    assert verdict.p_loss == pytest.approx(99 / 128)  # P(X >= 3), X ~ Bin(7, 1/2)
    assert verdict.p_gain == pytest.approx(64 / 128)  # P(X >= 4)
    assert verdict.net_loss_pp == pytest.approx(-0.05)
    assert verdict.accuracy == pytest.approx((1600 + 4) / 2000)
    assert verdict.baseline_accuracy == pytest.approx((1600 + 3) / 2000)
    assert gates.verdict_fails(CASE, verdict) is None
    summary = verdict.summary()
    assert summary.startswith("drift: 3 lost, 4 gained against the baseline")
    assert "p 0.77" in summary and "differences: onnxruntime 1.32.0 -> 1.33.0" in summary


def test_judge_regressed_by_significance_alone():
    """20 lost, 0 gained: p = 2^-20, far below 0.01/32, though the net loss is under the ceiling."""
    current, baseline = outcomes(n=10_000, lost=20, gained=0, both_right=8000)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, ceiling_pp=0.25, reference_flips=0)
    assert verdict.net_loss_pp == pytest.approx(0.2) and verdict.net_loss_pp < verdict.ceiling_pp
    assert verdict.p_loss == pytest.approx(2.0**-20) and verdict.p_loss < SMOKE_ALPHA
    assert verdict.verdict == "regressed"
    assert list(verdict.lost_indices) == sorted(np.flatnonzero(baseline & ~current).tolist())
    assert len(verdict.lost_indices) == 20
    message = gates.verdict_fails(CASE, verdict)
    assert message is not None and "significant at alpha 0.00031" in message


def test_judge_regressed_by_the_ceiling_without_significance():
    """30 lost, 15 gained: p ~ 0.018 is not significant at 0.01/32, but the net 0.75 pp is over 0.5."""
    current, baseline = outcomes(lost=30, gained=15)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, ceiling_pp=0.5, reference_flips=0)
    assert verdict.p_loss > SMOKE_ALPHA
    assert verdict.net_loss_pp == pytest.approx(0.75)
    assert verdict.verdict == "regressed"
    message = gates.verdict_fails(CASE, verdict)
    assert message is not None and "net loss 0.75 pp over the ceiling 0.50 pp" in message
    # At the ceiling exactly (10 net images of 2000 = 0.5 pp) it is not over it.
    at, at_base = outcomes(lost=25, gained=15)
    assert gates.judge(at, at_base, SMOKE_ALPHA, ceiling_pp=0.5, reference_flips=0).verdict == "drift"


def test_judge_improved():
    current, baseline = outcomes(lost=0, gained=20)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, reference_flips=0)
    assert verdict.verdict == "improved"
    assert verdict.p_gain == pytest.approx(2.0**-20) and verdict.p_loss == 1.0
    assert verdict.net_loss_pp == pytest.approx(-1.0)
    assert gates.verdict_fails(CASE, verdict) is None  # a gain never fails the run
    assert "improved: 0 lost, 20 gained" in verdict.summary()
    assert "p 9.5e-07" in verdict.summary()  # the gain's p-value, not the loss's 1.0


def test_judge_a_significant_loss_beats_the_gains_that_came_with_it():
    current, baseline = outcomes(n=10_000, lost=40, gained=5, both_right=8000)
    assert gates.judge(current, baseline, SMOKE_ALPHA, ceiling_pp=100.0, reference_flips=0).verdict == "regressed"


def test_verdict_as_dict_round_trips_through_the_verdict():
    current, baseline = outcomes(lost=30, gained=15)
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, causes=("lock a -> b",), reference_flips=0)
    record = verdict.as_dict()
    assert record["verdict"] == "regressed" and record["net_loss_pp"] == pytest.approx(0.75)
    assert record["lost_indices"] == list(verdict.lost_indices) and record["causes"] == ["lock a -> b"]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k != "net_loss_pp"}
    assert gates.Verdict(**fields) == verdict


def test_verdict_fails_names_case_counts_p_value_accuracies_lost_images_and_causes():
    n = 2000
    baseline = np.zeros(n, bool)
    baseline[:1700] = True
    current = baseline.copy()
    lost = [3, 17, 100, 101, 250, 999, 1000, 1200, 1300, 1400, 1500, 1699]
    current[lost] = False  # 12 lost, none gained: p = 2^-12 = 0.00024 < 0.01 / 32
    causes = ["lock 111 -> 222", "case definition (recipe hash) changed"]
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, causes=causes, reference_flips=0)
    assert verdict.verdict == "regressed" and verdict.p_loss == pytest.approx(2.0**-12)
    message = gates.verdict_fails(CASE, verdict)
    assert message == (
        f"{CASE}: regressed against the baseline: 12 images lost, 0 gained "
        "(net +0.60 pp; one-sided McNemar p 0.00024, significant at alpha 0.00031); "
        "accuracy 84.40 % against the baseline's 85.00 %; "
        "lost images 3, 17, 100, 101, 250, 999, 1000, 1200 and 4 more; "
        "likely causes: lock 111 -> 222; case definition (recipe hash) changed"
    )


def test_verdict_fails_lists_every_lost_image_when_few_and_says_when_nothing_changed():
    baseline = np.ones(2000, bool)
    current = baseline.copy()
    current[[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = False  # 11 lost: 0.55 pp over the 0.5 ceiling
    verdict = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, reference_flips=0)
    assert verdict.verdict == "regressed" and verdict.p_loss > SMOKE_ALPHA  # by the ceiling
    message = gates.verdict_fails(CASE, verdict)
    assert "net loss 0.55 pp over the ceiling 0.50 pp" in message
    assert "lost images 5, 6, 7, 8, 9, 10, 11, 12 and 3 more" in message
    assert message.endswith("; nothing in the environment or case definition changed")
    current_few = baseline.copy()
    current_few[[40, 41]] = False
    few = gates.judge(current_few, baseline, gates.per_case_alpha(1), ceiling_pp=0.0, reference_flips=0)
    assert few.verdict == "regressed"
    few_message = gates.verdict_fails(CASE, few)
    assert "lost images 40, 41;" in few_message and "more" not in few_message


def test_symmetric_noise_rarely_fails_a_run_at_the_corrected_alpha():
    """Calibration: 32 cases, each with 10 images flipped by a fair coin (no real change), judged at
    0.01/32 with the smoke ceiling; over many simulated runs, well under 1 % of runs fail.

    Uncorrected (alpha 0.01 per case), 10 of 10 lost would fail a case 1 time in 1024, about 3 %
    of runs; a ceiling that counted 0.5 pp as over 0.5 pp would do the same."""
    cases, n, flips, runs = 32, 2000, 10, 400
    alpha = gates.per_case_alpha(cases)
    failed_runs = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        failed = False
        for _ in range(cases):
            baseline = rng.random(n) < 0.85
            current = baseline.copy()
            at = rng.choice(n, flips, replace=False)
            lose = rng.random(flips) < 0.5  # each flip is a loss or a gain with equal chance
            baseline[at], current[at] = lose, ~lose
            verdict = gates.judge(current, baseline, alpha, SMOKE.verdict_ceiling_pp)
            assert verdict.lost + verdict.gained == flips
            failed |= verdict.verdict == "regressed"
        failed_runs += failed
    assert failed_runs / runs < 0.0025


@pytest.mark.parametrize("discordant", [20, 40, 80, 200])
def test_the_exact_test_never_exceeds_its_alpha(discordant):
    """The run-level false-alarm rate from significance alone, computed exactly: with ``d`` fair-coin
    flips per case, each of 32 cases has P(p_loss < alpha) <= alpha, so a run fails with < 1 %."""
    from bench import metrics

    alpha = gates.per_case_alpha(32)
    per_case = sum(math.comb(discordant, k) for k in range(discordant + 1)
                   if metrics.mcnemar_one_sided(k, discordant - k) < alpha) / 2**discordant
    assert 0 <= per_case <= alpha
    assert 1 - (1 - per_case) ** 32 <= gates.RUN_FALSE_ALARM


def test_symmetric_noise_of_many_flips_is_calibrated_by_simulation():
    """60 fair-coin flips per case (enough that significance is reachable), ceiling out of the way:
    the share of runs of 32 cases with a false `regressed` stays under 1 %."""
    cases, n, flips, runs = 32, 2000, 60, 300
    alpha = gates.per_case_alpha(cases)
    failed_runs = 0
    rng = np.random.default_rng(20261130)
    for _ in range(runs):
        failed = False
        for _ in range(cases):
            lose = rng.random(flips) < 0.5
            baseline = np.zeros(n, bool)
            current = np.zeros(n, bool)
            baseline[:flips], current[:flips] = lose, ~lose
            failed |= gates.judge(current, baseline, alpha, ceiling_pp=100.0, reference_flips=0).verdict == "regressed"
        failed_runs += failed
    # Exactly: 1 - (1 - 0.000197)^32 = 0.63 % of runs; uncorrected (alpha 0.01) it would be ~23 %.
    assert failed_runs / runs < 0.02


# --- QAT against PTQ ---------------------------------------------------------------------------


def test_qat_vs_ptq_passes_when_better_or_within_tolerance():
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.91, 0.90) is None
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.897, 0.900) is None
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.895, 0.900) is None  # 0.5 pp exactly


def test_qat_vs_ptq_fails_with_the_numbers():
    message = gates.qat_vs_ptq_fails("mobilenet", "onnxruntime", 0.88, 0.90)
    assert message is not None and message.startswith("mobilenet-onnxruntime")
    assert "88.00 %" in message and "2.00 pp below" in message and "90.00 %" in message
    assert "tolerance 0.50 pp" in message
    assert gates.qat_vs_ptq_fails("cnn", "litert", 0.899, 0.900, tolerance_pp=0.0) is not None


# --- case_gates --------------------------------------------------------------------------------


def case_gates(tier, record: dict) -> list[str]:
    return gates.case_gates(tier, MODES.get(record["mode"]), record)


def record(**changes) -> dict:
    base = {
        "id": CASE, "model": "cnn", "mode": "ptq_int8", "backend": "litert",
        "accuracy": 0.897, "float_accuracy": 0.900, "accuracy_drop_pp": 0.3, "drop_ci95_pp": [0.1, 0.5],
        "size_ratio": 3.4, "size_bytes": 30_000, "float_size_bytes": 102_000,
    }
    return {**base, **changes}


def test_case_gates_empty_when_all_pass():
    assert case_gates(SMOKE, record()) == []


def test_case_gates_reports_every_failure_at_once():
    messages = case_gates(SMOKE, record(accuracy_drop_pp=4.0, size_ratio=1.1))
    assert len(messages) == 2
    assert "budget of 1.00 pp" in messages[0]
    assert "below the required 2.80x" in messages[1]


def test_case_gates_hold_every_runtime_to_the_same_size_floor():
    assert len(case_gates(SMOKE, record(backend="onnxruntime", size_ratio=2.6))) == 1
    assert len(case_gates(SMOKE, record(backend="litert", size_ratio=2.6))) == 1


def test_float_accuracy_floor_passes_at_and_above_and_fails_below():
    assert gates.float_accuracy_fails("cnn-float32-litert", 0.70, 0.70, "smoke") is None
    assert gates.float_accuracy_fails("cnn-float32-litert", 0.95, None, "smoke") is None
    message = gates.float_accuracy_fails("vgg16-float32-litert", 0.6925, 0.70, "smoke")
    assert message == (
        "vgg16-float32-litert: float32 accuracy 69.25 % is below the smoke tier's floor 70.00 %: "
        "the model did not learn enough; check the training recipe"
    )


def test_case_gates_do_not_apply_the_drop_budget_to_float32():
    """A float32 case is compared with itself (drop 0); its gates are the floor and the verdict."""
    float_case = record(id="cnn-float32-litert", mode="float32", accuracy=0.80, float_accuracy=0.80,
                        accuracy_drop_pp=0.7, drop_ci95_pp=[0.2, 1.2], size_ratio=1.0)
    assert case_gates(SMOKE, float_case) == []
    # Its floor still holds: the smoke floor for the cnn is 70 %.
    (message,) = case_gates(SMOKE, {**float_case, "accuracy": 0.65})
    assert "below the smoke tier's floor 70.00 %" in message
    # And the budget still holds for every other mode, float16's 0.2 pp included.
    assert len(case_gates(SMOKE, record(mode="ptq_float16", accuracy_drop_pp=0.3, size_ratio=1.9))) == 1


# --- environment, batch dependence -------------------------------------------------------------


def test_strict_env_fails_only_on_differences_and_lists_them():
    assert gates.strict_env_fails(CASE, []) is None
    message = gates.strict_env_fails(CASE, ["lock aaa -> bbb", "cpu flag avx512f True -> False"])
    assert message == (f"{CASE}: environment differs from the baseline's (--strict-env): "
                       "lock aaa -> bbb; cpu flag avx512f True -> False")


def invariance(**changes) -> dict:
    return {"sample": 48, "eval_batch": 256, "max_abs_logit_diff": 0.02, "top1_changed": 1,
            "depends_on_batch": True, **changes}


def test_batch_dependence_fails_a_batched_case_whose_outputs_move_with_the_batch():
    message = gates.batch_dependence_fails(CASE, invariance(), None)
    assert message is not None and message.startswith(CASE)
    assert "48 images" in message and "batch-256" in message and "0.02" in message
    assert "1 top-1 changes" in message and "tolerance 0.001" in message
    assert "batch_dependent" in message
    assert gates.batch_dependence_fails(CASE, invariance(), "XNNPACK per-batch quantization") \
        .endswith("(XNNPACK per-batch quantization)")


def test_batch_dependence_passes_when_invariant_or_evaluated_at_batch_one():
    assert gates.batch_dependence_fails(CASE, invariance(depends_on_batch=False, max_abs_logit_diff=1e-5),
                                        None) is None
    assert gates.batch_dependence_fails(CASE, invariance(eval_batch=1), "declared") is None


# --- speedup against the baseline --------------------------------------------------------------


def test_speedup_on_the_same_isa_fails_when_halved():
    failure, text = gates.speedup_vs_baseline_fails(CASE, 1.2, 2.4, same_isa=True, model="mobilenet")
    assert failure is not None and failure.startswith(CASE)
    assert "1.20x" in failure and "2.40x" in failure and "floor 1.68x" in failure
    assert "slower" in failure
    assert text == "1.20x against the baseline's 2.40x (floor 1.68x = 0.7 x baseline)"


def test_speedup_on_the_same_isa_passes_ten_percent_slower_and_at_the_floor():
    failure, text = gates.speedup_vs_baseline_fails(CASE, 2.16, 2.4, same_isa=True, model="mobilenet")
    assert failure is None and "2.16x against the baseline's 2.40x" in text
    assert gates.speedup_vs_baseline_fails(CASE, 3.0, 2.4, same_isa=True, model="mobilenet")[0] is None  # faster
    floor = gates.SPEEDUP_KEPT_FRACTION * 2.0
    assert gates.speedup_vs_baseline_fails(CASE, floor, 2.0, same_isa=True, model="mobilenet")[0] is None
    assert gates.speedup_vs_baseline_fails(CASE, floor - 1e-6, 2.0, same_isa=True, model="mobilenet")[0] is not None


def test_speedup_on_another_isa_never_fails_and_says_why():
    failure, text = gates.speedup_vs_baseline_fails(CASE, 0.5, 2.4, same_isa=False, model="mobilenet")
    assert failure is None
    assert text.startswith("0.50x") and "baseline 2.40x" in text
    assert "other ISA flags" in text and "only the floor applies" in text


def test_speedup_without_a_baseline_says_so():
    for same in (True, False):
        failure, text = gates.speedup_vs_baseline_fails(CASE, 1.9, None, same_isa=same, model="mobilenet")
        assert failure is None and text == "1.90x; no baseline speedup recorded"


def test_the_ceiling_widens_with_the_float_models_own_churn():
    """A change that leaves the model alone meets the tight ceiling; retrained models get room.

    Measured: oneDNN-off training moved the smoke mobilenet's float32 case by 286 flips and its
    int8 cases by up to 26 net images; a mode's planted bug moved 85 images with the float32 case
    identical.
    """
    n = 2000
    baseline = np.zeros(n, dtype=bool)
    baseline[:1700] = True
    current = baseline.copy()
    current[:53] = False          # 53 lost
    current[1700:1732] = True     # 32 gained: net 21 images, 1.05 pp, p ~0.015
    tight = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, reference_flips=0)
    assert tight.verdict == "regressed" and tight.ceiling_pp == 0.5
    churned = gates.judge(current, baseline, SMOKE_ALPHA, 0.5, reference_flips=286)
    assert churned.verdict == "drift"
    assert churned.ceiling_pp == pytest.approx(0.5 + 100 * gates.CHURN_Z * 286 ** 0.5 / n)
    own = gates.judge(current, baseline, SMOKE_ALPHA, 0.5)  # a float32 case: its own 85 flips
    assert own.reference_flips == 85 and own.verdict == "drift"


def test_speedup_of_a_model_too_fast_to_time_is_reported_not_gated():
    failure, text = gates.speedup_vs_baseline_fails("cnn-ptq_int8-litert", 0.5, 2.0, same_isa=True, model="cnn")
    assert failure is None
    assert text == "0.50x against the baseline's 2.00x; not gated: cnn's batch-1 call is too short to time to 30 %"
