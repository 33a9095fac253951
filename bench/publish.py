"""End of a run: results.json, REPORT.md, the baselines update, and the terminal summary.

A results.json holds the rows this run measured; a row an earlier run measured on the same testbed
is kept only with ``measured_by`` (that run's id, date, testbed and command), so a report restricted
with --models still shows the other models, marked; rows of another testbed are never merged in.
A baseline case of the selection that did not run is listed in ``not_run`` with its reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from pathlib import Path

from bench import atomic, environment
from bench import baseline as baselines
from bench.cache import key_of
from bench.errors import ReportError
from bench.results import parse_case_id, sort_cases
from bench.run import BenchRun
from bench.stats import VERDICTS, Verdict


@dataclasses.dataclass
class Published:
    """Where a run's files went, and what its baselines update did.

    Attributes:
        results_path: The results.json written.
        report_path: The REPORT.md written, or None.
        baseline_diff: The update's per-case diff ("" when nothing changed), or None without one.
        refused: One line per case the update refused (see :func:`bench.baseline.decide_update`).
        accepted: One line per accepted change recorded in the baselines' history.
        notes: One line per --accept that was not needed or named a case that did not run.
    """

    results_path: Path
    report_path: Path | None
    baseline_diff: str | None
    refused: list[str] = dataclasses.field(default_factory=list)
    accepted: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


# What a case gains only when its latency tests run (`nox -s bench`; `nox -s tests` skips them).
TIMING_FIELDS = ("latency_ms_b1", "throughput_ips", "speedup_vs_float", "speedup_target", "speedup_gate",
                 "speedup_vs_baseline")


def _with_earlier_timings(case: dict, earlier: dict | None, measured_at: str | None) -> dict:
    """``case`` with the timings of its earlier row, when this run did not time it.

    Only for the same case definition (recipe hash); the caller checks that the machine and
    libraries are the same. ``timings_from`` says when they were measured.
    """
    if earlier is None or earlier.get("recipe_hash") != case.get("recipe_hash") \
            or any(field in case for field in TIMING_FIELDS):
        return case
    carried = {field: earlier[field] for field in TIMING_FIELDS if field in earlier}
    if not carried:
        return case
    return {**case, **carried, "timings_from": earlier.get("timings_from") or measured_at}


def testbed_of(env: dict | None) -> str | None:
    """The testbed a recorded environment belongs to, or None when unknown."""
    if not env:
        return None
    try:
        return environment.testbed_name(env)
    except ValueError:  # a machine the testbed table has no row for
        return None


def document_testbed(document: dict) -> str | None:
    """The testbed a results document was measured on: its ``testbed``, else its environment's."""
    return document.get("testbed") or testbed_of(document.get("environment"))


def earlier_run(previous: dict) -> dict:
    """The ``measured_by`` mark of a row kept from ``previous``: which run, when, where, how."""
    return {"run_id": previous.get("run_id"), "created": previous.get("created"),
            "testbed": document_testbed(previous), "command": previous.get("command")}


def merged_results(previous: dict | None, current: dict) -> dict:
    """This run's results, with what an earlier results.json of the same tier may still add.

    Rows of the same run (pytest-xdist workers publish one by one into one file) merge as they
    are. A row of an earlier run is kept only when this run neither measured it nor found it not
    run, and only when it was measured on this run's testbed; it is marked ``measured_by`` with
    that run's id, date, testbed and command (a row already marked keeps its mark). Rows of
    another testbed are dropped: they were never measured here. A run without the latency tests
    keeps the timings an earlier run on the same machine measured for the same case definitions.
    Rows from a different data set or schema are dropped.
    """
    if not previous or previous.get("schema") != current["schema"] or \
            previous.get("dataset_sha256") != current["dataset_sha256"]:
        return current
    same_run = current.get("run_id") is not None and previous.get("run_id") == current.get("run_id")
    testbed = document_testbed(current)
    same_testbed = same_run or (testbed is not None and document_testbed(previous) == testbed)
    mark = earlier_run(previous)
    previous_environments = previous.get("environments") or {}
    ran = {case["id"] for case in current["cases"]}
    not_run_now = {entry["id"] for entry in current.get("not_run", [])}

    def kept(case: dict) -> dict | None:
        if case["id"] in ran or case["id"] in not_run_now:
            return None
        if same_run or case.get("measured_by"):
            return case if same_run or case["measured_by"].get("testbed") == testbed else None
        if testbed is None or testbed_of(previous_environments.get(case.get("environment"))) != testbed:
            return None
        return {**case, "measured_by": mark}

    kept_cases = [row for case in previous.get("cases", []) if (row := kept(case)) is not None]
    earlier = {case["id"]: case for case in previous.get("cases", [])}
    same_machine = previous.get("environment") == current.get("environment")
    repeated = [
        _with_earlier_timings(case, earlier.get(case["id"]) if same_machine else None, previous.get("created"))
        for case in current["cases"]
    ]
    merged = dict(current)
    # In the session's order (model, mode, backend), whichever run or worker wrote a case.
    merged["cases"] = sort_cases(kept_cases + repeated)
    # Another worker's not-run cases are this run's too; an earlier run's are not.
    merged["not_run"] = sort_cases(
        [entry for entry in previous.get("not_run", []) if same_run and entry["id"] not in ran | not_run_now]
        + current.get("not_run", []))
    # Kept rows keep the environment they were measured in.
    used = {case.get("environment") for case in merged["cases"]}
    merged["environments"] = {k: v for k, v in {**previous_environments, **current["environments"]}.items()
                              if k in used}
    if not same_testbed:
        return merged
    # The tables of an earlier run on this testbed, marked like its rows (a same-run worker's unmarked).
    agreed = {(a["model"], a["mode"]) for a in current.get("agreement", [])}
    merged["agreement"] = sorted(
        [_marked(a, mark, same_run) for a in previous.get("agreement", []) if (a["model"], a["mode"]) not in agreed]
        + current.get("agreement", []),
        key=lambda a: f"{a['model']}-{a['mode']}",
    )
    models = {case["model"] for case in merged["cases"]}
    merged["models"] = {**{k: v for k, v in previous.get("models", {}).items() if k in models},
                        **current.get("models", {})}
    # Run-level measurements belong to no row that could carry a mark: only this run's.
    merged["harness"] = {**(previous.get("harness", {}) if same_run else {}), **current.get("harness", {})}
    merged["layer_errors"] = {**{k: v for k, v in previous.get("layer_errors", {}).items()
                                 if k in {case["id"] for case in kept_cases}},
                              **current.get("layer_errors", {})}
    # Portability rows per model: a model this run tried replaces its earlier rows.
    tried = {row["model"] for row in current.get("portability", [])}
    merged["portability"] = sort_portability(
        [_marked(row, mark, same_run) for row in previous.get("portability", []) if row.get("model") not in tried]
        + current.get("portability", []))
    return merged


def _marked(row: dict, mark: dict, same_run: bool) -> dict:
    """``row`` marked as measured by ``mark``'s run, unless it is this run's or already marked."""
    return row if same_run or row.get("measured_by") else {**row, "measured_by": mark}


def sort_portability(rows: list[dict]) -> list[dict]:
    """Portability rows by model in registration order, keeping each model's own row order."""
    from bench.results import model_order_key

    return sorted(rows, key=lambda row: model_order_key(str(row.get("model"))))


def _read_previous(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def lock_path(path: Path) -> Path:
    """The lock guarding read-merge-write of ``path``, shared by every process on this machine.

    Parallel workers (pytest-xdist) each publish their own cases into the same results.json and
    baselines file; the lock makes each read-merge-write whole. It lives in the temporary folder,
    keyed by the target's absolute path, so no lock file lands in the repository.
    """
    return Path(tempfile.gettempdir()) / f"quantbench-{key_of(str(Path(path).resolve()))}.lock"


def still_runs(run: BenchRun, cid: str) -> bool:
    """Whether a baseline entry still names a case this tier declares (else an update drops it):
    :meth:`bench.selection.Selection.declares`, selected or not."""
    return run.selection.declares(*parse_case_id(cid))


def publish(run: BenchRun, whole_run: bool = True) -> Published:
    """Writes the baselines when updating, then the run's results and report; returns where they went.

    An update takes each measured case unless it is ``regressed`` against the file being updated,
    or failed a gate, and is not accepted by name (``--accept CASE=REASON``); a refused case keeps
    its old entry, and each accepted change is appended to the file's ``history`` in the same
    atomic write. The results then carry the file's history, so the report shows it.

    Each file is read, merged with this run's cases and written under a lock, so workers running
    in parallel all land in one consistent results.json (and baselines file).

    Args:
        run: The run.
        whole_run: False in a pytest-xdist worker, which runs a share of the cases.

    Raises:
        ReportError: The reports folder (or, when updating, the baselines folder) cannot be written.
    """
    from bench import report

    out = Path(run.options.reports_dir) / run.tier.name
    results_path = out / "results.json"
    current = run.document()
    published = Published(results_path, None, None)
    if run.options.update_baselines:
        _update_baselines(run, current, published, whole_run)
    try:
        with atomic.file_lock(lock_path(results_path)):
            results = merged_results(_read_previous(results_path), current)
            atomic.write_json(results_path, results)
            # Rendered under the lock too: the last writer renders the complete merged file.
            published.report_path = report.write_report(results_path)
    except OSError as exc:
        raise ReportError(
            f"cannot write {results_path} ({exc.strerror or exc}); make the folder writable or pass "
            "--reports-dir with one that is"
        ) from None
    return published


def _update_baselines(run: BenchRun, current: dict, published: Published, whole_run: bool) -> None:
    """Writes this run's cases that the update takes into the testbed's own baselines file, and
    the file's history into ``current``'s ``baseline`` (see :func:`publish`)."""
    path = run.options.own_baseline_path()
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    decision = baselines.decide_update(
        current["cases"], run.options.accepts, when, baselines.current_commit(run.options.root), path,
        # A pytest-xdist worker runs a share of the cases: the others' accepts are not its business.
        ran_all=whole_run)
    try:
        with atomic.file_lock(lock_path(path)):
            # Only the cases this process measured and the update takes: the others keep their entries.
            new = baselines.from_results(current, decision.taken)
            new["history"] = decision.history
            merged = baselines.merge(baselines.load_for_update(path), new)
            merged["cases"] = {cid: entry for cid, entry in merged["cases"].items()
                               if still_runs(run, cid)}
            published.baseline_diff = baselines.write(path, merged)
    except OSError as exc:
        raise ReportError(
            f"cannot write {path} ({exc.strerror or exc}); make it writable or pass "
            "--baselines-dir with a folder that is"
        ) from None
    published.refused = decision.refused
    published.notes = decision.notes
    published.accepted = [f"{entry['case']}: {entry['accepted']}, accepted: {entry['reason']}"
                          for entry in decision.history]
    if isinstance(current.get("baseline"), dict):
        # The report shows the history of the file as this update left it.
        current["baseline"] = {**current["baseline"], "history": merged.get("history", [])}


def worker_output(run: BenchRun, published: Published | None, error: str | None) -> dict:
    """What a pytest-xdist worker hands its controller for the end-of-run summary (plain data)."""
    return {
        "cases": sorted(run.record.cases),
        "extra_failures": list(run.record.failures),
        "results_path": str(published.results_path) if published else None,
        "report_path": str(published.report_path) if published and published.report_path else None,
        "baseline_diff": published.baseline_diff if published else None,
        "refused": published.refused if published else [],
        "accepted": published.accepted if published else [],
        "notes": published.notes if published else [],
        "not_run": [entry["id"] for entry in run.record.not_run.values()],
        "error": error,
    }


def terminal_summary(run: BenchRun, published: Published | None) -> list[str]:
    """Lines for the end of the pytest output: headline table, regressions, where files went."""
    return summary_lines(run.document(), run.record.failures, published)


def controller_summary(outputs: list[dict]) -> list[str]:
    """The summary of a pytest-xdist run, printed by the controller from the merged results.json.

    Args:
        outputs: Each worker's :func:`worker_output`.

    The cases are those the workers ran, read back from the results file they all merged into,
    so the summary is the one a serial run of the same cases prints.
    """
    ran = {case for out in outputs for case in out["cases"]}
    dropped = {case for out in outputs for case in out.get("not_run", [])}
    errors = [f"quantbench: {e}" for e in dict.fromkeys(out["error"] for out in outputs if out.get("error"))]
    errors = [""] + errors if errors else []
    paths = [out["results_path"] for out in outputs if out.get("results_path")]
    if not (ran or dropped) or not paths:
        return errors
    try:
        merged = json.loads(Path(paths[0]).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return errors + ["", f"quantbench: cannot read the merged results {paths[0]} ({exc})"]
    cases = [c for c in merged.get("cases", []) if c["id"] in ran]
    models = {c["model"] for c in cases}
    results = {
        **merged,
        "cases": cases,
        "not_run": [entry for entry in merged.get("not_run", []) if entry["id"] in dropped],
        "models": {k: v for k, v in merged.get("models", {}).items() if k in models},
    }
    extra = list(dict.fromkeys(m for out in outputs for m in out["extra_failures"]))
    diffs = [out["baseline_diff"] for out in outputs if out.get("baseline_diff") is not None]
    reports = [out["report_path"] for out in outputs if out.get("report_path")]
    published = Published(Path(paths[0]), Path(reports[0]) if reports else None,
                          "".join(diffs) if diffs else None,
                          *([m for out in outputs for m in out.get(key, [])]
                            for key in ("refused", "accepted", "notes")))
    return summary_lines(results, extra, published) + errors


def verdict_lines(cases: list[dict]) -> list[str]:
    """The verdicts against the baseline: counted, then every case that is not ``identical``."""
    verdicts = [c for c in cases if c.get("baseline_verdict")]
    if not verdicts:
        return []
    counts: dict[str, int] = {}
    for case in verdicts:
        counts[case["baseline_verdict"]] = counts.get(case["baseline_verdict"], 0) + 1
    lines = ["", "quantbench against the baseline: "
             + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)]
    identical_despite: dict[tuple[str, ...], list[str]] = {}
    for case in verdicts:
        comparison = case.get("baseline_comparison")
        if case["baseline_verdict"] != "identical" and comparison:
            lines.append(f"  - {case['id']}: {Verdict.from_dict(comparison).summary()}"
                         + ("; update the baselines to keep the gain" if case["baseline_verdict"] == "improved"
                            else ""))
        elif case["baseline_verdict"] == "identical" and comparison and comparison.get("causes"):
            identical_despite.setdefault(tuple(comparison["causes"]), []).append(case["id"])
    # One line per set of differences: on another machine every case shares the same ones.
    for causes, ids in identical_despite.items():
        lines.append(f"  - identical on every image despite {'; '.join(causes)}: "
                     + (ids[0] if len(ids) == 1 else f"{len(ids)} cases"))
    return lines


def summary_lines(results: dict, extra_failures: list[str], published: Published | None) -> list[str]:
    """The summary of a results document: headline table, regressions, where files went."""
    from bench.report.format import markdown_table
    from bench.report.sections import HEADLINE_HEADERS, headline_rows

    lines = []
    if results.get("testbed"):
        lines += ["", f"quantbench testbed: {results['testbed']} "
                      f"({((results.get('environment') or {}).get('cpu') or {}).get('model', '?')})"]
        note = (results.get("baseline") or {}).get("note")
        if note:
            lines.append(f"quantbench baseline: {note}")
    lines += ["", "quantbench headline (litert), as in REPORT.md"]
    lines += markdown_table(HEADLINE_HEADERS, headline_rows(results)).splitlines()
    failures = [m for r in results["cases"] for m in r.get("failures", [])] + list(extra_failures)
    lines += verdict_lines(results["cases"])
    lines += not_run_lines(results.get("not_run") or [])
    if failures:
        lines += ["", f"quantbench regressions ({len(failures)}):"] + [f"  - {m}" for m in failures]
    if published:
        lines += ["", f"quantbench results: {published.results_path}"]
        if published.report_path:
            lines.append(f"quantbench report:  {published.report_path}")
        if published.baseline_diff is not None:
            lines += ["", "quantbench baselines updated:"]
            lines += (published.baseline_diff or "(no change)").splitlines()
        for title, items in (("refused (their entries are kept)", published.refused),
                             ("accepted (recorded in the file's history)", published.accepted),
                             ("notes on --accept", published.notes)):
            if items:
                lines += ["", f"quantbench baselines {title}:"] + [f"  - {m}" for m in items]
    return lines


def not_run_lines(not_run: list[dict]) -> list[str]:
    """Each baseline case of the selection that did not run: ``not run: <reason>``."""
    if not not_run:
        return []
    return ["", f"quantbench baseline cases not run ({len(not_run)}):"] + [
        f"  - {entry['id']}: not run: {entry['reason']}" + (" (fails the run)" if entry.get("fails") else "")
        for entry in not_run]
