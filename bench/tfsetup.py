"""Imports TensorFlow the one way this harness needs it: Keras 2, determinism on, quiet.

Import this module (not ``tensorflow``) wherever TensorFlow is needed; being inside the
``bench`` package, it runs ``bench/__init__.py`` (which sets TF_USE_LEGACY_KERAS) first.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

tf.get_logger().setLevel("ERROR")


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow, and turns on op determinism."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


__all__ = ["keras", "seed_everything", "tf"]
