"""Baselines: what an update of ``baselines/<testbed>/<tier>.json`` takes, writes, merges and says
it changed.

The file's schema and its loader (strict, migrating older schemas) are in :mod:`bench.results`.
Here: which cases an update takes (:func:`decide_update`: a ``regressed`` or failed case only when
accepted by name with a reason, each acceptance recorded in the file's ``history``), the entry a
case result becomes, the merge of an update into what was recorded (cases not run keep their
entries and environments), the per-case diff an update prints, and the atomic write, so nothing is
overwritten silently.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from bench import atomic, environment, evidence
from bench.errors import BaselineError
from bench.results import BASELINE_SCHEMA, load_baselines, project_of_baselines, update_command

# The fields a baseline keeps of each case result; the rest of a result is run-specific.
KEPT_FIELDS = ("accuracy", "accuracy_drop_pp", "size_bytes", "recipe_hash", "n_test", "correct_bits",
               "artifact_sha256", "eval_batch", "latency_ms_b1", "speedup_vs_float")


def correct_of(path: Path, case_id: str, entry: dict, n: int):
    """The baseline's per-image outcomes of a case, for a run of ``n`` test images.

    Raises:
        BaselineError: The entry records another number of images than this run has.
    """
    if entry.get("n_test") != n:
        raise BaselineError(
            f"{path}: case {case_id} records {entry.get('n_test')} test images, this run has {n:,}; "
            f"the tier's test split changed: re-record with "
            f"`{update_command(Path(path).stem, root=project_of_baselines(path))}`"
        )
    return evidence.unpack(entry["correct_bits"], n)


# Entries of ``history`` a file keeps, newest last. The history answers a reviewer's "why did this
# baseline move" next to the numbers, in every report; git keeps the full story of the file. Accepts
# are rare by design (only regressed or failed cases need one), so 50 entries span many updates
# while the committed file, read by every run, stays small.
HISTORY_KEPT = 50

# The option that accepts a refused case, as the messages spell it.
ACCEPT_OPTION = "--accept"


def parse_accepts(values: Iterable[str]) -> dict[str, str]:
    """``["CASE=REASON", ...]`` (repeated ``--accept``) as ``{case: reason}``.

    Raises:
        ValueError: A value is not ``CASE=REASON`` with a case id and a non-empty reason, or a
            case is named twice. The message says what was wrong and the form expected.
    """
    from bench.results import is_case_id

    accepts: dict[str, str] = {}
    for value in values:
        cid, sep, reason = value.partition("=")
        cid, reason = cid.strip(), reason.strip()
        if not sep or not is_case_id(cid) or not reason:
            raise ValueError(
                f"{ACCEPT_OPTION} {value!r}: expected CASE=REASON with a case id (model-mode-backend) "
                f"and why the change is intended, e.g. {ACCEPT_OPTION} "
                "\"cnn-ptq_int8-litert=new converter rounds differently (#123)\"")
        if cid in accepts:
            raise ValueError(f"{ACCEPT_OPTION} names {cid} twice; give each case one reason")
        accepts[cid] = reason
    return accepts


def accept_hint(cid: str) -> str:
    """How to accept ``cid`` into the baselines, as a command-line fragment."""
    return f"{ACCEPT_OPTION} \"{cid}=<why the change is intended>\""


def needs_accept(case: Mapping) -> str | None:
    """Why an update takes ``case`` only when it is accepted by name: ``regressed`` (its verdict
    against the file being updated) or ``failed`` (a gate failed); None when it is taken freely
    (new, identical, drift or improved, and passed)."""
    if case.get("baseline_verdict") == "regressed":
        return "regressed"
    if case.get("status") == "failed":
        return "failed"
    return None


def refusal_message(cid: str, summary: str, path: Path) -> str:
    """The failure of a regressed case in an update: what was refused and how to accept it."""
    return (f"{cid}: {summary}; --update-baselines refuses a regressed case and keeps its entry in "
            f"{path}. If the change is intended, rerun the update with {accept_hint(cid)}")


@dataclasses.dataclass
class UpdateDecision:
    """What an update takes of a run's cases (see :func:`decide_update`).

    Attributes:
        taken: The ids of the cases whose entries the update writes.
        history: One entry per accepted change, for the file's ``history``.
        refused: One line per case the update refused (its old entry, if any, is kept).
        notes: One line per ``--accept`` that was not needed (the case was neither regressed nor
            failed) or named a case this process did not run; nothing is recorded for it.
    """

    taken: set[str]
    history: list[dict]
    refused: list[str]
    notes: list[str]


def decide_update(cases: Iterable[Mapping], accepts: Mapping[str, str], when: str,
                  commit: str | None, path: Path, ran_all: bool = True) -> UpdateDecision:
    """Which measured cases an update takes, and the history of the changes it accepts.

    A case whose verdict against the file being updated is ``regressed``, or that failed a gate,
    is taken only when ``accepts`` names it; every other measured case (new, identical, drift,
    improved) is taken as it is.

    Args:
        cases: The run's case records (``status``, ``baseline_verdict``, ``baseline_comparison``).
        accepts: :func:`parse_accepts`.
        when: The time of the update (ISO 8601), for the history.
        commit: The commit the run measured (:func:`current_commit`), or None when unknown.
        path: The file being updated, for messages.
        ran_all: Whether ``cases`` are all the run's cases (not one pytest-xdist worker's share),
            so that an accept naming a case not among them is worth a note.
    """
    decision = UpdateDecision(set(), [], [], [])
    measured = {case["id"]: case for case in cases if case.get("status") in ("passed", "failed")}
    for cid, case in measured.items():
        why = needs_accept(case)
        if why is None:
            decision.taken.add(cid)
            if cid in accepts:
                decision.notes.append(
                    f"{ACCEPT_OPTION} {cid}: not needed, the case is {case.get('baseline_verdict')} and "
                    f"{case.get('status')}; its entry is updated and no history is recorded")
        elif cid in accepts:
            decision.taken.add(cid)
            decision.history.append(history_entry(case, why, accepts[cid], when, commit))
        else:
            decision.refused.append(
                f"{cid}: {why}, refused; {path} keeps "
                + ("its old entry" if case.get("baseline_verdict") != "no_baseline" else "no entry for it")
                + f". Accept it with {accept_hint(cid)}")
    if ran_all:
        decision.notes += [f"{ACCEPT_OPTION} {cid}: the case did not run, nothing was accepted"
                           for cid in accepts if cid not in measured]
    return decision


def history_entry(case: Mapping, why: str, reason: str, when: str, commit: str | None) -> dict:
    """One accepted change: when, which case, its verdict and status, the images lost and gained
    and the net change against the replaced entry (None for a new case), the reason, the commit."""
    comparison = case.get("baseline_comparison") or {}
    net_loss = comparison.get("net_loss_pp")
    return {
        "when": when, "case": case["id"], "verdict": case.get("baseline_verdict"),
        "status": case.get("status"), "accepted": why, "lost": comparison.get("lost"),
        "gained": comparison.get("gained"),
        "net_change_pp": None if net_loss is None else round(-net_loss, 4),
        "accuracy": case.get("accuracy"), "baseline_accuracy": comparison.get("baseline_accuracy"),
        "failures": list(case.get("failures") or []), "reason": reason, "commit": commit,
    }


def trimmed_history(history: list[dict]) -> list[dict]:
    """The newest :data:`HISTORY_KEPT` entries, oldest first."""
    return list(history)[-HISTORY_KEPT:]


def current_commit(root: Path) -> str | None:
    """The checkout's commit (``<sha>+dirty`` with uncommitted changes to tracked files), or None
    outside a git checkout or without git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha or None


def from_results(results: dict, taken: set[str] | None = None) -> dict:
    """The baseline the cases of a results document (one run, one environment) would become.

    Args:
        results: The run's results document.
        taken: The ids to keep (:attr:`UpdateDecision.taken`); None: every measured case.
    """
    name = environment.fingerprint_id(results["environment"])
    cases = {}
    for record in results["cases"]:
        if taken is not None and record["id"] not in taken:
            continue
        if record.get("status") in ("passed", "failed"):
            entry = {k: record[k] for k in KEPT_FIELDS if record.get(k) is not None}
            cases[record["id"]] = {**entry, "environment": name}
    return {
        "schema": BASELINE_SCHEMA,
        "tier": results["tier"],
        "testbed": environment.testbed_name(results["environment"]),
        "history": [],
        "dataset_sha256": results["dataset_sha256"],
        "environments": {name: results["environment"]},
        "cases": cases,
    }


def load_for_update(path: Path) -> dict | None:
    """Like :func:`bench.results.load_baselines`, but an unreadable file counts as absent (it is
    about to be replaced)."""
    try:
        return load_baselines(path)
    except BaselineError:
        return None


def merge(old: dict | None, new: dict) -> dict:
    """``old`` with ``new``'s cases written over it; cases not run keep their entry and environment.

    Cases of another data set are dropped (their per-image bits are of other images); the
    history of accepted changes is kept either way, newest last, trimmed to :data:`HISTORY_KEPT`.
    """
    if old is None or old.get("dataset_sha256") != new["dataset_sha256"]:
        return {**new, "history": trimmed_history((old or {}).get("history", []) + new.get("history", []))}
    new_cases = {cid: _with_kept_timings(cid, entry, old, new) for cid, entry in new["cases"].items()}
    cases = {**old.get("cases", {}), **new_cases}
    environments = {**old.get("environments", {}), **new["environments"]}
    used = {case["environment"] for case in cases.values()}
    return {**new, "history": trimmed_history(old.get("history", []) + new.get("history", [])),
            "cases": dict(sorted(cases.items())),
            "environments": {k: v for k, v in sorted(environments.items()) if k in used}}


TIMING_FIELDS = ("latency_ms_b1", "speedup_vs_float")


def _with_kept_timings(case_id: str, entry: dict, old: dict, new: dict) -> dict:
    """A re-recorded case that was not timed keeps its old timings where they still apply.

    They apply when the case definition is the same and the old timings came from a CPU with the
    same ISA flags (speedups are ratios measured on one machine; only ISA decides their kernels).
    """
    before = old.get("cases", {}).get(case_id)
    if before is None or any(f in entry for f in TIMING_FIELDS) or before.get("recipe_hash") != entry.get("recipe_hash"):
        return entry
    old_env = old.get("environments", {}).get(before.get("environment"), {})
    new_env = new.get("environments", {}).get(entry.get("environment"), {})
    if not environment.same_isa(old_env, new_env):
        return entry
    return {**entry, **{f: before[f] for f in TIMING_FIELDS if f in before}}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _case_change(case_id: str, before: dict | None, after: dict | None, old: dict, new: dict) -> str | None:
    """One line saying how a case's entry changed, or None when it did not change at all."""
    if before == after:
        return None
    if before is None:
        return f"+ {case_id}: added, accuracy {_pct(after.get('accuracy'))}, {after.get('size_bytes', 0):,} bytes"
    if after is None:
        return f"- {case_id}: removed (this tier no longer runs it)"
    parts = []
    if before.get("accuracy") != after.get("accuracy"):
        parts.append(f"accuracy {_pct(before.get('accuracy'))} -> {_pct(after.get('accuracy'))}")
    if before.get("correct_bits") != after.get("correct_bits"):
        n = after.get("n_test")
        if before.get("correct_bits") and after.get("correct_bits") and before.get("n_test") == n:
            was, now = evidence.unpack(before["correct_bits"], n), evidence.unpack(after["correct_bits"], n)
            parts.append(f"{int((was & ~now).sum())} images lost, {int((now & ~was).sum())} gained")
        elif not after.get("correct_bits"):
            parts.append("per-image record dropped")
        else:
            parts.append("per-image record added" if not before.get("correct_bits")
                         else f"per-image record replaced ({before.get('n_test')} -> {n} images)")
    if before.get("size_bytes") != after.get("size_bytes"):
        parts.append(f"size {before.get('size_bytes', 0):,} -> {after.get('size_bytes', 0):,} bytes")
    if before.get("recipe_hash") != after.get("recipe_hash"):
        parts.append("case definition changed")
    old_env = old.get("environments", {}).get(before.get("environment"), {})
    new_env = new.get("environments", {}).get(after.get("environment"), {})
    changes = environment.differences(old_env, new_env)
    if changes:
        parts.append("environment: " + "; ".join(changes))
    for field in ("latency_ms_b1", "speedup_vs_float"):
        if before.get(field) != after.get(field) and after.get(field) is not None:
            parts.append(f"{field} {before.get(field) or 0:.3g} -> {after[field]:.3g}")
    return f"~ {case_id}: " + ("; ".join(parts) if parts else "re-recorded, nothing measured changed")


def case_diff(old: dict | None, new: dict) -> str:
    """What an update changes, case by case; cases it leaves alone are counted, not listed."""
    old = old or {"cases": {}, "environments": {}}
    ids = sorted(set(old["cases"]) | set(new["cases"]))
    lines = [line for cid in ids
             if (line := _case_change(cid, old["cases"].get(cid), new["cases"].get(cid), old, new))]
    unchanged = len(ids) - len(lines)
    if unchanged:
        lines.append(f"  ({unchanged} cases unchanged)")
    return "\n".join(lines) + "\n" if lines else ""


def write(path: Path, new: dict) -> str:
    """Writes the baselines atomically; returns the per-case diff against what was there."""
    path = Path(path)
    diff = case_diff(load_for_update(path), new)
    atomic.write_json(path, new)
    return diff
