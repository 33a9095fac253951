"""The two documents the harness keeps, their case ids and their case order, each defined once.

``results.json`` (written by a bench run; read by the report and by ``compare``) and
``baselines/<tier>.json`` (written by ``--update-baselines``; read by the gates and by ``compare``)
both carry a ``"schema"`` number. Each has one loader here. A loader refuses a file it does not
understand (bad JSON, a newer schema, missing keys, per-image bits that cannot be the record of
the case's images) with a message that names the file and says what to do, and brings an older
schema up to date one step at a time (``_update_<document>_to_N``), as asv does with its
``version``: the rest of the harness only ever sees the current schema.

Results, schema 2::

    {"schema": 2, "tier": "smoke", "created": "...", "command": "...", "n_test": 2000,
     "dataset_sha256": "...", "environment": {fingerprint of this run},
     "environments": {"<id>": {fingerprint}}, "models": {...}, "agreement": [...],
     "layer_errors": {...}, "lost_images": {...}, "harness": {...},
     "run_id": "...", "testbed": "...", "baseline": {"path", "testbed", "own", "note", "history"},
     "shard": {"index": K, "total": N, "by": "model|backend", "units": ["cnn-litert", ...],
               "plan": "<hash>", "cases_total": <the whole run's judged cases>,
               "cases": [ids this shard judges], "deferred": ["agreement:<model>-<mode>", ...],
               "selection": {"models", "modes", "backends"},
               "outcome": {"exitstatus", "failed_tests", "failures"}}  (only a shard's, bench.shard),
     "merged": {"plan", "total", "by", "cases_total", "shards": [...], "deferred": [...]}
               (only bench.merge's),
     "not_run": [{"id": ..., "reason": ..., "kind": "capability|probe|declared|error",
                  "in_baseline": true, "fails": false}],
     "cases": [{"id": "<model>-<mode>-<backend>", "model": ..., "mode": ..., "backend": ...,
                "status": "passed", "environment": "<id>", ...measurements,
                "n_test": 2000, "correct_bits": "<base64 packed bits>",
                "predictions": "<base64, top-1 class per image, 4 bits each>",
                "measured_by": {run_id, created, testbed, command} (only on a row kept from an
                earlier run on the same testbed)}]}

Baselines, schema 3, one file per testbed and tier (``baselines/<testbed>/<tier>.json``)::

    {"schema": 3, "tier": "smoke", "testbed": "avx512-vnni", "dataset_sha256": "...",
     "history": [{"when": "...", "case": "...", "verdict": "regressed", "status": "passed",
                  "accepted": "regressed", "lost": 40, "gained": 2, "net_change_pp": -1.9,
                  "accuracy": 0.85, "baseline_accuracy": 0.869, "failures": [],
                  "reason": "...", "commit": "<sha>[+dirty]"}],  (the last 50, bench.baseline)
     "environments": {"<id>": {fingerprint: lock hash, library versions, CPU flags}},
     "cases": {"<model>-<mode>-<backend>": {
         "accuracy": 0.91, "size_bytes": 12345, "accuracy_drop_pp": 0.1, "recipe_hash": "...",
         "n_test": 2000, "correct_bits": "<base64 packed bits, test-set order>",
         "artifact_sha256": "...", "eval_batch": 256, "environment": "<id>", ...timings}}}

In both, a case names the environment it was measured in: a merged results file and a baselines
file mix cases of several runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import environment, evidence
from bench.errors import BaselineError, BenchError, ReportError

RESULTS_SCHEMA = 2
BASELINE_SCHEMA = 3

# Registry names never hold it (the registries refuse such names), so an id splits back safely.
CASE_ID_SEPARATOR = "-"

HOW_TO_MAKE_RESULTS = "run `nox -s bench` first (or pass the path of an existing results.json)"
HOW_TO_GET_EITHER = "pass a results.json written by `nox -s bench` or a baselines/<testbed>/<tier>.json"

CaseT = TypeVar("CaseT", bound=Mapping[str, Any])


# --------------------------------------------------------------------------------------------
# Case ids


def case_id(model: str, mode: str, backend: str) -> str:
    """The id of a case: ``model-mode-backend``.

    Raises:
        ValueError: A name is empty or holds ``-``, so the id could not be read back.
    """
    names = (model, mode, backend)
    if not all(names) or any(CASE_ID_SEPARATOR in name for name in names):
        raise ValueError(f"no case id can be made of {names!r}: names are not empty and hold no "
                         f"{CASE_ID_SEPARATOR!r}")
    return CASE_ID_SEPARATOR.join(names)


def parse_case_id(cid: str) -> tuple[str, str, str]:
    """The (model, mode, backend) a case id names; the inverse of :func:`case_id`.

    Raises:
        ValueError: ``cid`` is not three names joined by ``-``.
    """
    parts = cid.split(CASE_ID_SEPARATOR) if isinstance(cid, str) else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{cid!r} is not a case id (model-mode-backend)")
    model, mode, backend = parts
    return model, mode, backend


def is_case_id(value: Any) -> bool:
    """Whether ``value`` is a string that :func:`parse_case_id` reads."""
    try:
        parse_case_id(value)
    except ValueError:
        return False
    return True


def case_parts(case: Mapping[str, Any]) -> tuple[str, str, str]:
    """The (model, mode, backend) of a case: its own fields, or else what its id names.

    Baselines entries carry no names of their own, and a damaged record may lack some.

    Raises:
        ValueError: A name is missing and the case has no readable id to take it from.
    """
    fields = (case.get("model"), case.get("mode"), case.get("backend"))
    if not all(fields):
        named = parse_case_id(case.get("id"))
        fields = tuple(field or name for field, name in zip(fields, named, strict=True))
    model, mode, backend = (str(field) for field in fields)
    return model, mode, backend


# --------------------------------------------------------------------------------------------
# Case order: the order the registries list their names in (the order of reports), everywhere


def order_key(name: str, known: Sequence[str]) -> tuple[int, str]:
    """Sort key: names in ``known`` first, in that order, then the others alphabetically."""
    return (known.index(name), "") if name in known else (len(known), name)


def _model_names() -> list[str]:
    # Imported here, as in the two functions below: a registry imports its entries' modules.
    from bench.models import MODELS

    return MODELS.names()


def _mode_names() -> list[str]:
    from bench.modes import MODES

    return MODES.names()


def _backend_names() -> list[str]:
    from bench.backends import BACKENDS

    return BACKENDS.names()


def model_order_key(model: str) -> tuple[int, str]:
    """Sort key of a model name, in registration order (see :func:`order_key`)."""
    return order_key(model, _model_names())


def mode_order_key(mode: str) -> tuple[int, str]:
    """Sort key of a mode name, in registration order (see :func:`order_key`)."""
    return order_key(mode, _mode_names())


def backend_order_key(backend: str) -> tuple[int, str]:
    """Sort key of a backend name, in registration order (see :func:`order_key`)."""
    return order_key(backend, _backend_names())


def case_order_key(model: str, mode: str, backend: str) -> tuple[tuple[int, str], ...]:
    """Sort key of a case: by model, then mode, then backend, each in registration order."""
    return model_order_key(model), mode_order_key(mode), backend_order_key(backend)


def sort_cases(cases: Iterable[CaseT]) -> list[CaseT]:
    """Case records (see :func:`case_parts`) in :func:`case_order_key` order."""
    return sorted(cases, key=lambda case: case_order_key(*case_parts(case)))


def sort_case_ids(ids: Iterable[str]) -> list[str]:
    """Case ids in :func:`case_order_key` order."""
    return sorted(ids, key=lambda cid: case_order_key(*parse_case_id(cid)))


# --------------------------------------------------------------------------------------------
# Reading a versioned document


@dataclass(frozen=True)
class _Document:
    """One kind of versioned file, as its loader sees it.

    Attributes:
        kind: What the file is, for messages ("results file").
        schema: The schema this harness writes and reads.
        migrations: N -> the update of a document from schema N-1 to N, for every N the harness
            can migrate to; consecutive, ending at ``schema``.
        check: Returns the migrated document, or raises ``error`` for what it cannot trust.
        error: The error class of this kind of file.
        fix: The file's path -> what the user should do to get a good file, ending messages.
    """

    kind: str
    schema: int
    migrations: Mapping[int, Callable[[dict], dict]]
    check: Callable[[dict, Path], dict]
    error: type[BenchError]
    fix: Callable[[Path], str]

    @property
    def oldest(self) -> int:
        """The oldest schema the migrations bring up to date (``schema`` itself without any)."""
        return min(self.migrations, default=self.schema + 1) - 1


def _read_object(path: Path, kind: str, fix: str, error: type[BenchError]) -> dict:
    """Reads a file that holds one JSON object.

    Raises:
        error: The file is missing, a folder, unreadable, not valid JSON, or not an object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{kind} {path} does not exist: {fix}") from None
    except IsADirectoryError:
        raise error(f"{kind} {path} is a folder, not a file: {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {kind} {path} ({exc}): {fix}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{kind} {path} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                    f"{exc.colno}); an interrupted run may have truncated it: {fix}") from None
    if not isinstance(document, dict):
        raise error(f"{kind} {path} holds a JSON {type(document).__name__}, not an object: {fix}")
    return document


def _migrated(document: dict, path: Path, spec: _Document) -> dict:
    """``document`` brought up to ``spec.schema``, one migration at a time.

    Raises:
        spec.error: The document has no integer schema, a newer one, or one older than any
            migration reaches.
    """
    schema = document.get("schema")
    # bool is an int in Python: `true` must not pass for schema 1.
    if not isinstance(schema, int) or isinstance(schema, bool):
        found = f" (it holds {schema!r})" if "schema" in document else ""
        raise spec.error(f"{spec.kind} {path} has no integer 'schema' field{found}; it was not "
                         f"written by this harness: {spec.fix(path)}")
    readable = f"this version reads schemas {spec.oldest} to {spec.schema}"
    if schema > spec.schema:
        raise spec.error(f"{spec.kind} {path} has schema {schema}: it was written by a newer version "
                         f"of the harness ({readable}); update this checkout, or {spec.fix(path)}")
    if schema < spec.oldest:
        raise spec.error(f"{spec.kind} {path} has schema {schema}, older than any this version can "
                         f"migrate ({readable}): {spec.fix(path)}")
    while document["schema"] < spec.schema:
        document = spec.migrations[document["schema"] + 1](document)
    return document


def _load(path: str | os.PathLike[str], spec: _Document) -> dict:
    """Reads, migrates and checks one document of ``spec``'s kind."""
    path = Path(path)
    document = _read_object(path, spec.kind, spec.fix(path), spec.error)
    return spec.check(_migrated(document, path, spec), path)


# --------------------------------------------------------------------------------------------
# results.json


def _update_results_to_2(document: dict) -> dict:
    """Schema 1 recorded one environment for the run; schema 2 also names it in each case."""
    recorded = document.get("environment") or {}
    name = environment.fingerprint_id(recorded)
    document.setdefault("environments", {name: recorded})
    cases = document.get("cases")
    for case in cases if isinstance(cases, list) else []:
        if isinstance(case, dict):
            case.setdefault("environment", name)
    document["schema"] = 2
    return document


def _checked_results(document: dict, path: Path) -> dict:
    """Refuses results without a list of cases, each an object with a case id, whose per-image
    records (``correct_bits``, ``predictions``) are those of its images, or with a damaged
    ``shard`` field."""
    cases = document.get("cases")
    if not isinstance(cases, list):
        raise ReportError(f"{path} has no list of 'cases'; it is not a results.json of this "
                          f"harness: {HOW_TO_MAKE_RESULTS}")
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not is_case_id(case.get("id")):
            raise ReportError(f"{path}: case #{index} is not an object whose 'id' is a case id "
                              "(model-mode-backend); the file is damaged: rerun `nox -s bench`")
        _check_results_evidence(path, case)
    _check_shard(path, document.get("shard"))
    return document


# A results case's per-image records and how each is read back (bench.evidence).
_PER_IMAGE_RECORDS = {"correct_bits": evidence.unpack, "predictions": evidence.unpack_predictions}


def _check_results_evidence(path: Path, case: dict) -> None:
    """Refuses per-image records that cannot be those of the case's ``n_test`` images."""
    cid = case["id"]
    for field, unpack in _PER_IMAGE_RECORDS.items():
        if field not in case:
            continue
        n = case.get("n_test")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ReportError(f"{path}: case {cid} has per-image '{field}' but no image count ('n_test'); "
                              "the file is damaged: rerun `nox -s bench`")
        try:
            unpack(case[field], n)
        except evidence.EvidenceError as exc:
            raise ReportError(f"{path}: case {cid}: its per-image record '{field}' {exc}; the file is "
                              "damaged: rerun `nox -s bench`") from None


def _check_shard(path: Path, shard: object) -> None:
    """Refuses a ``shard`` field that does not say which shard of how many (bench.shard)."""
    if shard is None:
        return
    numbers = [shard.get(k) for k in ("index", "total", "cases_total")] if isinstance(shard, dict) else []
    if not (numbers and all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
            and 1 <= numbers[0] <= numbers[1] and isinstance(shard.get("plan"), str)
            and isinstance(shard.get("cases"), list) and isinstance(shard.get("units"), list)):
        raise ReportError(f"{path}: its 'shard' field is not a shard's record (index, total, plan, units, "
                          "cases, cases_total); the file is damaged: rerun that shard")


_RESULTS = _Document("results file", RESULTS_SCHEMA, {2: _update_results_to_2}, _checked_results,
                     ReportError, lambda path: HOW_TO_MAKE_RESULTS)


def load_results(path: str | os.PathLike[str]) -> dict:
    """Reads a ``results.json``, migrated to :data:`RESULTS_SCHEMA`.

    Raises:
        ReportError: The file is missing or unreadable, is not valid JSON, is of a schema this
            version cannot read, or has no list of cases with ids. The message says what to do.
    """
    return _load(path, _RESULTS)


# --------------------------------------------------------------------------------------------
# baselines/<tier>.json


BASELINES_DIR = "baselines"


def baseline_path(root: str | os.PathLike[str], tier: str, testbed: str) -> Path:
    """Where the baselines of ``tier`` recorded on ``testbed`` live below the repository root."""
    return Path(root) / BASELINES_DIR / testbed / f"{tier}.json"


def recorded_testbeds(root: str | os.PathLike[str], tier: str) -> set[str]:
    """The testbeds that have a baselines file of ``tier`` below the repository root."""
    folder = Path(root) / BASELINES_DIR
    return {path.parent.name for path in folder.glob(f"*/{tier}.json")} if folder.is_dir() else set()


def update_command(tier: str, models: list[str] | None = None, root: Path | None = None) -> str:
    """The command that re-records the baselines of ``tier`` (only of ``models`` if given) in the
    project at ``root`` (:func:`bench.project.update_command`)."""
    from bench import project

    return project.update_command(root, tier, models)


def project_of_baselines(path: Path) -> Path | None:
    """The project root of a baselines file at its usual place (None: elsewhere)."""
    path = Path(path)
    return path.resolve().parents[2] if path.parent.parent.name == BASELINES_DIR else None


def _restore_or_regenerate(path: Path) -> str:
    # A baselines file is named after its tier.
    return (f"restore it with `git checkout {path}` or regenerate it with "
            f"`{update_command(path.stem, root=project_of_baselines(path))}`")


def _update_baselines_to_2(document: dict) -> dict:
    """Schema 1 kept one environment for the whole file: every case gets it as its own."""
    recorded = document.pop("environment", None) or {}
    name = environment.fingerprint_id(recorded)
    document["environments"] = {name: recorded}
    cases = document.get("cases")
    for case in cases.values() if isinstance(cases, dict) else []:
        if isinstance(case, dict):
            case.setdefault("environment", name)
    document["schema"] = 2
    return document


def _update_baselines_to_3(document: dict) -> dict:
    """Schema 3 names the file's testbed (from the CPU its cases were measured on) and keeps a
    history of accepted changes (empty before)."""
    names = {environment.testbed_name(env) for env in (document.get("environments") or {}).values()
             if isinstance(env, dict)}
    document["testbed"] = names.pop() if len(names) == 1 else None
    document.setdefault("history", [])
    document["schema"] = 3
    return document


def _checked_baselines(document: dict, path: Path) -> dict:
    """Refuses baselines without cases keyed by id, or without the environments they name."""
    if not isinstance(document.get("cases"), dict):
        raise BaselineError(f"{path} has no 'cases' object: {_restore_or_regenerate(path)}")
    environments = document.get("environments")
    if not isinstance(environments, dict) or not all(isinstance(v, dict) for v in environments.values()):
        raise BaselineError(f"{path} has no 'environments' object of fingerprints: "
                            f"{_restore_or_regenerate(path)}")
    for cid, case in document["cases"].items():
        _check_baseline_case(path, cid, case, environments)
    if not isinstance(document.get("testbed"), str):
        raise BaselineError(f"{path} names no single testbed (its cases come from CPUs of different "
                            f"classes, or none): {_restore_or_regenerate(path)}")
    if not isinstance(document.get("history"), list):
        raise BaselineError(f"{path} has no 'history' list: {_restore_or_regenerate(path)}")
    return document


def _check_baseline_case(path: Path, cid: str, case: object, environments: dict) -> None:
    """Refuses a case whose id, per-image record or environment reference cannot be trusted."""
    if not is_case_id(cid):
        raise BaselineError(f"{path}: {cid!r} is not a case id (model-mode-backend): "
                            f"{_restore_or_regenerate(path)}")
    model = parse_case_id(cid)[0]
    fix = (f"restore it with `git checkout {path}` or re-record the case with "
           f"`{update_command(path.stem, [model], root=project_of_baselines(path))}`")
    if not isinstance(case, dict):
        raise BaselineError(f"{path}: case {cid} is not an object; {fix}")
    if not isinstance(case.get("environment"), str) or case["environment"] not in environments:
        raise BaselineError(f"{path}: case {cid} names environment {case.get('environment')!r}, "
                            f"which the file's 'environments' lacks; {fix}")
    if "correct_bits" in case:
        n = case.get("n_test")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise BaselineError(f"{path}: case {cid} has per-image bits but no image count "
                                f"('n_test'); {fix}")
        try:
            evidence.unpack(case["correct_bits"], n)
        except evidence.EvidenceError as exc:
            raise BaselineError(f"{path}: case {cid}: its per-image record 'correct_bits' {exc}; "
                                f"{fix}") from None


_BASELINES = _Document("baselines file", BASELINE_SCHEMA, {2: _update_baselines_to_2, 3: _update_baselines_to_3},
                       _checked_baselines, BaselineError, _restore_or_regenerate)


def load_baselines(path: str | os.PathLike[str]) -> dict | None:
    """Reads a baselines file, migrated to :data:`BASELINE_SCHEMA`; None when it does not exist yet.

    Raises:
        BaselineError: The file is not valid JSON, lacks required keys, has a schema this version
            cannot read, or a case's id, environment or per-image record is damaged.
    """
    if not Path(path).exists():
        return None
    return _load(path, _BASELINES)


# --------------------------------------------------------------------------------------------
# Either


def load_results_or_baselines(path: str | os.PathLike[str]) -> dict:
    """Reads a ``results.json`` or a baselines file, told apart by their cases (list or object).

    Each is migrated and checked by its own loader's rules, so a file is refused here exactly as
    the bench or the report would refuse it.

    Raises:
        ReportError: The file cannot be read, holds no cases, or is a results file that
            :func:`load_results` refuses.
        BaselineError: A baselines file that :func:`load_baselines` refuses.
    """
    path = Path(path)
    document = _read_object(path, "results or baselines file", HOW_TO_GET_EITHER, ReportError)
    cases = document.get("cases")
    if not isinstance(cases, list | dict):
        raise ReportError(f"{path} has no 'cases' list or object: {HOW_TO_GET_EITHER}")
    spec = _RESULTS if isinstance(cases, list) else _BASELINES
    return spec.check(_migrated(document, path, spec), path)
