"""One report across testbeds: the same cases measured on several CPU classes, side by side.

``python -m bench.report across --out DIR A/results.json B/results.json ...`` reads two or more
results files of the same tier and test set, each measured on one testbed (``bench.testbeds``),
and writes ``DIR/across.json`` (:data:`ACROSS_SCHEMA`) and ``DIR/ACROSS.md``, rendered from it:

- "By testbed": each case's accuracy, drop, size and int8 speedup on every testbed; a case that
  did not run on a testbed says why (its ``not_run`` reason).
- "Same case across testbeds": for each case and pair of testbeds, how many test images got the
  same answer, read from the per-image records the results files keep (``bench.evidence``): the
  top-1 class when both sides have ``predictions``, else only right/wrong (``correct_bits``,
  labelled "outcome only": two different wrong answers count as agreeing). Beside it, whether
  the two ran the same file (same ``artifact_sha256``), another file because the testbeds'
  int8 recipes differ (``int8_format``, the CPU-fitting recipe), or another file of the same
  recipe; and whether the trained weights behind it are the same (:func:`weights_verdict`).

Runs of one testbed are compared with ``bench.report compare``; two files of the same testbed are
accepted here only when they were measured on different CPU models (the speed differs).
:mod:`bench.report.across_render` renders the document as markdown.

across.json, schema 1::

    {"schema": 1, "tier": "smoke", "dataset_sha256": "...", "n_test": 2000,
     "testbeds": [{"label": "avx512-vnni", "testbed": "avx512-vnni", "source": "<path>",
                   "cpu_model": "...", "cpu_models": [...], "cores": 2, "cpu_flags": ["avx2", ...],
                   "int8_sums": "int32", "run_id": "...", "run_ids": [...], "created": "...",
                   "command": "..."}],
     "cases": [{"id", "model", "mode", "backend",
                "on": {"<label>": {"status", "accuracy", "accuracy_drop_pp", "size_bytes",
                                   "speedup_vs_float", "int8_format", "recipe_hash",
                                   "artifact_sha256", "n_test"} | {"not_run": "<reason>"}}}],
     "pairs": [{"case", "a": "<label>", "b": "<label>",
                "images": {"basis": "top1|outcome", "n", "agree", "differ", "agreement"} | null,
                "accuracy_change_pp": b - a, "file": "same|cpu_fitting_recipe|other_recipe|same_recipe",
                "int8_format": [a, b], "weights": "same|separate|unknown", "weights_note": "..."}],
     "weights": [{"a", "b", "model", "float", "qat", "evidence": {"float", "qat"}, "source",
                  "note", "qat_note"}]}

A label is the testbed's name, numbered ("avx512-vnni (2)") when two files share a testbed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench import environment, evidence, testbeds
from bench.errors import ReportError, UnknownNameError
from bench.report.format import NOT_AVAILABLE, is_number
from bench.results import case_parts, load_results, model_order_key, sort_case_ids

ACROSS_SCHEMA = 1
ACROSS_JSON = "across.json"
ACROSS_MD = "ACROSS.md"
MIN_RUNS = 2

# What the per-image comparison of a pair rests on (``pairs[].basis``).
BASIS_TOP1 = "top1"  # both sides' `predictions`: the class each image was given
BASIS_OUTCOME = "outcome"  # only `correct_bits` on one side: right/wrong per image

# How the files of a pair relate (``pairs[].file``).
SAME_FILE = "same"
CPU_FITTING_RECIPE = "cpu_fitting_recipe"  # int8_format differs: each testbed's own recipe
OTHER_RECIPE = "other_recipe"  # recipe hashes differ for another reason (other code or options)
SAME_RECIPE = "same_recipe"  # same recipe, other bytes: other weights, calibration or converter

# Whether the weights behind a pair's files are the same (``weights[].float`` and ``.qat``).
WEIGHTS_SAME = "same"
WEIGHTS_SEPARATE = "separate"
WEIGHTS_UNKNOWN = "unknown"

# Where a results file's `models[<model>]` names the trained weights it used: a digest of the
# float and QAT weights' bytes (decisive either way), their cache keys (different keys: separate
# training; equal keys prove nothing, as the key does not name the CPU class and training on
# another class gives other weights under the same key), and a line on where they came from
# (e.g. the bundle imported).
FLOAT_DIGEST_FIELD = "weights_sha256"
QAT_DIGEST_FIELD = "qat_weights_sha256"
FLOAT_KEY_FIELD = "key"
QAT_KEY_FIELD = "qat_key"
WEIGHTS_SOURCE_FIELD = "weights"

# The mode whose file stores the float weights exactly: an identical file proves identical
# weights. A differing file proves nothing: converters do not write the same bytes on every CPU
# (measured: the smoke cnn's float32 LiteRT file converted under an emulated AVX2 CPU differed
# from the native one, from the same cached weights, with identical predictions; Keras's .keras
# archive differs between any two saves).
FLOAT_WEIGHTS_MODE = "float32"
QAT_WEIGHTS_MODE = "qat_int8"

# Decimals kept of an accuracy change in points: one image of the full tier's 10,000 is 0.01 pp,
# so 4 decimals lose nothing and drop float noise (0.14999999999999458).
ROUND_PP = 4

# The per-case numbers kept from each results file (the rest stays in the results files).
CASE_FIELDS = ("status", "accuracy", "accuracy_drop_pp", "size_bytes", "speedup_vs_float",
               "int8_format", "recipe_hash", "artifact_sha256", "n_test")


# --------------------------------------------------------------------------------------------
# The runs


@dataclasses.dataclass(frozen=True)
class Run:
    """One results file, as the cross-testbed report sees it.

    Attributes:
        label: The run's name in the tables: its testbed, numbered when two runs share one.
        testbed: The testbed its cases were measured on.
        path: The file it was read from.
        document: The results document (migrated by :func:`bench.results.load_results`).
        cpu_models: The CPU models its cases were measured on.
    """

    label: str
    testbed: str
    path: str
    document: dict
    cpu_models: frozenset[str]

    @functools.cached_property
    def cases(self) -> dict[str, dict]:
        """Case id -> case record."""
        return {case["id"]: case for case in self.document.get("cases") or []}

    @functools.cached_property
    def not_run(self) -> dict[str, str]:
        """Case id -> why it did not run, for the cases listed in ``not_run``."""
        return {str(entry.get("id")): str(entry.get("reason") or NOT_AVAILABLE)
                for entry in self.document.get("not_run") or [] if isinstance(entry, Mapping)}

    @property
    def cpu(self) -> dict:
        """The run's CPU, as its environment recorded it."""
        return (self.document.get("environment") or {}).get("cpu") or {}


def _cpu_models(document: Mapping[str, Any]) -> frozenset[str]:
    """The CPU models of the run's environment and of every environment its cases name."""
    environments = document.get("environments") or {}
    used = [environments.get(case.get("environment")) for case in document.get("cases") or []]
    return frozenset(str(env["cpu"]["model"]) for env in [document.get("environment"), *used]
                     if isinstance(env, Mapping) and isinstance(env.get("cpu"), Mapping)
                     and env["cpu"].get("model"))


def _testbed_of(env: Any) -> str | None:
    """The testbed of a recorded environment, None when unknown (as ``bench.publish.testbed_of``,
    which this module cannot import: bench.publish imports the report)."""
    if not isinstance(env, Mapping) or not env:
        return None
    try:
        return environment.testbed_name(dict(env))
    except ValueError:  # a machine the testbed table has no row for
        return None


def _testbed(document: Mapping[str, Any], path: str) -> str:
    """The one testbed the file was measured on.

    Raises:
        ReportError: The file names no testbed, or its cases come from CPUs of several testbeds.
    """
    testbed = document.get("testbed") or _testbed_of(document.get("environment"))
    if not testbed:
        raise ReportError(f"{path} names no testbed and its environment matches no row of "
                          "bench/testbeds.py; pass a results.json written by this version of the bench")
    environments = document.get("environments") or {}
    measured_on = {_testbed_of(environments.get(case.get("environment")))
                   for case in document.get("cases") or []} - {None}
    if len(measured_on) > 1:
        raise ReportError(f"{path} holds cases measured on several testbeds ({', '.join(sorted(measured_on))}); "
                          "pass one results.json per testbed")
    return testbed


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Reads the results files and checks that they can be set side by side.

    Args:
        paths: Two or more ``results.json``, each of one testbed (a whole run, or its merged shards).

    Returns:
        The runs, in the order given.

    Raises:
        ReportError: Fewer than two files; a file that cannot be read or names no single testbed;
            files of different tiers, data sets or test-set sizes; two files of the same testbed
            and CPU model (the same kind of machine twice: use ``bench.report compare``).
    """
    if len(paths) < MIN_RUNS:
        raise ReportError(f"across needs at least {MIN_RUNS} results files, one per testbed; got {len(paths)}")
    loaded = []
    for path in paths:
        document = load_results(path)
        loaded.append((str(path), document, _testbed(document, str(path)), _cpu_models(document)))
    first_path, first = loaded[0][0], loaded[0][1]
    for path, document, _, _ in loaded[1:]:
        for field, what in (("tier", "tier"), ("dataset_sha256", "data set"), ("n_test", "number of test images")):
            if document.get(field) != first.get(field):
                raise ReportError(
                    f"{path} and {first_path} differ in their {what} ({document.get(field)!r} against "
                    f"{first.get(field)!r}): only runs of the same tier on the same test images can be "
                    "compared image by image; pass results files of one tier")
    for (path_a, _, testbed_a, cpus_a), (path_b, _, testbed_b, cpus_b) in itertools.combinations(loaded, 2):
        if testbed_a == testbed_b and (cpus_a & cpus_b or not (cpus_a and cpus_b)):
            shared = ", ".join(sorted(cpus_a & cpus_b)) or "an unrecorded CPU model"
            raise ReportError(
                f"{path_a} and {path_b} were both measured on testbed {testbed_a} ({shared}): this report "
                "sets different testbeds, or CPU models, side by side; compare two runs of one machine with "
                f"`python -m bench.report compare {path_a} {path_b}`, or merge the shards of one run "
                "with `python -m bench.merge`")
    counts = {testbed: sum(1 for _, _, name, _ in loaded if name == testbed) for _, _, testbed, _ in loaded}
    seen: dict[str, int] = {}
    runs = []
    for path, document, testbed, cpus in loaded:
        seen[testbed] = seen.get(testbed, 0) + 1
        label = testbed if counts[testbed] == 1 else f"{testbed} ({seen[testbed]})"
        runs.append(Run(label, testbed, path, document, cpus))
    return runs


# --------------------------------------------------------------------------------------------
# Image by image


def _per_image(run: Run, case: Mapping[str, Any], field: str, n: int) -> np.ndarray:
    """The case's per-image record ``field`` (``predictions`` or ``correct_bits``) of ``n`` images.

    Raises:
        ReportError: The record cannot be the record of ``n`` images; names the file and case.
    """
    unpack = evidence.unpack_predictions if field == "predictions" else evidence.unpack
    try:
        return unpack(case[field], n)
    except evidence.EvidenceError as exc:
        raise ReportError(f"{run.path}: case {case['id']}: its per-image record {field!r} {exc}; the file "
                          "is damaged: rerun the bench on that testbed") from None


def _image_count(run: Run, case: Mapping[str, Any]) -> int | None:
    n = case.get("n_test", run.document.get("n_test"))
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def image_agreement(a: Run, case_a: Mapping[str, Any], b: Run, case_b: Mapping[str, Any]) -> dict | None:
    """How many test images the two cases answered alike.

    Returns:
        ``{"basis", "n", "agree", "differ", "agreement"}``: ``basis`` is :data:`BASIS_TOP1` when
        both sides kept their predictions, else :data:`BASIS_OUTCOME` (right/wrong per image, an
        upper bound of the top-1 agreement). None when a side kept neither, or the image counts differ.

    Raises:
        ReportError: A per-image record is damaged.
    """
    n = _image_count(a, case_a)
    if n is None or n != _image_count(b, case_b):
        return None
    for field, basis in (("predictions", BASIS_TOP1), ("correct_bits", BASIS_OUTCOME)):
        if field in case_a and field in case_b:
            agree = int(np.sum(_per_image(a, case_a, field, n) == _per_image(b, case_b, field, n)))
            return {"basis": basis, "n": n, "agree": agree, "differ": n - agree, "agreement": agree / n}
    return None


def file_relation(case_a: Mapping[str, Any], case_b: Mapping[str, Any]) -> str | None:
    """Whether the two cases ran the same file, and if not, why not; None when a side has no hash.

    Returns:
        :data:`SAME_FILE`, :data:`CPU_FITTING_RECIPE` (the int8 formats differ: each testbed's
        recipe), :data:`OTHER_RECIPE` or :data:`SAME_RECIPE`.
    """
    sha_a, sha_b = case_a.get("artifact_sha256"), case_b.get("artifact_sha256")
    if not sha_a or not sha_b:
        return None
    if sha_a == sha_b:
        return SAME_FILE
    if case_a.get("int8_format") != case_b.get("int8_format"):
        return CPU_FITTING_RECIPE
    if case_a.get("recipe_hash") != case_b.get("recipe_hash"):
        return OTHER_RECIPE
    return SAME_RECIPE


# --------------------------------------------------------------------------------------------
# The weights behind the files


def _uses_qat(mode: str) -> bool:
    """Whether the mode's file comes from the QAT model (unregistered modes: from the float one)."""
    from bench.modes import MODES

    try:
        return MODES.get(mode).uses_qat
    except UnknownNameError:
        return False


def _model_info(run: Run, model: str) -> Mapping[str, Any]:
    info = (run.document.get("models") or {}).get(model)
    return info if isinstance(info, Mapping) else {}


def _files_of(run: Run, model: str, qat: bool) -> dict[str, dict]:
    """Backend -> the model's case whose file holds the float weights (float32) or the QAT ones."""
    files = {}
    for case in run.cases.values():
        case_model, mode, backend = case_parts(case)
        if case_model == model and (_uses_qat(mode) if qat else mode == FLOAT_WEIGHTS_MODE):
            files[backend] = case
    return files


def _stage_verdict(a: Run, b: Run, model: str, qat: bool) -> tuple[str, str]:
    """Whether the float (or QAT) weights of ``model`` are the same in both runs: (verdict, evidence).

    In order: recorded weights digests decide; recorded model keys that differ mean separate
    training; an identical file that stores the weights (float32; for QAT, a QAT file) means the
    same weights. Nothing else tells (see :data:`FLOAT_KEY_FIELD` and :data:`FLOAT_WEIGHTS_MODE`).
    """
    info_a, info_b = _model_info(a, model), _model_info(b, model)
    digest_field, key_field = (QAT_DIGEST_FIELD, QAT_KEY_FIELD) if qat else (FLOAT_DIGEST_FIELD, FLOAT_KEY_FIELD)
    digest_a, digest_b = info_a.get(digest_field), info_b.get(digest_field)
    if digest_a and digest_b:
        return (WEIGHTS_SAME, "weights digests match") if digest_a == digest_b else \
            (WEIGHTS_SEPARATE, "weights digests differ")
    key_a, key_b = info_a.get(key_field), info_b.get(key_field)
    if key_a and key_b and key_a != key_b:
        return WEIGHTS_SEPARATE, "model keys differ"
    files_a, files_b = _files_of(a, model, qat), _files_of(b, model, qat)
    identical = [backend for backend in sorted(files_a.keys() & files_b.keys())
                 if file_relation(files_a[backend], files_b[backend]) == SAME_FILE]
    if identical:
        return WEIGHTS_SAME, f"identical {QAT_WEIGHTS_MODE if qat else FLOAT_WEIGHTS_MODE} file: {', '.join(identical)}"
    if key_a and key_b:
        return WEIGHTS_UNKNOWN, "model keys match, but no digest or identical file shows the weights"
    return WEIGHTS_UNKNOWN, "no weights digest or key recorded, and no identical file"


def weights_verdict(a: Run, b: Run, model: str) -> dict:
    """Whether ``model``'s trained weights are the same in both runs, float and QAT.

    Returns:
        ``{"model", "float", "qat", "evidence", "source", "note", "qat_note"}``: ``float`` and
        ``qat`` are :data:`WEIGHTS_SAME`, :data:`WEIGHTS_SEPARATE` or :data:`WEIGHTS_UNKNOWN`
        (QAT fine-tunes the float model, so separate float weights make the QAT ones separate
        too); ``evidence`` says why, per stage; ``source`` is the weights' origin both runs
        recorded alike (:data:`WEIGHTS_SOURCE_FIELD`), else None; the notes are the table's words.
    """
    float_verdict, float_evidence = _stage_verdict(a, b, model, qat=False)
    qat_verdict, qat_evidence = _stage_verdict(a, b, model, qat=True)
    if float_verdict == WEIGHTS_SEPARATE:
        qat_verdict, qat_evidence = WEIGHTS_SEPARATE, "fine-tuned from other float weights"
    sources = [_model_info(run, model).get(WEIGHTS_SOURCE_FIELD) for run in (a, b)]
    sources = [source for source in sources if isinstance(source, str) and source]
    source = sources[0] if len(sources) == 2 and sources[0] == sources[1] else None
    return {"model": model, "float": float_verdict, "qat": qat_verdict,
            "evidence": {"float": float_evidence, "qat": qat_evidence},
            "source": source, "note": _weights_note(float_verdict, source, float_evidence),
            "qat_note": _weights_note(qat_verdict, source, qat_evidence)}


def _weights_note(verdict: str, source: str | None, because: str) -> str:
    if verdict == WEIGHTS_SAME:
        return f"same weights ({source})" if source else f"same weights ({because})"
    if verdict == WEIGHTS_SEPARATE:
        return f"weights trained separately ({because}): differences include training"
    return f"weights not compared ({because})"


# --------------------------------------------------------------------------------------------
# The document


def _kept(case: Mapping[str, Any]) -> dict:
    return {field: case[field] for field in CASE_FIELDS if field in case}


def _testbed_entry(run: Run) -> dict:
    cpu = run.cpu
    run_ids = {run.document.get("run_id")} | {(case.get("measured_by") or {}).get("run_id")
                                              for case in run.cases.values()}
    try:
        int8_sums = testbeds.get(run.testbed).int8_sums
    except UnknownNameError:
        int8_sums = None
    return {"label": run.label, "testbed": run.testbed, "source": run.path,
            "cpu_model": cpu.get("model"), "cpu_models": sorted(run.cpu_models), "cores": cpu.get("cores"),
            "cpu_flags": sorted(name for name, present in (cpu.get("flags") or {}).items() if present),
            "int8_sums": int8_sums, "run_id": run.document.get("run_id"),
            "run_ids": sorted(run_id for run_id in run_ids if run_id),
            "created": run.document.get("created"), "command": run.document.get("command")}


def across_document(runs: Sequence[Run]) -> dict:
    """The cross-testbed document (schema :data:`ACROSS_SCHEMA`) of runs checked by :func:`load_runs`.

    Raises:
        ReportError: A per-image record is damaged.
    """
    ids = sort_case_ids({cid for run in runs for cid in [*run.cases, *run.not_run]})
    cases = []
    for cid in ids:
        on = {}
        for run in runs:
            if cid in run.cases:
                on[run.label] = _kept(run.cases[cid])
            elif cid in run.not_run:
                on[run.label] = {"not_run": run.not_run[cid]}
        model, mode, backend = case_parts({"id": cid})
        cases.append({"id": cid, "model": model, "mode": mode, "backend": backend, "on": on})
    pairs, weights = [], []
    for a, b in itertools.combinations(runs, 2):
        models = sorted({case_parts(case)[0] for case in a.cases.values()}
                        & {case_parts(case)[0] for case in b.cases.values()},
                        key=model_order_key)
        verdicts = {model: weights_verdict(a, b, model) for model in models}
        weights += [{"a": a.label, "b": b.label, **verdict} for verdict in verdicts.values()]
        for cid in ids:
            case_a, case_b = a.cases.get(cid), b.cases.get(cid)
            if not (case_a and case_b and is_number(case_a.get("accuracy")) and is_number(case_b.get("accuracy"))):
                continue
            model, mode, _ = case_parts(case_a)
            kind = file_relation(case_a, case_b)
            stage = "qat" if _uses_qat(mode) else "float"
            pairs.append({"case": cid, "a": a.label, "b": b.label,
                          "images": image_agreement(a, case_a, b, case_b),
                          "accuracy_change_pp": round(100 * (case_b["accuracy"] - case_a["accuracy"]), ROUND_PP),
                          "file": kind, "int8_format": [case_a.get("int8_format"), case_b.get("int8_format")],
                          "weights": verdicts[model][stage],
                          "weights_note": verdicts[model]["qat_note" if stage == "qat" else "note"]})
    first = runs[0].document
    return {"schema": ACROSS_SCHEMA, "tier": first.get("tier"), "dataset_sha256": first.get("dataset_sha256"),
            "n_test": first.get("n_test"), "testbeds": [_testbed_entry(run) for run in runs],
            "cases": cases, "pairs": pairs, "weights": weights}
