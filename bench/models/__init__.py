"""Model architectures, one file each, registered by name.

Each model module defines a :class:`ModelSpec` and registers it in :data:`MODELS` (other packages
through the ``quantbench.models`` entry point, see :mod:`bench.registry`). Every model outputs
logits (no softmax), so that backends can be compared logit by logit, and every model is built
flat (no Keras model nested inside another) so that tensorflow-model-optimization can wrap it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bench.registry import Registry


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An architecture the harness can train.

    Attributes:
        name: Registry key and pytest id.
        input_shape: ``(height, width, channels)`` the model takes.
        build: Returns a fresh, untrained Keras model (called after seeding).
        description: One line for reports.
        recipes: Tier name -> ``bench.tiers.TrainRecipe``, for a model whose tiers do not list it
            (a model of another package); the tier's own table wins where it has one.
        qat_recipes: Tier name -> ``bench.tiers.QatRecipe``, likewise.
        min_float_accuracy: Tier name -> the float32 accuracy the model must reach, likewise.
    """

    name: str
    input_shape: tuple[int, int, int]
    build: Callable[[], object]
    description: str
    recipes: dict[str, object] = dataclasses.field(default_factory=dict)
    qat_recipes: dict[str, object] = dataclasses.field(default_factory=dict)
    min_float_accuracy: dict[str, float] = dataclasses.field(default_factory=dict)


# Built-ins in report order; importing one registers it.
MODELS: Registry[ModelSpec] = Registry(
    "model", "quantbench.models", builtins=("bench.models.cnn", "bench.models.mobilenet", "bench.models.vgg16")
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
