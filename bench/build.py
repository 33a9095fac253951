"""The run's builder: the tier's data, trained models, artifacts and logits, each made once.

Everything expensive is computed once per run and memoized here (models are also cached on disk
by :mod:`bench.train`, artifacts by :mod:`bench.cache`), so the order in which pytest runs the
cases does not matter: a case asks for what it needs and gets it. The builder measures nothing
and judges nothing (it only marks the spans of its work in the run's :class:`bench.timings.Timings`);
:mod:`bench.run` does, with :mod:`bench.batch_invariance`, and :mod:`bench.record` keeps what it found.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import numpy as np

from bench import data as data_mod
from bench import environment, formats, testbeds, train
from bench.backends import BACKENDS
from bench.cache import Cache, code_hash, key_of, log
from bench.models import MODELS
from bench.modes import MODES, REFERENCE_MODE, ExportContext
from bench.results import case_id
from bench.tiers import Tier
from bench.timings import CONVERT, EVALUATE, Timings

# The format whose float32 file ONNX-based quantizers (ORT's, NNCF) start from (ctx.float_onnx).
FLOAT_ONNX = "onnx"


class Builder:
    """Makes and memoizes what the run's cases need.

    Args:
        tier: The tier (data sizes, recipes).
        calibration_method: ONNX Runtime's calibration method for calibrated modes.
        cache: The on-disk cache of models and artifacts.
        testbed: The CPU class whose recipes the files follow (None: this CPU's); a VNNI host can
            build the AVX2 recipe's files.
        timings: Where the seconds each file took to convert and to evaluate go (the run's;
            None: a recorder of this builder's own, which nobody reads).
    """

    def __init__(self, tier: Tier, calibration_method: str = "MinMax", cache: Cache | None = None,
                 testbed: testbeds.Testbed | None = None, timings: Timings | None = None) -> None:
        self.tier = tier
        self.testbed = testbed or testbeds.current()
        self.calibration_method = calibration_method
        self.cache = cache or Cache()
        self._dataset = None
        self._splits = None
        self._trained: dict[str, train.Trained] = {}
        self._qat: dict[str, train.Trained] = {}
        self._artifacts: dict[tuple[str, str, str], Path] = {}
        self._logits: dict[tuple[str, str, str], np.ndarray] = {}
        self._inputs: dict[tuple, data_mod.ModelInputs] = {}  # by input shape
        self.timings = timings or Timings()

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

    def model_inputs(self, model: str) -> data_mod.ModelInputs:
        """The tier's images in ``model``'s input shape, made once per shape and handed to
        training, QAT, calibration and evaluation alike."""
        shape = MODELS.get(model).input_shape
        if shape not in self._inputs:
            self._inputs[shape] = data_mod.ModelInputs(self.splits, shape)
        return self._inputs[shape]

    def inputs(self, which: str, model: str) -> np.ndarray:
        """Model input for the test or calibration images (``which`` = "test" or "calib")."""
        prepared = self.model_inputs(model)
        return prepared.x_test if which == "test" else prepared.x_calib

    def trained(self, model: str) -> train.Trained:
        if model not in self._trained:
            self._trained[model] = train.float_model(
                model, self.tier, self.model_inputs(model), self.dataset.sha256, self.cache
            )
        return self._trained[model]

    def qat(self, model: str) -> train.Trained:
        if model not in self._qat:
            self._qat[model] = train.qat_model(model, self.tier, self.model_inputs(model), self.trained(model),
                                               self.cache)
        return self._qat[model]

    def recipe_hash(self, model: str, mode: str, backend: str) -> str:
        """Hash of everything that defines a case: training recipe, mode code, its settings.

        A baseline recorded under another hash is still judged; the changed hash is reported
        beside the verdict as its likely cause.
        """
        spec = MODES.get(mode)
        payload = {"train": self.tier.recipe_hash(model), "mode_source": mode_source_hash(mode, backend)}
        if spec.uses_qat:
            payload["qat"] = self.tier.qat_hash(model)
        if spec.uses_calibration:
            payload["calibration"] = [self.tier.calibration_size, self.calibration_method]
        if variant := self.int8_format(mode, backend):
            payload["int8_format"] = variant
        return key_of(payload)

    def int8_format(self, mode: str, backend: str) -> str | None:
        """The variant the testbed's recipe gives the file ``backend`` runs in ``mode``
        (``bench.formats.Export.variant``: ONNX Runtime's int8 formats; None: one everywhere)."""
        export = formats.artifact_export(mode, backend)
        return export.variant(self.testbed) if export and export.variant else None

    def artifact(self, model: str, mode: str, backend: str) -> Path:
        """The file of ``model`` in ``mode`` for ``backend``, converted now or taken from the cache."""
        key3 = (model, mode, backend)
        if key3 in self._artifacts:
            return self._artifacts[key3]
        spec = MODES.get(mode)
        exporter = spec.exporter(backend)
        if exporter is None:
            raise ValueError(f"{case_id(*key3)}: {spec.skip_reason(backend)}")
        source = formats.home(mode, backend)
        if source != backend:  # a runtime reading another's format runs the very same file
            self._artifacts[key3] = self.artifact(model, mode, source)
            return self._artifacts[key3]
        trained = self.trained(model)
        key = self.artifact_key(model, mode, backend, trained.key)
        filename = f"model{formats.get(formats.artifact_format(mode, backend)).suffix}"

        def export(folder: Path) -> dict:
            with self.timings.timed(case_id(*key3), CONVERT) as span:
                ctx = ExportContext(
                    model_name=model,
                    input_shape=MODELS.get(model).input_shape,
                    float_model=trained.model,
                    qat_model=lambda: self.qat(model).model,
                    calibration=self.inputs("calib", model),
                    float_onnx=lambda: self.float_onnx(model),
                    calibration_method=self.calibration_method,
                    testbed=self.testbed,
                )
                exporter(ctx, folder / filename)
            log(f"[convert] {case_id(*key3)}: {span.seconds:.1f}s")
            return {"convert_seconds": span.seconds}

        entry, cached = self.cache.get_or_build(
            "artifacts", f"{model}-{self.tier.name}-{mode}-{backend}", key, export
        )
        if cached:
            recorded = self.cache.read_meta(entry).get("convert_seconds")
            if recorded:
                self.timings.record(case_id(*key3), CONVERT, recorded)
            log(f"[convert] {case_id(*key3)}: reusing cached artifact {entry / filename}")
        self._artifacts[key3] = entry / filename
        return self._artifacts[key3]

    def artifact_key(self, model: str, mode: str, backend: str, float_key: str) -> str:
        """The cache key of an artifact: its float model (and QAT model), case, libraries and the
        code on its conversion path (:func:`conversion_source_hash`)."""
        exporter = MODES.get(mode).exporter(backend)
        return key_of({
            "float": float_key,
            # A QAT artifact comes from the QAT model: retraining it must reconvert.
            "qat": train.qat_key(float_key, self.tier, model) if MODES.get(mode).uses_qat else None,
            # An exporter that quantizes the float ONNX file depends on how that file is made.
            "float_onnx": self.artifact_key(model, REFERENCE_MODE, formats.get(FLOAT_ONNX).home, float_key)
            if mode != REFERENCE_MODE and exporter and "float_onnx" in _names_used(exporter) else None,
            "recipe": self.recipe_hash(model, mode, backend),
            "backend": backend,
            "versions": environment.versions(),
            "code": conversion_source_hash(backend),
        })

    def float_onnx(self, model: str) -> Path:
        """The float32 file of ``model`` in the ONNX format, which ONNX-based quantizers start from."""
        return self.artifact(model, REFERENCE_MODE, formats.get(FLOAT_ONNX).home)

    def for_testbed(self, testbed: testbeds.Testbed) -> Builder:
        """A builder of the same tier whose files follow ``testbed``'s recipes, sharing this one's
        data and trained models (only files differ between testbeds' recipes)."""
        other = Builder(self.tier, self.calibration_method, self.cache, testbed)
        other._dataset, other._splits, other._inputs = self.dataset, self.splits, self._inputs
        other._trained, other._qat = self._trained, self._qat
        return other

    def plan(self, cases: list[tuple[str, str, str]]) -> list[tuple[str, str, bool]]:
        """What ``cases`` need built, as ``(kind, name, cached)``: kinds train, qat and convert.

        Computes the cache keys only (the float models' architectures are built, not trained).
        """
        items = []
        models = list(dict.fromkeys(model for model, _, _ in cases))
        float_keys = {m: train.float_key(MODELS.get(m), self.tier, self.dataset.sha256) for m in models}
        for model in models:
            items.append(("train", model, self._cached("models", f"{model}-{self.tier.name}", float_keys[model])))
            if any(MODES.get(mode).uses_qat for m, mode, _ in cases if m == model):
                key = train.qat_key(float_keys[model], self.tier, model)
                items.append(("qat", model, self._cached("models", f"{model}-{self.tier.name}-qat", key)))
        needed = {(model, REFERENCE_MODE, backend) for model, _, backend in cases} | set(cases)
        files = {(model, mode, formats.home(mode, backend)) for model, mode, backend in needed}
        for model, mode, backend in sorted(files):
            key = self.artifact_key(model, mode, backend, float_keys[model])
            label = f"{model}-{self.tier.name}-{mode}-{backend}"
            items.append(("convert", case_id(model, mode, backend), self._cached("artifacts", label, key)))
        return items

    def _cached(self, kind: str, label: str, key: str) -> bool:
        return self.cache.entry_dir(kind, label, key).is_dir()

    def runner(self, model: str, mode: str, backend: str, threads: int | None = None):
        """A freshly loaded artifact on ``threads`` threads (None: the runtime's default).

        A mode computing in another precision than float32 (``Mode.compute_precision``) tells the
        runtime so; only backends that can honour it run such a mode (the others skip it).
        """
        precision = MODES.get(mode).compute_precision
        extra = {} if precision == "f32" else {"precision": precision}
        return BACKENDS.get(backend).load(self.artifact(model, mode, backend), threads=threads, **extra)

    def logits(self, model: str, mode: str, backend: str) -> np.ndarray:
        """Test-set logits of one artifact on one backend (memoized)."""
        key3 = (model, mode, backend)
        if key3 not in self._logits:
            runner = self.runner(model, mode, backend)
            batch = MODES.get(mode).eval_batch(backend)
            with self.timings.timed(case_id(*key3), EVALUATE) as span:
                self._logits[key3] = runner.predict(self.inputs("test", model), batch)
            log(f"[eval] {case_id(*key3)}: {len(self.splits.y_test)} images at batch {batch} in {span.seconds:.1f}s")
        return self._logits[key3]

    def models_summary(self) -> dict:
        """Per trained model: parameters, description, training time, whether it was cached."""
        summary = {}
        for name, trained in self._trained.items():
            summary[name] = {
                "params": int(trained.model.count_params()),
                "description": MODELS.get(name).description,
                "train_seconds": round(trained.seconds, 1),
                "cached": trained.cached,
                "val_accuracy": trained.val_accuracy,
            }
            if name in self._qat:
                summary[name]["qat_seconds"] = round(self._qat[name].seconds, 1)
        return summary

    def has_data(self) -> bool:
        return self._splits is not None


# Modules on every artifact's conversion path besides the mode's own code (mode_source_hash): this
# builder (calibration inputs, the export context it fills), the model input (bench.data) and the
# modes' shared definitions (ExportContext).
CONVERSION_SOURCES = ("bench.build", "bench.data", "bench.modes")


def conversion_source_hash(backend: str) -> str:
    """Hash of :data:`CONVERSION_SOURCES` and of the module of ``backend`` (its file format).

    Modules are looked up by name, so the hash is of this checkout's code: an A/B run of another
    commit shares a cached artifact only where all of it hashes equal.
    """
    names = (*CONVERSION_SOURCES, BACKENDS.get(backend).load.__module__)
    return key_of([[name, code_hash(importlib.import_module(name))] for name in names])


def mode_source_hash(mode: str, backend: str) -> str:
    """Hash of the mode's module and of the shared conversion helpers its ``backend`` exporter uses.

    Only the ``bench`` modules that exporter names count (also through functions of its own
    module that it calls), with the ``bench.modes._*`` helpers they import in turn, so a change to
    the ONNX helpers does not invalidate LiteRT artifacts and baselines, nor the other way round.
    """
    exporter = MODES.get(mode).exporter(backend)
    if exporter is None:  # unsupported combination: hash the module alone
        exporter = next(export.make for export in formats.exports_of(mode).values())
        named = set()
    else:
        named = _names_used(exporter)
    module = inspect.getmodule(exporter)
    direct = [v for k, v in vars(module).items() if k in named and _is_bench_module(v)]
    return key_of([code_hash(m) for m in (module, *_helpers_of(direct))])


def _names_used(function) -> set[str]:
    """Global and attribute names ``function`` uses, with those of the functions of its own
    module that it calls (in turn) and of its nested functions and lambdas."""
    module = inspect.getmodule(function)
    names: set[str] = set()
    pending, seen = [function.__code__], set()
    while pending:
        code = pending.pop()
        if code in seen:
            continue
        seen.add(code)
        names.update(code.co_names)
        pending.extend(c for c in code.co_consts if inspect.iscode(c))
        for name in code.co_names:
            value = vars(module).get(name)
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                pending.append(value.__code__)
    return names


def _is_bench_module(value) -> bool:
    return inspect.ismodule(value) and value.__name__.split(".")[0] == "bench"


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
