"""Imports TensorFlow the one way this harness needs it: Keras 2, determinism on, quiet.

Import this module (not ``tensorflow``) wherever TensorFlow is needed; being inside the
``bench`` package, it runs ``bench/__init__.py`` (which sets TF_USE_LEGACY_KERAS and
TF_CPP_MIN_LOG_LEVEL) first.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# absl's line prefix: severity, MMDD, hh:mm:ss.micros (before absl is initialised, 00:00 and the
# Unix time in seconds), thread id, file:line].
_ABSL_LINE = re.compile(rb"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] ")
_ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITIES = b"IWEF"  # TF_CPP_MIN_LOG_LEVEL n hides the first n of them


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:  # not a level: filter nothing rather than guess
        return 0


def _hidden(line: bytes, level: int) -> bool:
    """Whether TF_CPP_MIN_LOG_LEVEL ``level`` would have hidden this C++ log line."""
    if line.startswith(_ABSL_BANNER):
        return level > 0
    match = _ABSL_LINE.match(line)
    return match is not None and _SEVERITIES.index(match.group(1)) < level


@contextlib.contextmanager
def _load_time_lines_filtered() -> Iterator[None]:
    """Drops the C++ log lines TF_CPP_MIN_LOG_LEVEL should have hidden from file descriptor 2.

    TensorFlow's shared libraries log while they load (the oneDNN notice, CUDA probing), before
    they read the level. Whatever else reaches the descriptor in the block (Python warnings, say)
    is written to stderr afterwards, in order. A hard crash inside the block would take its last
    words with it: ``QUANTBENCH_TF_LOG=1`` (level 0) turns the filter off.
    """
    level = _min_log_level()
    try:
        saved = os.dup(2) if level else None
    except OSError:  # no stderr at all: nothing to clean
        saved = None
    if saved is None:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().splitlines(keepends=True) if not _hidden(line, level)]
            sys.stderr.write(b"".join(kept).decode(errors="replace"))
            sys.stderr.flush()


from bench.tiers import TRAINING_THREADS  # noqa: E402  (below the filter's definition, before TF)

with _load_time_lines_filtered():
    import tensorflow as tf
    import tf_keras as keras

tf.get_logger().setLevel("ERROR")


def _fix_threads(threads: int) -> None:
    """Pins TensorFlow's thread pools before its runtime starts (it cannot change afterwards).

    Every recipe trains on ``TrainRecipe.threads`` threads whatever the core count, so a runner
    with more or fewer cores trains the same weights (see ``bench.tiers.TrainRecipe``).
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


_fix_threads(TRAINING_THREADS)


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow, and turns on op determinism."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def training_threads() -> int:
    """The intra-op thread count TensorFlow runs with (pinned at import)."""
    return tf.config.threading.get_intra_op_parallelism_threads()


__all__ = ["keras", "seed_everything", "tf", "training_threads"]
