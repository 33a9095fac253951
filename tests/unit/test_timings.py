"""Tests of bench.timings and of batch invariance's image sample (bench.batch_invariance): the
measurements that left the builder."""

from __future__ import annotations

import numpy as np
import pytest

from bench import batch_invariance, timings
from bench.timings import CONVERT, EVALUATE, Timings


def test_a_timed_span_is_recorded_rounded_and_handed_back_unrounded(monkeypatch):
    clock = iter([10.0, 12.3456])
    monkeypatch.setattr(timings.time, "perf_counter", lambda: next(clock))
    recorder = Timings()
    with recorder.timed("cnn-float32-litert", CONVERT) as span:
        assert span.seconds is None
    assert span.seconds == pytest.approx(2.3456)
    assert recorder.by_case() == {"cnn-float32-litert": {CONVERT: 2.35}}


def test_steps_keep_the_order_they_were_recorded_in():
    recorder = Timings()
    recorder.record("a", CONVERT, 1.004)
    recorder.record("a", EVALUATE, 0.5)
    recorder.record("b", EVALUATE, 0.25)
    assert recorder.by_case() == {"a": {CONVERT: 1.0, EVALUATE: 0.5}, "b": {EVALUATE: 0.25}}
    assert list(recorder.by_case()["a"]) == [CONVERT, EVALUATE]


def test_a_span_that_raises_records_nothing():
    recorder = Timings()
    with pytest.raises(RuntimeError), recorder.timed("a", CONVERT):
        raise RuntimeError("conversion failed")
    assert recorder.by_case() == {}


def test_by_case_is_a_copy():
    recorder = Timings()
    recorder.record("a", CONVERT, 1.0)
    recorder.by_case()["a"][CONVERT] = 9.0
    assert recorder.by_case() == {"a": {CONVERT: 1.0}}


def test_the_invariance_sample_takes_both_edges_and_a_seeded_draw():
    chosen = batch_invariance.sample(2000)
    edge, drawn = batch_invariance.EDGE_IMAGES, batch_invariance.DRAWN_IMAGES
    assert len(chosen) == 2 * edge + drawn and np.all(np.diff(chosen) > 0)
    assert set(range(edge)) | set(range(2000 - edge, 2000)) <= set(chosen.tolist())
    np.testing.assert_array_equal(chosen, batch_invariance.sample(2000))


@pytest.mark.parametrize("n", [0, 5, 32, 48])
def test_the_invariance_sample_of_few_images_is_all_of_them(n):
    np.testing.assert_array_equal(batch_invariance.sample(n), np.arange(n))
