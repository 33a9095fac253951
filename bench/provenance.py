"""Which trained weights a run used, as results.json's ``models[<model>]`` records them.

Two runs on two testbeds differ by the training and by the runtimes at once, unless they used the
very same weights (a bundle, ``bench.bundle``). The cross-testbed report (``bench.report.across``)
tells the two apart with what this module records per model:

- ``weights_sha256`` / ``qat_weights_sha256``: a digest of the float and QAT weight values, in
  layer order. It is taken from the arrays in memory, not from the files, so it does not depend on
  how a file format lays out bytes: same digest, same weights, decisively.
- ``key`` / ``qat_key``: the cache keys (recipe, data and library versions) the weights were
  trained under.
- ``weights``: where they came from, in words (this run, the cache and where it trained, or a
  bundle; ``bench.cache.describe_origin``).

Kept apart from ``bench.build``: that module is on every artifact's conversion path
(``CONVERSION_SOURCES``), and what a report records must not change an artifact's key.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bench.build import Builder

TRAINED_HERE = "trained in this run"


def weights_digest(model) -> str:
    """sha256 over a Keras model's weight values in layer order: dtype, shape and bytes of each.

    Args:
        model: A built Keras model.

    Returns:
        The hex digest; equal for two models exactly when every weight is bit-identical.
    """
    digest = hashlib.sha256()
    for array in model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class WeightsRecord:
    """Adds the weights' identity to a run's models summary, computing each digest once."""

    def __init__(self, build: Builder) -> None:
        self.build = build
        self._digests: dict[str, str] = {}

    def _digest(self, trained) -> str:
        if trained.key not in self._digests:
            self._digests[trained.key] = weights_digest(trained.model)
        return self._digests[trained.key]

    def added_to(self, summary: dict) -> dict:
        """The models summary (``Builder.models_summary``) with each model's weights identity.

        Args:
            summary: Per model name, what the builder recorded; a model with ``qat_seconds`` also
                had its QAT model trained or loaded in this run.

        Returns:
            A new summary; each model gains ``key``, ``weights_sha256`` and ``weights``, and
            ``qat_key`` and ``qat_weights_sha256`` where it has a QAT model.
        """
        out = {}
        for name, row in summary.items():
            trained = self.build.trained(name)  # memoized by the builder: nothing trains again
            label = f"{name}-{self.build.tier.name}"
            source = (self.build.cache.weights_source("models", label, trained.key) if trained.cached
                      else TRAINED_HERE)
            row = {**row, "key": trained.key, "weights_sha256": self._digest(trained), "weights": source}
            if "qat_seconds" in row:
                qat = self.build.qat(name)
                row.update(qat_key=qat.key, qat_weights_sha256=self._digest(qat))
            out[name] = row
        return out
