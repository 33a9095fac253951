"""What import checks a bundle against: this checkout's cache keys, and its registered models.

A bundle's weights must be what this checkout would train (the same key components: model,
architecture, recipe, data, training code, library versions) and must fit the architecture this
checkout registers, variable by variable (name, shape, dtype). Weights are only ever assigned to
models built here.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from bench.bundle.archive import BundleError
from bench.cache import key_of

# Mismatches listed in an architecture refusal (the rest are counted).
MAX_LISTED = 5
# Key components, as the refusal names them.
COMPONENT_NAMES = {
    "model": "model name",
    "architecture": "architecture (the model's Keras config and its module's code)",
    "recipe": "training recipe (the model's ModelSpec.recipes, Tier.recipe_hash)",
    "data": "data set (sha256 of the Fashion-MNIST files)",
    "code": "training code (bench.train.TRAINING_SOURCES)",
    "versions": "library versions",
    "qat": "QAT recipe (the model's ModelSpec.qat_recipes, Tier.qat_hash)",
    "float": "float model key",
}


def float_components(spec, tier, data_sha256: str) -> dict:
    """What a float model's cache key hashes (:func:`bench.train.float_key`), by component."""
    from bench import train
    from bench.environment import library_versions

    return {
        "model": spec.name,
        "architecture": train.architecture_hash(spec, tier.seed),
        "recipe": tier.recipe_hash(spec.name),
        "data": data_sha256,
        "versions": library_versions(),
        "code": train.training_code_hash(),
    }


def qat_components(float_key: str, tier, name: str) -> dict:
    """What a QAT model's cache key hashes (:func:`bench.train.qat_key`), by component."""
    from bench import train

    return {"float": float_key, "qat": tier.qat_hash(name), "code": train.training_code_hash()}


@dataclasses.dataclass
class Keys:
    """One model's cache keys in this checkout, and what they hash."""

    float_key: str
    float_components: dict
    qat_key: str
    qat_components: dict


def checkout_keys(name: str, tier, data_sha256: str) -> Keys:
    """The model's keys as :mod:`bench.train` computes them, with their components.

    Raises:
        BundleError: The components here no longer hash to bench.train's keys (bench.train
            changed what its keys hash and this module was not updated): a bundle written or
            read with them would sit under keys nothing looks up.
    """
    from bench import train
    from bench.models import MODELS

    spec = MODELS.get(name)
    components = float_components(spec, tier, data_sha256)
    float_key = train.float_key(spec, tier, data_sha256)
    qat = qat_components(float_key, tier, name)
    qat_key = train.qat_key(float_key, tier, name)
    if key_of(components) != float_key or key_of(qat) != qat_key:
        raise BundleError("bench.bundle's key components no longer hash to bench.train's keys: update "
                          "float_components/qat_components in bench/bundle/checks.py to match "
                          "bench.train.float_key/qat_key")
    return Keys(float_key, components, qat_key, qat)


def key_differences(bundle: dict, here: dict) -> list[str]:
    """What differs between two sets of key components, one phrase each, named."""
    problems = []
    for field in sorted(set(bundle) | set(here)):
        old, new = bundle.get(field), here.get(field)
        if old == new:
            continue
        if field == "versions" and isinstance(old, dict) and isinstance(new, dict):
            for package in sorted(set(old) | set(new)):
                if old.get(package) != new.get(package):
                    problems.append(f"library {package}: {old.get(package)} in the bundle, "
                                    f"{new.get(package)} here")
            continue
        label = COMPONENT_NAMES.get(field, field)
        problems.append(f"{label}: {_short(old)} in the bundle, {_short(new)} here")
    return problems


def _short(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _fresh_session() -> None:
    """Resets Keras' layer-name counters, so the wrappers' names (``quantize_layer``, not
    ``quantize_layer_1``) do not depend on what this process built before."""
    from bench.tfsetup import keras

    keras.backend.clear_session()


def registered_float(name: str, tier):
    """The registered float architecture of ``name``, freshly built (its weights to be set)."""
    from bench import train
    from bench.models import MODELS

    _fresh_session()
    return train.build_model(MODELS.get(name), tier.seed)


def registered_qat(float_model, tier):
    """The QAT wrapper of ``float_model``, made as :func:`bench.train.qat_model` makes it."""
    from bench import train
    from bench.tfsetup import seed_everything

    seed_everything(tier.seed)
    return train.quantize_aware(float_model)


def registered_models(name: str, tier, float_weights: list[np.ndarray]):
    """The registered float architecture holding ``float_weights``, and its QAT wrapper."""
    model = registered_float(name, tier)
    assign(model, float_weights)
    return model, registered_qat(model, tier)


def assign(model, arrays: list[np.ndarray]) -> None:
    for variable, array in zip(model.weights, arrays, strict=True):
        variable.assign(array)


def weights_of(model) -> list[np.ndarray]:
    return [np.asarray(variable.numpy()) for variable in model.weights]


def architecture_mismatches(model, records: list[dict]) -> list[str]:
    """How the bundle's tensors differ from the registered model's variables (empty: they fit)."""
    variables = [(v.name, list(v.shape), v.dtype.name) for v in model.weights]
    tensors = [(r["name"], r["shape"], r["dtype"]) for r in records]
    problems = []
    for index in range(max(len(variables), len(tensors))):
        have = variables[index] if index < len(variables) else None
        got = tensors[index] if index < len(tensors) else None
        if have == got:
            continue
        if have is None:
            problems.append(f"#{index} {got[0]!r}: in the bundle, not in the architecture")
        elif got is None:
            problems.append(f"#{index} {have[0]!r}: in the architecture, not in the bundle")
        else:
            fields = [f"{what} {h!r} registered, {g!r} in the bundle"
                      for what, h, g in zip(("name", "shape", "dtype"), have, got, strict=True) if h != g]
            problems.append(f"#{index} {have[0]!r}: {'; '.join(fields)}")
    return problems


def key_problems(manifest: dict, keys: dict[str, Keys]) -> list[str]:
    """How the manifest's keys differ from this checkout's ``keys``, named, one line each."""
    problems = []
    for name, stages in manifest["models"].items():
        float_found = key_differences(stages["float"]["components"], keys[name].float_components)
        qat_here = dict(keys[name].qat_components)
        if float_found:  # the QAT key hashes the float key: say the cause once, under float
            qat_here["float"] = stages["qat"]["components"].get("float")
        for step in stage_steps(name, manifest["tier"], keys[name]):
            entry = stages[step.stage]
            found = float_found if step.stage == "float" else key_differences(entry["components"], qat_here)
            problems += [f"{step.label}: {what}" for what in found]
            if not found and not float_found and (entry["key"], entry["label"]) != (step.key, step.label):
                problems.append(f"{step.label}: the manifest says key {entry['key']} ({entry['label']}), "
                                f"but its components hash to {step.key} here: the manifest is inconsistent")
    return problems


@dataclasses.dataclass
class Step:
    """One cache entry of a bundle: a model's stage, its label and key, and what to do with it."""

    name: str
    stage: str
    label: str
    key: str
    action: str = "write"


def stage_steps(name: str, tier: str, keys: Keys) -> list[Step]:
    """A model's two entries, labelled as bench.train labels them."""
    return [Step(name, "float", f"{name}-{tier}", keys.float_key),
            Step(name, "qat", f"{name}-{tier}-qat", keys.qat_key)]
