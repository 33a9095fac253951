"""Root conftest: the bench's command-line options, the case matrix and the run's session.

Options (all validated at start-up; an unknown name is a usage error listing the valid ones):

    --tier smoke|full          which tier (default smoke)
    --models a,b               subset of models (default all)
    --modes a,b                subset of quantization modes (default all)
    --backends a,b             subset of backends (default all)
    --calibration-method M     ONNX Runtime calibration: MinMax (default), Entropy, Percentile
    --update-baselines         rewrite baselines/<tier>.json from this run (shows the diff)
    --strict-env               a case not comparable with its baseline fails instead of warning
    --reports-dir DIR          where reports/<tier>/ goes (default the repository's reports/)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantbench")
    group.addoption("--tier", default="smoke", help="tier of the bench: smoke (CI) or full")
    group.addoption("--models", default=None, help="comma-separated models (default: all)")
    group.addoption("--modes", default=None, help="comma-separated modes (default: all)")
    group.addoption("--backends", default=None, help="comma-separated backends (default: all)")
    group.addoption("--calibration-method", default="MinMax",
                    help="ONNX Runtime calibration: MinMax, Entropy or Percentile")
    group.addoption("--update-baselines", action="store_true",
                    help="write baselines/<tier>.json from this run and show the diff")
    group.addoption("--strict-env", action="store_true",
                    help="fail cases not comparable with their baseline instead of warning")
    group.addoption("--reports-dir", default=None, help="folder for <tier>/results.json and REPORT.md")


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _options(config: pytest.Config):
    from bench.backends import BACKENDS
    from bench.errors import BenchError, unknown_name
    from bench.models import MODELS
    from bench.modes import MODES, _onnx
    from bench.session import Options
    from bench.tiers import get_tier

    try:
        backends = _split(config.getoption("--backends"))
        for name in backends or []:
            if name not in BACKENDS:
                raise unknown_name("backend", name, list(BACKENDS))
        method = config.getoption("--calibration-method")
        if method not in _onnx.CALIBRATION_METHODS:
            raise unknown_name("calibration method", method, list(_onnx.CALIBRATION_METHODS))
        reports = config.getoption("--reports-dir")
        return Options(
            tier=get_tier(config.getoption("--tier")),
            models=MODELS.select(_split(config.getoption("--models"))),
            modes=MODES.select(_split(config.getoption("--modes"))),
            backends=backends or list(BACKENDS),
            root=ROOT,
            reports_dir=Path(reports) if reports else ROOT / "reports",
            calibration_method=method,
            update_baselines=config.getoption("--update-baselines"),
            strict_env=config.getoption("--strict-env"),
            command=" ".join(["pytest", *sys.argv[1:]]),
        )
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.quantbench_options = _options(config)
    config.quantbench_session = None


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
    if "model_mode" in metafunc.fixturenames:
        pairs = [(m, mode) for m in options.models for mode in options.modes]
        metafunc.parametrize("model_mode", pairs, ids=["-".join(p) for p in pairs])


@pytest.fixture(scope="session")
def bench_session(request: pytest.FixtureRequest):
    """The run's :class:`bench.session.BenchSession`, created on first use."""
    from bench.errors import BenchError
    from bench.session import BenchSession

    config = request.config
    if config.quantbench_session is None:
        try:
            config.quantbench_session = BenchSession(config.quantbench_options)
        except BenchError as exc:
            pytest.exit(f"quantbench: {exc}", returncode=4)
    return config.quantbench_session


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Writes results.json and REPORT.md, and the baselines when asked to."""
    from bench.errors import BenchError
    from bench.publish import publish

    bench_session = session.config.quantbench_session
    if bench_session is None or not bench_session.records:
        return
    try:
        session.config.quantbench_published = publish(bench_session)
    except BenchError as exc:
        session.config.quantbench_published = None
        print(f"\nquantbench: {exc}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from bench.publish import terminal_summary

    bench_session = config.quantbench_session
    if bench_session is None or not bench_session.records:
        return
    for line in terminal_summary(bench_session, getattr(config, "quantbench_published", None)):
        terminalreporter.write_line(line)
