"""Shards: one bench run split into N parts that run apart and merge back into one run's results.

``pytest --pyargs bench.cases --shard K/N --reports-dir DIR`` runs the K-th of N shards of the selection and
writes ``DIR/<tier>/results.json`` with that shard's cases only; ``python -m bench.merge``
(:mod:`bench.merge`) combines the N files into the results, REPORT.md and verdicts one run of the
whole selection gives.

Units. A shard runs whole units, never part of one:

- ``model``: a model trains once for all its cases, so every test item of a model goes with it
  (its cases, QAT against PTQ, backend agreement, portability, the reality and latency checks).
- ``backend``: where every selected model's trained float model (and, with a QAT mode selected,
  its QAT model) is already in the cache (a bundle was imported, or an earlier run trained them),
  no shard trains anything and the run splits finer, by (model, backend): the items of that
  pair's cases, QAT against PTQ on that backend, and portability of the model with its first
  selected ONNX runtime. Backend agreement compares backends that now run in different shards:
  no shard runs it (it is ``deferred``); the merge computes it from the cases' per-image
  predictions, with the same floors and gate.

``--shard-by auto`` (the default) takes ``backend`` where the cache allows it, else ``model``.
A test item that names no model (a check of one fixed model) goes with the first unit.

Balance. A unit costs the seconds an earlier run recorded for its work (training, QAT,
conversion, evaluation: :func:`bench.progress.history_from_results`); a unit none of whose work
was timed costs the mean of the others. Units are dealt longest first to the least-loaded shard
(LPT, as pytest-split does), ties by unit order and then shard number, so every shard computes
the same assignment without talking to the others. The timings come from the committed
``reports/<tier>/results.json``, not from ``reports/local/``: a shard's own run rewrites the local
file, and a shard started after it (on the same machine) would then deal the units otherwise.
The assignment, the selection and the collected test items are hashed into the shard's ``plan``;
the merge refuses shards of different plans.

Judgement. Every shard counts the cases of the whole selection (before dropping the other shards'
items) and judges its cases with that count's per-case alpha (:func:`bench.stats.per_case_alpha`),
so a shard's verdicts are those of the whole run; the merge re-judges them anyway.

Nothing here imports TensorFlow except :func:`survey`, which asks the builder what is cached.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from bench import atomic
from bench.cache import key_of
from bench.errors import BenchError
from bench.results import case_id, parse_case_id

SHARD_BY = ("auto", "model", "backend")
# Test functions whose item spans backends, which a split by backend puts in different shards:
# no shard runs them; the merge computes them from the shards' results (bench.merge).
DEFERRED_CHECKS = {"test_backends_agree": "agreement"}
# The kinds of plan item (bench.progress.PlanItem) that train a model: a split by backend has
# every model trained already, so they cost its units nothing.
TRAINING_KINDS = ("train", "qat")

Unit = tuple[str, ...]


class ShardError(BenchError):
    """A --shard value or selection that cannot be split as asked."""


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """``--shard K/N``: the K-th (1-based) of N shards."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> ShardSpec:
    """``"2/3"`` -> ShardSpec(2, 3).

    Raises:
        ShardError: Not two whole numbers ``K/N`` with ``1 <= K <= N``.
    """
    match = _SHARD.match(text or "")
    form = "--shard takes K/N: run the K-th of N shards, 1 <= K <= N (e.g. --shard 2/3)"
    if not match:
        raise ShardError(f"--shard {text!r} is not K/N; {form}")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1:
        raise ShardError(f"--shard {text}: N must be at least 1; {form}")
    if not 1 <= index <= total:
        raise ShardError(f"--shard {text}: K must lie between 1 and N ({total}); shards are numbered "
                         f"from 1; {form}")
    return ShardSpec(index, total)


def unit_name(unit: Unit) -> str:
    """``("cnn", "litert")`` -> ``cnn-litert``."""
    return "-".join(unit)


@dataclasses.dataclass(frozen=True)
class Item:
    """What the split needs of one collected test item.

    Attributes:
        nodeid: pytest's id of the item.
        function: The test function's name (``test_backends_agree``), without parameters.
        params: The item's parameters (``case``, ``model_backend``, ``model_mode``, ``bench_model``).
    """

    nodeid: str
    function: str
    params: Mapping[str, object]


# What unit_of returns for an item no shard runs (see DEFERRED_CHECKS).
DEFERRED = ("<deferred>",)


def unit_of(item: Item, by: str, backends: Sequence[str], onnx_backends: Sequence[str]) -> Unit | None:
    """The unit an item belongs to, :data:`DEFERRED`, or None when it names no model.

    Args:
        item: The item.
        by: ``model`` or ``backend``.
        backends: The selected backends, in order.
        onnx_backends: Those of them that read ONNX files, in order (portability's runtimes).
    """
    params = item.params
    if "case" in params:
        model, _, backend = params["case"]
        return (model,) if by == "model" else (model, backend)
    if "model_backend" in params:
        model, backend = params["model_backend"]
        return (model,) if by == "model" else (model, backend)
    if "model_mode" in params:
        model, _ = params["model_mode"]
        if by == "model":
            return (model,)
        return DEFERRED if item.function in DEFERRED_CHECKS else (model, backends[0])
    if "bench_model" in params:
        model = params["bench_model"]
        # Portability runs every ONNX file of the model on every ONNX runtime: one shard does it,
        # the one that runs the model on the first of them.
        return (model,) if by == "model" else (model, (list(onnx_backends) or list(backends))[0])
    return None


def deferred_id(item: Item) -> str:
    """``agreement:cnn-float32``: the check a deferred item leaves to the merge."""
    model, mode = item.params["model_mode"]
    return f"{DEFERRED_CHECKS[item.function]}:{model}-{mode}"


def assign(units: Sequence[Unit], costs: Mapping[Unit, float | None], total: int) -> list[list[Unit]]:
    """Deals units to ``total`` shards, longest first to the least-loaded shard (LPT).

    A unit without a known cost (None or not positive) costs the mean of the known ones (1 each
    when none is known). Ties go to the earlier unit and then to the lower shard, so the result
    depends on nothing but the arguments.

    Returns:
        The units of each shard (index 0 is shard 1), each list in ``units``' order.
    """
    cost = filled_costs(units, costs)
    position = {u: i for i, u in enumerate(units)}
    loads = [0.0] * total
    shards: list[list[Unit]] = [[] for _ in range(total)]
    for unit in sorted(units, key=lambda u: (-cost[u], position[u])):
        target = min(range(total), key=lambda k: (loads[k], k))
        shards[target].append(unit)
        loads[target] += cost[unit]
    return [sorted(shard, key=position.__getitem__) for shard in shards]


def filled_costs(units: Sequence[Unit], costs: Mapping[Unit, float | None]) -> dict[Unit, float]:
    """Each unit's cost, the mean of the known ones standing in for an unknown one (None or not
    positive), 1 each when none is known."""
    known = [c for c in (costs.get(u) for u in units) if c is not None and c > 0]
    fill = sum(known) / len(known) if known else 1.0
    return {u: c if c is not None and c > 0 else fill for u, c in ((u, costs.get(u)) for u in units)}


def unit_costs(units: Iterable[Unit], by: str, work: Iterable[tuple[str, str]],
               history: Mapping[str, float]) -> dict[Unit, float | None]:
    """Recorded seconds of each unit's work; None for a unit none of whose work was timed.

    Args:
        units: The units.
        by: ``model`` or ``backend``; a split by backend trains nothing, so training costs nothing.
        work: ``(kind, name)`` plan items (:class:`bench.progress.PlanItem`): ``train``/``qat``
            name a model, ``convert``/``evaluate`` a case id (for ``convert``, of the backend that
            makes the file).
        history: Seconds by ``kind:name`` (:func:`bench.progress.history_from_results`).
    """
    costs: dict[Unit, float | None] = {unit: None for unit in units}
    for kind, name in work:
        if kind in TRAINING_KINDS:
            if by != "model":
                continue
            unit: Unit = (name,)
        else:
            model, _, backend = parse_case_id(name)
            unit = (model,) if by == "model" else (model, backend)
        seconds = history.get(f"{kind}:{name}")
        if unit in costs and seconds is not None:
            costs[unit] = (costs[unit] or 0.0) + seconds
    return costs


@dataclasses.dataclass(frozen=True)
class Split:
    """A selection's split into shards, the same in every shard.

    Attributes:
        by: ``model`` or ``backend``.
        total: N.
        units: Every unit, in unit order (models, then backends, in selection order).
        shards: The units of each shard (index 0 is shard 1).
        costs: Each unit's estimated seconds (None: never timed; it counted as the mean).
        item_units: Item node id -> its unit, or :data:`DEFERRED`.
        deferred: Node id of each deferred item -> the check the merge runs for it.
        plan: Hash of the selection, the items, N, ``by`` and the assignment.
        selection: ``{"models", "modes", "backends"}`` as selected, in order.
    """

    by: str
    total: int
    units: tuple[Unit, ...]
    shards: tuple[tuple[Unit, ...], ...]
    costs: Mapping[Unit, float | None]
    item_units: Mapping[str, Unit]
    deferred: Mapping[str, str]
    plan: str
    selection: Mapping[str, list[str]]

    def keeps(self, nodeid: str, index: int) -> bool:
        """Whether shard ``index`` (1-based) runs the item."""
        return self.item_units.get(nodeid) in self.shards[index - 1]

    def field(self, index: int, cases_total: int, cases: Iterable[str]) -> dict:
        """The ``shard`` field of shard ``index``'s results.json (its ``outcome`` comes at the end,
        :func:`record_outcome`).

        Args:
            index: K.
            cases_total: The cases the whole run judges (the per-case alpha's count).
            cases: Ids of the cases this shard is to judge.
        """
        return {
            "index": index,
            "total": self.total,
            "by": self.by,
            "units": [unit_name(u) for u in self.shards[index - 1]],
            "plan": self.plan,
            "cases_total": cases_total,
            "cases": sorted(cases),
            "deferred": sorted(set(self.deferred.values())),
            "selection": {key: list(value) for key, value in self.selection.items()},
        }

    def describe(self, index: int) -> str:
        """One line: this shard's units and the split's estimated balance."""
        cost = filled_costs(self.units, self.costs)
        loads = [sum(cost[u] for u in shard) for shard in self.shards]
        timed = any(c is not None and c > 0 for c in self.costs.values())
        balance = (" (estimated " + " / ".join(f"{round(load)} s" for load in loads) + " per shard)"
                   if timed else " (no earlier timings: units dealt evenly)")
        deferred = (f"; left to the merge: {', '.join(sorted(set(self.deferred.values())))}"
                    if self.deferred else "")
        return (f"quantbench shard {index}/{self.total} by {self.by}: "
                f"{', '.join(unit_name(u) for u in self.shards[index - 1]) or 'no unit'} "
                f"of {len(self.units)} units{balance}{deferred}")


def split(items: Sequence[Item], *, by: str, total: int, selection: Mapping[str, Sequence[str]],
          onnx_backends: Sequence[str], costs_of: Callable[[list[Unit]], Mapping[Unit, float | None]],
          tier: str) -> Split:
    """Splits the collected items into ``total`` shards of whole units.

    Args:
        items: The items left after ``-k`` and ``-m``, before any shard drops some.
        by: ``model`` or ``backend`` (``auto`` resolved by the caller, see :func:`survey`).
        total: N.
        selection: ``{"models", "modes", "backends"}`` as selected, in order.
        onnx_backends: The selected backends that read ONNX files, in order.
        costs_of: The units -> their estimated seconds (see :func:`unit_costs`).
        tier: The tier's name (hashed into the plan).

    Raises:
        ShardError: Fewer units than shards: a shard would run nothing.
    """
    models, backends = list(selection["models"]), list(selection["backends"])
    item_units: dict[str, Unit] = {}
    deferred: dict[str, str] = {}
    found: set[Unit] = set()
    unowned = []
    for item in items:
        unit = unit_of(item, by, backends, onnx_backends)
        if unit == DEFERRED:
            deferred[item.nodeid] = deferred_id(item)
            item_units[item.nodeid] = DEFERRED
        elif unit is None:
            unowned.append(item.nodeid)
        else:
            item_units[item.nodeid] = unit
            found.add(unit)

    def order(unit: Unit) -> tuple:
        names = (models, backends)
        return tuple((names[i].index(name) if name in names[i] else len(names[i]), name)
                     for i, name in enumerate(unit))

    units = tuple(sorted(found, key=order))
    if len(units) < total:
        names = ", ".join(unit_name(u) for u in units) or "none"
        raise ShardError(f"this selection has {len(units)} unit(s) when split by {by} ({names}), fewer "
                         f"than the {total} shards, so a shard would run nothing; use at "
                         f"most {len(units)} shards" + (", or train the models first (`python -m bench.train "
                                                        f"--tier {tier}`) so that it splits by backend"
                                                        if by == "model" else ""))
    for nodeid in unowned:  # a check of one fixed model: it goes with the first unit
        item_units[nodeid] = units[0]
    costs = dict(costs_of(list(units)))
    shards = tuple(tuple(shard) for shard in assign(units, costs, total))
    plan = key_of({
        "tier": tier, "selection": {k: list(v) for k, v in selection.items()}, "total": total, "by": by,
        "items": sorted(item.nodeid for item in items),
        "shards": [[unit_name(u) for u in shard] for shard in shards],
    })
    return Split(by=by, total=total, units=units, shards=shards, costs=costs, item_units=item_units,
                 deferred=deferred, plan=plan,
                 selection={k: list(v) for k, v in selection.items()})


# --------------------------------------------------------------------------------------------
# What the run knows: the cache and earlier timings


@dataclasses.dataclass(frozen=True)
class Survey:
    """What the builder says about a selection before it runs.

    Attributes:
        work: ``(kind, name)`` of every plan item (training, QAT, conversion, evaluation).
        trained: Whether every model's float (and needed QAT) entry is in the cache.
        problem: Why the cache could not be asked (no data set), or None.
    """

    work: list[tuple[str, str]]
    trained: bool
    problem: str | None = None


def survey(options) -> Survey:
    """Asks the builder (:meth:`bench.build.Builder.plan`) what the selection's cases need and
    what of it the cache holds. Imports TensorFlow (the cache keys build the models' graphs).

    Args:
        options: The run's :class:`bench.run.Options`.
    """
    from bench.build import Builder
    from bench.modes import MODES
    from bench.selection import Selection

    cases = Selection.of(options).declared()
    evaluations = [("evaluate", case_id(*case)) for case in cases]
    try:
        planned = Builder(options.tier, options.calibration_method).plan(cases)
    except BenchError as exc:  # the first case reports it properly; the split only needs names
        models = list(dict.fromkeys(m for m, _, _ in cases))
        work = [("train", m) for m in models]
        work += [("qat", m) for m in models if any(MODES.get(mode).uses_qat for mm, mode, _ in cases if mm == m)]
        return Survey(work + evaluations, trained=False, problem=str(exc))
    trained = all(cached for kind, _, cached in planned if kind in TRAINING_KINDS)
    return Survey([(kind, name) for kind, name, _ in planned] + evaluations, trained=trained)


def history(root: Path, tier: str) -> dict[str, float]:
    """Recorded seconds per plan item from the committed ``reports/<tier>/results.json`` (none
    when it is missing or unreadable); see the module docstring for why not reports/local/."""
    from bench.progress import history_from_results
    from bench.results import load_results

    path = Path(root) / "reports" / tier / "results.json"
    if not path.is_file():
        return {}
    try:
        return history_from_results(load_results(path))
    except BenchError:
        return {}


# --------------------------------------------------------------------------------------------
# The shard's results file


def refuse_foreign_results(path: Path, spec: ShardSpec) -> None:
    """Refuses to start a shard whose results.json would land on another run's.

    publish() merges a run into the results.json already in its folder, keeping the earlier run's
    rows: a shard's file must hold its own cases only, so it needs a folder of its own (or one
    holding an earlier run of the same shard, whose rows this one replaces).

    Raises:
        ShardError: ``path`` exists and is not a results file of shard ``spec``.
    """
    if not path.exists():
        return
    try:
        earlier = json.loads(path.read_text()).get("shard")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if isinstance(earlier, dict) and (earlier.get("index"), earlier.get("total")) == (spec.index, spec.total):
        return
    what = (f"shard {earlier.get('index')}/{earlier.get('total')}'s results" if isinstance(earlier, dict)
            else "the results of another run")
    raise ShardError(f"{path} already holds {what}; a shard's results.json must hold its own cases only "
                     f"(the bench merges a run into the file it finds): give each shard an empty folder of "
                     f"its own, e.g. --reports-dir {path.parent.parent / f'shard-{spec.index}-of-{spec.total}'}")


def record_outcome(path: Path, outcome: dict) -> dict | None:
    """Adds how the shard's session ended to its results.json (``shard.outcome``), under the
    results' lock; returns the ``shard`` field, or None when the file holds no shard.

    Written last, after every case: a shard file without an outcome was interrupted, and the
    merge says so.
    """
    from bench.publish import lock_path

    with atomic.file_lock(lock_path(path)):
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        field = document.get("shard")
        if not isinstance(field, dict):
            return None
        field["outcome"] = outcome
        atomic.write_json(path, document)
    return field


def summary_lines(field: Mapping | None, results_path: Path | None) -> list[str]:
    """The shard's lines at the end of its pytest output: what it ran and how to merge."""
    if not field:
        return []
    lines = ["", f"quantbench shard {field['index']}/{field['total']} by {field['by']}: "
                 f"{', '.join(field['units'])}; {len(field['cases'])} of the run's {field['cases_total']} "
                 "judged cases"]
    if field.get("deferred"):
        lines.append(f"quantbench left to the merge: {', '.join(field['deferred'])}")
    where = results_path or "<DIR>/<tier>/results.json"
    lines.append(f"quantbench merge the {field['total']} shards' results with `python -m bench.merge --out DIR "
                 f"{where} ...`")
    return lines
