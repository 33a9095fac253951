"""The pytest side of ``--shard K/N`` (``bench.shard`` splits; this applies the split to a session).

``bench.plugin`` calls these from its hooks: the option checked at start-up, the other shards'
items dropped after deselection, and how the shard's session ended written into its results.json
for the merge (``bench.merge``). Heavy modules are imported inside the functions, as in the
plugin, so that ``pytest --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import progress


class FailedTests:
    """Collects the ids of the tests that failed or errored (a shard records them; under
    pytest-xdist the controller gets every worker's reports)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and report.nodeid not in self.ids:
            self.ids.append(report.nodeid)


def case_params(items: list[pytest.Item]) -> list[tuple[str, str, str]]:
    """The (model, mode, backend) of each ``case`` item."""
    return [tuple(item.callspec.params["case"]) for item in items
            if "case" in getattr(getattr(item, "callspec", None), "params", {})]


def shard_spec(config: pytest.Config):
    """``--shard K/N`` checked at start-up (None without it).

    Raises:
        pytest.UsageError: A bad K/N or --shard-by, --shard with --update-baselines or
            --publish-reports, or a reports folder that already holds another run's results.
    """
    from bench import shard
    from bench.errors import BenchError

    value, by = config.getoption("--shard"), config.getoption("--shard-by")
    if by not in shard.SHARD_BY:
        raise pytest.UsageError(f"--shard-by {by!r}: use one of {', '.join(shard.SHARD_BY)}")
    if value is None:
        return None
    try:
        spec = shard.parse_shard(value)
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    for option in ("--update-baselines", "--publish-reports"):
        if config.getoption(option):
            raise pytest.UsageError(f"--shard runs part of the selection; {option} takes a whole run: "
                                    f"merge the shards (`python -m bench.merge`), or run {option} without --shard")
    options = config.quantbench_options
    if not hasattr(config, "workerinput"):  # workers start after the check, into the same folder
        try:
            shard.refuse_foreign_results(Path(options.reports_dir) / options.tier.name / "results.json", spec)
        except BenchError as exc:
            raise pytest.UsageError(str(exc)) from None
    return spec


def keep_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drops the items of the other shards (reported as deselected) and keeps this shard's split.

    Raises:
        pytest.UsageError: The selection cannot be split as asked (``bench.shard.split``).
    """
    spec = config.quantbench_shard
    from bench import formats, shard
    from bench.errors import BenchError

    options = config.quantbench_options
    by = config.getoption("--shard-by")
    try:
        survey = shard.survey(options)
        if by == "auto":  # trained models everywhere: nothing to train, so split finer
            by = "backend" if survey.trained else "model"
        history = shard.history(options.root, options.tier.name)
        split = shard.split(
            [shard.Item(item.nodeid, getattr(item, "originalname", item.name),
                        dict(getattr(getattr(item, "callspec", None), "params", {}))) for item in items],
            by=by, total=spec.total,
            selection={"models": options.models, "modes": options.modes, "backends": options.backends},
            onnx_backends=[b for b in options.backends if formats.runs_onnx(b)],
            costs_of=lambda units: shard.unit_costs(units, by, survey.work, history),
            tier=options.tier.name)
    except BenchError as exc:
        raise pytest.UsageError(f"--shard {spec}: {exc}") from None
    kept = [item for item in items if split.keeps(item.nodeid, spec.index)]
    dropped = [item for item in items if not split.keeps(item.nodeid, spec.index)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    config.quantbench_split = split
    config.quantbench_shard_cases = case_params(kept)
    if not hasattr(config, "workerinput"):
        progress.emit(split.describe(spec.index))


def record_outcome(session: pytest.Session, results_path: Path, failures: list[str]) -> None:
    """Writes how the shard's session ended into its results.json (see bench.shard.record_outcome)."""
    from bench import shard

    config = session.config
    config.quantbench_shard_field = shard.record_outcome(results_path, {
        "exitstatus": int(session.exitstatus),
        "failed_tests": sorted(config.quantbench_failed.ids),
        "failures": list(dict.fromkeys(failures)),
    })
    config.quantbench_shard_path = results_path
