"""Versioned baselines: ``baselines/<tier>.json``, read strictly, changed only on request.

Schema 1::

    {"schema": 1, "tier": "smoke", "environment": {...}, "dataset_sha256": "...",
     "cases": {"<model>-<mode>-<backend>": {"accuracy": 0.91, "size_bytes": 12345,
                                            "accuracy_drop_pp": 0.1, "recipe_hash": "..."}}}

The loader refuses files it does not understand (bad JSON, missing keys, a newer schema) with a
message that says what to do, and migrates older schemas step by step (``_update_to_N``), as asv
does. Writing is atomic and prints the change as a diff, so nothing is overwritten silently.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from bench import atomic
from bench.errors import BaselineError

SCHEMA = 1
# The fields a baseline keeps of each case result; the rest of a result is run-specific.
KEPT_FIELDS = ("accuracy", "accuracy_drop_pp", "size_bytes", "recipe_hash", "latency_ms_b1",
               "speedup_vs_float")
# Migrations from schema N-1 to N, applied in order; none exist yet beyond schema 1.
_MIGRATIONS: dict[int, object] = {}


def baseline_path(root: Path, tier: str) -> Path:
    return Path(root) / "baselines" / f"{tier}.json"


def update_command(tier: str) -> str:
    return f"nox -s update_baselines -- --tier {tier}"


def load(path: Path) -> dict | None:
    """Reads a baselines file; None when it does not exist yet.

    Raises:
        BaselineError: The file is not valid JSON, lacks required keys, or has an unknown schema.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); restore it with "
            f"`git checkout {path}` or regenerate it with `{update_command(path.stem)}`"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("schema"), int):
        raise BaselineError(f"{path} has no integer 'schema' field; it is not a baselines file")
    schema = payload["schema"]
    if schema > SCHEMA:
        raise BaselineError(
            f"{path} has schema {schema}, newer than this harness understands ({SCHEMA}); "
            "upgrade the harness or regenerate the file with "
            f"`{update_command(path.stem)}`"
        )
    while payload["schema"] < SCHEMA:
        if payload["schema"] + 1 not in _MIGRATIONS:
            raise BaselineError(
                f"{path} has schema {schema}, older than any this harness can migrate; "
                f"regenerate it with `{update_command(path.stem)}`"
            )
        payload = _MIGRATIONS[payload["schema"] + 1](payload)
    if not isinstance(payload.get("cases"), dict):
        raise BaselineError(f"{path} has no 'cases' object; regenerate it with `{update_command(path.stem)}`")
    return payload


def from_results(results: dict) -> dict:
    """The baseline a results document would become."""
    cases = {}
    for record in results["cases"]:
        if record.get("status") in ("passed", "failed", "not_comparable"):
            cases[record["id"]] = {k: record[k] for k in KEPT_FIELDS if record.get(k) is not None}
    return {
        "schema": SCHEMA,
        "tier": results["tier"],
        "environment": results["environment"],
        "dataset_sha256": results["dataset_sha256"],
        "cases": cases,
    }


def load_for_update(path: Path) -> dict | None:
    """Like :func:`load`, but an unreadable file counts as absent (it is about to be replaced)."""
    try:
        return load(path)
    except BaselineError:
        return None


def merge(old: dict | None, new: dict) -> dict:
    """Updates ``old`` with ``new``'s cases; cases not run this time are kept, not dropped."""
    if old is None:
        return new
    merged = dict(new)
    merged["cases"] = {**old.get("cases", {}), **new["cases"]}
    return merged


def _text(payload: dict | None) -> list[str]:
    return [] if payload is None else (json.dumps(payload, indent=2, sort_keys=True) + "\n").splitlines(True)


def write(path: Path, new: dict) -> str:
    """Writes the baselines atomically; returns the unified diff against what was there."""
    path = Path(path)
    old_lines = path.read_text().splitlines(True) if path.exists() else []
    diff = "".join(difflib.unified_diff(old_lines, _text(new), f"{path} (old)", f"{path} (new)"))
    atomic.write_json(path, new)
    return diff
