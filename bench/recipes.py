"""Recipes as data: how a model is trained, and how it is fine-tuned for QAT.

A model declares one of each per tier (``ModelSpec.recipes``, ``ModelSpec.qat_recipes``); a tier
reads them and hashes them into the cache keys (:meth:`bench.tiers.Tier.recipe_hash`). They live
apart from the tiers so that a model module can build them without an import loop
(:mod:`bench.tiers` reads :mod:`bench.models`); :mod:`bench.tiers` re-exports them.
"""

from __future__ import annotations

import dataclasses

# The thread count every built-in recipe trains with (TrainRecipe.threads); TensorFlow's pools
# are pinned to it when bench.tfsetup imports TensorFlow, since they cannot change afterwards.
TRAINING_THREADS = 2


# How the built-in recipes were chosen (each model's own reasons are beside its recipes):
# - Adam with a cosine decay to zero after one warm-up epoch (full tier): no schedule to tune per
#   model, and the decay's last epochs are where the last points come from (cnn: val 91.2 % at
#   epoch 15 of 30, 92.4 % at the end).
# - Augmentation (full tier): random shifts of up to 2 px and horizontal flips. Fashion-MNIST items
#   sit centred with a 2-4 px margin, so shifts never cut them, and clothes are left-right
#   symmetric. It is regularization for 30 epochs over the same 55k images (no ablation was run).
# - QAT fine-tunes the converged float model for 1-2 epochs at a rate 20-40x below the training
#   peak, BatchNorm frozen, activation ranges set from calibration images first (train.py).
@dataclasses.dataclass(frozen=True)
class TrainRecipe:
    """How one model is trained from scratch.

    Attributes:
        epochs: Passes over the training images.
        batch_size: Images per step.
        learning_rate: Peak learning rate of Adam.
        schedule: ``constant`` or ``cosine`` (decay to zero over all steps, after warm-up).
        warmup_epochs: Linear warm-up, in epochs (0: none).
        train_size: Training images (``None``: all 55k left after validation).
        augment: Random shifts of up to 2 px and horizontal flips, drawn per epoch.
        label_smoothing: Cross-entropy label smoothing.
        precision: ``float32``, or ``mixed_bfloat16``: Keras mixed precision (bfloat16 compute,
            float32 weights and optimizer state). The trained weights are float32 either way,
            and every artifact is built from a float32 model holding them.
        threads: TensorFlow's intra- and inter-op threads while training. Eigen and oneDNN split
            each op's work by the thread count, so the sums round differently: left to the core
            count, one core trained other weights than two (30-35 of 2,000 smoke cnn images
            flipped). Fixed here, a 1- or 4-core runner of the same testbed trains the 2-core
            machines' weights (slower or faster, not differently).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    schedule: str = "cosine"
    warmup_epochs: int = 0
    train_size: int | None = None
    augment: bool = False
    label_smoothing: float = 0.0
    precision: str = "float32"
    threads: int = TRAINING_THREADS


@dataclasses.dataclass(frozen=True)
class QatRecipe:
    """How a converged float model is fine-tuned with quantization-aware training.

    Attributes:
        epochs: Fine-tuning passes.
        batch_size: Images per step.
        learning_rate: Constant Adam rate, small: QAT refines, it does not retrain.
        train_size: Training images used (``None``: the model's training set).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    train_size: int | None = None
