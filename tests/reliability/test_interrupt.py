"""Nothing lost: an interrupted training leaves no half-written entry, and the rerun resumes.

The ``trained_cache`` fixture (see conftest.py) runs ``python -m bench.train --tier smoke --models
cnn``, sends SIGINT once the first epoch is logged, and reruns the command to completion. The same
staging mechanism (:func:`bench.atomic.staging_dir`, under :meth:`bench.cache.Cache.get_or_build`)
writes converted artifacts, so an interrupted conversion is covered by the same guarantee; the
failing-build case of that mechanism is unit-tested in ``tests/unit/test_cache.py``.
"""

from __future__ import annotations

import pytest

from bench.cache import Cache

from .conftest import EPOCHS, MODEL, float_entries, staging_leftovers

pytestmark = pytest.mark.bench


def test_interrupted_training_leaves_a_checkpoint_and_no_entry(trained_cache):
    log = trained_cache.interrupted_log
    assert f"epoch 1/{EPOCHS}" in log, log[-3000:]
    assert trained_cache.interrupted_returncode != 0, log[-3000:]
    assert f"epoch {EPOCHS}/{EPOCHS}" not in log, "the run finished before the interrupt: " + log[-3000:]
    # No complete (nor partial) model entry, no staging folder or temporary file left over.
    assert trained_cache.model_entries == [], trained_cache.model_entries
    assert trained_cache.staging_after_interrupt == [], trained_cache.staging_after_interrupt
    # The epochs done are kept in the checkpoint.
    assert trained_cache.checkpoint_state is not None, "no checkpoint after the interrupt"
    assert trained_cache.checkpoint_state["epochs_done"] >= 1


def test_rerun_resumes_and_its_entry_verifies(trained_cache):
    log = trained_cache.resumed_log
    assert trained_cache.resumed_returncode == 0, log[-3000:]
    done = trained_cache.checkpoint_state["epochs_done"]
    assert f"[train] {MODEL}-smoke: resuming after epoch {done}/{EPOCHS}" in log, log[-3000:]
    # Resumed epochs only: the first one is not trained again.
    assert f"[train] {MODEL}-smoke: epoch 1/{EPOCHS} " not in log, log[-3000:]
    root = trained_cache.root
    cache = Cache(root)
    [entry] = float_entries(root)
    assert cache.verify(entry) is None
    [qat] = [p for p in (root / "models").iterdir() if p.is_dir() and p.name.startswith(f"{MODEL}-smoke-qat-")]
    assert cache.verify(qat) is None
    # The checkpoint has served its purpose and is gone; nothing temporary is left.
    assert not list((root / "checkpoints").iterdir())
    assert staging_leftovers(root) == []
