"""Batch invariance: whether an image's logits depend on the other images of its batch.

A measurement of the run (:meth:`bench.run.BenchRun.run_case` records it in each case's
``batch_invariance``, and :func:`bench.gates.batch_dependence_check` judges it): a sample of test
images is run one at a time on a freshly loaded artifact and compared with the same images'
logits from the batched evaluation. The builder only hands over the artifact, the inputs and the
evaluation's logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench import metrics
from bench.backends import EVAL_BATCH
from bench.modes import MODES

if TYPE_CHECKING:
    from bench.build import Builder

# Images per case whose batch-1 logits are compared with the evaluation's: the first and last
# images of the pass (the last evaluation batch is the zero-padded one) and a seeded draw of the rest.
EDGE_IMAGES, DRAWN_IMAGES, SEED = 16, 16, 66


def measure(build: Builder, model: str, mode: str, backend: str) -> dict:
    """Batch-1 logits of a sample of images against the same images' logits at batch 256.

    Where the mode declares the backend batch-dependent, its evaluation ran at batch 1, and the
    batched pass is made here only to measure how much the batch would have moved it.

    Args:
        build: The run's builder (artifacts, test inputs, memoized evaluation logits).
        model, mode, backend: The case.

    Returns:
        The case's ``batch_invariance`` record: ``sample`` (images compared), ``eval_batch`` (the
        evaluation's batch), ``max_abs_logit_diff`` and ``top1_changed``.
    """
    images = build.inputs("test", model)
    chosen = sample(len(images))
    runner = build.runner(model, mode, backend)
    single = np.concatenate([np.asarray(runner.run_batch(images[i:i + 1]), np.float32) for i in chosen])
    eval_batch = MODES.get(mode).eval_batch(backend)
    batched = (build.logits(model, mode, backend) if eval_batch == EVAL_BATCH
               else runner.predict(images, EVAL_BATCH))[chosen]
    diff = metrics.max_abs_diff(single, batched)
    return {
        "sample": int(len(chosen)),
        "eval_batch": eval_batch,
        "max_abs_logit_diff": diff,
        "top1_changed": int(np.sum(np.argmax(single, 1) != np.argmax(batched, 1))),
    }


def sample(n: int) -> np.ndarray:
    """Sorted indices of the batch-invariance sample of ``n`` test images."""
    edges = set(range(min(n, EDGE_IMAGES))) | set(range(max(0, n - EDGE_IMAGES), n))
    rest = np.array(sorted(set(range(n)) - edges), dtype=int)
    drawn = np.random.default_rng(SEED).choice(rest, min(len(rest), DRAWN_IMAGES),
                                               replace=False) if len(rest) else rest
    return np.array(sorted(edges | {int(i) for i in drawn}), dtype=int)
