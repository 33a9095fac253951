"""Splitting a run into shards (bench.shard): --shard K/N, units, the LPT assignment, the plan.

The split is computed by every shard on its own, so it must depend on nothing but the selection,
the collected items and the recorded timings: the tests check that it is deterministic, balanced,
keeps every unit whole and puts each kind of test item where the module docstring says. The last
tests run ``pytest --collect-only`` in a subprocess for the usage errors (they stop before
anything imports TensorFlow).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import shard
from bench.shard import DEFERRED, Item, ShardError, ShardSpec, assign, parse_shard, unit_costs

ROOT = Path(__file__).resolve().parents[2]
MODELS, MODES, BACKENDS = ["cnn", "mobilenet"], ["float32", "ptq_int8", "qat_int8"], ["keras", "litert", "onnxruntime"]
SELECTION = {"models": MODELS, "modes": MODES, "backends": BACKENDS}
ONNX = ["onnxruntime"]


# --- --shard K/N -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "spec"), [("1/1", ShardSpec(1, 1)), ("2/3", ShardSpec(2, 3)),
                                            (" 3 / 3 ", ShardSpec(3, 3)), ("10/12", ShardSpec(10, 12))])
def test_parse_reads_k_of_n(text, spec):
    assert parse_shard(text) == spec
    assert str(spec) == f"{spec.index}/{spec.total}"


@pytest.mark.parametrize(("text", "says"), [
    ("0/3", "K must lie between 1 and N (3)"), ("4/3", "K must lie between 1 and N (3)"),
    ("1/0", "N must be at least 1"), ("0/0", "N must be at least 1"), ("a/b", "is not K/N"),
    ("3", "is not K/N"), ("", "is not K/N"), ("-1/3", "is not K/N"), ("1/2/3", "is not K/N"),
    ("1.5/3", "is not K/N"),
])
def test_a_bad_value_says_what_is_wrong_and_the_right_form(text, says):
    with pytest.raises(ShardError) as caught:
        parse_shard(text)
    assert says in str(caught.value)
    assert "--shard takes K/N" in str(caught.value) and "1 <= K <= N" in str(caught.value)


# --- LPT assignment ------------------------------------------------------------------------------


def test_lpt_deals_longest_first_to_the_least_loaded_shard():
    units = [("a",), ("b",), ("c",), ("d",), ("e",)]
    costs = {("a",): 5.0, ("b",): 4.0, ("c",): 3.0, ("d",): 3.0, ("e",): 3.0}
    # a -> 1 (5); b -> 2 (4); c -> 2 (7); d -> 1 (8); e -> 2 (10)
    assert assign(units, costs, 2) == [[("a",), ("d",)], [("b",), ("c",), ("e",)]]


def test_lpt_balances_within_its_bound_over_many_cost_sets():
    """Every unit lands once, and no shard carries more than the mean load plus (1 - 1/N) of the
    largest unit (Graham's bound for a greedy deal, which LPT meets). Seeded random costs."""
    import numpy as np

    rng = np.random.default_rng(66)
    for _ in range(200):
        n_units, total = int(rng.integers(3, 12)), int(rng.integers(2, 4))
        units = [(f"u{i}",) for i in range(n_units)]
        costs = {u: float(rng.uniform(1, 100)) for u in units}
        shards = assign(units, costs, total)
        assert sorted(u for s in shards for u in s) == sorted(units)  # each unit exactly once
        loads = [sum(costs[u] for u in s) for s in shards]
        bound = sum(costs.values()) / total + (1 - 1 / total) * max(costs.values())
        assert max(loads) <= bound + 1e-9, (costs, shards)


def test_lpt_is_the_same_for_the_same_arguments_and_keeps_unit_order_within_a_shard():
    units = [(f"m{i}", b) for i in range(4) for b in ("x", "y")]
    costs = {u: float(1 + i % 3) for i, u in enumerate(units)}
    first = assign(units, costs, 3)
    assert all(assign(units, dict(costs), 3) == first for _ in range(5))
    for shard_units in first:
        assert shard_units == sorted(shard_units, key=units.index)


def test_equal_costs_break_ties_by_unit_order_then_shard_number():
    units = [("a",), ("b",), ("c",), ("d",)]
    assert assign(units, {}, 2) == [[("a",), ("c",)], [("b",), ("d",)]]
    assert assign(units, {}, 4) == [[("a",)], [("b",)], [("c",)], [("d",)]]


def test_a_unit_never_timed_costs_the_mean_of_the_timed_ones():
    units = [("big",), ("small",), ("unknown",)]
    costs = {("big",): 10.0, ("small",): 2.0, ("unknown",): None}
    assert shard.filled_costs(units, costs)[("unknown",)] == 6.0
    # big alone; small + unknown (2 + 6) together: balanced against 10.
    assert assign(units, costs, 2) == [[("big",)], [("small",), ("unknown",)]]


# --- Units ---------------------------------------------------------------------------------------


def _items(models=MODELS, modes=MODES, backends=BACKENDS) -> list[Item]:
    """The items tests/bench collects for a selection (the kinds of parameter each test takes)."""
    items = []
    for case in itertools.product(models, modes, backends):
        cid = "-".join(case)
        items += [Item(f"tests/bench/test_cases.py::test_case[{cid}]", "test_case", {"case": case}),
                  Item(f"tests/bench/test_reality.py::test_layer_error[{cid}]", "test_layer_error", {"case": case})]
    for pair in itertools.product(models, backends):
        items.append(Item(f"tests/bench/test_cases.py::test_qat_not_worse_than_ptq[{'-'.join(pair)}]",
                          "test_qat_not_worse_than_ptq", {"model_backend": pair}))
    for pair in itertools.product(models, modes):
        items.append(Item(f"tests/bench/test_cases.py::test_backends_agree[{'-'.join(pair)}]",
                          "test_backends_agree", {"model_mode": pair}))
    items += [Item(f"tests/bench/test_portability.py::test_integer_onnx_files[{m}]",
                   "test_integer_onnx_files", {"bench_model": m}) for m in models]
    items.append(Item("tests/bench/test_speed_check.py::test_planted_int8_slowdown_is_caught",
                      "test_planted_int8_slowdown_is_caught", {}))
    return items


def _split(items=None, by="backend", total=3, costs=None) -> shard.Split:
    return shard.split(items if items is not None else _items(), by=by, total=total, selection=SELECTION,
                       onnx_backends=ONNX, costs_of=lambda units: costs or {}, tier="smoke")


def _ran(split: shard.Split, items: list[Item]) -> list[list[str]]:
    return [[i.nodeid for i in items if split.keeps(i.nodeid, k)] for k in range(1, split.total + 1)]


def test_by_model_every_item_of_a_model_runs_in_one_shard_and_nothing_is_deferred():
    items = _items()
    split = _split(items, by="model", total=2)
    assert split.units == (("cnn",), ("mobilenet",))
    assert not split.deferred
    ran = _ran(split, items)
    assert sorted(itertools.chain(*ran)) == sorted(i.nodeid for i in items)  # each item once
    for k, nodeids in enumerate(ran, start=1):
        models = {m for m in MODELS for n in nodeids if f"[{m}" in n}
        assert models == {split.shards[k - 1][0][0]}, nodeids


def test_by_backend_each_pair_is_a_unit_and_agreement_is_left_to_the_merge():
    items = _items()
    split = _split(items, by="backend", total=3)
    assert split.units == tuple((m, b) for m in MODELS for b in BACKENDS)
    ran = _ran(split, items)
    everything = sorted(itertools.chain(*ran))
    agree = sorted(i.nodeid for i in items if i.function == "test_backends_agree")
    assert everything == sorted(set(i.nodeid for i in items) - set(agree))  # every other item once
    assert sorted(split.deferred) == agree
    assert sorted(set(split.deferred.values())) == sorted(f"agreement:{m}-{mode}" for m in MODELS for mode in MODES)
    for k, nodeids in enumerate(ran, start=1):
        for n in nodeids:
            unit = split.item_units[n]
            assert unit in split.shards[k - 1]
    # A case's items and QAT against PTQ of its pair go together.
    assert split.item_units["tests/bench/test_cases.py::test_case[cnn-qat_int8-litert]"] == \
        split.item_units["tests/bench/test_cases.py::test_qat_not_worse_than_ptq[cnn-litert]"] == ("cnn", "litert")
    # Portability runs with the model's first ONNX runtime; a check of no model with the first unit.
    assert split.item_units["tests/bench/test_portability.py::test_integer_onnx_files[mobilenet]"] == \
        ("mobilenet", "onnxruntime")
    assert split.item_units["tests/bench/test_speed_check.py::test_planted_int8_slowdown_is_caught"] == \
        ("cnn", "keras")
    assert split.item_units["tests/bench/test_cases.py::test_backends_agree[cnn-float32]"] == DEFERRED


def test_the_split_is_the_same_whatever_order_pytest_collected_the_items_in():
    items = _items()
    costs = {("cnn", "litert"): 9.0, ("mobilenet", "keras"): 4.0}
    first = _split(items, costs=costs)
    shuffled = _split(list(reversed(items)), costs=costs)
    assert (shuffled.shards, shuffled.plan) == (first.shards, first.plan)


def test_the_plan_changes_with_n_the_unit_the_items_and_the_assignment():
    items = _items()
    plan = _split(items).plan
    assert _split(items).plan == plan
    assert _split(items, total=2).plan != plan
    assert _split(items, by="model", total=2).plan != _split(items, by="backend", total=2).plan
    assert _split(items[1:]).plan != plan  # -k dropped an item
    timed = _split(items, costs={("mobilenet", "onnxruntime"): 100.0, ("cnn", "keras"): 1.0})
    assert timed.shards != _split(items).shards and timed.plan != plan  # other timings, other deal


def test_fewer_units_than_shards_is_refused_with_the_count():
    with pytest.raises(ShardError, match=r"has 2 unit\(s\) when split by model \(cnn, mobilenet\), fewer than the 3"):
        _split(by="model", total=3)


def test_the_shard_field_names_its_units_cases_and_the_whole_count():
    split = _split(total=2)
    field = split.field(2, cases_total=18, cases=["mobilenet-float32-keras", "cnn-float32-litert"])
    assert field["index"] == 2 and field["total"] == 2 and field["by"] == "backend"
    assert field["units"] == ["-".join(u) for u in split.shards[1]]
    assert field["cases"] == ["cnn-float32-litert", "mobilenet-float32-keras"]
    assert field["cases_total"] == 18 and field["plan"] == split.plan
    assert field["deferred"][0] == "agreement:cnn-float32"
    assert field["selection"] == SELECTION
    assert "shard 2/2 by backend" in split.describe(2)


# --- Costs ---------------------------------------------------------------------------------------


WORK = [("train", "cnn"), ("qat", "cnn"), ("convert", "cnn-float32-litert"), ("convert", "cnn-ptq_int8-litert"),
        ("evaluate", "cnn-ptq_int8-litert"), ("convert", "cnn-float32-onnxruntime"), ("train", "mobilenet")]
HISTORY = {"train:cnn": 100.0, "qat:cnn": 50.0, "convert:cnn-float32-litert": 8.0, "convert:cnn-ptq_int8-litert": 4.0,
           "evaluate:cnn-ptq_int8-litert": 0.5, "convert:cnn-float32-onnxruntime": 1.0}


def test_a_model_unit_costs_its_training_and_every_case_of_it():
    costs = unit_costs([("cnn",), ("mobilenet",)], "model", WORK, HISTORY)
    assert costs == {("cnn",): 163.5, ("mobilenet",): None}  # mobilenet never timed


def test_a_backend_unit_costs_no_training():
    costs = unit_costs([("cnn", "litert"), ("cnn", "onnxruntime"), ("mobilenet", "litert")], "backend", WORK, HISTORY)
    assert costs == {("cnn", "litert"): 12.5, ("cnn", "onnxruntime"): 1.0, ("mobilenet", "litert"): None}


def test_history_comes_from_the_committed_results(tmp_path):
    assert shard.history(tmp_path, "smoke") == {}  # none there
    (tmp_path / "reports" / "smoke").mkdir(parents=True)
    (tmp_path / "reports" / "smoke" / "results.json").write_text(json.dumps({
        "schema": 2, "cases": [{"id": "cnn-float32-litert", "convert_seconds": 2.5, "eval_seconds": 0.5}],
        "models": {"cnn": {"train_seconds": 10.0}}}))
    assert shard.history(tmp_path, "smoke") == {"convert:cnn-float32-litert": 2.5, "evaluate:cnn-float32-litert": 0.5,
                                                "train:cnn": 10.0}
    (tmp_path / "reports" / "smoke" / "results.json").write_text("{broken")
    assert shard.history(tmp_path, "smoke") == {}


# --- The shard's results file --------------------------------------------------------------------


def test_a_shard_refuses_a_folder_holding_another_runs_results(tmp_path):
    path = tmp_path / "smoke" / "results.json"
    shard.refuse_foreign_results(path, ShardSpec(1, 3))  # nothing there: fine
    path.parent.mkdir()
    path.write_text(json.dumps({"schema": 2, "cases": []}))
    with pytest.raises(ShardError, match=r"already holds the results of another run.*--reports-dir .*shard-1-of-3"):
        shard.refuse_foreign_results(path, ShardSpec(1, 3))
    path.write_text(json.dumps({"schema": 2, "cases": [], "shard": {"index": 2, "total": 3}}))
    with pytest.raises(ShardError, match=r"already holds shard 2/3's results"):
        shard.refuse_foreign_results(path, ShardSpec(1, 3))
    shard.refuse_foreign_results(path, ShardSpec(2, 3))  # an earlier run of the same shard: replaced


def test_the_outcome_is_written_into_the_shards_results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": 2, "cases": [], "shard": {"index": 1, "total": 2}}))
    outcome = {"exitstatus": 1, "failed_tests": ["t::x"], "failures": ["m"]}
    field = shard.record_outcome(path, outcome)
    assert field["outcome"] == outcome
    assert json.loads(path.read_text())["shard"]["outcome"] == outcome
    path.write_text(json.dumps({"schema": 2, "cases": []}))
    assert shard.record_outcome(path, outcome) is None


# --- The options, as a user meets them -----------------------------------------------------------


def _collect(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench/cases", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "says"), [
    (["--shard", "4/3"], "--shard 4/3: K must lie between 1 and N (3)"),
    (["--shard", "a/b"], "--shard 'a/b' is not K/N"),
    (["--shard", "1/2", "--shard-by", "mode"], "--shard-by 'mode': use one of auto, model, backend"),
    (["--shard", "1/2", "--update-baselines"], "--update-baselines takes a whole run"),
])
def test_misuse_is_a_usage_error_before_the_run(args, says, tmp_path):
    result = _collect(*args, "--reports-dir", str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert says in output and "Traceback" not in output, output


def test_a_shard_into_a_folder_of_another_run_is_a_usage_error(tmp_path):
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "results.json").write_text(json.dumps({"schema": 2, "cases": []}))
    result = _collect("--shard", "1/2", "--reports-dir", str(tmp_path))
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "already holds the results of another run" in result.stdout + result.stderr
