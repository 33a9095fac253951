"""Whether shards' results files can be merged into one run's (``bench.merge``).

Each check refuses with a :class:`MergeError` that names the file and says what to do: shards of
different tiers, plans, testbeds, data sets, baselines or case counts; a shard missing or given
twice; a case in two shards; a shard that did not finish; rows an earlier run left in a shard's
folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError


class MergeError(BenchError):
    """Inputs that cannot be merged into one run's results (exit status 2)."""



def _label(path: Path, document: dict) -> str:
    field = document.get("shard") or {}
    return f"shard {field.get('index')}/{field.get('total')} ({path})"


def _same(shards: list[tuple[Path, dict]], what: str, value, advice: str) -> None:
    """Refuses shards that differ in ``value(document)`` (values that are None are not compared)."""
    seen: dict[str, list[str]] = {}
    for path, document in shards:
        found = value(document)
        if found is not None:
            seen.setdefault(json.dumps(found, sort_keys=True), []).append(_label(path, document))
    if len(seen) > 1:
        listed = "; ".join(f"{', '.join(labels)}: {found}" for found, labels in seen.items())
        raise MergeError(f"the shards differ in {what} ({listed}): {advice}")


def checked_shards(inputs: Sequence[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """The shards in index order, after every check that refuses them (see the module docstring)."""
    for path, document in inputs:
        if "shard" not in document:
            kind = "a merge's output" if "merged" in document else "a whole run's"
            raise MergeError(f"{path} is not a shard's results: it has no 'shard' field ({kind}); give the "
                             "results.json of every shard of one run (`pytest --pyargs bench.cases --shard K/N`), or a "
                             "single whole run's alone")
    shards = sorted(inputs, key=lambda pair: pair[1]["shard"]["index"])
    rerun = "run every shard with the same options (--tier, --models, --modes, --backends, -k, -m, --shard-by)"
    _same(shards, "tier", lambda d: d.get("tier"), rerun)
    _same(shards, "shard count N", lambda d: d["shard"]["total"], "give the shards of one --shard K/N run")
    _same(shards, "unit (--shard-by)", lambda d: d["shard"]["by"],
          "with --shard-by auto a shard splits by backend where the cache already holds every trained model: "
          "the cache changed between the shards (one trained what the other found); rerun them with the same "
          "--shard-by")
    _same(shards, "plan (selection, items, unit assignment)", lambda d: d["shard"]["plan"],
          f"{rerun}, from checkouts of the same commit (the committed timings deal the units)")
    _same(shards, "testbed", lambda d: d.get("testbed"), "merge shards run on CPUs of one testbed")
    _same(shards, "data set", lambda d: d.get("dataset_sha256"), "every shard must read the same Fashion-MNIST")
    _same(shards, "test images", lambda d: d.get("n_test"), rerun)
    _same(shards, "baselines judged against", lambda d: [(d.get("baseline") or {}).get(k) for k in ("testbed", "own")],
          "run every shard against the same baselines (--baselines-dir)")
    _same(shards, "whole run's case count", lambda d: d["shard"]["cases_total"], rerun)
    total = shards[0][1]["shard"]["total"]
    by_index: dict[int, list[Path]] = {}
    for path, document in shards:
        by_index.setdefault(document["shard"]["index"], []).append(path)
    for index, paths in sorted(by_index.items()):
        if len(paths) > 1:
            raise MergeError(f"shard {index}/{total} is given {len(paths)} times ({', '.join(map(str, paths))}): "
                             "give each shard's results.json once")
    missing = [k for k in range(1, total + 1) if k not in by_index]
    if missing:
        raise MergeError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(f'{k}/{total}' for k in missing)} "
                         f"missing: give the results.json of all {total} shards (run the missing ones with "
                         f"`pytest --pyargs bench.cases --shard K/{total}` and the others' options)")
    for path, document in shards:
        _check_own_rows(path, document)
    _check_disjoint(shards)
    _check_finished(shards)
    return shards


def _check_own_rows(path: Path, document: dict) -> None:
    """Refuses a shard file holding rows an earlier run left in its folder (``measured_by``)."""
    rows = [*document["cases"], *document.get("agreement", []), *document.get("portability", [])]
    earlier = [row for row in rows if row.get("measured_by")]
    if earlier:
        names = ", ".join(dict.fromkeys(str(row.get("id") or f"{row.get('model')}-{row.get('mode')}")
                                        for row in earlier[:5]))
        raise MergeError(f"{_label(path, document)} holds rows of an earlier run ({names}): the shard ran into a "
                         "folder that held other results, and the bench kept them; rerun the shard into an empty "
                         "--reports-dir of its own")


def _check_disjoint(shards: list[tuple[Path, dict]]) -> None:
    """Refuses a case (measured or not run) that two shards both report."""
    owner: dict[str, str] = {}
    for path, document in shards:
        ids = {case["id"] for case in document["cases"]} | {e["id"] for e in document.get("not_run", [])}
        for cid in sorted(ids):
            if cid in owner:
                raise MergeError(f"case {cid} is in two shards, {owner[cid]} and {_label(path, document)}: the "
                                 "shards were not split from one plan; rerun them with the same options")
            owner[cid] = _label(path, document)


def _check_finished(shards: list[tuple[Path, dict]]) -> None:
    """Refuses a shard that did not end (no outcome) or lacks cases it was to judge, and a split
    whose shards' cases do not add up to the whole run's count."""
    planned: set[str] = set()
    for path, document in shards:
        field = document["shard"]
        if not isinstance(field.get("outcome"), dict):
            raise MergeError(f"{_label(path, document)} has no recorded outcome: its session did not end (was it "
                             "interrupted?); rerun that shard")
        present = {case["id"] for case in document["cases"]} | {e["id"] for e in document.get("not_run", [])}
        lacking = sorted(set(field["cases"]) - present)
        if lacking:
            raise MergeError(f"{_label(path, document)} lacks cases it was to judge ({', '.join(lacking[:5])}"
                             f"{' ...' if len(lacking) > 5 else ''}): it did not finish; rerun that shard")
        planned |= set(field["cases"])
    cases_total = shards[0][1]["shard"]["cases_total"]
    if planned and len(planned) != cases_total:
        raise MergeError(f"the shards judge {len(planned)} cases in all, but each counted {cases_total} in the "
                         "whole run: they were not split from one collection; rerun them with the same options")
