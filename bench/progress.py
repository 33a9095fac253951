"""Progress lines shown live despite pytest's capturing, a run's plan line, and TensorFlow's
C++ log lines kept off them.

Every progress line of the harness (a training epoch, a conversion, an evaluation, a cache
reuse) goes through :func:`emit`. Outside pytest it goes to stderr. In a pytest run whose plugin
called :func:`attach` it goes through pytest's terminal reporter, with pytest's capturing
suspended for the moment, as pytest's own live logging does: it reaches the terminal at once
instead of the captured output of the test that happens to be running. In a pytest-xdist
worker, which has no terminal, it goes to the stderr the worker shares with the controller.

:func:`plan_line` says, once at the start, what a run will train, convert and evaluate, what is
cached, and how long that took in an earlier run (:func:`history_from_results`).

TensorFlow's C++ log lines (CUDA probing on a machine without a GPU, oneDNN notices, a tf.data
``NodeDef`` error on every epoch) are hidden unless ``QUANTBENCH_TF_LOG=1`` or
:func:`native_logs` asks for them; ``bench/__init__.py`` applies the setting before anything can
import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any


@dataclasses.dataclass
class _Sink:
    reporter: Any  # pytest's TerminalReporter; None: stderr
    capture: Any  # the run's CaptureManager; None with -p no:capture or no reporter to ask


# A stack: an inner pytest run in the same process (pytester) attaches over the outer one.
_sinks: list[_Sink] = []
# Lines from several threads come out whole, one at a time.
_lock = threading.Lock()


def attach(reporter: Any) -> None:
    """Shows progress lines live in a pytest run, until :func:`detach`.

    Call it from the plugin's ``pytest_sessionstart``, where an xdist worker too has its
    reporter: ``attach(session.config.pluginmanager.get_plugin("terminalreporter"))``.

    Args:
        reporter: The run's ``TerminalReporter``, which then prints the lines. In an xdist
            worker, whose reporter writes to nowhere (its stdout is the link to the controller),
            the lines go to stderr instead, which the worker shares with the controller's
            terminal. None (``-p no:terminal``): plain stderr, captured like the tests' output.
    """
    if reporter is None:
        _sinks.append(_Sink(None, None))
        return
    config = reporter.config
    terminal = None if hasattr(config, "workerinput") else reporter
    _sinks.append(_Sink(terminal, config.pluginmanager.get_plugin("capturemanager")))


def detach() -> None:
    """Undoes the last :func:`attach` (call it from ``pytest_unconfigure``); no-op if none."""
    if _sinks:
        _sinks.pop()


def emit(message: str) -> None:
    """Shows one progress line now: through pytest's terminal when attached, else on stderr.

    A test that captures output itself (``capsys``, ``capfd``) gets the line on its stderr
    instead, as before there was a terminal reporter to write to: it asked to see it.
    """
    with _lock:
        sink = _sinks[-1] if _sinks else _Sink(None, None)
        if sink.capture is not None and _fixture_capturing(sink.capture):
            _write(None, message)
        elif sink.capture is None:
            _write(sink.reporter, message)
        else:
            with sink.capture.global_and_fixture_disabled():
                _write(sink.reporter, message)


def _write(reporter: Any, message: str) -> None:
    if reporter is None:
        print(message, file=sys.stderr, flush=True)
    else:
        reporter.write_line(message)  # on a line of its own, after the dots or test name so far
        reporter.flush()


def _fixture_capturing(capture: Any) -> bool:
    # pytest has no public way to ask; global_and_fixture_disabled reads the same two names.
    fixture = getattr(capture, "_capture_fixture", None)
    return fixture is not None and fixture._is_started()


# --------------------------------------------------------------------------------------------
# The plan line


@dataclasses.dataclass(frozen=True)
class _Kind:
    verb: str  # what the run does to such an item
    nouns: tuple[str, str]  # one item, several
    by_name: bool  # listed by name (a few models), or counted (many artifacts)


_KINDS = {
    "train": _Kind("train", ("model", "models"), by_name=True),
    "qat": _Kind("QAT", ("QAT model", "QAT models"), by_name=True),
    "convert": _Kind("convert", ("artifact", "artifacts"), by_name=False),
    "evaluate": _Kind("evaluate", ("case", "cases"), by_name=False),
}


@dataclasses.dataclass(frozen=True)
class PlanItem:
    """One piece of work a run may do.

    Attributes:
        kind: ``train`` (a float model), ``qat`` (its QAT fine-tune), ``convert`` (an artifact)
            or ``evaluate`` (a case's test-set pass).
        name: The model's name for ``train`` and ``qat``, the case id
            (``<model>-<mode>-<backend>``) for ``convert`` and ``evaluate``.
        cached: True when the cache already holds it, so the run only loads it.
    """

    kind: str
    name: str
    cached: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown plan item kind {self.kind!r}; use one of {', '.join(_KINDS)}")

    @property
    def key(self) -> str:
        """The item's key in a history: ``<kind>:<name>``, e.g. ``train:vgg16``."""
        return f"{self.kind}:{self.name}"


def plan_line(
    entries: Iterable[PlanItem],
    history: Mapping[str, float],
    *,
    tier: str | None = None,
    source: str | None = None,
) -> str:
    """One line saying what a run will do, what is cached, and how long it should take.

    Args:
        entries: The run's work, in the order it should be listed.
        history: Seconds an earlier run took, by :attr:`PlanItem.key`
            (see :func:`history_from_results`).
        tier: Named in the line's head when given.
        source: Where ``history`` comes from (a path), named next to the estimate.

    Returns:
        E.g. ``quantbench plan (smoke): train mobilenet, vgg16; QAT cnn; convert 14 artifacts;
        cached: cnn (model), 18 artifacts; estimated ~9 min from earlier runs
        (reports/smoke/results.json)``.
    """
    entries = list(entries)
    todo = [e for e in entries if not e.cached]
    parts = [_todo(kind, items) for kind, items in _by_kind(todo)] or ["nothing to do"]
    cached = [_cached(kind, items) for kind, items in _by_kind(e for e in entries if e.cached)]
    if cached:
        parts.append("cached: " + ", ".join(cached))
    if todo:
        parts.append(_estimate(todo, history, source))
    head = f"quantbench plan ({tier})" if tier else "quantbench plan"
    return f"{head}: " + "; ".join(parts)


def _by_kind(entries: Iterable[PlanItem]) -> list[tuple[_Kind, list[str]]]:
    """The entries' names grouped by kind, kinds in the order of _KINDS, each name once."""
    names: dict[str, dict[str, None]] = {kind: {} for kind in _KINDS}
    for entry in entries:
        names[entry.kind][entry.name] = None
    return [(_KINDS[kind], list(found)) for kind, found in names.items() if found]


def _noun(n: int, nouns: tuple[str, str]) -> str:
    return nouns[0] if n == 1 else nouns[1]


def _count(n: int, nouns: tuple[str, str]) -> str:
    return f"{n} {_noun(n, nouns)}"


def _todo(kind: _Kind, names: list[str]) -> str:
    return f"{kind.verb} " + (", ".join(names) if kind.by_name else _count(len(names), kind.nouns))


def _cached(kind: _Kind, names: list[str]) -> str:
    if kind.by_name:
        return f"{', '.join(names)} ({_noun(len(names), kind.nouns)})"
    return _count(len(names), kind.nouns)


def _estimate(todo: list[PlanItem], history: Mapping[str, float], source: str | None) -> str:
    where = f" ({source})" if source else ""
    if not history:
        return "no estimate: no earlier run recorded"
    timed = [history[e.key] for e in todo if e.key in history]
    if not timed:
        return f"no estimate: earlier runs{where} timed none of this"
    untimed = len(todo) - len(timed)
    rest = f", not counting {_count(untimed, ('item', 'items'))} never timed" if untimed else ""
    return f"estimated {_duration(sum(timed))} from earlier runs{where}{rest}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def history_from_results(results: Mapping[str, Any]) -> dict[str, float]:
    """Seconds each item took in the run that wrote a results document (schema 2).

    A model's ``train_seconds`` is its training time even when that run found it cached (the
    cache entry keeps it). Fields a document lacks (older runs recorded only ``train_seconds``)
    are simply not in the history.

    Args:
        results: A loaded ``results.json`` (``bench.results.load_results``).

    Returns:
        Seconds by :attr:`PlanItem.key`: ``train:<model>`` from ``models[<model>].train_seconds``,
        ``qat:<model>`` from ``models[<model>].qat_seconds``, ``convert:<case id>`` and
        ``evaluate:<case id>`` from each case's ``convert_seconds`` and ``eval_seconds``.
    """
    history: dict[str, float] = {}
    for name, model in (results.get("models") or {}).items():
        _record(history, f"train:{name}", model.get("train_seconds"))
        _record(history, f"qat:{name}", model.get("qat_seconds"))
    for case in results.get("cases") or []:
        _record(history, f"convert:{case.get('id')}", case.get("convert_seconds"))
        _record(history, f"evaluate:{case.get('id')}", case.get("eval_seconds"))
    return history


def _record(history: dict[str, float], key: str, seconds: object) -> None:
    # 0 is what a run records when it does not know (a cache entry from before timings were kept).
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        history[key] = float(seconds)


# --------------------------------------------------------------------------------------------
# TensorFlow's C++ log lines

#: ``1`` shows TensorFlow's C++ log lines; inherited by xdist workers and subprocesses.
TF_LOG_ENV = "QUANTBENCH_TF_LOG"
# Measured on TF 2.21 without a GPU: level 1 hides the INFO lines after start-up
# (cpu_feature_guard), 2 WARNING lines too, 3 also ERROR lines (cuda_platform's cuInit failure,
# node_def_util's NodeDef error on every epoch). Lines written while TensorFlow's libraries load
# (port.cc's oneDNN notice, cudart_stub) ignore the level: bench.tfsetup drops them.
QUIET_LOG_LEVEL = "3"


def set_native_log_level() -> None:
    """Sets ``TF_CPP_MIN_LOG_LEVEL`` from ``QUANTBENCH_TF_LOG``; TensorFlow reads it on import.

    ``QUANTBENCH_TF_LOG=1`` shows every line, whatever level was set before (a quiet parent
    process passes its level on); otherwise an explicit ``TF_CPP_MIN_LOG_LEVEL`` is kept and the
    default is :data:`QUIET_LOG_LEVEL`.
    """
    if os.environ.get(TF_LOG_ENV) == "1":
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # TensorFlow's default: every line
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)


def native_logs(show: bool) -> bool:
    """Shows TensorFlow's C++ log lines, in this process and those it starts, if ``show``.

    For a command-line flag (``--tf-log``): False leaves the choice to ``QUANTBENCH_TF_LOG``.

    Returns:
        False (with a warning) when ``show`` comes too late: TensorFlow, already imported, read
        its level then; only processes started from now on show the lines. Else True.
    """
    if not show:
        return True
    os.environ[TF_LOG_ENV] = "1"
    set_native_log_level()
    if "tensorflow" in sys.modules:
        warnings.warn("TensorFlow is already imported: this process keeps its C++ log level",
                      RuntimeWarning, stacklevel=2)
        return False
    return True
