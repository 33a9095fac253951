"""Baseline verdicts: no entry fails with the fix, a changed environment or case definition is
"not comparable" (a warning), and ``--strict-env`` turns that into a failure.

Runs the real session on the shared trained cache (smoke cnn, LiteRT float32).
"""

from __future__ import annotations

import dataclasses

import pytest

from bench import atomic
from bench import baseline as baselines

from .conftest import MODEL, make_session

pytestmark = pytest.mark.bench

CASE = f"{MODEL}-float32-litert"


def _write(folder, reference, **entry_overrides):
    document = baselines.from_results(reference.session.results())
    document["cases"] = {CASE: dict(document["cases"][CASE], **entry_overrides)}
    atomic.write_json(folder / "smoke.json", document)
    return document


def _run(trained_cache, tmp_path, folder, strict_env=False):
    session = make_session(trained_cache.root, tmp_path, modes=["float32"], baselines_dir=folder)
    session.options = dataclasses.replace(session.options, strict_env=strict_env)
    return session.run_case(MODEL, "float32", "litert")


def test_case_without_baseline_entry_fails_saying_how_to_create_it(reference, trained_cache, tmp_path):
    folder = tmp_path / "baselines"
    document = _write(folder, reference)
    document["cases"] = {}
    atomic.write_json(folder / "smoke.json", document)
    record = _run(trained_cache, tmp_path, folder)
    assert record["status"] == "failed"
    assert record["failures"] == [
        f"{CASE}: no baseline entry in baselines/smoke.json; create it with "
        "`nox -s update_baselines -- --tier smoke` and commit the file"
    ]


def test_changed_recipe_is_not_comparable_not_a_regression(reference, trained_cache, tmp_path):
    folder = tmp_path / "baselines"
    # Accuracy 2 points off would be a regression, but the case definition changed.
    _write(folder, reference, recipe_hash="0" * 20, accuracy=reference.records["float32"]["accuracy"] + 0.02)
    record = _run(trained_cache, tmp_path, folder)
    assert record["status"] == "not_comparable"
    assert record["failures"] == []
    assert record["notes"] == ["case definition (recipe hash) changed"]


@pytest.mark.parametrize("strict_env", [False, True])
def test_changed_environment_warns_or_fails_under_strict_env(strict_env, reference, trained_cache, tmp_path):
    folder = tmp_path / "baselines"
    document = _write(folder, reference)
    document["environment"] = {**document["environment"], "onnxruntime": "0.0.1"}
    atomic.write_json(folder / "smoke.json", document)
    record = _run(trained_cache, tmp_path, folder, strict_env=strict_env)
    current = reference.session.environment["onnxruntime"]
    if strict_env:
        assert record["status"] == "failed"
        assert record["failures"] == [
            f"{CASE}: not comparable with its baseline (--strict-env): onnxruntime 0.0.1 -> {current}"
        ]
    else:
        assert record["status"] == "not_comparable"
        assert record["notes"] == [f"onnxruntime 0.0.1 -> {current}"]
