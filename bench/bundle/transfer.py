"""Export a tier's trained models from the cache to a bundle, and import a bundle into the cache.

Export reads the cache and trains nothing. Import checks everything (:mod:`bench.bundle.archive`,
:mod:`bench.bundle.checks`) before it writes anything, and writes each model's entries as
:mod:`bench.train` writes them, so that the bench takes them for its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bench.bundle.archive import (
    KIND,
    SCHEMA,
    Bundle,
    BundleError,
    bundle_name,
    npy_bytes,
    read_bundle,
    tensor_file,
    tensor_record,
    write_bundle,
)
from bench.bundle.checks import (
    MAX_LISTED,
    Keys,
    Step,
    architecture_mismatches,
    assign,
    checkout_keys,
    key_problems,
    registered_float,
    registered_models,
    registered_qat,
    stage_steps,
    weights_of,
)
from bench.cache import Cache, log
from bench.errors import BenchError


def export(tier_name: str, models: list[str] | None, out: Path, cache: Cache | None = None,
           replace: bool = False) -> tuple[Path, str]:
    """Writes the bundle of the tier's trained models from the cache; trains nothing.

    Returns:
        The bundle's path and sha256.

    Raises:
        BundleError: A selected model is not in the cache (it says what to run first), or the
            output exists with other content.
    """
    from bench import data as data_mod
    from bench import train
    from bench.models import MODELS
    from bench.tiers import get_tier

    tier = get_tier(tier_name)
    names = MODELS.select(models)
    cache = cache or Cache()
    data_sha256 = data_mod.load().sha256
    keys = {name: checkout_keys(name, tier, data_sha256) for name in names}
    entries, missing = {}, []
    for name in names:
        for step in stage_steps(name, tier.name, keys[name]):
            entry = cache.entry_dir("models", step.label, step.key)
            if not entry.is_dir() or cache.verify(entry) is not None:
                missing.append(name)
            entries[name, step.stage] = entry
    if missing:
        wanted = ",".join(dict.fromkeys(missing))
        raise BundleError(f"the cache {cache.root} holds no trained {wanted} of tier {tier.name} for "
                          f"this checkout; run python -m bench.train --tier {tier.name} --models "
                          f"{wanted} first")
    manifest: dict = {"schema": SCHEMA, "kind": KIND, "tier": tier.name, "models": {}}
    files: dict[str, bytes] = {}
    for name in names:
        log(f"[bundle] {name}-{tier.name}: exporting the float and QAT weights")
        float_model = registered_float(name, tier)
        float_model.load_weights(str(entries[name, "float"] / train.WEIGHTS))
        qat_model = registered_qat(float_model, tier)
        qat_model.load_weights(str(entries[name, "qat"] / train.QAT_WEIGHTS)).expect_partial()
        stages = {}
        for step, model in zip(stage_steps(name, tier.name, keys[name]), (float_model, qat_model), strict=True):
            stage = step.stage
            meta = cache.read_meta(entries[name, stage])
            records = []
            for index, (variable, array) in enumerate(zip(model.weights, weights_of(model), strict=True)):
                file = tensor_file(name, stage, index, variable.name)
                files[file] = npy_bytes(array)
                records.append(tensor_record(file, variable.name, files[file], array))
            stages[stage] = {
                "key": step.key, "label": step.label,
                "components": keys[name].float_components if stage == "float" else keys[name].qat_components,
                "val_accuracy": meta.get("val_accuracy"), "train_seconds": meta.get("train_seconds"),
                # Where the weights were trained: an imported entry's is its trainer's, not the
                # importer's (unknown where the bundle did not record it).
                "built_on": (meta["weights_from"].get("built_on") if isinstance(meta.get("weights_from"), dict)
                             else meta.get("built_on")),
                "tensors": records,
            }
        manifest["models"][name] = stages
    path = Path(out) / bundle_name(tier.name)
    digest = write_bundle(path, manifest, files, replace=replace)
    return path, digest



def import_bundle(path: Path, expected_sha256: str, cache: Cache | None = None,
                  replace: bool = False) -> list[str]:
    """Verifies a bundle and writes its models into the cache; returns what it did, a line each.

    Raises:
        BundleError: Anything about the bundle is wrong or does not fit this checkout; the cache
            is then left as it was.
    """
    from bench import data as data_mod
    from bench.models import MODELS
    from bench.tiers import get_tier

    log(f"[bundle] checking {path}")
    bundle = read_bundle(path, expected_sha256)
    manifest = bundle.manifest
    try:
        tier = get_tier(manifest["tier"])
    except BenchError as exc:
        raise BundleError(f"the bundle is for tier {manifest['tier']!r}: {exc}") from None
    for name in manifest["models"]:
        MODELS.get(name)  # UnknownNameError names the registered models
    cache = cache or Cache()
    data_sha256 = data_mod.load().sha256
    keys = {name: checkout_keys(name, tier, data_sha256) for name in manifest["models"]}
    problems = key_problems(manifest, keys)
    if problems:
        raise BundleError(
            f"{path} was exported for other inputs than this checkout's; nothing was imported:\n  - "
            + "\n  - ".join(problems)
            + "\nExport it again from a checkout that matches this one, or train here: python -m "
            f"bench.train --tier {tier.name} --models {','.join(manifest['models'])}")
    steps = _plan(bundle, tier, keys, cache, replace)
    return _write(bundle, tier, steps, cache)


def _plan(bundle: Bundle, tier, keys: dict[str, Keys], cache: Cache, replace: bool) -> list[Step]:
    """Checks every model's tensors against the registered architecture, and what the cache holds
    under the keys; writes nothing.

    Keys do not name the testbed, so the cache may hold weights trained on this runner under the
    bundle's keys: left alone, they would be benchmarked instead of the team's, so they are refused
    unless ``replace``.
    """
    steps = []
    for name in bundle.manifest["models"]:
        log(f"[bundle] {name}: checking the weights against the registered architecture")
        float_model = _checked(registered_float(name, tier), bundle, name, "float", f"{name}-{tier.name}")
        # The QAT wrapper is made from the float model holding the bundle's float weights.
        qat_model = _checked(registered_qat(float_model, tier), bundle, name, "qat", f"{name}-{tier.name}-qat")
        for step, model in zip(stage_steps(name, tier.name, keys[name]), (float_model, qat_model), strict=True):
            step.action = _action(cache, step, model, float_model, tier, replace)
            steps.append(step)
    return steps


def _checked(model, bundle: Bundle, name: str, stage: str, label: str):
    """``model`` holding the bundle's tensors of ``stage``, once they fit its variables."""
    records = bundle.manifest["models"][name][stage]["tensors"]
    mismatches = architecture_mismatches(model, records)
    if mismatches:
        more = len(mismatches) - MAX_LISTED
        raise BundleError(
            f"{label}: the bundle's weights do not fit the registered {name} architecture "
            f"({len(model.weights)} variables, {len(records)} tensors in the bundle): "
            + "; ".join(mismatches[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
            + ". Nothing was imported")
    assign(model, bundle.tensors(name, stage))
    return model


def _action(cache: Cache, step: Step, model, float_model, tier, replace: bool) -> str:
    """What to do with an entry: "write", "same" (it holds these weights already) or "replace";
    refuses to overwrite other weights unless ``replace``."""
    from bench import train
    from bench.models import MODELS

    entry = cache.entry_dir("models", step.label, step.key)
    if not entry.is_dir() or cache.verify(entry) is not None:  # a corrupt one would be rebuilt
        return "write"
    if step.stage == "float":
        held = train.build_model(MODELS.get(step.name), tier.seed)
        held.load_weights(str(entry / train.WEIGHTS))
    else:
        held = train.quantize_aware(float_model)
        held.load_weights(str(entry / train.QAT_WEIGHTS)).expect_partial()
    if _same(weights_of(held), weights_of(model)):
        return "same"
    if replace:
        return "replace"
    raise BundleError(
        f"{step.label}: the cache already holds other weights under this key in {entry} "
        f"({cache.weights_source('models', step.label, step.key)}); nothing was imported. "
        "Pass --replace to benchmark the bundle's weights instead")


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _write(bundle: Bundle, tier, steps: list[Step], cache: Cache) -> list[str]:
    """Writes the planned entries, as bench.train saves them; removes what it wrote if one fails."""
    from bench import train

    written: list[Path] = []
    lines = []
    try:
        for name in bundle.manifest["models"]:
            float_model, qat_model = registered_models(name, tier, bundle.tensors(name, "float"))
            assign(qat_model, bundle.tensors(name, "qat"))
            for step in (s for s in steps if s.name == name):
                model, filename = ((float_model, train.WEIGHTS) if step.stage == "float"
                                   else (qat_model, train.QAT_WEIGHTS))
                entry = cache.entry_dir("models", step.label, step.key)
                writer = _writer(model, filename, bundle.manifest["models"][name][step.stage], bundle.sha256)
                if step.action == "same":
                    lines.append(f"{step.label}: {entry} already holds these weights; left alone")
                elif step.action == "replace":
                    cache.replace("models", step.label, step.key, writer)
                    lines.append(f"{step.label}: replaced the weights in {entry} by the bundle's")
                else:
                    entry, cached = cache.get_or_build("models", step.label, step.key, writer)
                    if cached:  # another process put it there since the plan
                        lines.append(f"{step.label}: {entry} appeared meanwhile; left alone")
                    else:
                        written.append(entry)
                        lines.append(f"{step.label}: imported into {entry}")
    except BaseException:
        for entry in written:
            shutil.rmtree(entry, ignore_errors=True)
        raise
    return lines


def _writer(model, filename: str, entry: dict, bundle_sha256: str):
    """A cache build function saving ``model``'s weights as bench.train saves them."""

    def write(folder: Path) -> dict:
        model.save_weights(str(folder / filename))
        return {"val_accuracy": entry.get("val_accuracy"), "train_seconds": entry.get("train_seconds"),
                "weights_from": {"bundle": bundle_sha256, "built_on": entry.get("built_on")}}

    return write
