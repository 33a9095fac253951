"""Nothing lost: an interrupted training leaves no half-written entry, and the rerun resumes.

The ``trained_cache`` fixture (see conftest.py) runs ``python -m bench.train --tier smoke --models
cnn``, sends SIGINT once the first epoch is logged, and reruns the command to completion;
``terminated_training`` stops another such run with SIGTERM. Both children start with SIGINT
ignored, as a background runner starts them, so bench.train must restore its handling. The same
staging mechanism (:func:`bench.atomic.staging_dir`, under :meth:`bench.cache.Cache.get_or_build`)
writes converted artifacts, so an interrupted conversion is covered by the same guarantee; the
failing-build case of that mechanism is unit-tested in ``tests/unit/test_cache.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cache import Cache

from .conftest import EPOCHS, MODEL, float_entries, ignore_sigint, staging_leftovers

pytestmark = pytest.mark.bench

RESUME_HINT = "rerun the same command to resume from the last completed epoch"


def test_children_start_with_sigint_ignored():
    # The interrupt tests prove something only if their children really start as under nohup.
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, preexec_fn=ignore_sigint)
    assert out.stdout.strip() == "True", out.stdout + out.stderr


def test_interrupted_training_leaves_a_checkpoint_and_no_entry(trained_cache):
    log = trained_cache.interrupted_log
    assert f"epoch 1/{EPOCHS}" in log, log[-3000:]
    assert trained_cache.interrupted_returncode == 130, log[-3000:]  # 128 + SIGINT
    assert f"interrupted (SIGINT): {RESUME_HINT}" in log, log[-3000:]
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


def test_sigterm_stops_training_as_cleanly_as_sigint(terminated_training):
    log = terminated_training.log
    assert f"epoch 1/{EPOCHS}" in log, log[-3000:]
    assert terminated_training.returncode == 143, log[-3000:]  # 128 + SIGTERM
    assert f"interrupted (SIGTERM): {RESUME_HINT}" in log, log[-3000:]
    assert f"epoch {EPOCHS}/{EPOCHS}" not in log, "the run finished before SIGTERM: " + log[-3000:]
    assert terminated_training.model_entries == [], terminated_training.model_entries
    assert terminated_training.staging_after_interrupt == [], terminated_training.staging_after_interrupt
    assert terminated_training.checkpoint_state is not None, "no checkpoint after SIGTERM"
    assert terminated_training.checkpoint_state["epochs_done"] >= 1
