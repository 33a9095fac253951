"""``python -m bench.ab REF [--out DIR] [--tests PATHS] [pytest args]``: the same-machine A/B gate.

Judges the working tree against the git commit REF, both built and run on this machine, case by
case with the bench's usual verdicts, so the gate holds on any runner whatever its CPU:

1. REF's files are exported (``git archive``) into ``DIR/ref`` and REF's own bench runs there
   (``pytest bench/cases -m "not latency" --update-baselines``) with REF's code: the export comes
   first on ``PYTHONPATH`` and is the working folder, so ``bench`` (and the ``pytest11`` entry
   point's ``bench.plugin``, which is imported by name) is REF's. A probe checks which
   ``bench/plugin.py`` is imported before each run. REF's baselines go to ``DIR/ref-baselines``.
2. The working tree's bench runs with ``--baselines-dir DIR/ref-baselines``: every case is judged
   against REF image by image. Its reports go to ``DIR/reports/<tier>/``, the change table to
   ``DIR/COMPARE.md``, and a summary of the gate to ``DIR/ab.json``.

Each side runs the cases from its own case folder: ``bench/cases`` since they ship with the
package, ``tests/bench`` at a REF from before (:data:`CASE_LAYOUTS`, detected per tree). A
``--tests`` path under either folder is taken to each side's own, and the failed tests of both
sides are named as in the current layout, so a failure both share is recognised as shared.

Both runs use this interpreter's environment and the user's model cache: an entry is shared only
where every source on its path hashes equal (:func:`bench.train.training_code_hash`,
:func:`bench.build.conversion_source_hash`), so only the cases a change touches are rebuilt.

The gate fails (exit 1) when a case is ``regressed`` against REF, when a test that passes at REF
fails in the working tree, or when a case REF ran is not run any more. A failure REF shares (an
absolute gate this CPU misses at REF too) is listed, not blocking: it is not the change's doing.
Exit 2: the gate could not run (an unknown REF, a REF that lacks what the gate needs, a run that
ended in an error rather than in verdicts).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

# The working tree: the checkout this module is imported from.
ROOT = Path(__file__).resolve().parents[1]
# Where a tree keeps the bench's cases, newest layout first: in the package, so that every project
# that installs it gets them; tests/bench before they moved there (REF may predate the move).
CASE_LAYOUTS = ("bench/cases", "tests/bench")
DEFAULT_TESTS = CASE_LAYOUTS[0]
# What REF's bench must offer for the gate to run it: its plugin module and these options.
REF_PLUGIN = "bench/plugin.py"
REF_OPTIONS = ("--baselines-dir", "--reports-dir", "--update-baselines")
# Options the gate sets itself, for both runs.
RESERVED = ("--baselines-dir", "--reports-dir", "--update-baselines", "--junitxml")
# pytest's exit statuses that end in verdicts: 0 all passed, 1 some tests failed.
FINISHED = (0, 1)
# Lines of a failed run's output shown in the error.
TAIL_LINES = 40
# Files whose difference from REF the A/B cannot judge: both sides run in this one environment.
ENVIRONMENT_FILES = ("requirements.lock", "pyproject.toml")
PASSED, FAILED, CANNOT_RUN = 0, 1, 2


class GateError(Exception):
    """The gate could not reach a verdict; the message says what to do."""


@dataclasses.dataclass
class Run:
    """One side's bench run: where it ran, how it ended, what it wrote."""

    label: str
    tree: Path
    returncode: int
    seconds: float
    junit: Path
    output_tail: list[str]


def git(*args: str, cwd: Path = ROOT) -> str:
    """Runs git in ``cwd`` and returns its stripped output.

    Raises:
        GateError: git failed (its own message is included).
    """
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise GateError(f"`git {' '.join(args)}` failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve(ref: str) -> str:
    """The full commit id ``ref`` names in the working tree's repository."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GateError:
        raise GateError(f"REF {ref!r} names no commit in {ROOT}; pass a branch, tag or commit id "
                        "(in CI, check out with fetch-depth: 0 so the base commit is there)") from None


def check_ref(ref: str, sha: str) -> None:
    """Refuses a REF whose bench predates what the gate drives (its plugin and options).

    Raises:
        GateError: Naming REF and what it lacks.
    """
    try:
        plugin = git("show", f"{sha}:{REF_PLUGIN}")
    except GateError:
        raise GateError(f"REF {ref} ({sha[:12]}) has no {REF_PLUGIN}: its bench predates the pytest "
                        "plugin module the A/B gate runs; choose a later REF") from None
    missing = [option for option in REF_OPTIONS if f'"{option}"' not in plugin]
    if missing:
        raise GateError(f"REF {ref} ({sha[:12]}) lacks the pytest option(s) {', '.join(missing)} in "
                        f"{REF_PLUGIN}, which the A/B gate needs to keep REF's baselines and reports "
                        "apart from the checkout's; choose a later REF")


def export(sha: str, dest: Path) -> None:
    """Writes the files of commit ``sha`` into ``dest`` (no .git: nothing of the repository moves)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True)
    if archive.returncode:
        raise GateError(f"`git archive {sha}` failed: {archive.stderr.decode(errors='replace').strip()}")
    unpacked = subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, capture_output=True)
    if unpacked.returncode:
        raise GateError(f"unpacking {sha[:12]} into {dest} failed: "
                        f"{unpacked.stderr.decode(errors='replace').strip()}")


def environment_for(tree: Path) -> dict[str, str]:
    """The environment of a run of ``tree``'s bench: its package first on the import path.

    pytest's own variables are left out (a run started from inside pytest, or with
    PYTEST_ADDOPTS, must not change what the two runs do).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def probe(tree: Path, env: dict[str, str]) -> Path:
    """Which ``bench/plugin.py`` a run in ``tree`` imports; it must be ``tree``'s own.

    Raises:
        GateError: Another checkout's plugin would be imported.
    """
    done = subprocess.run([sys.executable, "-c", "import bench.plugin; print(bench.plugin.__file__)"],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise GateError(f"importing bench.plugin from {tree} failed:\n{done.stderr.strip()}")
    imported = Path(done.stdout.strip().splitlines()[-1]).resolve()
    if imported != (tree / REF_PLUGIN).resolve():
        raise GateError(f"a run in {tree} would import {imported}, not {tree / REF_PLUGIN}; "
                        "unset PYTHONPATH entries or installs that shadow it")
    return imported


def case_folder(tree: Path) -> str:
    """The folder, relative to ``tree``, that holds its bench's cases (first of CASE_LAYOUTS).

    Raises:
        GateError: ``tree`` has none of them.
    """
    for folder in CASE_LAYOUTS:
        if (tree / folder).is_dir():
            return folder
    raise GateError(f"{tree} holds none of {', '.join(CASE_LAYOUTS)}: no bench cases to run there")


def tests_in(tree: Path, tests: list[str]) -> list[str]:
    """``tests`` as ``tree`` lays them out: a path under any case folder of CASE_LAYOUTS moves to
    ``tree``'s own (``bench/cases/test_cases.py`` is ``tests/bench/test_cases.py`` at an older REF);
    any other path is kept as it is."""
    own = case_folder(tree)
    moved = []
    for test in tests:
        folder = next((f for f in CASE_LAYOUTS if test == f or test.startswith(f"{f}/")), None)
        moved.append(own + test[len(folder):] if folder else test)
    return moved


def current_layout(test: str) -> str:
    """A JUnit test id (``package.module::name``) named as in the current layout, so that one
    test has one id on both sides: ``tests.bench.test_cases::x`` -> ``bench.cases.test_cases::x``."""
    current = CASE_LAYOUTS[0].replace("/", ".") + "."
    for folder in CASE_LAYOUTS[1:]:
        old = folder.replace("/", ".") + "."
        if test.startswith(old):
            return current + test[len(old):]
    return test


def run_bench(label: str, tree: Path, tests: list[str], args: list[str], baselines: Path,
              reports: Path, junit: Path, update: bool) -> Run:
    """Runs one side's bench in ``tree`` with ``tree``'s code, its output shown live; ``tests`` are
    taken to ``tree``'s case folder (:func:`tests_in`)."""
    env = environment_for(tree)
    plugin = probe(tree, env)
    tests = tests_in(tree, tests)
    command = [sys.executable, "-m", "pytest", *tests, "-m", "not latency", "-p", "no:cacheprovider",
               "--baselines-dir", str(baselines), "--reports-dir", str(reports),
               "--junitxml", str(junit), *(["--update-baselines"] if update else []), *args]
    print(f"[ab] {label}: {' '.join(command[1:])}\n[ab] {label}: in {tree}, plugin {plugin}", flush=True)
    began = time.perf_counter()
    tail: list[str] = []
    with subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            tail = (tail + [line.rstrip("\n")])[-TAIL_LINES:]
    seconds = time.perf_counter() - began
    print(f"[ab] {label}: exit {proc.returncode} after {seconds:.0f} s", flush=True)
    return Run(label, tree, proc.returncode, seconds, junit, tail)


def require_finished(run: Run, what: str) -> None:
    """Refuses a run that ended in an error instead of verdicts (usage error, crash, interrupt)."""
    if run.returncode not in FINISHED:
        raise GateError(f"{what} ended with pytest exit status {run.returncode} (not a verdict); its "
                        "last lines:\n" + "\n".join(run.output_tail))


def failed_tests(junit: Path) -> set[str]:
    """The tests a JUnit XML report records as failed or in error, as ``module::name`` ids in the
    current layout (:func:`current_layout`)."""
    if not junit.is_file():
        return set()
    failed = set()
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(current_layout(f"{case.get('classname', '')}::{case.get('name', '')}"))
    return failed


def tier_of(args: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--tier", default="smoke")
    return parser.parse_known_args(args)[0].tier


@dataclasses.dataclass
class Outcome:
    """What the gate found; :meth:`status` is its exit status."""

    verdicts: dict[str, str]
    regressed: list[str]
    new_failures: list[str]
    shared_failures: list[str]
    not_run: list[str]
    new_cases: list[str]

    def status(self) -> int:
        return FAILED if (self.regressed or self.new_failures or self.not_run) else PASSED


def judge(ref_baseline: dict, results: dict, ref_failed: set[str], tree_failed: set[str]) -> Outcome:
    """The gate's decision from REF's baselines, the working tree's results and both runs' failures.

    A case the working tree adds (no entry at REF) fails only for want of that entry; such a
    failure is not the change regressing anything, so it does not block.
    """
    ref_cases = set(ref_baseline.get("cases", {}))
    ran = {case["id"]: case for case in results["cases"] if case.get("status") in ("passed", "failed")}
    verdicts = {cid: case.get("baseline_verdict") or "no_baseline" for cid, case in ran.items()}
    new_cases = sorted(cid for cid in ran if cid not in ref_cases)
    only_missing_entry = {cid for cid in new_cases
                          if all("no baseline entry" in message for message in ran[cid].get("failures", []))}
    new_failures = sorted(test for test in tree_failed - ref_failed
                          if not any(test.endswith(f"[{cid}]") for cid in only_missing_entry))
    return Outcome(
        verdicts=dict(sorted(verdicts.items())),
        regressed=sorted(cid for cid, verdict in verdicts.items() if verdict == "regressed"),
        new_failures=new_failures,
        shared_failures=sorted(tree_failed & ref_failed),
        not_run=sorted(ref_cases - set(ran)),
        new_cases=new_cases,
    )


def summary_lines(ref: str, sha: str, outcome: Outcome, runs: list[Run], out: Path, tier: str,
                  environment_changed: list[str]) -> list[str]:
    counts = Counter(outcome.verdicts.values())
    lines = [
        f"A/B against {ref} ({sha[:12]}) on this machine, tier {tier}: {len(outcome.verdicts)} cases: "
        + ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())),
        *(f"  regressed: {cid}" for cid in outcome.regressed),
        *(f"  fails here, passes at REF: {test}" for test in outcome.new_failures),
        *(f"  run at REF, not run here: {cid}" for cid in outcome.not_run),
        *(f"  new here (no REF entry): {cid}" for cid in outcome.new_cases),
        *(f"  fails at REF too (not blocking): {test}" for test in outcome.shared_failures),
        *(f"  {name} differs from REF's: both sides ran in this environment, so that change is judged "
          "by the stored baselines (nox -s tests), not here" for name in environment_changed),
        "  times: " + ", ".join(f"{run.label} {run.seconds:.0f} s" for run in runs),
        f"  reports: {out / 'reports' / tier / 'REPORT.md'}, changes: {out / 'COMPARE.md'}",
        "A/B gate: " + ("FAILED" if outcome.status() else "passed"),
    ]
    return lines


def write_compare(ref_baseline_path: Path, results_path: Path, out: Path) -> None:
    """The change table (``python -m bench.report compare``), written beside the reports."""
    from bench.report import cli

    # Its exit status says whether a case regressed, which the gate has decided already.
    cli.main(["compare", str(ref_baseline_path), str(results_path), "--out", str(out)])


def gate(ref: str, out: Path, tests: list[str], args: list[str], keep_ref: bool = False) -> int:
    """Runs the A/B gate; returns its exit status (see the module docstring)."""
    from bench import results as results_mod

    sha = resolve(ref)
    check_ref(ref, sha)
    tier = tier_of(args)
    environment_changed = [name for name in ENVIRONMENT_FILES
                           if git("diff", "--name-only", sha, "--", name)]
    ref_tree, ref_baselines = out / "ref", out / "ref-baselines"
    export(sha, ref_tree)
    try:
        ref_run = run_bench("REF", ref_tree, tests, args, ref_baselines, out / "ref-reports",
                            out / "ref-junit.xml", update=True)
    finally:
        if not keep_ref:
            shutil.rmtree(ref_tree, ignore_errors=True)
    require_finished(ref_run, f"REF {ref}'s bench")
    ref_baseline_path = ref_baselines / f"{tier}.json"
    if not ref_baseline_path.is_file():
        raise GateError(f"REF {ref}'s bench wrote no {ref_baseline_path} (its baselines layout differs "
                        "from `--baselines-dir DIR` -> DIR/<tier>.json, or no case ran); its last lines:\n"
                        + "\n".join(ref_run.output_tail))
    tree_run = run_bench("working tree", ROOT, tests, args, ref_baselines, out / "reports",
                         out / "junit.xml", update=False)
    require_finished(tree_run, "the working tree's bench")
    results_path = out / "reports" / tier / "results.json"
    results = results_mod.load_results(results_path)
    ref_baseline = results_mod.load_baselines(ref_baseline_path)
    outcome = judge(ref_baseline, results, failed_tests(ref_run.junit), failed_tests(tree_run.junit))
    if ref_baseline["cases"] and not any(v != "no_baseline" for v in outcome.verdicts.values()):
        raise GateError(f"the working tree judged no case against {ref_baseline_path}: it reads its "
                        "baselines from elsewhere under --baselines-dir than REF wrote them")
    write_compare(ref_baseline_path, results_path, out / "COMPARE.md")
    lines = summary_lines(ref, sha, outcome, [ref_run, tree_run], out, tier, environment_changed)
    (out / "ab.json").write_text(json.dumps({
        "ref": ref, "sha": sha, "tier": tier, "status": outcome.status(),
        **dataclasses.asdict(outcome),
        "seconds": {run.label: round(run.seconds, 1) for run in (ref_run, tree_run)},
    }, indent=2) + "\n")
    print("\n".join(["", *lines]), flush=True)
    return outcome.status()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab",
        description="Judge the working tree against git REF, both run on this machine. Options not "
                    "listed here go to both pytest runs (e.g. --tier full --models cnn -n 2).")
    parser.add_argument("ref", metavar="REF", help="the commit to judge against (branch, tag or id)")
    parser.add_argument("--out", default=None,
                        help="a new or empty folder for both runs' reports (default: a new temporary one)")
    parser.add_argument("--tests", default=DEFAULT_TESTS,
                        help=f"comma-separated test paths run on both sides (default {DEFAULT_TESTS}); a path "
                        f"under {' or '.join(CASE_LAYOUTS)} is taken to each side's own case folder")
    parser.add_argument("--keep-ref", action="store_true", help="keep REF's exported files in OUT/ref")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the gate from the command line; returns 0 passed, 1 failed, 2 could not run."""
    args, pytest_args = build_parser().parse_known_args(argv)
    reserved = sorted({a.split("=")[0] for a in pytest_args} & set(RESERVED))
    try:
        if reserved:
            raise GateError(f"{', '.join(reserved)}: set by the A/B gate itself; leave them out")
        if args.out is None:
            out = Path(tempfile.mkdtemp(prefix="quantbench-ab-"))
        else:
            out = Path(args.out).resolve()
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise GateError(f"--out {out}: not a new or empty folder (a run's reports merge into "
                                "what is there); pass a new one")
            out.mkdir(parents=True, exist_ok=True)
        print(f"[ab] reports in {out}", flush=True)
        return gate(args.ref, out, [t for t in args.tests.split(",") if t], pytest_args, args.keep_ref)
    except GateError as exc:
        print(f"A/B gate: cannot run: {exc}", file=sys.stderr)
        return CANNOT_RUN


if __name__ == "__main__":
    raise SystemExit(main())
