"""Baselines: what an update of ``baselines/<tier>.json`` writes, merges and says it changed.

The file's schema and its loader (strict, migrating older schemas) are in :mod:`bench.results`.
Here: the entry a case result becomes, the merge of an update into what was recorded (cases not
run keep their entries and environments), the per-case diff an update prints, and the atomic
write, so nothing is overwritten silently.
"""

from __future__ import annotations

from pathlib import Path

from bench import atomic, environment, evidence
from bench.errors import BaselineError
from bench.results import BASELINE_SCHEMA, load_baselines, update_command

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
            f"the tier's test split changed: re-record with `{update_command(Path(path).stem)}`"
        )
    return evidence.unpack(entry["correct_bits"], n)


def from_results(results: dict) -> dict:
    """The baseline the cases of a results document (one run, one environment) would become."""
    name = environment.fingerprint_id(results["environment"])
    cases = {}
    for record in results["cases"]:
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

    Cases of another data set are dropped (their per-image bits are of other images).
    """
    if old is None or old.get("dataset_sha256") != new["dataset_sha256"]:
        return new
    new_cases = {cid: _with_kept_timings(cid, entry, old, new) for cid, entry in new["cases"].items()}
    cases = {**old.get("cases", {}), **new_cases}
    environments = {**old.get("environments", {}), **new["environments"]}
    used = {case["environment"] for case in cases.values()}
    return {**new, "history": old.get("history", []) + new.get("history", []),
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
