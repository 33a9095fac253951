"""Gates: every threshold and pass/fail decision of the harness, each with its derivation.

A check returns a message when it fails and None when it passes, in the spirit of
pytest-benchmark's ``RegressionCheck.fails``: a check never raises; the caller collects messages,
so one case reports every gate it failed at once, and tests ``assert not gates.<check>(...)``.
The facts the checks read live with what they describe: drop budgets and verdict ceilings in the
tier (:mod:`bench.tiers`), size and agreement floors in the mode (:class:`bench.modes.Mode`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import metrics
from bench.modes import REFERENCE_MODE, Mode
from bench.tiers import Tier


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


def size_ratio_fails(case_id: str, ratio: float, minimum: float | None, size: int,
                     float_size: int) -> str | None:
    """Fails when the artifact is not at least ``minimum`` times smaller than float32's."""
    if minimum is None or ratio >= minimum:
        return None
    return (
        f"{case_id}: size ratio {ratio:.2f}x is below the required {minimum:.2f}x "
        f"({size:,} bytes against float32's {float_size:,}); is the model really quantized?"
    )


# The chance that an unchanged pipeline, run again on a machine of the same testbed, has at least
# one case judged `regressed` or `improved`: 1 %. Each case runs two one-sided tests (a loss, a
# gain), each at this rate divided by twice the number of cases the run judges (Bonferroni, over
# 2 x cases tests), so the tests together keep the run under 1 %. The net-loss ceiling
# (``Tier.verdict_ceiling_pp``) adds nothing to that on the churn measured within a testbed: an
# unchanged pipeline flips 0-1 images per case there (README "Gate calibration"), and a net loss
# of one image never reaches the smoke ceiling's 10 images or the full ceiling's 25. Where more
# images churn (another testbed's baseline, a retrained model), the ceiling fires more often:
# those verdicts are shown, not gated (``bench.run.BenchRun.own_baseline``).
RUN_FALSE_ALARM = 0.01
# The one-sided tests each case runs against its baseline: a loss (``regressed``), a gain (``improved``).
TESTS_PER_CASE = 2
VERDICTS = ("identical", "drift", "improved", "regressed", "no_baseline")
# Indices of lost images shown in a regression message (all of them are in results.json).
SHOWN_LOST_IMAGES = 8


def per_case_alpha(cases_judged: int) -> float:
    """The false-alarm rate of each of one case's two one-sided tests, in a run that judges
    ``cases_judged`` cases (at least one): ``RUN_FALSE_ALARM / (2 * cases_judged)``."""
    return RUN_FALSE_ALARM / (TESTS_PER_CASE * max(1, cases_judged))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One case judged image by image against its baseline.

    Attributes:
        verdict: ``identical``, ``drift``, ``improved`` or ``regressed`` (see :func:`judge`).
        lost: Images the baseline classified correctly and this run does not.
        gained: Images this run classifies correctly and the baseline did not.
        p_loss: Exact one-sided McNemar p-value of a loss (1.0 when nothing flipped).
        p_gain: The same for a gain.
        alpha: The false-alarm rate of each one-sided test (:func:`per_case_alpha`).
        ceiling_pp: Net loss above which the case regresses whatever the p-value: the tier's
            ``verdict_ceiling_pp``, the same for every case (never widened by its own flips).
        n: Images compared.
        lost_indices: Test-set indices of the lost images, in order.
        causes: Differences of environment and case definition, shown beside the verdict.
    """

    verdict: str
    lost: int
    gained: int
    p_loss: float
    p_gain: float
    alpha: float
    ceiling_pp: float
    n: int
    accuracy: float
    baseline_accuracy: float
    lost_indices: tuple[int, ...] = ()
    causes: tuple[str, ...] = ()

    @property
    def net_loss_pp(self) -> float:
        return 100 * (self.lost - self.gained) / self.n

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict, "lost": self.lost, "gained": self.gained,
            "net_loss_pp": self.net_loss_pp, "p_loss": self.p_loss, "p_gain": self.p_gain,
            "alpha": self.alpha, "ceiling_pp": self.ceiling_pp, "n": self.n,
            "accuracy": self.accuracy, "baseline_accuracy": self.baseline_accuracy,
            "lost_indices": list(self.lost_indices), "causes": list(self.causes),
        }

    def summary(self) -> str:
        """``drift: 3 lost, 4 gained (p 0.77)``, with the likely causes after it."""
        text = f"{self.verdict}: {self.lost} lost, {self.gained} gained against the baseline"
        if self.lost or self.gained:
            p = self.p_gain if self.verdict == "improved" else self.p_loss
            text += f" (one-sided McNemar p {p:.2g}, alpha {self.alpha:.2g})"
        if self.causes:
            text += "; differences: " + "; ".join(self.causes)
        return text


def judge(current: np.ndarray, baseline: np.ndarray, alpha: float, ceiling_pp: float,
          causes: list[str] | tuple[str, ...] = ()) -> Verdict:
    """Compares two runs' per-image outcomes with a paired exact test.

    ``identical``: every image has the same outcome. ``regressed``: the loss is significant at
    ``alpha`` (one-sided exact McNemar) or the net loss exceeds ``ceiling_pp``. ``improved``: the
    gain is significant at ``alpha``. ``drift``: outcomes differ without either.

    The ceiling is the tier's, for every case alike: it comes from the churn measured between two
    machines of one testbed (0-1 images per case), never from the flips of the case or of its
    float32 sibling, which would let a case widen its own gate by the very change it is judged on.
    """
    lost_mask = baseline & ~current
    lost, gained = int(lost_mask.sum()), int((current & ~baseline).sum())
    p_loss, p_gain = metrics.mcnemar_one_sided(lost, gained), metrics.mcnemar_one_sided(gained, lost)
    n = len(current)
    net_loss_pp = 100 * (lost - gained) / n
    if lost == gained == 0:
        verdict = "identical"
    elif p_loss < alpha or net_loss_pp > ceiling_pp + 1e-9:
        verdict = "regressed"
    elif p_gain < alpha:
        verdict = "improved"
    else:
        verdict = "drift"
    return Verdict(verdict, lost, gained, p_loss, p_gain, alpha, ceiling_pp, n,
                   accuracy=float(current.mean()), baseline_accuracy=float(baseline.mean()),
                   lost_indices=tuple(int(i) for i in np.flatnonzero(lost_mask)), causes=tuple(causes))


def verdict_fails(case_id: str, verdict: Verdict) -> str | None:
    """Fails a regressed case, saying what was lost, how sure the test is, and why it may be."""
    if verdict.verdict != "regressed":
        return None
    shown = ", ".join(str(i) for i in verdict.lost_indices[:SHOWN_LOST_IMAGES])
    more = len(verdict.lost_indices) - SHOWN_LOST_IMAGES
    why = (f"significant at alpha {verdict.alpha:.2g}" if verdict.p_loss < verdict.alpha
           else f"net loss {verdict.net_loss_pp:.2f} pp over the ceiling {verdict.ceiling_pp:.2f} pp")
    return (
        f"{case_id}: regressed against the baseline: {verdict.lost} images lost, {verdict.gained} gained "
        f"(net {verdict.net_loss_pp:+.2f} pp; one-sided McNemar p {verdict.p_loss:.2g}, {why}); "
        f"accuracy {100 * verdict.accuracy:.2f} % against the baseline's "
        f"{100 * verdict.baseline_accuracy:.2f} %; lost images {shown}"
        + (f" and {more} more" if more > 0 else "")
        + ("; likely causes: " + "; ".join(verdict.causes) if verdict.causes else
           "; nothing in the environment or case definition changed")
    )


def strict_env_fails(case_id: str, env_changes: list[str]) -> str | None:
    """Under ``--strict-env`` an environment difference fails by itself, beside the verdict."""
    if not env_changes:
        return None
    return f"{case_id}: environment differs from the baseline's (--strict-env): " + "; ".join(env_changes)


# Largest |logit| difference between an image run alone and in its evaluation batch. Measured on
# the smoke tier's 32 cases (48 sampled images each, padded tail included): 0 exactly on every
# LiteRT and ORT artifact, up to 1e-5 on Keras (its batched matmuls sum in another order), and
# 0.08-0.66 with 2 top-1 changes on ORT's dynamic quantization (activation ranges per batch).
# 1e-3 sits two orders above the float noise and far below a batch-dependent artifact.
BATCH_INVARIANCE_TOLERANCE = 1e-3


def depends_on_batch(invariance: dict) -> bool:
    """Whether the batch-1 logits of the sample moved beyond float noise."""
    return invariance["max_abs_logit_diff"] > BATCH_INVARIANCE_TOLERANCE


def batch_dependence_fails(case_id: str, invariance: dict, declared_reason: str | None) -> str | None:
    """Fails a case whose outputs depend on the batch while it was evaluated batched.

    Args:
        case_id: The case.
        invariance: :meth:`bench.build.Builder.batch_invariance`'s record, with ``depends_on_batch``.
        declared_reason: Why the mode says this backend is batch-dependent (None: it says not).
    """
    if not invariance["depends_on_batch"] or invariance["eval_batch"] == 1:
        return None
    return (
        f"{case_id}: outputs depend on the batch: {invariance['sample']} images run one at a time "
        f"differ from the batch-{invariance['eval_batch']} evaluation by up to "
        f"{invariance['max_abs_logit_diff']:.3g} in the logits ({invariance['top1_changed']} top-1 "
        f"changes; tolerance {BATCH_INVARIANCE_TOLERANCE:g}), so the accuracy is one no deployment "
        "gets; declare the backend in the mode's batch_dependent (evaluated at batch 1)"
        + (f" ({declared_reason})" if declared_reason else "")
    )


def baseline_size_fails(case_id: str, size: int, baseline: int, tolerance: float | None) -> str | None:
    """Fails when the artifact's size moved: at all when ``tolerance`` is None (same lock, same
    case definition, same CPU: the converters are deterministic), else by more than ``tolerance``."""
    if tolerance is None:
        if size == baseline:
            return None
        return (f"{case_id}: size {size:,} bytes differs from the baseline's {baseline:,} by "
                f"{size - baseline:+,} bytes although lock, case definition and CPU are unchanged")
    change = size / baseline - 1
    if abs(change) <= tolerance + 1e-9:  # 102 / 100 - 1 is 0.020000000000000018
        return None
    return (
        f"{case_id}: size {size:,} bytes is {100 * change:+.1f} % from the baseline {baseline:,} "
        f"(tolerance ±{100 * tolerance:.1f} %)"
    )


def qat_vs_ptq_fails(model: str, backend: str, qat_correct: np.ndarray, ptq_correct: np.ndarray,
                     alpha: float) -> str | None:
    """Fails when QAT loses to PTQ of the same model and backend, judged image by image.

    QAT fine-tunes the converged float model, so on the same images it should match or beat PTQ.
    The two files are different models, so their outcomes differ on some images either way; the
    pairs are those images. The check is the one-sided exact McNemar test of QAT losing (right
    under PTQ, wrong under QAT) against gaining, at ``alpha``, the run's per-case rate
    (:func:`per_case_alpha`), as every case is judged against its baseline: a gap a fair coin
    over the discordant images explains passes; a collapse of QAT fails.

    Args:
        model: The model, for the message.
        backend: The backend both cases ran on.
        qat_correct: Per-image outcomes (right: True) of ``qat_int8`` on the test images.
        ptq_correct: The same of ``ptq_int8``, on the same images in the same order.
        alpha: The false-alarm rate of the test.
    """
    lost = int(np.sum(ptq_correct & ~qat_correct))
    gained = int(np.sum(qat_correct & ~ptq_correct))
    p = metrics.mcnemar_one_sided(lost, gained)
    if p >= alpha:
        return None
    n = len(qat_correct)
    return (
        f"{model}-{backend}: qat_int8 {100 * qat_correct.mean():.2f} % loses to ptq_int8 "
        f"{100 * ptq_correct.mean():.2f} % by {100 * (lost - gained) / n:.2f} pp: {lost} images right "
        f"under PTQ are wrong under QAT, {gained} the reverse (one-sided McNemar p {p:.2g}, alpha "
        f"{alpha:.2g}): QAT should never lose to PTQ; check the fine-tuning learning rate and that it "
        "starts from the converged float model"
    )


def float_accuracy_fails(case_id: str, acc: float, minimum: float | None, tier: str) -> str | None:
    """Fails when a float32 model did not reach the tier's accuracy floor."""
    if minimum is None or acc >= minimum - 1e-9:
        return None
    return (
        f"{case_id}: float32 accuracy {100 * acc:.2f} % is below the {tier} tier's floor "
        f"{100 * minimum:.2f} %: the model did not learn enough; check the training recipe"
    )


def case_gates(tier: Tier, mode: Mode, record: dict) -> list[str]:
    """The gates every case has, from its own record: float floor, drop budget, size ratio.

    The reference mode (float32) is its own reference: it is judged by the tier's accuracy floor
    and the baseline verdict, not by a drop budget; every other mode by the tier's budget.
    """
    reference = mode.name == REFERENCE_MODE
    messages = [
        float_accuracy_fails(record["id"], record["accuracy"],
                             tier.float_accuracy_floor(record["model"]), tier.name) if reference else None,
        None if reference else
        drop_fails(record["id"], record["accuracy_drop_pp"], tuple(record["drop_ci95_pp"]),
                   tier.drop_budget(mode.name), record["float_accuracy"], record["accuracy"]),
        size_ratio_fails(record["id"], record["size_ratio"], mode.min_size_ratio(record["model"]),
                         record["size_bytes"], record["float_size_bytes"]),
    ]
    return [m for m in messages if m]


# Largest |logit| difference accepted between two backends running the reference (float32)
# artifact. Both run the same float32 graph; kernels differ in summation order (XNNPACK, MLAS,
# Eigen), which moves logits of order 10 by ~1e-5 relative. 1e-3 is two orders above that and far
# below any real discrepancy (a wrong layout or a missing layer moves logits by whole units).
FLOAT_LOGIT_TOLERANCE = 1e-3


def agreement_fails(label: str, mode: Mode, pairs: list[dict], reference: bool) -> list[str]:
    """Backends agree image by image: above the mode's agreement floor, and for the reference
    mode within :data:`FLOAT_LOGIT_TOLERANCE` in every logit.

    Args:
        label: ``model-mode``, for the messages.
        mode: The mode (its floor per pair of backends, ``Mode.pair_agreement_floor``; None:
            recorded, not gated).
        pairs: ``[{"backends": [a, b], "top1_agreement", "max_abs_logit_diff"}, ...]``.
        reference: Whether ``mode`` is the reference mode (float32).
    """
    problems = []
    for pair in pairs:
        names = "/".join(pair["backends"])
        # The run may have lowered it for a recipe on another weight grid (BenchRun._pair_floor).
        floor = pair["floor"] if "floor" in pair else mode.pair_agreement_floor(*pair["backends"])
        if floor is not None and pair["top1_agreement"] < floor:
            problems.append(f"{label} {names}: top-1 agreement {100 * pair['top1_agreement']:.2f} % "
                            f"below {100 * floor:.1f} %")
        if reference and pair["max_abs_logit_diff"] > FLOAT_LOGIT_TOLERANCE:
            problems.append(f"{label} {names}: max |logit diff| {pair['max_abs_logit_diff']:.2e} "
                            f"above {FLOAT_LOGIT_TOLERANCE:.0e}")
    return problems


# An int8 case's interleaved speedup over float32 may fall to this fraction of its baseline's
# before it fails (compared only where the CPU's ISA flags match the baseline's). Measured on this
# AMD EPYC, ten runs of tests/bench/test_speed_check.py plus the baseline recording: mobilenet
# LiteRT 2.07-2.29x, ORT 1.51-1.75x; vgg16 LiteRT 3.45-3.99x, ORT 2.98-3.66x: the lowest run is
# 0.81 of the highest. 0.7 leaves that spread a margin, and an int8 path twice as slow (0.5 of
# its speedup; planted: mobilenet LiteRT 0.98-1.18x against 1.96-2.30x) fails with one too.
SPEEDUP_KEPT_FRACTION = 0.7
# The cnn's batch-1 call takes 30-70 us, where the timer and Python's per-call cost dominate: its
# LiteRT speedup measured 1.49-2.00x over the same runs (0.75 of the highest), too noisy to
# hold to 0.7 of a baseline. It is reported, not gated (the same models as latency's VNNI floor).
SPEEDUP_BASELINE_MODELS = ("mobilenet", "vgg16")


def speedup_vs_baseline_fails(case_id: str, speedup: float, baseline: float | None,
                              same_isa: bool, model: str) -> tuple[str | None, str]:
    """Compares a machine-relative speedup (int8 over float32, same run) with its baseline's.

    Returns:
        ``(failure or None, verdict text)``: the text says what was compared and why, or why the
        baseline's speedup does not apply (another CPU, none recorded, a model too fast to time).
    """
    if baseline is None:
        return None, f"{speedup:.2f}x; no baseline speedup recorded"
    if not same_isa:
        return None, (f"{speedup:.2f}x; baseline {baseline:.2f}x was measured on another testbed or CPU "
                      "model (speed is compared only within both), so only the floor applies")
    if model not in SPEEDUP_BASELINE_MODELS:
        return None, (f"{speedup:.2f}x against the baseline's {baseline:.2f}x; not gated: {model}'s "
                      "batch-1 call is too short to time to 30 %")
    floor = SPEEDUP_KEPT_FRACTION * baseline
    text = (f"{speedup:.2f}x against the baseline's {baseline:.2f}x "
            f"(floor {floor:.2f}x = {SPEEDUP_KEPT_FRACTION:g} x baseline)")
    if speedup >= floor:
        return None, text
    return (f"{case_id}: int8 speedup over float32 fell to {speedup:.2f}x from the baseline's "
            f"{baseline:.2f}x (floor {floor:.2f}x, {SPEEDUP_KEPT_FRACTION:g} of it, from the measured "
            "run-to-run spread): an int8 path got slower"), text


# int8 must beat float32 by this factor on a VNNI CPU for mobilenet and vgg16. The guide measured
# 2.5x-4x; shared 2-core machines jitter by ~10 %, so 1.1x is a floor no working int8 path misses
# and no float model shipped as "int8" reaches.
INT8_SPEEDUP_FLOOR = 1.1
SPEEDUP_GATED_MODELS = ("mobilenet", "vgg16")
# Cases known to miss the speed floor, with the measured cause. The test marks them xfail and fails
# if one of them starts passing, so the entry is removed when the cause is fixed.
# (Empty since tf2onnx's no-op Reshapes are bypassed and the BatchNorms behind them folded:
# QAT MobileNet on ORT went from 0.70x to 1.65x float32, see bench/modes/_onnx.py.)
KNOWN_SLOW: dict[tuple[str, str, str], str] = {}


def vnni_verdict(cpu: dict) -> tuple[bool, str]:
    """Whether the int8 speed gate applies on this CPU, and why."""
    flags = cpu.get("flags", {})
    if flags.get("avx512_vnni") or flags.get("avx_vnni"):
        return True, "CPU has VNNI int8 dot-product instructions"
    return False, ("not applicable: this CPU lacks AVX-512 VNNI and AVX-VNNI, so int8 kernels have "
                   "no dot-product instruction and may not beat float32")


def int8_speedup_fails(case_id: str, model: str, speedup: float, cpu: dict,
                       detail: str = "") -> tuple[str | None, str | None, str]:
    """The VNNI floor of an int8 case's interleaved speedup over float32.

    Args:
        detail: What was timed (e.g. both medians), added to a failure's message.

    Returns:
        ``(failure, known_slow, gate_text)``: a failure message or None; the known cause when the
        case is listed in :data:`KNOWN_SLOW` and still slow (an expected failure); what the gate
        was, for the report.
    """
    gated, why = vnni_verdict(cpu)
    gated = gated and model in SPEEDUP_GATED_MODELS
    known_cause = next((cause for key, cause in KNOWN_SLOW.items() if "-".join(key) == case_id), None)
    if not gated:
        return None, None, why
    fast_enough = speedup >= INT8_SPEEDUP_FLOOR
    if known_cause:
        if fast_enough:
            return f"{case_id}: listed in gates.KNOWN_SLOW but now {speedup:.2f}x: remove the entry", None, why
        return None, f"{case_id}: {speedup:.2f}x float32: {known_cause}", f"known slow: {known_cause}"
    gate = f">= {INT8_SPEEDUP_FLOOR}x ({why})"
    if fast_enough:
        return None, None, gate
    return (f"{case_id}: int8 is {speedup:.2f}x the speed of float32 at batch 1{detail}; on a VNNI CPU "
            f"it must be at least {INT8_SPEEDUP_FLOOR}x: suspect the pipeline"), None, gate


# Largest accepted cost of evaluating through the harness over the raw batched runtime loop
# (minimum of interleaved rounds, see tests/bench/test_latency.py): the harness pads, converts and
# slices around the runtime's calls; a quarter more than the raw loop means it does real work in
# the loop that a deployment would not. Recorded in reports/*/results.json ("harness"): 0.99-1.20x
# over both tiers, the highest on the smoke cnn on LiteRT, whose whole pass is ~30 ms, so per-batch
# costs show most.
HARNESS_OVERHEAD_LIMIT = 1.25


def harness_overhead_fails(label: str, harness_s: float, raw_s: float) -> str | None:
    """Fails when the harness's evaluation costs more than the limit over the raw loop."""
    ratio = harness_s / raw_s
    if ratio <= HARNESS_OVERHEAD_LIMIT:
        return None
    return (f"{label}: harness evaluation takes {ratio:.2f}x the raw runtime loop "
            f"(limit {HARNESS_OVERHEAD_LIMIT}x)")


# Lowest SNR accepted for the final logits against the model the artifact was converted from.
# Measured (64 test images), cnn / mobilenet: LiteRT ptq_int8 35.7 / 29.8 dB, ptq_dynamic
# 37.2 / 37.3 dB, ptq_int16x8 38.6 / 33.0 dB, qat_int8 44.1 / 29.6 dB (against the QAT model);
# ORT ptq_int8 35.7 / 29.5 dB, ptq_dynamic 35.5 / 27.2 dB. Deeper models accumulate more layers'
# noise (mobilenet's 28 weight layers lose ~6 dB to cnn's 5), so the floor keeps >= 12 dB below
# the lowest of these. A broken conversion lands far below; measured on cnn's float model: one
# layer's weights off by a factor of two give 0.0 dB (logits) to -4.0 dB (conv3), and another
# image's logits -2.5 dB. 15 dB is an error of 18 % of the logits' RMS.
FINAL_LOGITS_SNR_FLOOR_DB = 15.0


def final_snr_fails(case_id: str, snr_db: float, rows: list[dict]) -> str | None:
    """Fails when the final logits' SNR against the source model is not above the floor.

    Args:
        case_id: The case, for the message.
        snr_db: SNR of the artifact's logits against the Keras model it was converted from.
        rows: The case's :attr:`LayerErrors.rows`, listed in the message to show where it degrades.
    """
    if snr_db > FINAL_LOGITS_SNR_FLOOR_DB:
        return None
    return (f"{case_id}: final logits SNR {snr_db:.1f} dB against the source model is below "
            f"{FINAL_LOGITS_SNR_FLOOR_DB} dB; per-layer SNR: "
            + ", ".join(f"{row['layer']} {row['snr_db']:.1f}" for row in rows))
