"""The quantbench pytest plugin: options, the case matrix, the run's fixture and hooks.

Registered through the ``pytest11`` entry point (pyproject.toml), so any pytest run in an
environment with the package installed gets it, whichever folder it starts in. The cases it
parametrizes ship in the package, in :mod:`bench.cases` (``pytest --pyargs bench.cases``), and the
markers they carry are registered here, so a project's ``--strict-markers`` accepts them.

Reports, baselines and the lock belong to the project that runs pytest, not to quantbench: they
are found below its root (pytest's rootdir, or the ``quantbench_root`` ini setting; see
:mod:`bench.project`). Every folder below is relative to that root.

Options (all validated at start-up; an unknown name is a usage error listing the valid ones):

    --tier smoke|full          which tier (default smoke)
    --models a,b               subset of models (default all)
    --modes a,b                subset of quantization modes (default all)
    --backends a,b             subset of backends (default all)
    --calibration-method M     ONNX Runtime calibration: MinMax (default), Entropy, Percentile
    --update-baselines         rewrite this testbed's baselines/<testbed>/<tier>.json from this run
                               (shows the diff); refuses a regressed or failed case unless accepted
    --accept CASE=REASON       with --update-baselines: take this regressed or failed case, and
                               record the reason in the file's history (repeatable)
    --strict-env               a case whose environment differs from its baseline's fails
    --reports-dir DIR          where <tier>/results.json and REPORT.md go (default reports/local/,
                               which git ignores, so a local run leaves the checkout clean)
    --publish-reports          write the committed reports/<tier>/ instead (an explicit step, as
                               updating the baselines is: `nox -s publish`, `nox -s update_baselines`)
    --baselines-dir DIR        where <tier>.json baselines are read and written, as this testbed's own
                               (default baselines/<testbed>/, else the nearest testbed's, not gated)
    --tf-log                   show TensorFlow's C++ log lines (hidden by default)
    --shard K/N                run only the K-th of N shards of the selection, into --reports-dir
                               (a folder per shard); `python -m bench.merge` combines them
    --shard-by auto|model|backend
                               a shard's unit: a model (it trains once for all its cases), or a
                               (model, backend) pair where every model is trained in the cache;
                               auto (default) takes the finer where it can (bench.shard)

Under pytest-xdist (``-n N``) every worker runs its share of the cases in its own session and
publishes them into the one results.json (and baselines file) under a lock; the controller, which
runs no case, prints the summary from that merged file. A shard (``--shard``) may run under
pytest-xdist too: every worker drops the other shards' items alike, and the process that ends the
session (the controller, or the only process) records the shard's outcome in its results.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from bench import progress, project, shard_plugin

# The markers the cases in bench/cases carry, registered by the plugin so that any project's
# --strict-markers accepts them without listing them in its own ini file.
MARKERS = {
    "bench": "a case of the benchmark (trains and converts models)",
    "latency": "a timing case (skipped by -m 'not latency')",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(project.ROOT_INI, default="",
                  help="the project folder whose reports/, baselines/ and requirements.lock the bench "
                  "uses, relative to the ini file (default: pytest's rootdir)")
    group = parser.getgroup("quantbench")
    group.addoption("--tier", default="smoke", help="tier of the bench: smoke (CI) or full")
    group.addoption("--models", default=None, help="comma-separated models (default: all)")
    group.addoption("--modes", default=None, help="comma-separated modes (default: all)")
    group.addoption("--backends", default=None, help="comma-separated backends (default: all)")
    group.addoption("--calibration-method", default="MinMax",
                    help="ONNX Runtime calibration: MinMax, Entropy or Percentile")
    group.addoption("--update-baselines", action="store_true",
                    help="write this testbed's baselines/<testbed>/<tier>.json from this run and show "
                    "the diff; a regressed or failed case is refused unless accepted with --accept")
    group.addoption("--accept", action="append", default=[], metavar="CASE=REASON",
                    help="with --update-baselines: take this regressed or failed case into the "
                    "baselines and record REASON in their history (repeatable)")
    group.addoption("--strict-env", action="store_true",
                    help="fail a case whose environment differs from its baseline's")
    group.addoption("--reports-dir", default=None,
                    help="folder for <tier>/results.json and REPORT.md (default: reports/local/, "
                    "ignored by git)")
    group.addoption("--publish-reports", action="store_true",
                    help="write the committed reports/<tier>/ (default: reports/local/<tier>/)")
    group.addoption("--baselines-dir", default=None,
                    help="folder of this testbed's <tier>.json baselines (default: the repository's "
                    "baselines/<testbed>/, or the nearest testbed's, shown but not gated)")
    group.addoption("--tf-log", action="store_true",
                    help="show TensorFlow's C++ log lines (start-up, CUDA probing, graph warnings)")
    group.addoption("--shard", default=None, metavar="K/N",
                    help="run the K-th of N shards of the selection (1 <= K <= N), into a --reports-dir "
                    "of its own; merge them with `python -m bench.merge`")
    group.addoption("--shard-by", default="auto", metavar="auto|model|backend",
                    help="a shard's unit: model, or (model, backend) where every model is trained in "
                    "the cache; auto (default): backend where the cache allows, else model")


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written, or None when it can (checked at start-up,
    so a bad --reports-dir fails before the run, not after it)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _options(config: pytest.Config):
    from bench.backends import BACKENDS
    from bench.errors import BenchError, unknown_name
    from bench.models import MODELS
    from bench.modes import MODES, _onnx
    from bench.results import BASELINES_DIR
    from bench.run import Options
    from bench.tiers import get_tier

    root = project_root(config)
    try:
        if not root.is_dir():
            raise UsageError(f"{project.ROOT_INI} = {config.getini(project.ROOT_INI)}: {root} is not a folder; "
                             "name the project folder, relative to the ini file")
        tier = get_tier(config.getoption("--tier"))
        models = MODELS.select(_split(config.getoption("--models")))
        modes = MODES.select(_split(config.getoption("--modes")))
        backends = BACKENDS.select(_split(config.getoption("--backends")))
        missing = tier.missing_facts(models, modes)
        if missing:
            raise UsageError("; ".join(missing))
        method = config.getoption("--calibration-method")
        if method not in _onnx.CALIBRATION_METHODS:
            raise unknown_name("calibration method", method, list(_onnx.CALIBRATION_METHODS))
        reports = _reports_dir(config, root)
        baselines_dir = config.getoption("--baselines-dir")
        accepts = _accepts(config, tier.name, models, modes, backends)
        for option, folder, needed in (("--reports-dir", reports, True),
                                       ("--baselines-dir", baselines_dir or root / BASELINES_DIR,
                                        config.getoption("--update-baselines"))):
            problem = needed and _unwritable(Path(folder))
            if problem:
                raise UsageError(f"{option} {folder}: {problem}; pass {option} with a writable folder")
        return Options(
            tier=tier,
            models=models,
            modes=modes,
            backends=backends,
            root=root,
            reports_dir=reports,
            calibration_method=method,
            update_baselines=config.getoption("--update-baselines"),
            strict_env=config.getoption("--strict-env"),
            command=" ".join(["pytest", *sys.argv[1:]]),
            baselines_dir=Path(baselines_dir) if baselines_dir else None,
            accepts=accepts,
            # pytest-xdist gives its workers one id per run: their rows are one run's.
            **({"run_id": config.workerinput["testrunuid"]}
               if "testrunuid" in getattr(config, "workerinput", {}) else {}),
        )
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def project_root(config: pytest.Config) -> Path:
    """The folder of the project that runs pytest (:func:`bench.project.root`)."""
    return project.root(config.rootpath, config.inipath, config.getini(project.ROOT_INI))


def _reports_dir(config: pytest.Config, root: Path) -> Path:
    """Where the run writes its reports: --reports-dir, the project's committed reports/ with
    --publish-reports, else its reports/local/ (ignored by git).

    Raises:
        UsageError: Both --reports-dir and --publish-reports were given.
    """
    reports = config.getoption("--reports-dir")
    if config.getoption("--publish-reports"):
        if reports:
            raise UsageError("--publish-reports writes the committed reports/; it cannot be combined "
                             "with --reports-dir: pass one of them")
        return project.published_reports(root)
    return Path(reports) if reports else project.local_reports(root)


def _accepts(config: pytest.Config, tier: str, models: list[str], modes: list[str],
             backends: list[str]) -> dict[str, str]:
    """--accept CASE=REASON as ``{case: reason}``, checked before the run (a typo would otherwise
    cost a whole run and accept nothing).

    Raises:
        UsageError: --accept without --update-baselines, a value not CASE=REASON, a case named
            twice, or a case outside the selection.
    """
    from bench.baseline import parse_accepts
    from bench.results import update_command

    values = config.getoption("--accept") or []
    if not values:
        return {}
    if not config.getoption("--update-baselines"):
        raise UsageError(f"--accept only applies to an update of the baselines: add --update-baselines "
                         f"(or run `{update_command(tier, root=project_root(config))} --accept CASE=REASON`)")
    try:
        accepts = parse_accepts(values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    selected = {f"{m}-{mode}-{b}" for m in models for mode in modes for b in backends}
    outside = [cid for cid in accepts if cid not in selected]
    if outside:
        raise UsageError(f"--accept names {', '.join(outside)}, not a case of this selection "
                         "(--models/--modes/--backends); check the case id, or select the case")
    return accepts


class UsageError(Exception):
    """A bad option value found while reading the options (becomes pytest's usage error)."""


def _is_xdist_controller(config: pytest.Config) -> bool:
    """True in the pytest-xdist process that hands cases to workers and runs none itself."""
    return (
        config.pluginmanager.hasplugin("xdist")
        and not hasattr(config, "workerinput")
        and config.getoption("dist", default="no") != "no"
    )


class _WorkerOutputs:
    """Collects, in the xdist controller, what each worker published (see publish.worker_output)."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def pytest_testnodedown(self, node, error) -> None:
        output = getattr(node, "workeroutput", {}).get("quantbench")
        if output:
            self.outputs.append(json.loads(output))


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")
    # Before anything imports TensorFlow: its C++ log level is read once, at import.
    progress.native_logs(config.getoption("--tf-log"))
    config.quantbench_options = _options(config)
    config.quantbench_run = None
    config.quantbench_workers = None
    config.quantbench_shard = shard_plugin.shard_spec(config)
    config.quantbench_split = None
    config.quantbench_shard_field = None
    config.quantbench_failed = None
    if config.quantbench_shard is not None:
        config.quantbench_failed = shard_plugin.FailedTests()
        config.pluginmanager.register(config.quantbench_failed, "quantbench-failed-tests")
    if _is_xdist_controller(config):
        config.quantbench_workers = _WorkerOutputs()
        config.pluginmanager.register(config.quantbench_workers, "quantbench-xdist-outputs")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrizes the bench's cases from the selected models, modes and backends."""
    options = metafunc.config.quantbench_options
    if "case" in metafunc.fixturenames:
        cases = [
            (model, mode, backend)
            for model in options.models
            for mode in options.modes
            for backend in options.backends
        ]
        metafunc.parametrize("case", cases, ids=["-".join(c) for c in cases])
    if "model_backend" in metafunc.fixturenames:
        pairs = [(m, b) for m in options.models for b in options.backends]
        metafunc.parametrize("model_backend", pairs, ids=["-".join(p) for p in pairs])
    if "bench_model" in metafunc.fixturenames:
        metafunc.parametrize("bench_model", options.models)
    if "model_mode" in metafunc.fixturenames:
        pairs = [(m, mode) for m in options.models for mode in options.modes]
        metafunc.parametrize("model_mode", pairs, ids=["-".join(p) for p in pairs])


def pytest_sessionstart(session: pytest.Session) -> None:
    # Progress lines (training epochs, conversions, evaluations) go through the terminal
    # reporter, so they show live although pytest captures the tests' output.
    progress.attach(session.config.pluginmanager.get_plugin("terminalreporter"))


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.detach()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keeps the cases the run will judge, and with --shard drops the other shards' items.

    Runs after the other plugins' hooks (``-k``, ``-m``), so the cases kept are those of the
    ``case`` items left after deselection: the count the paired test's correction divides by.
    A shard keeps the whole selection's count (taken before it drops the other shards' items),
    so its verdicts are those of the whole run. Under pytest-xdist every worker collects and
    deselects all items alike, so each counts the same, whatever its share.
    """
    config.quantbench_collected_cases = shard_plugin.case_params(items)
    if config.quantbench_shard is not None:
        shard_plugin.keep_shard(config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the first case: one line saying what will be trained and converted, what is cached,
    and how long it should take by earlier runs' recorded timings. (A shard states its units and
    its share of the estimate instead, in pytest_collection_modifyitems: the plan covers the whole
    selection.)"""
    config = session.config
    if config.quantbench_workers is not None or hasattr(config, "workerinput"):
        return  # under xdist each worker builds only its share; no single plan to state
    if config.quantbench_split is not None:
        return
    if not any("bench_run" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    from bench.errors import BenchError
    from bench.plan import plan_line

    try:
        progress.emit(plan_line(config.quantbench_options))
    except BenchError as exc:  # the first case reports it properly; the plan is only a forecast
        progress.emit(f"quantbench plan: not available ({exc})")


@pytest.fixture(scope="session")
def bench_run(request: pytest.FixtureRequest):
    """The run's :class:`bench.run.BenchRun` (builder and record), created on first use."""
    from bench.errors import BenchError
    from bench.results import case_id
    from bench.run import BenchRun

    config = request.config
    if config.quantbench_run is None:
        problem = None
        try:
            run = BenchRun(config.quantbench_options)
            # The data set first: without it no case can run, so say so once and stop, rather
            # than fail every case with the same error.
            run.build.dataset  # noqa: B018
        except BenchError as exc:
            problem = f"quantbench: {exc}"
        if problem and hasattr(config, "workerinput"):
            # pytest.exit in an xdist worker crashes its controller: stop this worker after this
            # case instead (the controller then stops too) and fail the case with the message.
            request.session.shouldstop = problem
            pytest.fail(problem, pytrace=False)
        if problem:
            pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)
        collected = getattr(config, "quantbench_collected_cases", None)
        if collected:  # none collected (only cross-case tests): keep every runnable case
            run.count_judged(collected)
        if config.quantbench_split is not None:
            runnable = set(run.runnable_cases())
            run.record.set_run_info(shard=config.quantbench_split.field(
                config.quantbench_shard.index, cases_total=run.cases_judged,
                cases={case_id(*case) for case in config.quantbench_shard_cases if case in runnable}))
        config.quantbench_run = run
    return config.quantbench_run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A BenchError is a problem the user can act on: report its message, not a traceback.

    A case (``test_case``) that did not run is recorded as not run, with its reason; where that
    drops a case the baselines expect for a reason other than a capability this CPU declares
    missing (:meth:`bench.run.BenchRun.not_run`), its skip becomes a failure saying so.
    """
    from bench.errors import BenchError, first_line

    report = yield
    if report.failed and call.excinfo is not None and isinstance(call.excinfo.value, BenchError):
        report.longrepr = f"{item.nodeid}: {type(call.excinfo.value).__name__}: {call.excinfo.value}"
    case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
    run = item.config.quantbench_run
    if case is None or run is None or report.when not in ("setup", "call") \
            or "-".join(case) in run.record.cases:
        return report
    if report.skipped:
        failure = run.not_run(*case)
        if failure:
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: {failure}"
    elif report.failed and call.excinfo is not None:
        run.not_run(*case, error=f"{type(call.excinfo.value).__name__}: {first_line(call.excinfo.value)}")
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Writes results.json and REPORT.md, and the baselines when asked to."""
    from bench.errors import BenchError
    from bench.publish import publish, worker_output

    config = session.config
    workers = config.quantbench_workers
    if workers is not None:  # xdist controller: the workers published; fail if one could not
        if any(out.get("error") for out in workers.outputs):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        paths = [out["results_path"] for out in workers.outputs if out.get("results_path")]
        if config.quantbench_shard is not None and paths:
            shard_plugin.record_outcome(session, Path(paths[0]),
                                  [m for out in workers.outputs for m in out["extra_failures"]])
        return
    run = config.quantbench_run
    # A shard publishes even without a case: the merge needs every shard's file.
    if run is None or not (run.record.cases or run.record.not_run or config.quantbench_split):
        return
    error = None
    try:
        config.quantbench_published = publish(run, whole_run=not hasattr(config, "workerinput"))
    except BenchError as exc:
        config.quantbench_published = None
        error = str(exc)
        print(f"\nquantbench: {exc}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    if hasattr(config, "workeroutput"):  # xdist worker: hand the controller what it needs
        config.workeroutput["quantbench"] = json.dumps(
            worker_output(run, config.quantbench_published, error)
        )
    elif config.quantbench_published is not None and config.quantbench_split is not None:
        shard_plugin.record_outcome(session, config.quantbench_published.results_path, run.record.failures)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from bench.publish import controller_summary, terminal_summary
    from bench.shard import summary_lines

    shard_lines = summary_lines(config.quantbench_shard_field, getattr(config, "quantbench_shard_path", None))
    if config.quantbench_workers is not None:
        for line in controller_summary(config.quantbench_workers.outputs) + shard_lines:
            terminalreporter.write_line(line)
        return
    run = config.quantbench_run
    if run is None or not (run.record.cases or run.record.not_run):
        return
    for line in terminal_summary(run, getattr(config, "quantbench_published", None)) + shard_lines:
        terminalreporter.write_line(line)
