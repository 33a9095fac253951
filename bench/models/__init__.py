"""Model architectures, one file each, registered by name.

Each model module defines a :class:`ModelSpec` and registers it in :data:`MODELS` (other packages
through the ``quantbench.models`` entry point, see :mod:`bench.registry`). Every model outputs
logits (no softmax), so that backends can be compared logit by logit, and every model is built
flat (no Keras model nested inside another) so that tensorflow-model-optimization can wrap it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bench.recipes import QatRecipe, TrainRecipe
from bench.registry import Registry, builtin_modules


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An architecture the harness can train, with every fact the tiers, gates and reports need.

    A model is one file (``bench/models/<name>.py``, or a module of another package) that
    registers its spec: nothing about it is written anywhere else.

    Attributes:
        name: Registry key and pytest id.
        input_shape: ``(height, width, channels)`` the model takes.
        build: Returns a fresh, untrained Keras model (called after seeding).
        description: One line for reports.
        recipes: Tier name -> how the model is trained in that tier. A tier it lacks cannot run
            the model (a usage error at start-up).
        qat_recipes: Tier name -> how the trained model is fine-tuned for QAT modes, likewise.
        min_float_accuracy: Tier name -> the float32 accuracy the model must reach (the float32
            cases' floor); a tier it lacks sets no floor.
        skip: Tier name -> mode name -> why that tier does not run the model in that mode (a
            pytest skip with the reason).
        size_floors: Mode name -> smallest accepted float32-size / artifact-size ratio of the
            model's artifacts of that mode; a mode it lacks applies its own
            ``Mode.default_size_floor``.
        speedup_gated: Whether the int8 speedup over float32 is gated (the VNNI floor and the
            comparison with the baseline's speedup); off for a model whose batch-1 call is too
            short to time reliably. Reported either way.
        speedup_targets: Backend name -> the int8 speedup over float32 the project aims at,
            reported beside the measurement, never asserted.
        display_name: The name reports show (empty: ``name``).
    """

    name: str
    input_shape: tuple[int, int, int]
    build: Callable[[], object]
    description: str
    recipes: dict[str, TrainRecipe] = dataclasses.field(default_factory=dict)
    qat_recipes: dict[str, QatRecipe] = dataclasses.field(default_factory=dict)
    min_float_accuracy: dict[str, float] = dataclasses.field(default_factory=dict)
    skip: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    size_floors: dict[str, float] = dataclasses.field(default_factory=dict)
    speedup_gated: bool = False
    speedup_targets: dict[str, float] = dataclasses.field(default_factory=dict)
    display_name: str = ""


# Built-ins in report order; importing one registers it.
MODELS: Registry[ModelSpec] = Registry(
    "model", "quantbench.models", builtins=builtin_modules(__name__, ("cnn", "mobilenet", "vgg16"))
)

# Momentum of BatchNorm's moving averages. Keras' default 0.99 averages over ~100 steps; a smoke
# run has only a few hundred steps in all, so the averages lag the weights and inference
# collapses (a smoke MobileNet measured 88 % training accuracy, 10 % with the moving statistics).
# 0.9 tracks within ~10 steps and costs nothing measurable on long runs.
BATCHNORM_MOMENTUM = 0.9


def set_batchnorm_momentum(model, momentum: float = BATCHNORM_MOMENTUM):
    """Sets every BatchNormalization layer's momentum (before the model is compiled)."""
    for layer in model.layers:
        if hasattr(layer, "moving_variance"):
            layer.momentum = momentum
    return model
