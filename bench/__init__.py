"""quantbench: a pytest benchmark and regression harness for quantized CNNs.

Importing the package configures TensorFlow before anything imports it:

* tensorflow-model-optimization needs Keras 2 (``tf_keras``), which TensorFlow only selects when
  ``TF_USE_LEGACY_KERAS=1`` is set *before* its first import;
* TensorFlow's C++ log lines are off unless ``QUANTBENCH_TF_LOG=1`` (see
  :func:`bench.progress.native_logs`); an explicit ``TF_CPP_MIN_LOG_LEVEL`` is respected.

``TF_ENABLE_ONEDNN_OPTS`` is left alone, as oneDNN changes numerics (and trains 4x faster here,
deterministic at a fixed thread count); so is ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os

from bench import progress

# Keras 2 for tfmot; must precede the first `import tensorflow` anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
progress.set_native_log_level()

__version__ = "0.1.0"
