"""End of a run: results.json, REPORT.md, the baselines update, and the terminal summary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tabulate import tabulate

from bench import atomic
from bench import baseline as baselines
from bench.errors import ReportError
from bench.session import BenchSession


@dataclasses.dataclass
class Published:
    results_path: Path
    report_path: Path | None
    baseline_diff: str | None


def merged_results(previous: dict | None, current: dict) -> dict:
    """Keeps cases of an earlier run of the same tier that this run did not repeat.

    A run restricted with --models/--modes/--backends then refreshes its own rows of the report
    without deleting the others. Rows from a different data set or schema are dropped.
    """
    if not previous or previous.get("schema") != current["schema"] or \
            previous.get("dataset_sha256") != current["dataset_sha256"]:
        return current
    ran = {case["id"] for case in current["cases"]}
    kept = [case for case in previous.get("cases", []) if case["id"] not in ran]
    merged = dict(current)
    merged["cases"] = kept + current["cases"]
    agreed = {(a["model"], a["mode"]) for a in current.get("agreement", [])}
    merged["agreement"] = [a for a in previous.get("agreement", []) if (a["model"], a["mode"]) not in agreed] \
        + current.get("agreement", [])
    merged["models"] = {**previous.get("models", {}), **current.get("models", {})}
    merged["harness"] = {**previous.get("harness", {}), **current.get("harness", {})}
    merged["layer_errors"] = {**previous.get("layer_errors", {}), **current.get("layer_errors", {})}
    return merged


def _read_previous(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def publish(session: BenchSession) -> Published:
    """Writes the run's results (and baselines when updating); returns where they went.

    Raises:
        ReportError: The reports folder cannot be written.
    """
    from bench import report

    out = Path(session.options.reports_dir) / session.tier.name
    results_path = out / "results.json"
    results = merged_results(_read_previous(results_path), session.results())
    try:
        atomic.write_json(results_path, results)
    except OSError as exc:
        raise ReportError(
            f"cannot write {results_path} ({exc.strerror}); make the folder writable or pass "
            "--reports-dir with one that is"
        ) from None
    report_path = report.write_report(results_path)
    diff = None
    if session.options.update_baselines:
        path = baselines.baseline_path(session.options.root, session.tier.name)
        diff = baselines.write(path, baselines.merge(baselines.load_for_update(path), baselines.from_results(results)))
    return Published(results_path, report_path, diff)


def headline_rows(results: dict) -> list[list[str]]:
    rows = []
    cases = {c["id"]: c for c in results["cases"]}
    for model, info in results.get("models", {}).items():
        float_case = cases.get(f"{model}-float32-litert") or cases.get(f"{model}-float32-keras")
        row = [model, f"{info['params']:,}"]
        row.append(f"{100 * float_case['accuracy']:.2f} %" if float_case else "n/a")
        for mode in ("ptq_int8", "qat_int8"):
            case = cases.get(f"{model}-{mode}-litert")
            row.append(f"{100 * case['accuracy']:.2f} % ({case['size_ratio']:.2f}x)" if case else "n/a")
        rows.append(row)
    return rows


def terminal_summary(session: BenchSession, published: Published | None) -> list[str]:
    """Lines for the end of the pytest output: headline table, regressions, where files went."""
    results = session.results()
    lines = ["", "quantbench headline (litert; int8 columns: accuracy and size ratio)"]
    lines += tabulate(
        headline_rows(results),
        headers=["model", "params", "float32", "ptq_int8", "qat_int8"],
        tablefmt="github",
    ).splitlines()
    failures = [m for r in results["cases"] for m in r.get("failures", [])] + session.extra_failures
    not_comparable = [r for r in results["cases"] if r.get("status") == "not_comparable"]
    if failures:
        lines += ["", f"quantbench regressions ({len(failures)}):"] + [f"  - {m}" for m in failures]
    if not_comparable:
        lines += ["", f"quantbench: {len(not_comparable)} cases not comparable with their baseline "
                  "(warning; --strict-env makes this a failure):"]
        lines += [f"  - {r['id']}: {'; '.join(r.get('notes', []))}" for r in not_comparable]
    if published:
        lines += ["", f"quantbench results: {published.results_path}"]
        if published.report_path:
            lines.append(f"quantbench report:  {published.report_path}")
        if published.baseline_diff is not None:
            lines += ["", "quantbench baselines updated:"]
            lines += (published.baseline_diff or "(no change)").splitlines()
    return lines
