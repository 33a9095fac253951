"""The one-line plan printed before the first case: what will be built, what is cached, how long.

The estimate comes from the timings the previous run of the tier recorded in its results.json
(training, QAT, conversion and evaluation seconds per item); items it never timed are counted
and left out of the estimate, never guessed.
"""

from __future__ import annotations

from pathlib import Path

from bench import environment, progress
from bench.build import Builder
from bench.errors import BenchError
from bench.results import case_id, load_results
from bench.selection import Selection


def plan_line(options) -> str:
    """The plan of a run with ``options`` (a :class:`bench.run.Options`)."""
    cases = Selection.of(options).declared()
    build = Builder(options.tier, options.calibration_method)
    items = [progress.PlanItem(kind, name, cached) for kind, name, cached in build.plan(cases)]
    items += [progress.PlanItem("evaluate", case_id(*case)) for case in cases]
    source = Path(options.reports_dir) / options.tier.name / "results.json"
    if not source.is_file():  # a first local run: the committed report's timings, said to be so
        source = Path(options.root) / "reports" / options.tier.name / "results.json"
    history, timed_on = _history(source)
    return progress.plan_line(items, history, tier=options.tier.name, source=str(source) + timed_on)


def _history(path: Path) -> tuple[dict[str, float], str]:
    """Recorded seconds per plan item from an earlier run (none when there is no usable one), and
    a note when they were timed on another CPU: an AVX2 machine trained the smoke models 3x
    slower than the AVX-512 one whose timings it was shown."""
    if not path.is_file():
        return {}, ""
    try:
        earlier = load_results(path)
    except BenchError:
        return {}, ""
    cpu, now = (earlier.get("environment") or {}).get("cpu") or {}, environment.cpu()
    note = ""
    if (cpu.get("model"), cpu.get("cores")) != (now["model"], now["cores"]):
        note = (f"; timed on {cpu.get('testbed', 'another testbed')} ({cpu.get('model', '?')}, "
                f"{cpu.get('cores', '?')} cores), not this {now['testbed']} CPU: expect other times")
    return progress.history_from_results(earlier), note
