"""How long each case's file took to convert and to evaluate: a measurement the run owns.

The run (:class:`bench.run.BenchRun`) makes one :class:`Timings` and hands it to its builder, which
marks the spans of work it does (:meth:`Timings.timed`) and nothing more; results.json's case rows
carry what was recorded (:mod:`bench.run_document`), and later runs' progress estimates and shard
balance read them back (:func:`bench.progress.history_from_results`). A builder made without one (the
plan, another testbed's files in the portability experiment) records into its own, which nobody
reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

# The steps a case's row records, in seconds.
CONVERT, EVALUATE = "convert_seconds", "eval_seconds"


@dataclasses.dataclass
class Span:
    """One timed span of work: its seconds, unrounded, once it has ended (None until then)."""

    seconds: float | None = None


class Timings:
    """Seconds per case id and step (:data:`CONVERT`, :data:`EVALUATE`), rounded to 0.01 s."""

    def __init__(self) -> None:
        self._seconds: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def timed(self, cid: str, step: str) -> Iterator[Span]:
        """Times the block and records it as ``step`` of case ``cid``; nothing if the block raises.

        Yields:
            The :class:`Span`, whose ``seconds`` are set when the block ends (for the log line and
            the cache entry's meta, which keep them unrounded).
        """
        span = Span()
        began = time.perf_counter()
        yield span
        span.seconds = time.perf_counter() - began
        self.record(cid, step, span.seconds)

    def record(self, cid: str, step: str, seconds: float) -> None:
        """Records ``seconds`` measured earlier (a cached artifact's conversion, from its meta)."""
        self._seconds.setdefault(cid, {})[step] = round(seconds, 2)

    def by_case(self) -> dict[str, dict[str, float]]:
        """What was recorded, by case id, each case's steps in the order they were recorded."""
        return {cid: dict(steps) for cid, steps in self._seconds.items()}
