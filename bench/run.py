"""One bench run: the builder, the record, and the judgement of each case against its baseline.

:class:`BenchRun` asks the :class:`bench.build.Builder` for logits and artifacts, measures each
case, applies the gates of :mod:`bench.gates` (judging it against its baseline with
:mod:`bench.stats`) and keeps what it found in the
:class:`bench.record.RunRecord`. A case run twice (a cross-case test asks for it again) is
measured once: the builder memoizes logits and artifacts, so asking again only re-judges. The
run owns what is measured of the builder's work: the :class:`bench.timings.Timings` that the
builder marks its conversions and evaluations in, and each case's batch invariance
(:mod:`bench.batch_invariance`).

Running and judging is all it does: a case's result is a :class:`bench.case_record.CaseRecord`;
the portability experiment is :mod:`bench.portability`, the lost-images gallery
:mod:`bench.lost_images`, and the results document :mod:`bench.run_document` (the run keeps a
thin :meth:`BenchRun.portability` and :meth:`BenchRun.document` for the callers that hold the
run as one object: the case module, through its fixture, and :mod:`bench.publish`).
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from pathlib import Path

import numpy as np

from bench import baseline as baselines
from bench import (
    batch_invariance,
    environment,
    evidence,
    gates,
    metrics,
    portability,
    provenance,
    results,
    run_document,
    stats,
    testbeds,
)
from bench.agreement_record import AgreementRecord, PairAgreement
from bench.backends import BACKENDS
from bench.build import Builder
from bench.cache import Cache, file_sha256, log
from bench.case_record import CaseRecord
from bench.errors import BaselineError
from bench.modes import MODES, REFERENCE_MODE
from bench.record import RunRecord
from bench.results import case_id
from bench.selection import Selection
from bench.tiers import Tier
from bench.timings import Timings


@dataclasses.dataclass
class Options:
    """What the user selected on the command line."""

    tier: Tier
    models: list[str]
    modes: list[str]
    backends: list[str]
    root: Path
    reports_dir: Path
    calibration_method: str = "MinMax"
    update_baselines: bool = False
    strict_env: bool = False
    command: str = ""
    # Folder of the <tier>.json baselines to judge against and update, taken as this testbed's
    # own; None: <root>/baselines/<testbed>/.
    baselines_dir: Path | None = None
    # The testbed whose recipes and baselines apply; None: this CPU's, as CPUID shows it.
    testbed: str | None = None
    # --accept: case id -> why its regressed or failed result may replace its baseline entry.
    accepts: dict[str, str] = dataclasses.field(default_factory=dict)
    # Names the run in results.json; pytest-xdist workers of one run share it (their rows are
    # one run's, not an earlier run's, when they merge into one results.json).
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    def testbed_name(self) -> str:
        return self.testbed or testbeds.current().name

    def own_baseline_path(self) -> Path:
        """This testbed's baselines file of the tier (written by --update-baselines)."""
        if self.baselines_dir is not None:
            return Path(self.baselines_dir) / f"{self.tier.name}.json"
        return results.baseline_path(self.root, self.tier.name, self.testbed_name())

    def baseline_path(self) -> Path:
        """The baselines file the run is judged against: this testbed's own, else the nearest
        testbed's that exists (``bench.testbeds``: its verdicts are shown, never failing)."""
        own = self.own_baseline_path()
        if self.baselines_dir is not None or self.update_baselines or own.exists():
            return own
        recorded = results.recorded_testbeds(self.root, self.tier.name)
        nearest = testbeds.nearest_with(testbeds.get(self.testbed_name()), recorded)
        return results.baseline_path(self.root, self.tier.name, nearest.name) if nearest else own


def declared_cases(options: Options) -> list[tuple[str, str, str]]:
    """The selected cases that no mode or tier declares unsupported: :meth:`Selection.declared`.

    Kept for :mod:`bench.shard`, which asks for them by this name; the plan, the run and
    publishing ask the :class:`bench.selection.Selection` itself.
    """
    return Selection.of(options).declared()


def pair_floor(testbed: str, mode: str, a: str, b: str) -> float | None:
    """The mode's agreement floor for backends ``a`` and ``b``, lowered where a backend's recipe on
    ``testbed`` puts the weights on another grid (``Backend.agreement_floor``). Also used by the
    merge of shards (bench.merge), which computes agreement from their predictions."""
    floor = MODES.get(mode).pair_agreement_floor(a, b)
    declared = [f(testbeds.get(testbed), mode)
                for f in (BACKENDS.get(a).agreement_floor, BACKENDS.get(b).agreement_floor) if f]
    lower = [x for x in declared if x is not None]
    return min([floor, *lower]) if floor is not None and lower else floor


class BenchRun:
    """One run; see the module docstring.

    Args:
        options: What the user selected.
        cache: The on-disk cache (default: the user's cache folder).
    """

    def __init__(self, options: Options, cache: Cache | None = None) -> None:
        self.options = options
        self.tier = options.tier
        self.selection = Selection.of(options)
        # Seconds each case's file took to convert and to evaluate: measured while the builder works.
        self.timings = Timings()
        self.build = Builder(options.tier, options.calibration_method, cache,
                             testbeds.get(options.testbed_name()), self.timings)
        self.weights = provenance.WeightsRecord(self.build)
        fingerprint = environment.fingerprint(options.backends, options.root)
        self.environment = fingerprint
        self.record = RunRecord(options.tier.name, options.command, fingerprint,
                                environment.fingerprint_id(fingerprint))
        self.testbed = options.testbed_name()
        self.baseline = self._load_baseline()
        self.baseline_testbed = (self.baseline or {}).get("testbed")
        # Verdicts gate only against this testbed's own baseline; against another testbed's they
        # are shown with the CPU difference as their likely cause (absolute gates still fail).
        # A missing file gates (every case then fails for want of an entry) only where it was
        # asked for by --baselines-dir; a testbed that has none anywhere is told so in one line.
        self.own_baseline = (self.baseline_testbed == self.testbed if self.baseline is not None
                             else self.options.baselines_dir is not None)
        self.record.set_run_info(testbed=self.testbed, baseline=self.baseline_info(),
                                 run_id=options.run_id)
        # Cases the run judges against the baseline: the paired test's correction divides by it.
        # The plugin sets it to the collected cases (after -k and deselection, see
        # count_judged); until then, every runnable selected case.
        self.cases_judged = len(self.runnable_cases())

    def count_judged(self, collected: list[tuple[str, str, str]]) -> int:
        """Sets :attr:`cases_judged` to the collected cases (those of the test items left after
        ``-k`` and deselection) that this run can run, and returns it."""
        runnable = set(self.runnable_cases())
        self.cases_judged = len({case for case in collected if case in runnable})
        return self.cases_judged

    def runnable_cases(self) -> list[tuple[str, str, str]]:
        """The selected (model, mode, backend) cases that this tier and the backends can run
        (:meth:`bench.selection.Selection.runnable`)."""
        return self.selection.runnable()

    def skip_reason(self, model: str, mode: str, backend: str) -> str | None:
        """Why the case is not run (the mode on that backend, or the tier), or None."""
        cause = self.skip_cause(model, mode, backend)
        return cause[0] if cause else None

    def skip_cause(self, model: str, mode: str, backend: str) -> tuple[str, str] | None:
        """Why the case is not run and of which kind, or None.

        Kinds: ``declared`` (the mode or the tier declares the case unsupported: a code change),
        ``capability`` (the backend says this CPU lacks what the mode needs), ``probe`` (the
        backend's start-up probe failed: a crash, not a capability the CPU declares missing).
        """
        reason = self.selection.declared_reason(model, mode, backend)
        if reason:
            return reason, "declared"
        reason = self.selection.unavailable_reason(mode, backend)
        if not reason:
            return None
        probe_failed = "probe_failed" in ((self.environment.get("backends") or {}).get(backend) or {})
        return f"{mode} on {backend} on this machine: {reason}", "probe" if probe_failed else "capability"

    def not_run(self, model: str, mode: str, backend: str, error: str | None = None) -> str | None:
        """Records that a case of the selection did not run; returns why that fails the run, or None.

        Recorded (results.json ``not_run``, shown as "not run: <reason>") when the judged
        baselines have the case, or when it raised (``error``). It fails the run when this
        testbed's own baselines have the case and the reason is not a capability this CPU declares
        missing (``skip_cause`` kind ``capability``): a case must not leave the bench unnoticed.
        An update re-records the baselines, so it never fails for a case that did not run.

        Args:
            model, mode, backend: The case.
            error: The case's error, when it raised instead of being skipped.
        """
        cid = case_id(model, mode, backend)
        entry, _ = self.baseline_entry(cid)
        cause = (f"error: {error}", "error") if error else self.skip_cause(model, mode, backend)
        if cause is None or (entry is None and not error):
            return None
        reason, kind = cause
        failure = None
        if entry is not None and kind != "capability" and self.own_baseline \
                and not self.options.update_baselines:
            fix = ("fix it, or deselect the case (--models/--modes/--backends, -k) if it should not run "
                   "here" if kind != "declared" else
                   f"if it is meant to stop running, remove it with `{results.update_command(self.tier.name, root=self.options.root)}` "
                   "and commit the file")
            failure = (f"{cid}: did not run ({reason}), but {self.options.baseline_path()} expects it; "
                       f"only a capability this CPU declares missing may drop a baseline case: {fix}")
        self.record.add_not_run({"id": cid, "reason": reason, "kind": kind,
                                 "in_baseline": entry is not None, "fails": failure is not None})
        if failure:
            self.record.add_failures([failure])
        return failure

    def baseline_info(self) -> dict:
        """Which baselines file the run is judged against, whose testbed, and one line saying so."""
        path = self.options.baseline_path()
        if self.baseline is None and self.own_baseline:
            note = f"testbed {self.testbed}: {path} does not exist; every case fails for want of an entry"
        elif self.baseline is None:
            note = (f"testbed {self.testbed}: no {self.tier.name} baseline for it or its nearest testbeds "
                    f"({', '.join(testbeds.get(self.testbed).nearest) or 'none'}); verdicts are not judged. "
                    f"Record one with `{results.update_command(self.tier.name, root=self.options.root)}`")
        elif self.own_baseline:
            note = f"testbed {self.testbed}: judged against its own baseline {path}"
        else:
            note = (f"testbed {self.testbed} has no {self.tier.name} baseline of its own: verdicts against "
                    f"the nearest testbed's ({self.baseline_testbed}, {path}) are shown, with the CPU "
                    "difference as their likely cause, and do not fail the run; drop budgets, size floors, "
                    "agreement, batch invariance and QAT against PTQ still do. Record this testbed's with "
                    f"`{results.update_command(self.tier.name, root=self.options.root)}`")
        return {"path": str(path), "testbed": self.baseline_testbed, "own": self.own_baseline, "note": note,
                "history": baselines.trimmed_history((self.baseline or {}).get("history", []))}

    def _load_baseline(self) -> dict | None:
        """The tier's baselines; when updating them, an unreadable file is replaced, not fatal."""
        path = self.options.baseline_path()
        try:
            return results.load_baselines(path)
        except BaselineError as exc:
            if not self.options.update_baselines:
                raise
            log(f"[baseline] {exc}; it will be rewritten from this run")
            return None

    def run_case(self, model: str, mode: str, backend: str) -> CaseRecord:
        """Evaluates one case, applies its gates, records and returns its result."""
        cid = case_id(model, mode, backend)
        labels = self.build.splits.y_test
        logits = self.build.logits(model, mode, backend)
        float_logits = self.build.logits(model, REFERENCE_MODE, backend)
        drop = metrics.paired_drop(float_logits, logits, labels)
        path = self.build.artifact(model, mode, backend)
        size = metrics.size_bytes(path)
        float_size = metrics.size_bytes(self.build.artifact(model, REFERENCE_MODE, backend))
        invariance = batch_invariance.measure(self.build, model, mode, backend)
        invariance["depends_on_batch"] = gates.depends_on_batch(invariance)
        correct = evidence.correct(logits, labels)
        record = CaseRecord(
            id=cid,
            model=model,
            mode=mode,
            backend=backend,
            accuracy=metrics.accuracy(logits, labels),
            float_accuracy=metrics.accuracy(float_logits, labels),
            accuracy_drop_pp=drop.drop_pp,
            drop_ci95_pp=list(drop.ci95_pp),
            mcnemar_p=drop.mcnemar_p,
            images_lost=drop.lost,
            images_gained=drop.gained,
            size_bytes=size,
            float_size_bytes=float_size,
            size_ratio=float_size / size,
            params=int(self.build.trained(model).model.count_params()),
            n_test=int(len(labels)),
            recipe_hash=self.build.recipe_hash(model, mode, backend),
            int8_format=self.build.int8_format(mode, backend),
            artifact_sha256=file_sha256(path),
            eval_batch=invariance["eval_batch"],
            batch_invariance=invariance,
            correct_bits=evidence.pack(correct),
            predictions=evidence.pack_predictions(evidence.predictions(logits)),
            environment=self.record.environment_id,
        )
        failures = gates.failures([
            *gates.case_checks(self.tier, MODES.get(mode), record.as_dict()),
            gates.batch_dependence_check(cid, invariance, MODES.get(mode).batch_dependence(backend)),
        ])
        record.baseline_verdict, record.baseline_comparison = self._judge(record, correct, failures)
        record.status = "failed" if failures else "passed"
        record.failures = failures
        self.record.add_case(record)
        return record

    def baseline_entry(self, cid: str) -> tuple[dict | None, dict]:
        """A case's baseline entry (None without one) and the environment it was measured in."""
        entry = (self.baseline or {}).get("cases", {}).get(cid)
        recorded = (self.baseline or {}).get("environments", {}).get(entry["environment"], {}) if entry else {}
        return entry, recorded

    def _judge(self, record: CaseRecord, correct: np.ndarray, failures: list[str]) -> tuple[str, dict | None]:
        """The case against its baseline entry: the verdict and its details (None without an
        entry to judge against), and the baseline's failures added to
        ``failures``. Computed on every run; differences of environment or case definition are
        reported beside it as causes, never instead of it."""
        cid = record.id
        path = self.options.baseline_path()
        entry, recorded_env = self.baseline_entry(cid)
        gated = self.own_baseline and not self.options.update_baselines
        if entry is None:
            if gated:
                failures.append(
                    f"{cid}: no baseline entry in {path}; create it with "
                    f"`{results.update_command(self.tier.name, [record.model], root=self.options.root)}` and commit the file"
                )
            return "no_baseline", None
        if "correct_bits" not in entry:
            if gated:
                failures.append(
                    f"{cid}: the baseline entry in {path} has no per-image record (correct_bits), so "
                    f"the case cannot be judged; re-record it with "
                    f"`{results.update_command(self.tier.name, [record.model], root=self.options.root)}`"
                )
            return "no_baseline", None
        env_changes = environment.differences(recorded_env, self.environment)
        causes = list(env_changes)
        if not self.own_baseline:
            causes.insert(0, f"testbed {self.baseline_testbed} (baseline) -> {self.testbed} (this CPU); "
                             "shown, not gated")
        if self.baseline.get("dataset_sha256") != self.build.dataset.sha256:
            causes.append("data set hash differs from the baseline's")
        definition_changed = entry.get("recipe_hash") != record.recipe_hash
        if definition_changed:
            causes.append("case definition (recipe hash) changed")
        if entry.get("artifact_sha256") and entry["artifact_sha256"] != record.artifact_sha256:
            causes.append("artifact bytes differ from the baseline's")
        verdict = stats.judge(
            correct, baselines.correct_of(path, cid, entry, len(correct)),
            alpha=stats.per_case_alpha(self.cases_judged), ceiling_pp=self.tier.verdict_ceiling_pp,
            causes=causes,
        )
        if self.options.update_baselines and verdict.verdict == "regressed" and cid not in self.options.accepts:
            # Against the very file the update writes (baseline_path is the own file when updating).
            failures.append(baselines.refusal_message(cid, verdict.summary(), path))
        if gated:
            exact = not (env_changes or definition_changed)
            failures.extend(gates.failures([
                gates.verdict_check(cid, verdict),
                gates.baseline_size_check(cid, record.size_bytes, entry["size_bytes"],
                                          None if exact else self.tier.size_tolerance),
                *([gates.strict_env_check(cid, env_changes)] if self.options.strict_env else []),
            ]))
        return verdict.verdict, verdict.as_dict()

    def _pair_floor(self, mode: str, a: str, b: str) -> float | None:
        return pair_floor(self.testbed, mode, a, b)

    def agreement(self, model: str, mode: str) -> AgreementRecord | None:
        """Top-1 agreement and largest logit difference between every pair of backends, gated.

        Returns:
            The agreement record with its ``failures``, or None where fewer than two selected
            backends run the case.
        """
        runnable = [b for b in self.options.backends if not self.skip_reason(model, mode, b)]
        if len(runnable) < 2:
            return None
        labels = self.build.splits.y_test
        pairs = []
        for a, b in itertools.combinations(runnable, 2):
            la, lb = self.build.logits(model, mode, a), self.build.logits(model, mode, b)
            pairs.append(PairAgreement([a, b], metrics.agreement(la, lb), metrics.max_abs_diff(la, lb),
                                       self._pair_floor(mode, a, b)))
        record = AgreementRecord(
            model, mode, pairs,
            accuracy={b: metrics.accuracy(self.build.logits(model, mode, b), labels) for b in runnable},
            size_bytes={b: metrics.size_bytes(self.build.artifact(model, mode, b)) for b in runnable},
        )
        record.failures = gates.failures(gates.agreement_checks(f"{model}-{mode}", pairs,
                                                                reference=mode == REFERENCE_MODE))
        self.record.add_agreement(model, mode, record.as_dict())
        self.record.add_failures(record.failures)
        return record

    def portability(self, model: str) -> list[dict]:
        """Which of ``model``'s int8 ONNX files run on which other selected ONNX runtime
        (:func:`bench.portability.rows`), recorded for results.json."""
        rows = portability.rows(self.build, self.selection, model)
        self.record.add_portability(model, rows)
        return rows

    def document(self) -> dict:
        """The results document of the cases run so far (:func:`bench.run_document.results_document`)."""
        return run_document.results_document(self.record, self.build, self.weights, self.timings)
