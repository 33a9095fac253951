"""``python -m bench.report``: render REPORT.md from a results file, compare two runs, or set
runs of several testbeds side by side.

Command line::

    python -m bench.report render RESULTS_JSON [--out-dir DIR]
    python -m bench.report compare A B [--out FILE] [--threshold-pp X] [--all]
    python -m bench.report across --out DIR RESULTS_JSON RESULTS_JSON...

``A`` and ``B`` may each be a ``results.json`` or a ``baselines/<tier>.json``. ``compare`` exits
with status 3 when a case regressed from A to B (see :mod:`bench.report.compare`), so it can gate
CI. ``across`` writes ``DIR/across.json`` and ``DIR/ACROSS.md`` (:mod:`bench.report.across`) and
exits with status 2 on input it cannot set side by side. Every file is written atomically
(:mod:`bench.atomic`): a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench import atomic
from bench.errors import BenchError, ReportError
from bench.report import across, across_render
from bench.report.compare import REGRESSED_EXIT_STATUS, compare
from bench.report.compare_render import render_compare
from bench.report.sections import render_markdown
from bench.report.significance import DEFAULT_THRESHOLD_PP
from bench.results import load_results, load_results_or_baselines

REPORT_FILE = "REPORT.md"
# `across`: results files that cannot be set side by side (or a folder that cannot be written).
ACROSS_BAD_INPUT_EXIT_STATUS = 2


def write_report(results_path: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Renders REPORT.md and its plots from a results file.

    Args:
        results_path: The ``results.json`` to render.
        out_dir: Where to write; by default the folder holding ``results.json``.

    Returns:
        The path of the written REPORT.md.

    Raises:
        ReportError: The results cannot be read, or the folder cannot be written.
    """
    results = load_results(results_path)
    folder = Path(out_dir) if out_dir is not None else Path(results_path).parent
    report = folder / REPORT_FILE
    with writing_into(folder, option="--out-dir"):
        # Imported here: matplotlib takes a while to import, and nothing else here needs it.
        from bench.report import plots

        plot_paths = plots.draw_all(results, folder)
        plot_names = {key: path.name for key, path in plot_paths.items()}
        atomic.write_text(report, render_markdown(results, plot_names))
    return report


def write_across(paths: Sequence[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Writes ``across.json`` and ``ACROSS.md`` of results files of several testbeds into ``out_dir``.

    Args:
        paths: Two or more ``results.json``, one per testbed (see :func:`bench.report.across.load_runs`).
        out_dir: The folder to write into (created if needed).

    Returns:
        The paths of the written across.json and ACROSS.md.

    Raises:
        ReportError: The files cannot be set side by side, a per-image record is damaged, or the
            folder cannot be written.
    """
    document = across.across_document(across.load_runs(paths))
    folder = Path(out_dir)
    with writing_into(folder, option="--out"):
        atomic.write_json(folder / across.ACROSS_JSON, document)
        atomic.write_text(folder / across.ACROSS_MD, across_render.render_across(document))
    return folder / across.ACROSS_JSON, folder / across.ACROSS_MD


@contextlib.contextmanager
def writing_into(folder: Path, option: str) -> Iterator[None]:
    """Creates ``folder`` for the writes of the block; an OSError of theirs names the folder.

    Args:
        folder: Where the block writes.
        option: The command-line option that chooses the folder, for the message.

    Raises:
        ReportError: The folder cannot be created or written into.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as error:
        raise ReportError(f"cannot write into the folder {folder} ({error.strerror or error}); "
                          f"pass {option} with a writable folder, or fix its permissions") from None



def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench.report`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Render a benchmark report, or compare two results or baselines files.")
    commands = parser.add_subparsers(dest="command", required=True)
    render_parser = commands.add_parser("render", help="re-render REPORT.md and plots from results.json")
    render_parser.add_argument("results", help="path of a results.json")
    render_parser.add_argument("--out-dir", default=None,
                               help="folder to write into (default: the folder of results.json)")
    compare_parser = commands.add_parser(
        "compare", help="compare two results.json or baselines files (A = before, B = after)",
        description="Judge every case of B against A image by image (paired verdicts) and list "
                    "the metrics that changed.",
        epilog=f"Exit status: 0 when no case regressed, {REGRESSED_EXIT_STATUS} when a case is "
               "'regressed' from A to B (the table is printed or written first), 1 when a file "
               "cannot be read or written. Use it to gate CI.")
    compare_parser.add_argument("before", help="results.json or baselines/<tier>.json: the old side")
    compare_parser.add_argument("after", help="results.json or baselines/<tier>.json: the new side")
    compare_parser.add_argument("--out", default=None, help="write the markdown here instead of stdout")
    compare_parser.add_argument("--threshold-pp", type=float, default=DEFAULT_THRESHOLD_PP,
                                help="accuracy and drop changes below this many percentage points are "
                                     "never significant; a case with per-image records on both sides "
                                     "takes its accuracy's significance from its paired verdict "
                                     f"(default {DEFAULT_THRESHOLD_PP})")
    compare_parser.add_argument("--all", action="store_true",
                                help="also list identical cases and metrics that did not change")
    across_parser = commands.add_parser(
        "across", help="one report of the same cases measured on several testbeds",
        description="Set results files of several testbeds (same tier and test set, one file per "
                    "testbed) side by side: each case's numbers on every testbed, and its per-image "
                    "agreement, file and weights across each pair of testbeds. Writes "
                    f"DIR/{across.ACROSS_JSON} and DIR/{across.ACROSS_MD}.",
        epilog=f"Exit status: 0 when written, {ACROSS_BAD_INPUT_EXIT_STATUS} when the files cannot be set "
               "side by side (fewer than two, other tiers or test sets, the same testbed and CPU twice, "
               "a damaged file) or the folder cannot be written.")
    across_parser.add_argument("--out", required=True, metavar="DIR", help="folder to write across.json and ACROSS.md into")
    across_parser.add_argument("results", nargs="+",
                               help="results.json of each testbed (a whole run or its merged shards)")
    return parser


def run_compare(args: argparse.Namespace) -> int:
    """The ``compare`` command: prints or writes the comparison; returns the exit status."""
    comparison = compare(load_results_or_baselines(args.before),
                         load_results_or_baselines(args.after), threshold_pp=args.threshold_pp)
    text = render_compare(comparison, include_unchanged=args.all, threshold_pp=args.threshold_pp)
    if args.out:
        out = Path(args.out)
        with writing_into(out.parent, option="--out"):
            atomic.write_text(out, text)
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    if not comparison.regressed:
        return 0
    # On stderr as well: a CI log shows why the step failed without opening the --out file.
    print(f"regressed from {args.before} to {args.after}: {', '.join(comparison.regressed)}",
          file=sys.stderr)
    return REGRESSED_EXIT_STATUS


def run_across(args: argparse.Namespace) -> int:
    """The ``across`` command: writes the cross-testbed report; returns the exit status."""
    # An earlier report in the folder is replaced, and said to be: nothing is overwritten silently.
    earlier = {path for name in (across.ACROSS_JSON, across.ACROSS_MD) if (path := Path(args.out) / name).exists()}
    try:
        written = write_across(args.results, args.out)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return ACROSS_BAD_INPUT_EXIT_STATUS
    for path in written:
        print(f"wrote {path}" + (" (replacing the earlier one)" if path in earlier else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    0: done (and, for ``compare``, no case regressed); 1: an error the user can fix; for
    ``compare``, :data:`bench.report.compare.REGRESSED_EXIT_STATUS` when a case regressed; for
    ``across``, :data:`ACROSS_BAD_INPUT_EXIT_STATUS` for input it cannot set side by side.
    """
    args = build_parser().parse_args(argv)
    if args.command == "across":
        return run_across(args)
    try:
        if args.command == "render":
            print(f"wrote {write_report(args.results, args.out_dir)}")
            return 0
        return run_compare(args)
    except BenchError as error:
        # Errors of the harness say what to do; a traceback would only bury that.
        print(f"error: {error}", file=sys.stderr)
        return 1
