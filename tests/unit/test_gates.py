"""Tests of bench.gates: every gate returns a Check, passed with a note, or failed with a message
that names the case, the value, the limit and the tolerance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import gates, metrics, stats
from bench.agreement_record import PairAgreement
from bench.modes import MODES
from bench.tiers import SMOKE

CASE = "cnn-ptq_int8-litert"


# --- drop budget -------------------------------------------------------------------------------


def test_drop_within_and_at_the_budget_passes():
    assert not gates.drop_check(CASE, 0.3, (0.1, 0.5), 1.0, 0.90, 0.897)
    assert not gates.drop_check(CASE, 1.0, (0.5, 1.5), 1.0, 0.90, 0.89)
    # As computed from counts: 20 images of 2000 is 1.0 pp up to float rounding.
    assert not gates.drop_check(CASE, 100 * 20 / 2000, (0.5, 1.5), 1.0, 0.9, 0.89)
    assert not gates.drop_check(CASE, -0.5, (-1.0, 0.0), 0.0, 0.90, 0.905)


def test_drop_over_the_budget_fails_with_the_numbers():
    message = gates.drop_check(CASE, 1.05, (0.61, 1.49), 1.0, 0.9012, 0.8906).failure
    assert message is not None
    assert message.startswith(CASE)
    assert "1.05 pp" in message and "budget of 1.00 pp" in message
    assert "90.12 %" in message and "89.06 %" in message
    assert "[0.61, 1.49]" in message


def test_float32_budget_of_zero_fails_on_any_drop():
    assert gates.drop_check("cnn-float32-litert", 0.05, (0.0, 0.1), 0.0, 0.9, 0.8995).fails


# --- size ratio --------------------------------------------------------------------------------


def test_size_ratio_passes_at_and_above_the_minimum_and_without_one():
    assert not gates.size_ratio_check(CASE, 3.5, 2.8, 1000, 3500)
    assert not gates.size_ratio_check(CASE, 2.8, 2.8, 1000, 2800)
    assert not gates.size_ratio_check(CASE, 0.9, None, 1000, 900)


def test_size_ratio_below_the_minimum_fails_with_the_numbers():
    message = gates.size_ratio_check(CASE, 1.02, 2.8, 95_000, 96_900).failure
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
    assert not gates.baseline_size_check(CASE, 100_000, 100_000, 0.02)
    assert not gates.baseline_size_check(CASE, 101_000, 100_000, 0.02)
    assert not gates.baseline_size_check(CASE, 102, 100, 0.02)  # +2 % exactly
    assert not gates.baseline_size_check(CASE, 98, 100, 0.02)  # -2 % exactly
    assert not gates.baseline_size_check(CASE, 102_000, 100_000, 0.02)


def test_baseline_size_change_fails_with_the_numbers():
    message = gates.baseline_size_check(CASE, 103_000, 100_000, 0.02).failure
    assert message is not None and message.startswith(CASE)
    assert "103,000 bytes" in message and "+3.0 %" in message
    assert "baseline 100,000" in message and "±2.0 %" in message
    shrunk = gates.baseline_size_check(CASE, 50_000, 100_000, 0.02).failure
    assert shrunk is not None and "-50.0 %" in shrunk


def test_baseline_size_without_a_tolerance_must_match_to_the_byte():
    """Same lock, case definition and CPU: the converters are deterministic, so one byte fails."""
    assert not gates.baseline_size_check(CASE, 100_000, 100_000, None)
    grown = gates.baseline_size_check(CASE, 100_001, 100_000, None).failure
    assert grown is not None and grown.startswith(CASE)
    assert "100,001 bytes" in grown and "100,000" in grown and "+1 bytes" in grown
    assert "lock, case definition and CPU are unchanged" in grown
    shrunk = gates.baseline_size_check(CASE, 99_000, 100_000, None).failure
    assert shrunk is not None and "-1,000 bytes" in shrunk
    # The same moves pass once a tolerance applies (something in the environment changed).
    assert not gates.baseline_size_check(CASE, 100_001, 100_000, 0.02)
    assert not gates.baseline_size_check(CASE, 99_000, 100_000, 0.02)


# --- the verdict against the baseline (its statistics: tests/unit/test_stats.py) ---------------

SMOKE_ALPHA = stats.per_case_alpha(32)  # 32 cases judged in a smoke run: 0.01 / 64


def test_verdict_fails_names_case_counts_p_value_accuracies_lost_images_and_causes():
    n = 2000
    baseline = np.zeros(n, bool)
    baseline[:1700] = True
    current = baseline.copy()
    lost = [3, 17, 100, 101, 250, 999, 1000, 1200, 1300, 1400, 1500, 1600, 1699]
    current[lost] = False  # 13 lost, none gained: p = 2^-13 = 0.00012 < 0.01 / 64
    causes = ["lock 111 -> 222", "case definition (recipe hash) changed"]
    verdict = stats.judge(current, baseline, SMOKE_ALPHA, 0.5, causes=causes)
    assert verdict.verdict == "regressed" and verdict.p_loss == pytest.approx(2.0**-13)
    message = gates.verdict_check(CASE, verdict).failure
    assert message == (
        f"{CASE}: regressed against the baseline: 13 images lost, 0 gained "
        "(net +0.65 pp; one-sided McNemar p 0.00012, significant at alpha 0.00016); "
        "accuracy 84.35 % against the baseline's 85.00 %; "
        "lost images 3, 17, 100, 101, 250, 999, 1000, 1200 and 5 more; "
        "likely causes: lock 111 -> 222; case definition (recipe hash) changed"
    )


def test_verdict_fails_lists_every_lost_image_when_few_and_says_when_nothing_changed():
    baseline = np.ones(2000, bool)
    current = baseline.copy()
    current[[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = False  # 11 lost: 0.55 pp over the 0.5 ceiling
    verdict = stats.judge(current, baseline, SMOKE_ALPHA, 0.5)
    assert verdict.verdict == "regressed" and verdict.p_loss > SMOKE_ALPHA  # by the ceiling
    message = gates.verdict_check(CASE, verdict).failure
    assert "net loss 0.55 pp over the ceiling 0.50 pp" in message
    assert "lost images 5, 6, 7, 8, 9, 10, 11, 12 and 3 more" in message
    assert message.endswith("; nothing in the environment or case definition changed")
    current_few = baseline.copy()
    current_few[[40, 41]] = False
    few = stats.judge(current_few, baseline, stats.per_case_alpha(1), ceiling_pp=0.0)
    assert few.verdict == "regressed"
    few_message = gates.verdict_check(CASE, few).failure
    assert "lost images 40, 41;" in few_message and "more" not in few_message


# --- QAT against PTQ ---------------------------------------------------------------------------


def qat_and_ptq(n: int, qat_loses: int, qat_gains: int, both_right: int) -> tuple[np.ndarray, np.ndarray]:
    """(qat_correct, ptq_correct): the pairs are the images on which the two files differ."""
    assert both_right + qat_loses + qat_gains <= n
    qat, ptq = np.zeros(n, bool), np.zeros(n, bool)
    qat[:both_right] = ptq[:both_right] = True
    ptq[both_right:both_right + qat_loses] = True
    qat[both_right + qat_loses:both_right + qat_loses + qat_gains] = True
    return qat, ptq


def test_qat_vs_ptq_passes_when_better_or_within_what_the_pairs_explain():
    """The issue's AVX2 example: cnn LiteRT QAT 84.40 % against PTQ 85.10 % of 2,000 images, a net
    14 images. Committed smoke runs have QAT and PTQ of one model differ on 63-150 images (cnn
    LiteRT: 43 against 34); with 80 discordant images, 47 against 33, p 0.073: not evidence."""
    assert not gates.qat_vs_ptq_check("cnn", "litert", *qat_and_ptq(2000, 34, 43, 1650), SMOKE_ALPHA)
    qat, ptq = qat_and_ptq(2000, 47, 33, 1655)
    assert (100 * qat.mean(), 100 * ptq.mean()) == pytest.approx((84.40, 85.10))
    assert metrics.mcnemar_one_sided(47, 33) == pytest.approx(0.0728, abs=5e-4)
    assert not gates.qat_vs_ptq_check("cnn", "litert", qat, ptq, SMOKE_ALPHA)
    # The same 14 net images with no gains at all are evidence (p 2^-14).
    assert gates.qat_vs_ptq_check("cnn", "litert", *qat_and_ptq(2000, 14, 0, 1688), SMOKE_ALPHA).fails


def test_qat_vs_ptq_fails_a_collapse_with_the_numbers():
    """QAT 10 pp below PTQ (a broken fine-tuning): 240 lost, 40 gained of 2,000."""
    qat, ptq = qat_and_ptq(2000, 240, 40, 1400)
    message = gates.qat_vs_ptq_check("mobilenet", "onnxruntime", qat, ptq, SMOKE_ALPHA).failure
    assert message is not None and message.startswith("mobilenet-onnxruntime: qat_int8 72.00 % ")
    assert "loses to ptq_int8 82.00 % by 10.00 pp" in message
    assert "240 images right under PTQ are wrong under QAT, 40 the reverse" in message
    assert "alpha 0.00016" in message and "fine-tuning learning rate" in message


# --- case_checks -------------------------------------------------------------------------------


def case_gates(tier, record: dict) -> list[str]:
    """The failure messages of the case's own gates."""
    return gates.failures(gates.case_checks(tier, MODES.get(record["mode"]), record))


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
    assert not gates.float_accuracy_check("cnn-float32-litert", 0.70, 0.70, "smoke")
    assert not gates.float_accuracy_check("cnn-float32-litert", 0.95, None, "smoke")
    message = gates.float_accuracy_check("vgg16-float32-litert", 0.6925, 0.70, "smoke").failure
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
    assert not gates.strict_env_check(CASE, [])
    message = gates.strict_env_check(CASE, ["lock aaa -> bbb", "cpu flag avx512f True -> False"]).failure
    assert message == (f"{CASE}: environment differs from the baseline's (--strict-env): "
                       "lock aaa -> bbb; cpu flag avx512f True -> False")


def invariance(**changes) -> dict:
    return {"sample": 48, "eval_batch": 256, "max_abs_logit_diff": 0.02, "top1_changed": 1,
            "depends_on_batch": True, **changes}


def test_batch_dependence_fails_a_batched_case_whose_outputs_move_with_the_batch():
    message = gates.batch_dependence_check(CASE, invariance(), None).failure
    assert message is not None and message.startswith(CASE)
    assert "48 images" in message and "batch-256" in message and "0.02" in message
    assert "1 top-1 changes" in message and "tolerance 0.001" in message
    assert "batch_dependent" in message
    assert gates.batch_dependence_check(CASE, invariance(), "XNNPACK per-batch quantization").failure \
        .endswith("(XNNPACK per-batch quantization)")


def test_batch_dependence_passes_when_invariant_or_evaluated_at_batch_one():
    assert not gates.batch_dependence_check(CASE, invariance(depends_on_batch=False, max_abs_logit_diff=1e-5),
                                            None)
    assert not gates.batch_dependence_check(CASE, invariance(eval_batch=1), "declared")


# --- speedup against the baseline --------------------------------------------------------------


def speedup(*args, **kwargs) -> tuple[str | None, str]:
    """The check's failure and note, as results.json records them (``speedup_vs_baseline``)."""
    check = gates.speedup_vs_baseline_check(*args, **kwargs)
    return check.failure, check.note


def test_speedup_on_the_same_isa_fails_when_halved():
    failure, text = speedup(CASE, 1.2, 2.4, same_isa=True, model="mobilenet")
    assert failure is not None and failure.startswith(CASE)
    assert "1.20x" in failure and "2.40x" in failure and "floor 1.68x" in failure
    assert "slower" in failure
    assert text == "1.20x against the baseline's 2.40x (floor 1.68x = 0.7 x baseline)"


def test_speedup_on_the_same_isa_passes_ten_percent_slower_and_at_the_floor():
    failure, text = speedup(CASE, 2.16, 2.4, same_isa=True, model="mobilenet")
    assert failure is None and "2.16x against the baseline's 2.40x" in text
    assert gates.speedup_vs_baseline_check(CASE, 3.0, 2.4, same_isa=True, model="mobilenet").passed  # faster
    floor = gates.SPEEDUP_KEPT_FRACTION * 2.0
    assert gates.speedup_vs_baseline_check(CASE, floor, 2.0, same_isa=True, model="mobilenet").passed
    assert gates.speedup_vs_baseline_check(CASE, floor - 1e-6, 2.0, same_isa=True, model="mobilenet").fails


def test_speedup_on_another_isa_never_fails_and_says_why():
    failure, text = speedup(CASE, 0.5, 2.4, same_isa=False, model="mobilenet")
    assert failure is None
    assert text.startswith("0.50x") and "baseline 2.40x" in text
    assert "another testbed or CPU model" in text and "only the floor applies" in text


def test_speedup_without_a_baseline_says_so():
    for same in (True, False):
        failure, text = speedup(CASE, 1.9, None, same_isa=same, model="mobilenet")
        assert failure is None and text == "1.90x; no baseline speedup recorded"


def test_speedup_of_a_model_too_fast_to_time_is_reported_not_gated():
    failure, text = speedup("cnn-ptq_int8-litert", 0.5, 2.0, same_isa=True, model="cnn")
    assert failure is None
    assert text == "0.50x against the baseline's 2.00x; not gated: cnn's batch-1 call is too short to time to 30 %"


# --- the shape every gate returns ----------------------------------------------------------------


def test_a_check_is_true_when_it_failed_so_assert_not_means_passed():
    passed, failed = gates.Check(None, "what was checked"), gates.Check("cnn: too slow", "what was checked")
    assert not passed and passed.passed and not passed.fails
    assert failed and failed.fails and not failed.passed
    assert gates.failures([passed, failed, passed]) == ["cnn: too slow"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        passed.failure = "changed"  # type: ignore[misc]


PASSED_GATES = {
    "drop": lambda: gates.drop_check(CASE, 0.3, (0.1, 0.5), 1.0, 0.9, 0.897),
    "size_ratio": lambda: gates.size_ratio_check(CASE, 3.5, 2.8, 1000, 3500),
    "size_ratio_none": lambda: gates.size_ratio_check(CASE, 1.0, None, 1000, 1000),
    "baseline_size": lambda: gates.baseline_size_check(CASE, 101_000, 100_000, 0.02),
    "baseline_size_exact": lambda: gates.baseline_size_check(CASE, 100_000, 100_000, None),
    "strict_env": lambda: gates.strict_env_check(CASE, []),
    "batch": lambda: gates.batch_dependence_check(CASE, invariance(depends_on_batch=False), None),
    "batch_one": lambda: gates.batch_dependence_check(CASE, invariance(eval_batch=1), "declared"),
    "float_accuracy": lambda: gates.float_accuracy_check("cnn-float32-litert", 0.9, 0.7, "smoke"),
    "float_accuracy_none": lambda: gates.float_accuracy_check("cnn-float32-litert", 0.9, None, "smoke"),
    "qat_vs_ptq": lambda: gates.qat_vs_ptq_check("cnn", "litert", *qat_and_ptq(2000, 34, 43, 1650), SMOKE_ALPHA),
    "harness": lambda: gates.harness_overhead_check("cnn on litert", 1.1, 1.0),
    "final_snr": lambda: gates.final_snr_check(CASE, 35.7, []),
    "verdict": lambda: gates.verdict_check(CASE, stats.judge(np.ones(10, bool), np.ones(10, bool), 0.005, 0.5)),
}


@pytest.mark.parametrize("name", PASSED_GATES)
def test_a_passed_gate_explains_itself_in_its_note(name):
    check = PASSED_GATES[name]()
    assert not check and check.failure is None
    assert check.note and CASE not in check.note  # what was checked against what; the case is the caller's


def test_notes_name_the_value_and_the_limit():
    assert gates.drop_check(CASE, 0.3, (0.1, 0.5), 1.0, 0.9, 0.897).note == (
        "accuracy drop 0.30 pp against float32 on the same backend, budget 1.00 pp (the tier's for the mode)")
    failed = gates.size_ratio_check(CASE, 1.02, 2.8, 95_000, 96_900)
    assert failed.fails and "1.02x" in failed.note and "floor 2.80x" in failed.note
    assert "0.00016" in gates.qat_vs_ptq_check("cnn", "litert", *qat_and_ptq(2000, 34, 43, 1650), SMOKE_ALPHA).note


# --- agreement between backends ----------------------------------------------------------------


def pair(**changes) -> PairAgreement:
    fields = {"backends": ["litert", "onnxruntime"], "top1_agreement": 1.0, "max_abs_logit_diff": 1e-5,
              "floor": 0.999, **changes}
    return PairAgreement(**fields)


def test_agreement_is_one_check_per_pair_and_criterion():
    checks = gates.agreement_checks("cnn-float32", [pair(), pair(backends=["keras", "litert"])], reference=True)
    assert len(checks) == 4 and not any(checks)
    assert all(check.note.startswith(("litert/onnxruntime: ", "keras/litert: ")) for check in checks)
    assert len(gates.agreement_checks("cnn-ptq_int8", [pair(floor=0.99)], reference=False)) == 1


def test_agreement_fails_below_the_floor_and_over_the_logit_tolerance_with_the_numbers():
    checks = gates.agreement_checks("cnn-float32",
                                    [pair(top1_agreement=0.99, max_abs_logit_diff=0.5, floor=0.999)], reference=True)
    assert gates.failures(checks) == [
        "cnn-float32 litert/onnxruntime: top-1 agreement 99.00 % below 99.9 %",
        "cnn-float32 litert/onnxruntime: max |logit diff| 5.00e-01 above 1e-03",
    ]


def test_agreement_without_a_floor_is_recorded_not_gated():
    (check,) = gates.agreement_checks("cnn-x", [pair(top1_agreement=0.1, floor=None)], reference=False)
    assert check.passed and "not gated" in check.note


# --- the int8 speed floor and the harness overhead ---------------------------------------------

VNNI = {"flags": {"avx512_vnni": True}}


def test_int8_speed_floor_on_vnni_with_its_gate_as_the_note():
    check = gates.int8_speedup_check("mobilenet-ptq_int8-litert", "mobilenet", 1.05, VNNI, " (timed)")
    assert check.failure == ("mobilenet-ptq_int8-litert: int8 is 1.05x the speed of float32 at batch 1 (timed); "
                             "on a VNNI CPU it must be at least 1.1x: suspect the pipeline")
    assert check.note == ">= 1.1x (CPU has VNNI int8 dot-product instructions)"
    assert gates.int8_speedup_check("mobilenet-ptq_int8-litert", "mobilenet", 2.0, VNNI).passed
    not_gated = gates.int8_speedup_check("mobilenet-ptq_int8-litert", "mobilenet", 0.5, {"flags": {}})
    assert not_gated.passed and not_gated.note.startswith("not applicable")
    assert gates.int8_speedup_check("cnn-ptq_int8-litert", "cnn", 0.5, VNNI).passed


def test_a_known_slow_case_is_an_expected_failure_until_it_is_fast(monkeypatch):
    monkeypatch.setattr(gates, "KNOWN_SLOW", {("mobilenet", "qat_int8", "onnxruntime"): "no-op Reshapes"})
    cid = "mobilenet-qat_int8-onnxruntime"
    slow = gates.int8_speedup_check(cid, "mobilenet", 0.7, VNNI)
    assert slow.passed and slow.note == "known slow: no-op Reshapes"
    assert slow.expected_failure == f"{cid}: 0.70x float32: no-op Reshapes"
    fixed = gates.int8_speedup_check(cid, "mobilenet", 1.6, VNNI)
    assert fixed.failure == f"{cid}: listed in gates.KNOWN_SLOW but now 1.60x: remove the entry"
    assert fixed.expected_failure is None


def test_harness_overhead_fails_over_the_limit():
    check = gates.harness_overhead_check("cnn on litert", 1.3, 1.0)
    assert check.failure == "cnn on litert: harness evaluation takes 1.30x the raw runtime loop (limit 1.25x)"
    assert "limit 1.25x" in check.note
    assert gates.harness_overhead_check("cnn on litert", 1.25, 1.0).passed
