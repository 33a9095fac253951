"""The one-line plan printed before the first case: what will be built, what is cached, how long.

The estimate comes from the timings the previous run of the tier recorded in its results.json
(training, QAT, conversion and evaluation seconds per item); items it never timed are counted
and left out of the estimate, never guessed.
"""

from __future__ import annotations

from pathlib import Path

from bench import progress
from bench.build import Builder
from bench.errors import BenchError
from bench.results import case_id, load_results
from bench.run import declared_cases


def plan_line(options) -> str:
    """The plan of a run with ``options`` (a :class:`bench.run.Options`)."""
    cases = declared_cases(options)
    build = Builder(options.tier, options.calibration_method)
    items = [progress.PlanItem(kind, name, cached) for kind, name, cached in build.plan(cases)]
    items += [progress.PlanItem("evaluate", case_id(*case)) for case in cases]
    source = Path(options.reports_dir) / options.tier.name / "results.json"
    return progress.plan_line(items, _history(source), tier=options.tier.name, source=str(source))


def _history(path: Path) -> dict[str, float]:
    """Recorded seconds per plan item from an earlier run; none when there is no usable one."""
    if not path.is_file():
        return {}
    try:
        return progress.history_from_results(load_results(path))
    except BenchError:
        return {}
