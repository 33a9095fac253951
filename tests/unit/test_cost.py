"""``python -m bench.cost``: timed steps of the real recipes, no cache, no data set."""

from __future__ import annotations

import json
import math

import pytest

from bench import cost
from bench.tiers import FULL, SMOKE


@pytest.fixture
def no_cache_no_data(tmp_path, monkeypatch):
    """An empty cache folder, and a data set that fails loudly if anything reads it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("QUANTBENCH_CACHE", str(cache))

    def refuse(*args, **kwargs):
        raise AssertionError("bench.cost read the data set")

    import bench.data

    monkeypatch.setattr(bench.data, "load", refuse)
    monkeypatch.setattr(bench.data, "find_dataset_dir", refuse)
    return cache


def test_smoke_cnn_is_measured_without_training_into_the_cache(tmp_path, no_cache_no_data, capsys):
    out = tmp_path / "c.json"
    assert cost.main(["--tier", "smoke", "--models", "cnn", "--steps", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == cost.SCHEMA and doc["tier"] == "smoke"
    assert doc["testbed"] == doc["cpu"]["testbed"] and doc["cpu"]["model"]
    assert doc["command"].startswith("python -m bench.cost --tier smoke") and doc["created"]
    [model] = doc["models"]
    assert model["model"] == "cnn"
    recipes = {"float": SMOKE.train_recipe("cnn"), "qat": SMOKE.qat_recipe("cnn")}
    assert [p["kind"] for p in model["phases"]] == list(recipes)
    for phase in model["phases"]:
        recipe = recipes[phase["kind"]]
        assert phase["per_step_s"] > 0 and phase["steps_timed"] == 1
        assert phase["train_images"] == recipe.train_size
        assert phase["steps_per_epoch"] == math.ceil(recipe.train_size / recipe.batch_size)
        assert phase["epochs"] == recipe.epochs
        assert phase["recipe_s"] == pytest.approx(phase["per_step_s"] * phase["steps_per_epoch"] * recipe.epochs)
    assert model["total_s"] == pytest.approx(sum(p["recipe_s"] for p in model["phases"]))
    assert doc["total_s"] == pytest.approx(model["total_s"])
    assert list(no_cache_no_data.iterdir()) == []
    table = capsys.readouterr().out
    assert "| cnn" in table and "**total**" in table and doc["cpu"]["model"] in table


def test_unknown_model_is_a_one_line_usage_error(no_cache_no_data, capsys):
    assert cost.main(["--models", "cnn,resnet9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'resnet9'" in err and err.count("\n") == 1


def test_unknown_tier_is_a_one_line_usage_error(no_cache_no_data, capsys):
    assert cost.main(["--tier", "huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown tier 'huge'" in err and err.count("\n") == 1


@pytest.mark.parametrize("steps", ["0", "-3", "many"])
def test_steps_must_be_a_positive_whole_number(steps, capsys):
    with pytest.raises(SystemExit) as exited:
        cost.main(["--steps", steps])
    assert exited.value.code == 2
    assert "--steps" in capsys.readouterr().err


def test_train_images_default_to_the_pool_left_after_validation():
    # bench.train splits with train_size=None: 60,000 training images minus the tier's validation.
    assert cost.TRAIN_POOL == 60000 and cost.IMAGE_SHAPE == (28, 28)
    assert cost.train_images(FULL, None) == 55000
    assert cost.train_images(FULL, 20000) == 20000


def test_default_selection_is_every_model_the_tier_trains():
    assert cost.select_models(FULL, None) == ["cnn", "mobilenet", "vgg16"]
