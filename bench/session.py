"""One bench run: the tier's data, the trained models, artifacts, predictions and results.

Everything expensive is computed once per run and memoized here (models are also cached on disk
by :mod:`bench.train`, artifacts by :mod:`bench.cache`), so the order in which pytest runs the
cases does not matter: a case asks for what it needs and gets it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import inspect
import itertools
import time
from pathlib import Path

import numpy as np

from bench import baseline as baselines
from bench import data as data_mod
from bench import environment, evidence, gates, metrics, train
from bench.backends import BACKENDS, get_backend
from bench.cache import Cache, code_hash, file_sha256, key_of, log
from bench.errors import BaselineError
from bench.models import MODELS
from bench.modes import MODES, ExportContext
from bench.tiers import Tier

RESULTS_SCHEMA = 2
# Images per case whose batch-1 logits are compared with the evaluation's (batch invariance):
# the first and last images of the pass (the last evaluation batch is the zero-padded one) and
# a seeded draw of the rest.
INVARIANCE_EDGE, INVARIANCE_DRAWN, INVARIANCE_SEED = 16, 16, 66
# Lost images of the worst int8 case drawn in the report (a 4x4 grid).
LOST_IMAGES_SHOWN = 16
# Largest |logit| difference accepted between two float32 backends. Both run the same float32
# graph; kernels differ in summation order (XNNPACK, MLAS, Eigen), which moves logits of order 10
# by ~1e-5 relative. 1e-3 is two orders above that and far below any real discrepancy (a wrong
# layout or a missing layer moves logits by whole units).
FLOAT_LOGIT_TOLERANCE = 1e-3
# Float32 backends must agree on nearly every image; the residual allows ties broken differently.
FLOAT_AGREEMENT_FLOOR = 0.999
# Quantized backends round differently (XNNPACK vs MLAS requantization, LiteRT's per-channel dense
# vs ORT's), so a few boundary images flip. Measured on the smoke tier (2,000 images): static int8
# and QAT agree on >= 99.55 % (mobilenet ptq_int8 the lowest; 99.95 % since its BatchNorms are
# folded in the ONNX export, vgg16 ptq_int8 99.75 % now the lowest), dynamic range on >= 97.4 %
# (mobilenet: ORT quantizes activations per tensor at run time, LiteRT per row). The floors sit
# below those by about the measured spread, and far above a broken conversion (~10-50 %).
QUANTIZED_AGREEMENT_FLOOR = {"ptq_int8": 0.99, "qat_int8": 0.99, "ptq_dynamic": 0.96}


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
    # Folder of the <tier>.json baselines; None: <root>/baselines.
    baselines_dir: Path | None = None

    def baseline_path(self) -> Path:
        """The tier's baselines file (read for the gates, written by --update-baselines)."""
        if self.baselines_dir is not None:
            return Path(self.baselines_dir) / f"{self.tier.name}.json"
        return baselines.baseline_path(self.root, self.tier.name)


def case_id(model: str, mode: str, backend: str) -> str:
    return f"{model}-{mode}-{backend}"


class BenchSession:
    """The state of one run; see the module docstring."""

    def __init__(self, options: Options, cache: Cache | None = None) -> None:
        self.options = options
        self.tier = options.tier
        self.cache = cache or Cache()
        self.environment = environment.fingerprint()
        self.environment_id = environment.fingerprint_id(self.environment)
        self.baseline = self._load_baseline()
        # Cases the run judges against the baseline: the paired test's correction divides by it.
        self.cases_judged = len(self.runnable_cases())
        self.records: dict[str, dict] = {}
        self.agreements: dict[str, dict] = {}
        # Per-layer quantization error of a case id: [{"layer", "snr_db", "rel_error"}, ...].
        self.layer_errors: dict[str, list[dict]] = {}
        # Timing of a case id: latency_ms_b1, throughput_ips, speedup_vs_float, ...
        self.timings: dict[str, dict] = {}
        # Run-level measurements that belong to no case (harness overhead, speed gate verdict).
        self.harness: dict[str, object] = {}
        self.extra_failures: list[str] = []
        self._dataset = None
        self._splits = None
        self._trained: dict[str, train.Trained] = {}
        self._qat: dict[str, train.Trained] = {}
        self._artifacts: dict[tuple[str, str, str], Path] = {}
        self._logits: dict[tuple[str, str, str], np.ndarray] = {}
        self._inputs: dict[tuple[str, tuple], np.ndarray] = {}

    def runnable_cases(self) -> list[tuple[str, str, str]]:
        """The selected (model, mode, backend) cases that this tier and the backends can run."""
        return [
            (model, mode, backend)
            for model in self.options.models
            for mode in self.options.modes
            for backend in self.options.backends
            if not (MODES.get(mode).skip_reason(backend) or self.tier.skip_reason(model, mode))
        ]

    def _load_baseline(self) -> dict | None:
        """The tier's baselines; when updating them, an unreadable file is replaced, not fatal."""
        path = self.options.baseline_path()
        try:
            return baselines.load(path)
        except BaselineError as exc:
            if not self.options.update_baselines:
                raise
            log(f"[baseline] {exc}; it will be rewritten from this run")
            return None

    # ---- data -------------------------------------------------------------------------------

    @property
    def dataset(self) -> data_mod.FashionMNIST:
        if self._dataset is None:
            self._dataset = data_mod.load()
        return self._dataset

    @property
    def splits(self) -> data_mod.Splits:
        if self._splits is None:
            self._splits = data_mod.split(
                self.dataset,
                val_size=self.tier.val_size,
                train_size=None,
                test_size=self.tier.test_size,
                calibration_size=self.tier.calibration_size,
                seed=self.tier.seed,
            )
        return self._splits

    def inputs(self, which: str, model: str) -> np.ndarray:
        """Model input for the test or calibration images (``which`` = "test" or "calib")."""
        shape = MODELS.get(model).input_shape
        key = (which, shape)
        if key not in self._inputs:
            images = self.splits.x_test if which == "test" else self.splits.x_calib
            self._inputs[key] = data_mod.to_model_input(images, shape)
        return self._inputs[key]

    # ---- models and artifacts ----------------------------------------------------------------

    def trained(self, model: str) -> train.Trained:
        if model not in self._trained:
            self._trained[model] = train.float_model(
                model, self.tier, self.splits, self.dataset.sha256, self.cache
            )
        return self._trained[model]

    def qat(self, model: str) -> train.Trained:
        if model not in self._qat:
            self._qat[model] = train.qat_model(model, self.tier, self.splits, self.trained(model), self.cache)
        return self._qat[model]

    def recipe_hash(self, model: str, mode: str, backend: str) -> str:
        """Hash of everything that defines a case: training recipe, mode code, its settings.

        A baseline recorded under another hash is "not comparable", not a regression.
        """
        spec = MODES.get(mode)
        payload = {"train": self.tier.recipe_hash(model), "mode_source": mode_source_hash(mode, backend)}
        if spec.uses_qat:
            payload["qat"] = self.tier.qat_hash(model)
        if spec.uses_calibration:
            payload["calibration"] = [self.tier.calibration_size, self.options.calibration_method]
        return key_of(payload)

    def artifact(self, model: str, mode: str, backend: str) -> Path:
        """The file of ``model`` in ``mode`` for ``backend``, converted now or taken from the cache."""
        key3 = (model, mode, backend)
        if key3 in self._artifacts:
            return self._artifacts[key3]
        spec = MODES.get(mode)
        exporter = spec.exporter(backend)
        if exporter is None:
            raise ValueError(f"{case_id(*key3)}: {spec.skip_reason(backend)}")
        trained = self.trained(model)
        suffix = BACKENDS[backend].suffix
        key = key_of({
            "float": trained.key,
            # A QAT artifact comes from the QAT model: retraining it must reconvert.
            "qat": train.qat_key(trained.key, self.tier, model) if spec.uses_qat else None,
            "recipe": self.recipe_hash(model, mode, backend),
            "backend": backend,
            "versions": environment.versions(),
        })
        filename = f"model{suffix}"

        def export(folder: Path) -> dict:
            began = time.perf_counter()
            ctx = ExportContext(
                model_name=model,
                input_shape=MODELS.get(model).input_shape,
                float_model=trained.model,
                qat_model=lambda: self.qat(model).model,
                calibration=self.inputs("calib", model),
                float_onnx=lambda: self.artifact(model, "float32", "onnxruntime"),
                calibration_method=self.options.calibration_method,
            )
            exporter(ctx, folder / filename)
            seconds = time.perf_counter() - began
            log(f"[convert] {case_id(*key3)}: {seconds:.1f}s")
            return {"convert_seconds": seconds}

        entry, cached = self.cache.get_or_build(
            "artifacts", f"{model}-{self.tier.name}-{mode}-{backend}", key, export
        )
        if cached:
            log(f"[convert] {case_id(*key3)}: reusing cached artifact {entry / filename}")
        self._artifacts[key3] = entry / filename
        return self._artifacts[key3]

    def runner(self, model: str, mode: str, backend: str, threads: int | None):
        """A freshly loaded artifact on ``threads`` threads (for timing)."""
        return get_backend(backend).load(self.artifact(model, mode, backend), threads=threads)

    def logits(self, model: str, mode: str, backend: str) -> np.ndarray:
        """Test-set logits of one artifact on one backend (memoized)."""
        key3 = (model, mode, backend)
        if key3 not in self._logits:
            path = self.artifact(model, mode, backend)
            runner = get_backend(backend).load(path)
            batch = MODES.get(mode).eval_batch(backend)
            began = time.perf_counter()
            self._logits[key3] = runner.predict(self.inputs("test", model), batch)
            log(f"[eval] {case_id(*key3)}: {len(self.splits.y_test)} images at batch {batch} in "
                f"{time.perf_counter() - began:.1f}s")
        return self._logits[key3]

    def batch_invariance(self, model: str, mode: str, backend: str) -> dict:
        """Batch-1 logits of a sample of images against the same images' logits at batch 256.

        Where the mode declares the backend batch-dependent, its evaluation ran at batch 1, and
        the batched pass is made here only to measure how much the batch would have moved it.
        """
        from bench.backends import EVAL_BATCH

        images = self.inputs("test", model)
        sample = invariance_sample(len(images))
        runner = get_backend(backend).load(self.artifact(model, mode, backend))
        single = np.concatenate([np.asarray(runner.run_batch(images[i:i + 1]), np.float32) for i in sample])
        eval_batch = MODES.get(mode).eval_batch(backend)
        batched = (self.logits(model, mode, backend) if eval_batch == EVAL_BATCH
                   else runner.predict(images, EVAL_BATCH))[sample]
        diff = metrics.max_abs_diff(single, batched)
        return {
            "sample": int(len(sample)),
            "eval_batch": eval_batch,
            "max_abs_logit_diff": diff,
            "top1_changed": int(np.sum(np.argmax(single, 1) != np.argmax(batched, 1))),
            "depends_on_batch": diff > gates.BATCH_INVARIANCE_TOLERANCE,
        }

    # ---- cases -------------------------------------------------------------------------------

    def run_case(self, model: str, mode: str, backend: str) -> dict:
        """Evaluates one case, applies its gates, records and returns its result."""
        cid = case_id(model, mode, backend)
        labels = self.splits.y_test
        logits = self.logits(model, mode, backend)
        float_logits = self.logits(model, "float32", backend)
        drop = metrics.paired_drop(float_logits, logits, labels)
        path = self.artifact(model, mode, backend)
        size = metrics.size_bytes(path)
        float_size = metrics.size_bytes(self.artifact(model, "float32", backend))
        invariance = self.batch_invariance(model, mode, backend)
        correct = evidence.correct(logits, labels)
        record = {
            "id": cid,
            "model": model,
            "mode": mode,
            "backend": backend,
            "accuracy": metrics.accuracy(logits, labels),
            "float_accuracy": metrics.accuracy(float_logits, labels),
            "accuracy_drop_pp": drop.drop_pp,
            "drop_ci95_pp": list(drop.ci95_pp),
            "mcnemar_p": drop.mcnemar_p,
            "images_lost": drop.lost,
            "images_gained": drop.gained,
            "size_bytes": size,
            "float_size_bytes": float_size,
            "size_ratio": float_size / size,
            "params": int(self.trained(model).model.count_params()),
            "n_test": int(len(labels)),
            "recipe_hash": self.recipe_hash(model, mode, backend),
            "artifact_sha256": file_sha256(path),
            "eval_batch": invariance["eval_batch"],
            "batch_invariance": invariance,
            "correct_bits": evidence.pack(correct),
            "environment": self.environment_id,
        }
        failures = gates.case_gates(self.tier, record)
        message = gates.batch_dependence_fails(cid, invariance,
                                               MODES.get(mode).batch_dependent.get(backend))
        if message:
            failures.append(message)
        record.update(self._judge(record, correct, failures))
        record["status"] = "failed" if failures else "passed"
        record["failures"] = failures
        self.records[cid] = record
        return record

    def baseline_entry(self, cid: str) -> tuple[dict | None, dict]:
        """A case's baseline entry (None without one) and the environment it was measured in."""
        entry = (self.baseline or {}).get("cases", {}).get(cid)
        recorded = (self.baseline or {}).get("environments", {}).get(entry["environment"], {}) if entry else {}
        return entry, recorded

    def _float_churn(self, record: dict) -> int | None:
        """Images the case's float32 sibling flipped against its baseline: the model's own churn.

        None for a float32 case (it is its own reference); 0 when the sibling has no usable
        baseline (the strict ceiling then applies; the sibling's own case fails for it).
        """
        if record["mode"] == "float32":
            return None
        sibling = case_id(record["model"], "float32", record["backend"])
        entry, _ = self.baseline_entry(sibling)
        n = record["n_test"]
        if not entry or "correct_bits" not in entry or entry.get("n_test") != n:
            return 0
        now = evidence.correct(self.logits(record["model"], "float32", record["backend"]), self.splits.y_test)
        return int(np.sum(now != baselines.correct_of(self.options.baseline_path(), sibling, entry, n)))

    def _judge(self, record: dict, correct: np.ndarray, failures: list[str]) -> dict:
        """The case against its baseline entry: the verdict, and the baseline's failures added to
        ``failures``. Computed on every run; differences of environment or case definition are
        reported beside it as causes, never instead of it."""
        cid = record["id"]
        path = self.options.baseline_path()
        entry, recorded_env = self.baseline_entry(cid)
        if entry is None:
            if not self.options.update_baselines:
                failures.append(
                    f"{cid}: no baseline entry in {path}; create it with "
                    f"`{baselines.update_command(self.tier.name, [record['model']])}` and commit the file"
                )
            return {"baseline_verdict": "no_baseline", "baseline_comparison": None}
        if "correct_bits" not in entry:
            if not self.options.update_baselines:
                failures.append(
                    f"{cid}: the baseline entry in {path} has no per-image record (correct_bits), so "
                    f"the case cannot be judged; re-record it with "
                    f"`{baselines.update_command(self.tier.name, [record['model']])}`"
                )
            return {"baseline_verdict": "no_baseline", "baseline_comparison": None}
        env_changes = environment.differences(recorded_env, self.environment)
        causes = list(env_changes)
        if self.baseline.get("dataset_sha256") != self.dataset.sha256:
            causes.append("data set hash differs from the baseline's")
        definition_changed = entry.get("recipe_hash") != record["recipe_hash"]
        if definition_changed:
            causes.append("case definition (recipe hash) changed")
        if entry.get("artifact_sha256") and entry["artifact_sha256"] != record["artifact_sha256"]:
            causes.append("artifact bytes differ from the baseline's")
        verdict = gates.judge(
            correct, baselines.correct_of(path, cid, entry, len(correct)),
            alpha=gates.per_case_alpha(self.cases_judged), ceiling_pp=self.tier.verdict_ceiling_pp,
            causes=causes, reference_flips=self._float_churn(record),
        )
        if not self.options.update_baselines:
            exact = not (env_changes or definition_changed)
            for message in (
                gates.verdict_fails(cid, verdict),
                gates.baseline_size_fails(cid, record["size_bytes"], entry["size_bytes"],
                                          None if exact else self.tier.size_tolerance),
                gates.strict_env_fails(cid, env_changes) if self.options.strict_env else None,
            ):
                if message:
                    failures.append(message)
        return {"baseline_verdict": verdict.verdict, "baseline_comparison": verdict.as_dict()}

    def agreement(self, model: str, mode: str) -> dict | None:
        """Top-1 agreement and largest logit difference between every pair of backends."""
        runnable = [b for b in self.options.backends if MODES.get(mode).exporter(b)]
        if len(runnable) < 2 or self.tier.skip_reason(model, mode):
            return None
        labels = self.splits.y_test
        pairs = []
        for a, b in itertools.combinations(runnable, 2):
            la, lb = self.logits(model, mode, a), self.logits(model, mode, b)
            pairs.append({
                "backends": [a, b],
                "top1_agreement": metrics.agreement(la, lb),
                "max_abs_logit_diff": metrics.max_abs_diff(la, lb),
            })
        record = {
            "model": model,
            "mode": mode,
            "pairs": pairs,
            "accuracy": {b: metrics.accuracy(self.logits(model, mode, b), labels) for b in runnable},
            "size_bytes": {b: metrics.size_bytes(self.artifact(model, mode, b)) for b in runnable},
        }
        self.agreements[f"{model}-{mode}"] = record
        return record

    # ---- results -----------------------------------------------------------------------------

    def lost_images(self) -> dict | None:
        """The images the worst int8 case of the run got wrong where float32 got them right.

        Worst: the largest drop against float32 on the same backend. The pixels (28x28 uint8,
        base64) travel in results.json, so the report draws them without the data set.
        """
        int8 = [r for r in self.records.values() if MODES.get(r["mode"]).integer and r["images_lost"]]
        if not int8:
            return None
        worst = max(int8, key=lambda r: (r["accuracy_drop_pp"], r["id"]))
        model, mode, backend = worst["model"], worst["mode"], worst["backend"]
        labels = self.splits.y_test
        predicted = np.argmax(self.logits(model, mode, backend), axis=1)
        float_predicted = np.argmax(self.logits(model, "float32", backend), axis=1)
        lost = np.flatnonzero((float_predicted == labels) & (predicted != labels))[:LOST_IMAGES_SHOWN]
        return {
            "case": worst["id"],
            "float_case": case_id(model, "float32", backend),
            "images_lost": worst["images_lost"],
            "images": [
                {"position": int(i), "label": int(labels[i]), "predicted": int(predicted[i]),
                 "float_predicted": int(float_predicted[i]),
                 "pixels": base64.b64encode(self.splits.x_test[i].astype(np.uint8).tobytes()).decode("ascii")}
                for i in lost
            ],
        }

    def models_summary(self) -> dict:
        summary = {}
        for name, trained in self._trained.items():
            summary[name] = {
                "params": int(trained.model.count_params()),
                "description": MODELS.get(name).description,
                "train_seconds": round(trained.seconds, 1),
                "cached": trained.cached,
                "val_accuracy": trained.val_accuracy,
            }
        return summary

    def results(self) -> dict:
        """The results document (schema 2) of the cases run so far."""
        return {
            "schema": RESULTS_SCHEMA,
            "tier": self.tier.name,
            "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "command": self.options.command,
            "environment": self.environment,
            "environments": {self.environment_id: self.environment},
            "dataset_sha256": self.dataset.sha256 if self._dataset else None,
            "n_test": int(len(self.splits.y_test)) if self._splits else None,
            "models": self.models_summary(),
            "cases": sorted(
                ({**record, **self.timings.get(cid, {})} for cid, record in self.records.items()),
                key=_order,
            ),
            "harness": self.harness,
            "agreement": [self.agreements[k] for k in sorted(self.agreements)],
            "layer_errors": {k: self.layer_errors[k] for k in sorted(self.layer_errors)},
            "lost_images": self.lost_images(),
        }


def invariance_sample(n: int) -> np.ndarray:
    """Sorted indices of the batch-invariance sample of ``n`` test images."""
    edges = set(range(min(n, INVARIANCE_EDGE))) | set(range(max(0, n - INVARIANCE_EDGE), n))
    rest = np.array(sorted(set(range(n)) - edges), dtype=int)
    drawn = np.random.default_rng(INVARIANCE_SEED).choice(rest, min(len(rest), INVARIANCE_DRAWN),
                                                          replace=False) if len(rest) else rest
    return np.array(sorted(edges | {int(i) for i in drawn}), dtype=int)


def mode_source_hash(mode: str, backend: str) -> str:
    """Hash of the mode's module and of the shared conversion helpers its ``backend`` exporter uses.

    Only the helpers that exporter names count (and what they import in turn), so a change to the
    ONNX helpers does not invalidate LiteRT artifacts and baselines, nor the other way round.
    """
    spec = MODES.get(mode)
    exporter = spec.exporter(backend)
    if exporter is None:  # unsupported combination: hash the module alone
        exporter = next(v for v in spec.backends.values() if callable(v))
        named = set()
    else:
        named = set(exporter.__code__.co_names)
    module = inspect.getmodule(exporter)
    direct = [v for k, v in vars(module).items() if k in named and _is_helper(v)]
    return key_of([code_hash(m) for m in (module, *_helpers_of(direct))])


def _is_helper(value) -> bool:
    return inspect.ismodule(value) and value.__name__.startswith("bench.modes._")


def _helpers_of(direct: list) -> list:
    """``direct`` and every ``bench.modes._*`` helper they import, in turn, sorted by name."""
    found = {m.__name__: m for m in direct}
    pending = list(direct)
    while pending:
        for value in vars(pending.pop()).values():
            if _is_helper(value) and value.__name__ not in found:
                found[value.__name__] = value
                pending.append(value)
    return [found[name] for name in sorted(found)]


def _order(record: dict) -> tuple:
    return (
        MODELS.names().index(record["model"]) if record["model"] in MODELS.names() else 99,
        MODES.names().index(record["mode"]) if record["mode"] in MODES.names() else 99,
        list(BACKENDS).index(record["backend"]) if record["backend"] in BACKENDS else 99,
    )
