"""Latency and throughput: timing loaded artifacts fairly.

Batch-1 latency runs on one thread (what an edge device or a request handler sees); throughput
runs a larger batch on all cores. Speedups of int8 against float32 are measured *interleaved*:
each round times every variant once, in turn, so drift of a shared machine (another process,
frequency changes) hits all variants alike and cancels in the ratio of medians.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np

# Batch of the throughput measurement: large enough that per-invoke overhead is amortized,
# small enough that VGG16's activations stay in cache-friendly sizes on 2 cores.
THROUGHPUT_BATCH = 64
# Wall time one latency measurement aims for; rounds are sized from a first timed call.
TARGET_SECONDS = 1.0
MIN_ROUNDS, MAX_ROUNDS = 10, 300
# The speedup each model aims at per backend is the model's fact (ModelSpec.speedup_targets).


def rounds_for(call: Callable[[], object], target_seconds: float = TARGET_SECONDS) -> int:
    """How many rounds of ``call`` fit the target time (after one warm-up call)."""
    call()
    began = time.perf_counter()
    call()
    once = max(time.perf_counter() - began, 1e-6)
    return int(np.clip(target_seconds / once, MIN_ROUNDS, MAX_ROUNDS))


def interleaved_medians(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each variant, timing the variants in turn each round."""
    for call in calls.values():
        call()  # warm-up: first invokes allocate and pack weights
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in samples.items()}


def throughput(run_batch: Callable[[np.ndarray], object], images: np.ndarray, rounds: int = 5) -> float:
    """Images per second at THROUGHPUT_BATCH, median of ``rounds`` timed batches."""
    batch = images[:THROUGHPUT_BATCH]
    if len(batch) < THROUGHPUT_BATCH:
        batch = np.resize(batch, (THROUGHPUT_BATCH, *batch.shape[1:]))
    seconds = interleaved_medians({"run": lambda: run_batch(batch)}, rounds)["run"]
    return THROUGHPUT_BATCH / seconds


def all_cores() -> int:
    return os.cpu_count() or 1
