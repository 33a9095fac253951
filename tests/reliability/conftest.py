"""Shared fixtures of the reliability tests: one private cache, trained once per test session.

The cnn is trained into a temporary cache by ``trained_cache``, which does it the hard way: it
starts ``python -m bench.train``, interrupts it with SIGINT after the first epoch, records what
the interruption left behind, and reruns it to completion. ``test_interrupt.py`` asserts on that
record; every other test reuses the trained cache, so the whole suite trains the cnn once (and
once more in ``test_parallel.py``, which must see a cold training race between two workers).
``terminated_training`` stops one more run, in a cache of its own, with SIGTERM after its first
epoch (and does not resume it). Both children start with SIGINT ignored, as under a background
runner, so the interrupt tests do not depend on how the test process itself was started.

Nothing here touches the repository's ``reports/``, ``baselines/`` or the user's cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.case_record import CaseRecord
from bench.tiers import SMOKE

ROOT = Path(__file__).resolve().parents[2]
MODEL = "cnn"
EPOCHS = SMOKE.train_recipe(MODEL).epochs
# Longest a bench subprocess may take on a busy 2-core machine (a cold cnn run takes ~70 s).
SUBPROCESS_TIMEOUT = 600
# The float model's own entry (``cnn-smoke-<key>``), not its QAT sibling nor a lock file.
FLOAT_ENTRY = re.compile(rf"^{MODEL}-smoke-[0-9a-f]+$")
# What the cache's staging (and atomic writes) name their temporaries: ".<final>.<random>.tmp".
STAGING = ".*.tmp"


def bench_env(cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a bench subprocess: a private cache, no pytest(-xdist) variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["QUANTBENCH_CACHE"] = str(cache)
    env.update(extra)
    return env


def run_bench(*args: str, cache: Path, reports: Path, env: dict[str, str] | None = None,
              timeout: int = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m pytest bench/cases/test_cases.py ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench/cases/test_cases.py", "-p", "no:cacheprovider",
         "--reports-dir", str(reports), *args],
        cwd=ROOT, env=env or bench_env(cache), capture_output=True, text=True, timeout=timeout,
    )


def staging_leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(STAGING))


def float_entries(root: Path) -> list[Path]:
    models = root / "models"
    return sorted(p for p in models.iterdir() if FLOAT_ENTRY.match(p.name)) if models.is_dir() else []


@dataclasses.dataclass
class Interruption:
    """What one ``python -m bench.train`` stopped by a signal after its first epoch left behind."""

    root: Path
    returncode: int
    log: str
    # Right after the process exited:
    model_entries: list[str]
    staging_after_interrupt: list[str]
    checkpoint_state: dict | None


@dataclasses.dataclass
class InterruptedTraining:
    """What an interrupted, then resumed, ``python -m bench.train`` did to its cache."""

    root: Path
    interrupted_returncode: int
    interrupted_log: str
    # Right after the interrupted process exited:
    model_entries: list[str]
    staging_after_interrupt: list[str]
    checkpoint_state: dict | None
    resumed_returncode: int
    resumed_log: str


def _train_command() -> list[str]:
    return [sys.executable, "-m", "bench.train", "--tier", "smoke", "--models", MODEL]


def ignore_sigint() -> None:
    """``preexec_fn`` of the interrupted children: start them as a background runner would.

    ``nohup ... &`` and some CI runners start processes with SIGINT ignored, and CPython then
    installs no KeyboardInterrupt handler; ignoring it on purpose proves that bench.train restores
    the handling itself, whatever the test process inherited.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_after_first_epoch(env: dict[str, str],
                                 sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    """Starts bench.train, sends ``sig`` once epoch 1 is logged; returns (exit code, output)."""
    proc = subprocess.Popen(_train_command(), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1,
                            preexec_fn=ignore_sigint)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    first_epoch = f"[train] {MODEL}-smoke: epoch 1/{EPOCHS} "
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while True:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            if line is None:
                break  # ended before its first epoch: the caller's assertions say so
            seen.append(line)
            if line.startswith(first_epoch):
                proc.send_signal(sig)
                break
        returncode = proc.wait(timeout=120)
    except (queue.Empty, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=30)
    while not lines.empty():
        line = lines.get()
        if line is not None:
            seen.append(line)
    return returncode, "".join(seen)


def _interrupt(root: Path, sig: signal.Signals) -> Interruption:
    """Runs bench.train on the cache ``root``, stops it with ``sig`` after epoch 1, records that."""
    returncode, log = _interrupt_after_first_epoch(bench_env(root), sig)
    state_files = sorted((root / "checkpoints").glob(f"{MODEL}-smoke-*/state.json"))
    return Interruption(
        root=root, returncode=returncode, log=log,
        model_entries=sorted(p.name for p in (root / "models").iterdir() if p.is_dir())
        if (root / "models").is_dir() else [],
        staging_after_interrupt=staging_leftovers(root),
        checkpoint_state=json.loads(state_files[0].read_text()) if state_files else None,
    )


@pytest.fixture(scope="session")
def trained_cache(tmp_path_factory) -> InterruptedTraining:
    """A private cache holding the trained cnn (float and QAT), trained with one interruption."""
    root = tmp_path_factory.mktemp("cache")
    interrupted = _interrupt(root, signal.SIGINT)
    resumed = subprocess.run(_train_command(), cwd=ROOT, env=bench_env(root), capture_output=True,
                             text=True, timeout=SUBPROCESS_TIMEOUT)
    return InterruptedTraining(
        root=root, interrupted_returncode=interrupted.returncode,
        interrupted_log=interrupted.log, model_entries=interrupted.model_entries,
        staging_after_interrupt=interrupted.staging_after_interrupt,
        checkpoint_state=interrupted.checkpoint_state,
        resumed_returncode=resumed.returncode, resumed_log=resumed.stdout + resumed.stderr,
    )


@pytest.fixture(scope="session")
def terminated_training(tmp_path_factory) -> Interruption:
    """A cnn training in a cache of its own, stopped with SIGTERM after epoch 1 (not resumed).

    Resuming is the same code whatever stopped the run, and ``trained_cache`` covers it.
    """
    return _interrupt(tmp_path_factory.mktemp("terminated-cache"), signal.SIGTERM)


@dataclasses.dataclass
class Reference:
    """An unmodified in-process run on the trained cache, and its real litert records."""

    run: object
    records: dict[str, CaseRecord]


REFERENCE_MODES = ("float32", "ptq_float16", "ptq_int8")


def make_run(cache_root: Path, tmp: Path, modes=REFERENCE_MODES, baselines_dir: Path | None = None):
    """A real :class:`bench.run.BenchRun`: smoke tier, cnn, litert, private folders."""
    from bench.cache import Cache
    from bench.run import BenchRun, Options

    options = Options(
        tier=SMOKE, models=[MODEL], modes=list(modes), backends=["litert"], root=ROOT,
        reports_dir=tmp / "reports", baselines_dir=baselines_dir or tmp / "no-baselines",
        command="tests/reliability",
    )
    return BenchRun(options, cache=Cache(cache_root))


@pytest.fixture(scope="session")
def reference(trained_cache, tmp_path_factory) -> Reference:
    """The real float32, ptq_float16 and ptq_int8 cases on litert (artifacts in the shared cache)."""
    assert trained_cache.resumed_returncode == 0, trained_cache.resumed_log[-3000:]
    run = make_run(trained_cache.root, tmp_path_factory.mktemp("reference"))
    records = {mode: run.run_case(MODEL, mode, "litert") for mode in REFERENCE_MODES}
    return Reference(run, records)


@pytest.fixture
def private_cache(tmp_path, trained_cache, reference) -> Path:
    """A cache of one's own for planted (mutated) modes, sharing the trained models.

    Planted modes all live in one test module, so their artifacts would share a cache key; each
    test gets its own artifacts folder, with the real float32 artifacts copied in.
    """
    root = tmp_path / "cache"
    (root / "artifacts").mkdir(parents=True)
    (root / "models").symlink_to(trained_cache.root / "models", target_is_directory=True)
    for entry in (trained_cache.root / "artifacts").glob(f"{MODEL}-smoke-float32-*"):
        if entry.is_dir():
            shutil.copytree(entry, root / "artifacts" / entry.name)
    return root
