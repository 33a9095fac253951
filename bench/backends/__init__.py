"""Runtimes, one file each, registered by name and imported only when selected.

A backend follows MLPerf's four-method shape: ``name``, ``version()``, ``load(path)`` and the
loaded runner's ``predict(images)``. Its artifact suffix tells modes what file to write.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from bench.errors import unknown_name

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


class Backend(Protocol):
    name: str
    suffix: str

    def version(self) -> str: ...

    def load(self, path: Path, threads: int | None = None) -> Runner: ...


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """Registry entry: where the backend lives, so that it is imported only when selected."""

    name: str
    module: str
    suffix: str


BACKENDS = {
    info.name: info
    for info in (
        BackendInfo("keras", "bench.backends.keras", ".keras"),
        BackendInfo("litert", "bench.backends.litert", ".tflite"),
        BackendInfo("onnxruntime", "bench.backends.onnxruntime", ".onnx"),
    )
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    """Imports and returns the backend module, or raises UnknownNameError."""
    if name not in BACKENDS:
        raise unknown_name("backend", name, list(BACKENDS))
    return importlib.import_module(BACKENDS[name].module)


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
