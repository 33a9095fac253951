"""Tests of bench.selection: one meaning of selected, declared and runnable for the plan, the run
and publishing."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from bench.backends import BACKENDS
from bench.models import MODELS
from bench.modes import MODES
from bench.run import Options, declared_cases
from bench.selection import Selection
from bench.tiers import FULL, SMOKE


def everything(tier) -> Selection:
    return Selection(tier, tuple(MODELS.names()), tuple(MODES.names()), tuple(BACKENDS.names()))


def test_of_takes_the_options_selection_in_its_order():
    options = Options(tier=SMOKE, models=["vgg16", "cnn"], modes=["ptq_int8", "float32"], backends=["litert"],
                      root=Path("."), reports_dir=Path("reports"))
    selection = Selection.of(options)
    assert selection == Selection(SMOKE, ("vgg16", "cnn"), ("ptq_int8", "float32"), ("litert",))
    assert selection.cases()[:2] == [("vgg16", "ptq_int8", "litert"), ("vgg16", "float32", "litert")]
    assert declared_cases(options) == selection.declared()


@pytest.mark.parametrize("tier", [SMOKE, FULL], ids=lambda t: t.name)
def test_declared_is_what_neither_the_mode_nor_the_tier_declares_unsupported(tier):
    selection = everything(tier)
    expected = [(model, mode, backend) for model, mode, backend
                in itertools.product(MODELS.names(), MODES.names(), BACKENDS.names())
                if not (MODES.get(mode).skip_reason(backend) or tier.skip_reason(model, mode))]
    assert selection.declared() == expected
    # What a baselines update keeps is the same rule, for any case id of the file.
    assert [case for case in selection.cases() if selection.declares(*case)] == expected


def test_declared_reason_says_who_declares_it():
    selection = everything(SMOKE)
    assert selection.declared_reason("cnn", "ptq_int8", "litert") is None
    mode_says = next((mode, backend) for mode, backend in itertools.product(MODES.names(), BACKENDS.names())
                     if MODES.get(mode).skip_reason(backend))
    assert selection.declared_reason("cnn", *mode_says).startswith(f"{mode_says[0]} on {mode_says[1]}: ")
    assert selection.declared_reason("vgg16", "ptq_int16x8", "litert") == (
        "vgg16-ptq_int16x8 in tier smoke: " + SMOKE.skip_reason("vgg16", "ptq_int16x8"))


def test_declares_refuses_names_no_registry_knows():
    selection = Selection(SMOKE, ("cnn",), ("float32",), ("litert",))
    assert selection.declares("mobilenet", "ptq_int8", "onnxruntime")  # outside the selection, still declared
    assert not selection.declares("resnet", "float32", "litert")
    assert not selection.declares("cnn", "int3", "litert")
    assert not selection.declares("cnn", "float32", "tvm")
    assert not selection.declares("vgg16", "ptq_int16x8", "litert")  # the tier declares it out


def test_runnable_leaves_out_what_this_machine_lacks(monkeypatch):
    lacking = dataclasses.replace(BACKENDS.get("onnxruntime"),
                                  unsupported=lambda mode: "no bf16 here" if mode.name == "ptq_int8" else None)
    monkeypatch.setitem(BACKENDS._entries, "onnxruntime", lacking)
    selection = Selection(SMOKE, ("cnn",), ("float32", "ptq_int8"), ("litert", "onnxruntime"))
    assert ("cnn", "ptq_int8", "onnxruntime") in selection.declared()
    assert selection.unavailable_reason("ptq_int8", "onnxruntime") == "no bf16 here"
    assert selection.runnable() == [c for c in selection.declared() if c != ("cnn", "ptq_int8", "onnxruntime")]
