"""Runtimes, one file each, registered by name with what each can do.

A backend module registers a :class:`Backend`: how to load an artifact (MLPerf's ``load`` and the
runner's ``predict``), and its capabilities as data, which the gates, checks and reports ask
instead of branching on names. Backend modules import their runtime inside functions, so
registering costs nothing and a runtime is imported only when a case runs on it. Other packages
register backends through the ``quantbench.backends`` entry point (see :mod:`bench.registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from bench.registry import Registry, builtin_modules

# Images per invoke when evaluating: large enough to amortize Python overhead per call,
# small enough that VGG16's activations stay well inside memory.
EVAL_BATCH = 256


class Runner(Protocol):
    """A loaded artifact."""

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        """Float32 model input ``(n, h, w, c)`` -> float32 logits ``(n, 10)``, ``batch`` images
        per invoke."""

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """One invoke on exactly ``images`` (no padding)."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """A runtime and what it can do.

    Attributes:
        name: Registry key and pytest id.
        description: One line for reports.
        load: ``load(path, threads=None) -> Runner``: loads and checks an artifact.
        formats: The file formats it runs (:mod:`bench.formats`), preferred first: a case runs
            the file of the first one the mode has an exporter for. A second runtime for an
            existing format lists it and runs the very same files; a backend with a format of its
            own defines it and registers its exporters in its own module.
        packages: Distributions whose versions define its results (go into the fingerprint).
        untimed: Why batch-1 latency on one thread cannot be measured fairly (None: it can).
        raw_loop: ``raw_loop(runner, batches) -> callable`` running the runtime's own loop over
            pre-made batches, the reference for the harness's overhead (None: no such loop).
        stored_weights: ``stored_weights(path) -> list[inspect_artifacts.StoredWeight]``: the
            integer weights and quantization parameters an artifact stores (None: unreadable).
        layer_errors: ``layer_errors(float_path, quantized_path, images) -> LayerErrors``: per-layer
            outputs of an artifact against its float32 artifact (None: not exposed).
        rounding: The rule set of :mod:`bench.quantmath` its integer kernels follow (None: none).
        unsupported: ``unsupported(mode) -> str | None``: why this machine cannot run ``mode``
            here (a failed start-up probe, a missing CPU feature), asked before each case; the
            answer is a skip naming the cause (None: no such check).
        facts: ``facts() -> dict``: what the runtime reports about this machine (e.g. its CPU
            plugin's capabilities), recorded in the environment fingerprint (None: nothing).
        agreement_floor: ``agreement_floor(testbed, mode) -> float | None``: a lower top-1
            agreement floor between this backend's file and the others' where its recipe on
            that testbed puts the weights on another grid than theirs (None: the mode's floors).
    """

    name: str
    description: str
    load: Callable[..., Runner]
    formats: tuple[str, ...]
    packages: tuple[str, ...] = ()
    untimed: str | None = None
    raw_loop: Callable | None = None
    stored_weights: Callable | None = None
    layer_errors: Callable | None = None
    rounding: str | None = None
    unsupported: Callable | None = None
    facts: Callable | None = None
    agreement_floor: Callable | None = None

    def capabilities(self) -> list[str]:
        """The names of what it can do beyond load and predict, for reports."""
        optional = {"timed": self.untimed is None, "raw_loop": self.raw_loop, "stored_weights":
                    self.stored_weights, "layer_errors": self.layer_errors, "rounding": self.rounding}
        return [name for name, value in optional.items() if value]


# Built-ins in report order; importing one registers it.
BACKENDS: Registry[Backend] = Registry("backend", "quantbench.backends", builtins=builtin_modules(
    __name__, ("keras", "litert", "onnxruntime", "openvino")))


def fixed_batches(images: np.ndarray, batch: int = EVAL_BATCH) -> Iterator[tuple[np.ndarray, int]]:
    """``(chunk, real)`` per batch of ``images``; a ragged last chunk is zero-padded to ``batch``.

    Padding keeps one input shape for the whole pass, so an interpreter is resized and its
    tensors allocated once, not again for the ragged last batch. ``real`` counts the images
    of the chunk that are not padding. A set smaller than one batch is left as it is.
    """
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        real = len(chunk)
        if real < batch and len(images) > batch:
            chunk = np.concatenate([chunk, np.zeros((batch - real, *chunk.shape[1:]), chunk.dtype)])
        yield chunk, real


def predict_batched(run_batch, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    """Calls ``run_batch`` on :func:`fixed_batches` of ``images``; returns the real images' outputs."""
    outputs = [np.asarray(run_batch(chunk))[:real] for chunk, real in fixed_batches(images, batch)]
    return np.concatenate(outputs).astype(np.float32)
