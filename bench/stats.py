"""The statistics behind the gates: the paired verdict of a case against its baseline, the run's
false-alarm rate shared among its cases, and comparisons of count-derived values with a limit.

The thresholds and the pass/fail decisions that read these numbers live in :mod:`bench.gates`;
the exact McNemar p-values themselves in :mod:`bench.metrics`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import metrics

# Values the gates compare are computed from counts: 20 lost images of 2,000 is a drop of
# 1.0 pp, 10 net images of 2,000 is the smoke ceiling of 0.5 pp, a size of 102 bytes against 100
# is 102 / 100 - 1 = 0.020000000000000018, not 0.02. Such a value lands within a few float
# rounding steps (~1e-16 relative) of the limit it equals, on either side; it must count as at
# the limit, not over it. 1e-9 is far above that rounding and far below the smallest step a
# count can make (one image of 10,000 is 0.01 pp; one byte of 100,000 is 1e-5 of the size).
ROUNDING_TOLERANCE = 1e-9


def at_most(value: float, ceiling: float) -> bool:
    """Whether ``value`` is at or under ``ceiling``, up to :data:`ROUNDING_TOLERANCE`."""
    return value <= ceiling + ROUNDING_TOLERANCE


def at_least(value: float, floor: float) -> bool:
    """Whether ``value`` is at or over ``floor``, up to :data:`ROUNDING_TOLERANCE`."""
    return value >= floor - ROUNDING_TOLERANCE


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


def per_case_alpha(cases_judged: int) -> float:
    """The false-alarm rate of each of one case's two one-sided tests, in a run that judges
    ``cases_judged`` cases (at least one): ``RUN_FALSE_ALARM / (2 * cases_judged)``."""
    return RUN_FALSE_ALARM / (TESTS_PER_CASE * max(1, cases_judged))


def flips(current: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """``(lost, gained)``: images ``reference`` classifies correctly and ``current`` does not, and
    the reverse (per-image outcomes, right: True, on the same images in the same order)."""
    return int(np.sum(reference & ~current)), int(np.sum(current & ~reference))


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

    @classmethod
    def from_dict(cls, record: dict) -> Verdict:
        """The verdict a results.json ``baseline_comparison`` (:meth:`as_dict`) records; derived
        fields (``net_loss_pp``) and fields this version does not know are left out."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in fields})

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
    lost, gained = flips(current, baseline)
    p_loss, p_gain = metrics.mcnemar_one_sided(lost, gained), metrics.mcnemar_one_sided(gained, lost)
    n = len(current)
    net_loss_pp = 100 * (lost - gained) / n
    if lost == gained == 0:
        verdict = "identical"
    elif p_loss < alpha or not at_most(net_loss_pp, ceiling_pp):
        verdict = "regressed"
    elif p_gain < alpha:
        verdict = "improved"
    else:
        verdict = "drift"
    return Verdict(verdict, lost, gained, p_loss, p_gain, alpha, ceiling_pp, n,
                   accuracy=float(current.mean()), baseline_accuracy=float(baseline.mean()),
                   lost_indices=tuple(int(i) for i in np.flatnonzero(baseline & ~current)),
                   causes=tuple(causes))
