"""The A/B gate runs each side's cases from that side's own case folder.

The cases moved from tests/bench into the package (bench/cases); a REF from before the move still
has them at tests/bench. The end-to-end gate is tests/reliability/test_ab_gate.py; here the
layout rules alone, on folders made in ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import ab


def tree(tmp_path: Path, cases: str | None) -> Path:
    root = tmp_path / (cases or "none").replace("/", "-")
    (root / "bench").mkdir(parents=True)
    if cases:
        (root / cases).mkdir(parents=True, exist_ok=True)
    return root


def test_each_tree_runs_the_cases_where_it_keeps_them(tmp_path):
    now, before = tree(tmp_path, "bench/cases"), tree(tmp_path, "tests/bench")
    assert ab.tests_in(now, [ab.DEFAULT_TESTS]) == ["bench/cases"]
    assert ab.tests_in(before, [ab.DEFAULT_TESTS]) == ["tests/bench"]
    # A file of the case folder, named in either layout, is that side's own file.
    for named in ("bench/cases/test_cases.py", "tests/bench/test_cases.py"):
        assert ab.tests_in(now, [named]) == ["bench/cases/test_cases.py"]
        assert ab.tests_in(before, [named]) == ["tests/bench/test_cases.py"]
    # Anything else is passed as it is.
    assert ab.tests_in(before, ["tests/reliability", "bench/casesx"]) == ["tests/reliability", "bench/casesx"]


def test_a_tree_without_cases_cannot_be_gated(tmp_path):
    with pytest.raises(ab.GateError, match="holds none of bench/cases, tests/bench"):
        ab.tests_in(tree(tmp_path, None), [ab.DEFAULT_TESTS])


def test_a_failed_test_has_one_id_in_both_layouts():
    failed = "test_case[cnn-ptq_int8-litert]"
    assert ab.current_layout(f"tests.bench.test_cases::{failed}") == f"bench.cases.test_cases::{failed}"
    assert ab.current_layout(f"bench.cases.test_cases::{failed}") == f"bench.cases.test_cases::{failed}"
    assert ab.current_layout("tests.reliability.test_x::test_y") == "tests.reliability.test_x::test_y"
