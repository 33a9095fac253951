"""Every fact about a model lives on its ModelSpec: the tiers, gates and reports read it there.

A built-in model is one file, as a model of another package is one module: these tests hold the
readers to the spec (a fact changed on the spec changes what they decide) and the built-ins'
facts to names that exist (a misspelt mode in ``size_floors`` would silently fall back to the
mode's default floor).
"""

from __future__ import annotations

import dataclasses

import pytest

from bench import gates
from bench.backends import BACKENDS
from bench.models import MODELS, ModelSpec
from bench.modes import MODES
from bench.report.sections import display_name
from bench.tiers import SMOKE, TIERS, TierError

BUILTINS = ("cnn", "mobilenet", "vgg16")
VNNI = {"flags": {"avx512_vnni": True}}


def replace_spec(monkeypatch, name: str, **changes) -> ModelSpec:
    """Registers ``name`` with ``changes`` for this test only (monkeypatch restores the entry)."""
    spec = dataclasses.replace(MODELS.get(name), **changes)
    monkeypatch.setitem(MODELS._entries, name, spec)
    return spec


@pytest.mark.parametrize("model", BUILTINS)
def test_a_builtin_declares_its_recipes_and_float_floor_for_every_tier(model):
    spec = MODELS.get(model)
    for tier in TIERS.values():
        assert tier.train_recipe(model) is spec.recipes[tier.name]
        assert tier.qat_recipe(model) is spec.qat_recipes[tier.name]
        assert tier.float_accuracy_floor(model) == spec.min_float_accuracy[tier.name]


@pytest.mark.parametrize("model", BUILTINS)
def test_a_builtins_facts_name_tiers_modes_and_backends_that_exist(model):
    spec = MODELS.get(model)
    assert set(spec.skip) <= set(TIERS)
    assert {mode for skipped in spec.skip.values() for mode in skipped} <= set(MODES.names())
    assert set(spec.size_floors) <= set(MODES.names())
    assert set(spec.speedup_targets) <= set(BACKENDS.names())
    assert spec.display_name


def test_the_tier_reads_recipes_floors_and_skips_from_the_spec(monkeypatch):
    spec = MODELS.get("cnn")
    faster = dataclasses.replace(spec.recipes["smoke"], epochs=1)
    before = SMOKE.recipe_hash("cnn")
    replace_spec(monkeypatch, "cnn", recipes={**spec.recipes, "smoke": faster},
                 min_float_accuracy={"smoke": 0.5}, skip={"smoke": {"ptq_int8": "too slow here"}})
    assert SMOKE.train_recipe("cnn") is faster and SMOKE.recipe_hash("cnn") != before
    assert SMOKE.float_accuracy_floor("cnn") == 0.5
    assert SMOKE.skip_reason("cnn", "ptq_int8") == "too slow here"
    assert SMOKE.skip_reason("cnn", "ptq_dynamic") is None
    assert TIERS["full"].skip_reason("cnn", "ptq_int8") is None


def test_a_tier_the_spec_lacks_is_a_clear_error(monkeypatch):
    replace_spec(monkeypatch, "cnn", recipes={}, qat_recipes={}, min_float_accuracy={})
    with pytest.raises(TierError, match=r"tier 'smoke' has no training recipe for model 'cnn': add "
                                        r"recipes=\{'smoke': TrainRecipe\(\.\.\.\)\} to its ModelSpec"):
        SMOKE.train_recipe("cnn")
    assert SMOKE.missing_facts(["cnn"], ["qat_int8"]) == [
        "tier 'smoke' has no training recipe for model 'cnn': add recipes={'smoke': TrainRecipe(...)} to "
        "its ModelSpec, or pick another --tier or --models",
        "tier 'smoke' has no QAT recipe for model 'cnn': add qat_recipes={'smoke': QatRecipe(...)} to "
        "its ModelSpec, or pick another --tier or --models",
    ]
    assert SMOKE.float_accuracy_floor("cnn") is None  # no floor: the float32 case gates its verdict only


def test_the_size_floor_is_the_models_else_the_modes_default(monkeypatch):
    assert MODES.get("ptq_int8").min_size_ratio("vgg16") == MODELS.get("vgg16").size_floors["ptq_int8"]
    replace_spec(monkeypatch, "vgg16", size_floors={})
    assert MODES.get("ptq_int8").min_size_ratio("vgg16") == MODES.get("ptq_int8").default_size_floor


def test_speed_gates_follow_the_specs_speedup_gated(monkeypatch):
    assert not MODELS.get("cnn").speedup_gated and MODELS.get("mobilenet").speedup_gated
    assert gates.int8_speedup_check("cnn-ptq_int8-litert", "cnn", 0.5, VNNI).passed
    assert gates.speedup_vs_baseline_check("cnn-ptq_int8-litert", 0.5, 2.0, same_isa=True, model="cnn").passed
    replace_spec(monkeypatch, "cnn", speedup_gated=True)
    assert gates.int8_speedup_check("cnn-ptq_int8-litert", "cnn", 0.5, VNNI).fails
    assert gates.speedup_vs_baseline_check("cnn-ptq_int8-litert", 0.5, 2.0, same_isa=True, model="cnn").fails


def test_reports_show_the_display_name_else_the_registry_name(monkeypatch):
    assert [display_name(model) for model in BUILTINS] == ["Normal CNN", "MobileNet", "VGG16"]
    replace_spec(monkeypatch, "cnn", display_name="")
    assert display_name("cnn") == "cnn"
    # A results.json of another package's run names models this process never registered.
    assert display_name("not_installed_here") == "not_installed_here"
