"""Tiers as data: how much data, which seed and how strict the verdicts, per tier.

A tier is a table of settings, never a branch in code. ``smoke`` is sized for CI (the whole smoke
bench cold in well under 10 minutes on 2 cores, every model still really learning);
``full`` uses all 60k/10k images and the recipes aimed at the targets in the README. What a tier
asks of one model (its training and QAT recipes, float floor and skipped modes) is declared by
the model (:class:`bench.models.ModelSpec`), and a mode's drop budget per tier by the mode
(:class:`bench.modes.Mode`): a tier lists no model or mode, so adding one edits no tier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from bench.errors import BenchError, unknown_name
from bench.recipes import TRAINING_THREADS, QatRecipe, TrainRecipe

# The recipes belong to the models (ModelSpec.recipes; defined in bench.recipes): the tier hashes
# them, and bench.train, bench.tfsetup and plugins still import them from here.


class TierError(BenchError):
    """A selected model or mode that declares no recipe or drop budget for the selected tier."""


# Recipe fields added after models were cached, with their defaults: a recipe that leaves them at
# the default hashes as before, so adding a field does not throw away every trained model. (Two
# threads is what TensorFlow chose by itself on the 2-core machines that trained every model.)
_ADDED_LATER = {"precision": "float32", "threads": TRAINING_THREADS}


def _without_defaults_added_later(recipe: dict) -> dict:
    return {k: v for k, v in recipe.items() if k not in _ADDED_LATER or v != _ADDED_LATER[k]}


@dataclasses.dataclass(frozen=True)
class Tier:
    """Every setting of one tier; the facts of a model or mode in a tier are theirs.

    The methods read those facts for this tier: a model's from its
    :class:`bench.models.ModelSpec` (``recipes``, ``qat_recipes``, ``min_float_accuracy``,
    ``skip``), a mode's from its :class:`bench.modes.Mode` (``drop_budget_pp``), each keyed by
    the tier's name.

    Attributes:
        name: ``smoke`` or ``full``; also the baselines/reports file name.
        seed: Seed of splits, initialization and augmentation.
        val_size: Training images held out for validation.
        test_size: Test images evaluated (``None``: all 10k).
        calibration_size: Training images fed to int8 calibration.
        verdict_ceiling_pp: Net loss against the baseline (images lost minus gained, in points)
            above which a case is ``regressed`` even where the paired test is not significant.
        size_tolerance: Largest accepted relative move of an artifact's size from its baseline
            when the lock, the case definition or the CPU changed (otherwise: exact bytes).
    """

    name: str
    seed: int
    val_size: int
    test_size: int | None
    calibration_size: int
    verdict_ceiling_pp: float
    size_tolerance: float

    def skip_reason(self, model: str, mode: str) -> str | None:
        """Why this tier does not run ``model`` in ``mode`` (``ModelSpec.skip``), or None."""
        from bench.models import MODELS

        return MODELS.get(model).skip.get(self.name, {}).get(mode)

    def train_recipe(self, model: str) -> TrainRecipe:
        """How ``model`` is trained in this tier (``ModelSpec.recipes``)."""
        return self._declared_recipe(model, "recipes", "training recipe", "TrainRecipe")

    def qat_recipe(self, model: str) -> QatRecipe:
        """How ``model`` is fine-tuned for QAT in this tier (``ModelSpec.qat_recipes``)."""
        return self._declared_recipe(model, "qat_recipes", "QAT recipe", "QatRecipe")

    def float_accuracy_floor(self, model: str) -> float | None:
        """The float32 accuracy ``model`` must reach in this tier, or None: no floor."""
        from bench.models import MODELS

        return MODELS.get(model).min_float_accuracy.get(self.name)

    def drop_budget(self, mode: str) -> float:
        """Largest accepted accuracy drop of ``mode`` against float32 (``Mode.drop_budget_pp``), in points."""
        from bench.modes import MODES

        declared = MODES.get(mode).drop_budget_pp
        if self.name not in declared:
            raise TierError(f"tier {self.name!r} has no drop budget for mode {mode!r}: add "
                            f"drop_budget_pp={{{self.name!r}: <points>}} to its Mode, or pick another --modes")
        return declared[self.name]

    def missing_facts(self, models: list[str], modes: list[str]) -> list[str]:
        """What the selected models and modes do not declare for this tier, one phrase each
        (checked at start-up)."""
        from bench.modes import MODES

        problems = []
        qat_models = models if any(MODES.get(mode).uses_qat for mode in modes) else []
        for check, names in ((self.train_recipe, models), (self.qat_recipe, qat_models), (self.drop_budget, modes)):
            for name in names:
                try:
                    check(name)
                except TierError as exc:
                    problems.append(str(exc))
        return problems

    def _declared_recipe(self, model: str, field: str, what: str, kind: str):
        from bench.models import MODELS

        declared = getattr(MODELS.get(model), field)
        if self.name not in declared:
            raise TierError(f"tier {self.name!r} has no {what} for model {model!r}: add "
                            f"{field}={{{self.name!r}: {kind}(...)}} to its ModelSpec, or pick another "
                            "--tier or --models")
        return declared[self.name]

    def recipe_hash(self, model: str) -> str:
        """Hash of everything that defines how ``model`` is trained in this tier."""
        payload = {
            "seed": self.seed,
            "val_size": self.val_size,
            "train": _without_defaults_added_later(dataclasses.asdict(self.train_recipe(model))),
        }
        return _hash(payload)

    def qat_hash(self, model: str) -> str:
        return _hash(dataclasses.asdict(self.qat_recipe(model)))


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


SMOKE = Tier(
    name="smoke",
    seed=20261130,
    val_size=2000,
    test_size=2000,
    calibration_size=200,
    # Net loss against the baseline that fails a case however the paired test comes out. It is
    # the same for every case, float32 included, and never widened by a case's own flips: it comes
    # from the churn measured between two machines of one testbed. Measured against the smoke
    # baselines (README "Gate calibration"): a cold rerun on the same machine flipped 0 images in
    # every cnn case; a Zen 5 and a Zen 4 (both avx512-vnni) differed by 0 images in every cnn
    # case; even across testbeds, an Intel Xeon with AMX flipped 0 images in 31 of 32 cases and 1
    # in one. 0.5 pp (10 images) is ten times that noise, so an unchanged pipeline on its own
    # testbed never reaches it (stats.RUN_FALSE_ALARM), and half the smallest loss worth a red
    # build here: a planted 1.05 pp loss spread over 85 flips (p ~0.015, not significant after
    # the run's correction) is caught by it. A float model trained on another CPU class (or
    # by a changed recipe) churns by far more (cnn 28-36 flips, mobilenet up to 300): against
    # another testbed's baseline such verdicts are shown, not gated; within a testbed they are
    # a real change and regress.
    verdict_ceiling_pp=0.5,
    size_tolerance=0.02,
)

FULL = Tier(
    name="full",
    seed=20261130,
    val_size=5000,
    test_size=None,
    calibration_size=500,
    # As in smoke (same derivation, never widened), for 10,000 images: 0.25 pp is 25 images,
    # against measured churn within a testbed of 0-1 images per case; half the 0.5 pp int8 budget.
    verdict_ceiling_pp=0.25,
    size_tolerance=0.02,
)

TIERS = {tier.name: tier for tier in (SMOKE, FULL)}


def get_tier(name: str) -> Tier:
    """Returns the tier, or raises UnknownNameError listing the valid ones."""
    try:
        return TIERS[name]
    except KeyError:
        raise unknown_name("tier", name, list(TIERS)) from None
