"""quantbench: a pytest benchmark and regression harness for quantized CNNs.

Importing the package configures TensorFlow before anything imports it:
tensorflow-model-optimization needs Keras 2 (``tf_keras``), which TensorFlow only
selects when ``TF_USE_LEGACY_KERAS=1`` is set *before* its first import.
"""

from __future__ import annotations

import os

# Keras 2 for tfmot; must precede the first `import tensorflow` anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Quiet TensorFlow's C++ start-up chatter; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (oneDNN stays on: 4x faster training here, and deterministic at a fixed thread count)

__version__ = "0.1.0"
