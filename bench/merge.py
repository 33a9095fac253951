"""``python -m bench.merge``: the shards of one run combined into that run's results.

Command line::

    python -m bench.merge --out DIR RESULTS_JSON... [--baselines FILE] [--root DIR]

Each ``RESULTS_JSON`` is the results.json of one shard (``pytest --pyargs bench.cases --shard K/N
--reports-dir D``, :mod:`bench.shard`). The merge writes ``DIR/<tier>/results.json`` and
``REPORT.md`` (atomically; never over a file that is not a merge's output) and prints the verdicts
and failures as the bench's own summary does. A single results.json of a whole run (no ``shard``)
is taken as it is, so a pipeline can call the merge whether or not it sharded.

Exit status: 0 when every gate passed; 1 when one failed (a case, a check run here, or a shard
that ended with failed tests or a non-zero status); 2 when the inputs cannot be merged: a file
that is not a shard's results, shards of different tiers, plans (selection, N, unit, assignment),
testbeds, data sets, baselines or case counts, a shard missing or given twice, a case in two
shards, a shard that did not finish, or rows an earlier run left in a shard's folder.

What the merge does beyond putting the shards' rows together:

- It re-judges every case against the baselines file the shards named, with the per-case alpha of
  the whole run's case count (``stats.per_case_alpha``), which every shard also used: a shard's
  own smaller count never decides a verdict. The re-judged images must be those the shard saw
  (same lost and gained images), or the baselines file changed since the shards ran.
- It runs the cross-case checks the split left to it (``shard.deferred``): backend agreement
  between backends that ran in different shards, from the cases' per-image ``predictions``, with
  the same floors and gate (``bench.run.pair_floor``, ``gates.agreement_checks``). The largest
  logit difference needs the logits, which shards do not keep: it is recorded as None, and the
  float32 logit tolerance is not checked there (the record says so).
- The worst int8 case's lost images come from the shard that ran it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import atomic, evidence, gates, stats
from bench import baseline as baselines
from bench.agreement_record import AgreementRecord, PairAgreement
from bench.errors import BenchError, ReportError
from bench.merge_inputs import MergeError, checked_shards
from bench.results import BASELINES_DIR, case_id, load_baselines, load_results, sort_cases

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
LOGIT_CHECK_NOTE = ("not made at the merge: shards keep each image's top-1 class, not the logits; the "
                    "float32 logit tolerance is checked where one run has every backend")


@dataclasses.dataclass
class Merged:
    """The merged results and what failed.

    Attributes:
        results: The merged results document.
        failures: Failures of cross-case checks: those the shards recorded and those run here.
        shard_problems: One line per shard that ended with failed tests or a non-zero status.
    """

    results: dict
    failures: list[str]
    shard_problems: list[str]

    @property
    def passed(self) -> bool:
        return not (self.failures or self.shard_problems
                    or any(case.get("failures") for case in self.results["cases"])
                    or any(entry.get("fails") for entry in self.results.get("not_run", [])))


def load(paths: Sequence[str | Path]) -> list[tuple[Path, dict]]:
    """Each file read by the results loader (:func:`bench.results.load_results`)."""
    return [(Path(path), load_results(path)) for path in paths]


def merge(inputs: Sequence[tuple[Path, dict]], baselines_file: Path | None = None,
          root: Path | None = None) -> Merged:
    """Combines shards' results into one run's (see the module docstring).

    Args:
        inputs: ``(path, results)`` of each shard, in any order; or one whole run's.
        baselines_file: The baselines file to re-judge against (default: the one the shards name,
            else the same file in ``root``'s baselines/).
        root: The project whose baselines/ is looked in (default: the current folder, where
            ``nox -s merge`` and CI run it; :mod:`bench.project`).

    Raises:
        MergeError: The inputs cannot be merged; the message says which file and what to do.
    """
    if not inputs:
        raise MergeError("no results to merge: give every shard's results.json")
    if len(inputs) == 1 and "shard" not in inputs[0][1]:
        return _whole_run(*inputs[0])
    shards = checked_shards(inputs)
    first = shards[0][1]
    field = first["shard"]
    results = _combined(shards)
    owner = {case["id"]: doc["shard"]["index"] for _, doc in shards for case in doc["cases"]}
    _rejudge(results, field["cases_total"], owner, baselines_file, Path.cwd() if root is None else root)
    failures = [m for _, doc in shards for m in doc["shard"]["outcome"].get("failures", [])]
    records, deferred_failures = _deferred_checks(results, field["deferred"], field["selection"]["backends"])
    results["agreement"] = sorted(results["agreement"] + records, key=lambda a: f"{a['model']}-{a['mode']}")
    results["merged"] = {
        "plan": field["plan"], "total": field["total"], "by": field["by"], "cases_total": field["cases_total"],
        "deferred": field["deferred"],
        "shards": [{"index": doc["shard"]["index"], "path": str(path), "run_id": doc.get("run_id"),
                    "created": doc.get("created"), "command": doc.get("command"), "units": doc["shard"]["units"],
                    "outcome": doc["shard"]["outcome"]} for path, doc in shards],
    }
    problems = [_shard_problem(doc["shard"]) for _, doc in shards]
    return Merged(results, list(dict.fromkeys(failures + deferred_failures)), [p for p in problems if p])


def _whole_run(path: Path, document: dict) -> Merged:
    """A single whole run, taken as it is: its verdicts were judged with its own whole count."""
    results = dict(document)
    results["merged"] = {"total": 1, "by": None, "plan": None, "deferred": [],
                         "shards": [{"index": 1, "path": str(path), "run_id": document.get("run_id"),
                                     "created": document.get("created"), "command": document.get("command")}]}
    failures = [m for a in document.get("agreement", []) for m in a.get("failures", [])]
    return Merged(results, failures, [])


def _shard_problem(field: dict) -> str | None:
    outcome = field["outcome"]
    failed = outcome.get("failed_tests") or []
    if not failed and not outcome.get("exitstatus"):
        return None
    tests = f": {len(failed)} failed ({', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''})" if failed else ""
    return f"shard {field['index']}/{field['total']} ended with exit status {outcome.get('exitstatus')}{tests}"


# --------------------------------------------------------------------------------------------
# Combining


def _combined(shards: list[tuple[Path, dict]]) -> dict:
    """One results document of the shards' rows, ordered as a single run orders them."""
    from bench.publish import sort_portability

    docs = [doc for _, doc in shards]
    first = docs[0]
    cases = sort_cases(case for doc in docs for case in doc["cases"])
    environments: dict = {}
    for doc in docs:
        environments.update(doc.get("environments") or {})
    models: dict = {}
    for doc in docs:  # a model ran in several shards: the first shard's figures, others' extra fields
        for name, summary in (doc.get("models") or {}).items():
            models[name] = {**summary, **models.get(name, {})}
    harness: dict = {}
    for doc in docs:
        for name, value in (doc.get("harness") or {}).items():
            both = isinstance(value, dict) and isinstance(harness.get(name), dict)
            harness[name] = {**harness[name], **value} if both else harness.get(name, value)
    layer_errors = {k: v for doc in docs for k, v in (doc.get("layer_errors") or {}).items()}
    results = {
        **{k: v for k, v in first.items() if k != "shard"},
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "run_id": uuid.uuid4().hex,
        "dataset_sha256": next((d["dataset_sha256"] for d in docs if d.get("dataset_sha256")), None),
        "n_test": next((d["n_test"] for d in docs if d.get("n_test")), None),
        "environments": {k: v for k, v in environments.items() if k in {c.get("environment") for c in cases}}
        or environments,
        "models": models,
        "cases": cases,
        "not_run": sort_cases(entry for doc in docs for entry in doc.get("not_run", [])),
        "harness": harness,
        "agreement": [a for doc in docs for a in doc.get("agreement", [])],
        "layer_errors": {k: layer_errors[k] for k in sorted(layer_errors)},
        "portability": sort_portability([row for doc in docs for row in doc.get("portability", [])]),
        "lost_images": _lost_images(cases, docs),
    }
    return results


def _lost_images(cases: list[dict], docs: list[dict]) -> dict | None:
    """The lost images of the run's worst int8 case (as ``bench.lost_images.lost_images`` picks it), from
    the shard that ran it (each shard drew its own worst case's)."""
    from bench.modes import MODES

    int8 = [c for c in cases if c.get("images_lost") and c["mode"] in MODES and MODES.get(c["mode"]).integer]
    if not int8:
        return None
    worst = max(int8, key=lambda r: (r["accuracy_drop_pp"], r["id"]))
    return next((doc["lost_images"] for doc in docs
                 if (doc.get("lost_images") or {}).get("case") == worst["id"]), None)


# --------------------------------------------------------------------------------------------
# Judging again


def _baselines_path(recorded: dict, override: Path | None, root: Path) -> Path:
    """The baselines file to re-judge against: ``override``, the path the shards recorded, or the
    same file in the project's baselines/ (shards run in other folders or on other machines)."""
    if override is not None:
        if not Path(override).is_file():
            raise MergeError(f"--baselines {override} does not exist: give the baselines file the shards judged against")
        return Path(override)
    named = Path(str(recorded.get("path")))
    here = Path(root) / BASELINES_DIR / named.parent.name / named.name
    for candidate in (named, here):
        if candidate.is_file():
            return candidate
    raise MergeError(f"cannot re-judge the verdicts: the baselines file the shards judged against, {named}, is not "
                     f"here (nor {here}); pass it with --baselines FILE")


def _rejudge(results: dict, cases_total: int, owner: dict[str, int], override: Path | None, root: Path) -> None:
    """Judges every judged case again, with the whole run's per-case alpha, against the baselines
    file; replaces a verdict that differs (and its failure), and refuses a file whose per-image
    record differs from the one the shard judged against."""
    from bench.tiers import get_tier

    judged = [case for case in results["cases"] if case.get("baseline_comparison")]
    if not judged:
        return
    recorded = results.get("baseline") or {}
    path = _baselines_path(recorded, override, root)
    document = load_baselines(path)
    ceiling = get_tier(results["tier"]).verdict_ceiling_pp
    alpha = stats.per_case_alpha(cases_total)
    gated = bool(recorded.get("own"))
    for case in judged:
        cid, comparison = case["id"], case["baseline_comparison"]
        entry = (document or {}).get("cases", {}).get(cid)
        if entry is None or "correct_bits" not in entry:
            raise MergeError(f"{path} has no per-image record of {cid}, which shard {owner[cid]} judged against its "
                             "baselines: the file is not the one the shards read; pass that one with --baselines")
        current = evidence.unpack(case["correct_bits"], case["n_test"])
        verdict = stats.judge(current, baselines.correct_of(path, cid, entry, len(current)), alpha=alpha,
                              ceiling_pp=ceiling, causes=comparison.get("causes") or [])
        if (verdict.lost, verdict.gained) != (comparison.get("lost"), comparison.get("gained")):
            raise MergeError(f"{cid}: against {path} it loses {verdict.lost} and gains {verdict.gained} images, but "
                             f"shard {owner[cid]} judged {comparison.get('lost')} lost and {comparison.get('gained')} "
                             "gained: the baselines file changed since the shards ran; pass the one they read with "
                             "--baselines")
        if verdict.as_dict() == comparison:
            continue
        before = gates.verdict_check(cid, stats.Verdict.from_dict(comparison)).failure
        failures = [m for m in case.get("failures", []) if m != before]
        after = gates.failures([gates.verdict_check(cid, verdict)] if gated else [])
        case.update(baseline_verdict=verdict.verdict, baseline_comparison=verdict.as_dict(),
                    failures=failures + after)
        case["status"] = "failed" if case["failures"] else "passed"


# --------------------------------------------------------------------------------------------
# Checks left to the merge


def _deferred_checks(results: dict, deferred: list[str], backends: list[str]) -> tuple[list[dict], list[str]]:
    """Runs the checks the split left to the merge; returns their records and failures."""
    records, failures = [], []
    for check in deferred:
        kind, _, label = check.partition(":")
        if kind != "agreement":
            raise MergeError(f"the shards left a check this version cannot run at the merge ({check}): merge with "
                             "the version of the harness that ran them")
        model, mode = label.split("-")
        record, problem = agreement_from_predictions(results, model, mode, backends)
        if record is not None:
            records.append(record)
            failures += record["failures"]
        if problem:
            failures.append(problem)
    return records, failures


def agreement_from_predictions(results: dict, model: str, mode: str,
                               backends: Sequence[str]) -> tuple[dict | None, str | None]:
    """Backend agreement of ``model`` in ``mode``, as ``BenchRun.agreement`` computes it, from the
    cases' per-image top-1 ``predictions`` instead of the logits.

    Returns:
        ``(record, problem)``: the agreement record (None where fewer than two selected backends
        ran the case), and a failure when a backend that should have run it raised instead.

    Raises:
        MergeError: A case without per-image predictions (written before results kept them).
    """
    from bench.modes import REFERENCE_MODE
    from bench.run import pair_floor

    label = f"{model}-{mode}"
    cases = {case["id"]: case for case in results["cases"]}
    errors = [entry for entry in results.get("not_run", []) if entry.get("kind") == "error"
              and entry["id"] in {case_id(model, mode, b) for b in backends}]
    if errors:
        return None, (f"{label}: backend agreement not computed: "
                      + "; ".join(f"{e['id']} did not run ({e['reason']})" for e in errors))
    ran = {b: cases[cid] for b in backends if (cid := case_id(model, mode, b)) in cases}
    if len(ran) < 2:
        return None, None
    predicted = {}
    for backend, case in ran.items():
        if "predictions" not in case:
            raise MergeError(f"{case['id']} has no per-image predictions: its shard ran a version of the harness "
                             "that did not keep them; rerun the shards with this one")
        predicted[backend] = evidence.unpack_predictions(case["predictions"], case["n_test"])
    pairs = [PairAgreement([a, b], float(np.mean(predicted[a] == predicted[b])), None,
                           pair_floor(results["testbed"], mode, a, b))
             for a, b in itertools.combinations(ran, 2)]
    record = AgreementRecord(model, mode, pairs, accuracy={b: case["accuracy"] for b, case in ran.items()},
                             size_bytes={b: case["size_bytes"] for b, case in ran.items()}, computed_at="merge",
                             logit_check=LOGIT_CHECK_NOTE if mode == REFERENCE_MODE else None)
    # The logit tolerance of the reference mode needs max_abs_logit_diff, which is not known here.
    record.failures = gates.failures(gates.agreement_checks(label, pairs, reference=False))
    return record.as_dict(), None


# --------------------------------------------------------------------------------------------
# Writing and the command line


def write(merged: Merged, out: Path):
    """Writes ``out/<tier>/results.json`` and REPORT.md; returns where (a ``publish.Published``).

    Raises:
        MergeError: The results.json there is not a merge's output (it would be overwritten).
        ReportError: The folder cannot be written.
    """
    from bench import report
    from bench.publish import Published, lock_path

    results_path = Path(out) / merged.results["tier"] / "results.json"
    with atomic.file_lock(lock_path(results_path)):
        if results_path.exists():
            try:
                existing = json.loads(results_path.read_text())
            except (OSError, ValueError):
                existing = None
            if not (isinstance(existing, dict) and "merged" in existing):
                raise MergeError(f"{results_path} exists and is not a merge's output; the merge would overwrite it: "
                                 "choose another --out, or remove the file")
        try:
            atomic.write_json(results_path, merged.results)
        except OSError as exc:
            raise ReportError(f"cannot write {results_path} ({exc.strerror or exc}); pass a writable --out") from None
        report_path = report.write_report(results_path)
    return Published(results_path, report_path, None)


def summary(merged: Merged, published) -> list[str]:
    """The bench's end-of-run summary of the merged results, then the shards' lines."""
    from bench.publish import summary_lines

    lines = summary_lines(merged.results, merged.failures, published)
    info = merged.results.get("merged") or {}
    shards = info.get("shards") or []
    lines += ["", f"quantbench merge: {len(shards)} shard{'s' if len(shards) != 1 else ''}"
                  + (f" by {info['by']} (plan {info['plan']})" if info.get("by") else " (a whole run)")]
    lines += [f"  - shard {s['index']}: {', '.join(s.get('units') or []) or 'whole run'} ({s['path']})" for s in shards]
    if info.get("deferred"):
        lines.append(f"quantbench checked at the merge: {', '.join(info['deferred'])}")
    if merged.shard_problems:
        lines += ["", "quantbench shards that failed:"] + [f"  - {p}" for p in merged.shard_problems]
    lines += ["", "quantbench merge: " + ("passed" if merged.passed else "FAILED")]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.merge",
        description="Combine the results.json of every shard of one run (pytest --pyargs bench.cases --shard K/N) into "
                    "that run's results.json, REPORT.md and verdicts. Exit 1 when a gate failed, 2 when the "
                    "inputs cannot be merged.")
    parser.add_argument("--out", required=True, type=Path, help="folder for <tier>/results.json and REPORT.md")
    parser.add_argument("--baselines", type=Path, default=None,
                        help="the baselines file the shards judged against (default: the path they recorded, "
                             "else the same file in the --root project's baselines/)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the project whose baselines/ holds that file (default: the current folder)")
    parser.add_argument("results", nargs="+", help="each shard's results.json")
    args = parser.parse_args(argv)
    try:
        merged = merge(load(args.results), args.baselines, args.root)
        merged.results["command"] = " ".join(["python -m bench.merge", *(argv if argv is not None else sys.argv[1:])])
        published = write(merged, args.out)
    except BenchError as exc:
        print(f"quantbench merge: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\n".join(summary(merged, published)))
    return EXIT_PASSED if merged.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
