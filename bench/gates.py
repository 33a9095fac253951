"""Gates: small checks that return a message when they fail and None when they pass.

In the spirit of pytest-benchmark's ``RegressionCheck.fails``: a check never raises; the caller
collects messages, so one case reports every gate it failed at once.
"""

from __future__ import annotations

from bench.tiers import MIN_SIZE_RATIO, Tier

# QAT may come out below PTQ by this much before it is called a pipeline bug: on a converged
# model QAT should match or beat PTQ; a fraction of a point covers the few boundary images
# fine-tuning moves either way (0.5 pp = 10 images of the smoke tier's 2000).
QAT_VS_PTQ_TOLERANCE_PP = 0.5


def drop_fails(case_id: str, drop_pp: float, ci95_pp: tuple[float, float], budget_pp: float,
               float_acc: float, acc: float) -> str | None:
    """Fails when the accuracy drop against float exceeds the mode's budget."""
    if drop_pp <= budget_pp + 1e-9:
        return None
    return (
        f"{case_id}: accuracy drop {drop_pp:.2f} pp exceeds the budget of {budget_pp:.2f} pp "
        f"(float {100 * float_acc:.2f} %, this case {100 * acc:.2f} %, "
        f"95 % CI of the drop [{ci95_pp[0]:.2f}, {ci95_pp[1]:.2f}] pp)"
    )


def min_size_ratio(mode: str, model: str, backend: str) -> float | None:
    """The size gate of a case; None where there is none (float32, and Keras files)."""
    if backend == "keras":
        return None
    return MIN_SIZE_RATIO.get(mode, {}).get(model)


def size_ratio_fails(case_id: str, ratio: float, minimum: float | None, size: int,
                     float_size: int) -> str | None:
    """Fails when the artifact is not at least ``minimum`` times smaller than float32's."""
    if minimum is None or ratio >= minimum:
        return None
    return (
        f"{case_id}: size ratio {ratio:.2f}x is below the required {minimum:.2f}x "
        f"({size:,} bytes against float32's {float_size:,}); is the model really quantized?"
    )


def baseline_accuracy_fails(case_id: str, acc: float, baseline: float, tolerance_pp: float) -> str | None:
    """Fails when accuracy moved more than the tier's tolerance from the stored baseline."""
    delta_pp = 100 * (acc - baseline)
    if abs(delta_pp) <= tolerance_pp + 1e-9:
        return None
    direction = "fell" if delta_pp < 0 else "rose"
    return (
        f"{case_id}: accuracy {100 * acc:.2f} % {direction} {abs(delta_pp):.2f} pp from the "
        f"baseline {100 * baseline:.2f} % (tolerance ±{tolerance_pp:.2f} pp)"
        + ("; if the gain is intended, update the baselines" if delta_pp > 0 else "")
    )


def baseline_size_fails(case_id: str, size: int, baseline: int, tolerance: float) -> str | None:
    """Fails when the artifact's size moved more than the relative tolerance."""
    change = size / baseline - 1
    if abs(change) <= tolerance + 1e-9:  # 102 / 100 - 1 is 0.020000000000000018
        return None
    return (
        f"{case_id}: size {size:,} bytes is {100 * change:+.1f} % from the baseline {baseline:,} "
        f"(tolerance ±{100 * tolerance:.1f} %)"
    )


def qat_vs_ptq_fails(model: str, backend: str, qat_acc: float, ptq_acc: float,
                     tolerance_pp: float = QAT_VS_PTQ_TOLERANCE_PP) -> str | None:
    """Fails when QAT comes out worse than PTQ by more than the tolerance."""
    gap_pp = 100 * (ptq_acc - qat_acc)
    if gap_pp <= tolerance_pp + 1e-9:
        return None
    return (
        f"{model}-{backend}: qat_int8 {100 * qat_acc:.2f} % is {gap_pp:.2f} pp below ptq_int8 "
        f"{100 * ptq_acc:.2f} % (tolerance {tolerance_pp:.2f} pp): QAT should never lose to PTQ; "
        "check the fine-tuning learning rate and that it starts from the converged float model"
    )


def float_accuracy_fails(case_id: str, acc: float, minimum: float | None, tier: str) -> str | None:
    """Fails when a float32 model did not reach the tier's accuracy floor."""
    if minimum is None or acc >= minimum - 1e-9:
        return None
    return (
        f"{case_id}: float32 accuracy {100 * acc:.2f} % is below the {tier} tier's floor "
        f"{100 * minimum:.2f} %: the model did not learn enough; check the training recipe"
    )


def case_gates(tier: Tier, record: dict) -> list[str]:
    """The gates every case has, from its own record: float floor, drop budget, size ratio."""
    messages = [
        float_accuracy_fails(record["id"], record["accuracy"],
                             tier.min_float_accuracy.get(record["model"]), tier.name)
        if record["mode"] == "float32" else None,
        drop_fails(record["id"], record["accuracy_drop_pp"], tuple(record["drop_ci95_pp"]),
                   tier.drop_budget_pp[record["mode"]], record["float_accuracy"], record["accuracy"]),
        size_ratio_fails(record["id"], record["size_ratio"],
                         min_size_ratio(record["mode"], record["model"], record["backend"]),
                         record["size_bytes"], record["float_size_bytes"]),
    ]
    return [m for m in messages if m]
