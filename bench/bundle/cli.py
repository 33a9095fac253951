"""``python -m bench.bundle export|import``: the command line of :mod:`bench.bundle`."""

from __future__ import annotations

from pathlib import Path

from bench.bundle.archive import digest_path, parse_sha256, read_digest_file
from bench.bundle.transfer import export, import_bundle
from bench.errors import BenchError

DESCRIPTION = ("Trained-model bundles: export a tier's trained float and QAT models from the cache "
               "(training nothing), or verify a bundle against a digest from outside it and import "
               "its weights into the cache, so that every runner benchmarks the same weights.")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bundle export|import``: trained-model bundles (see :mod:`bench.bundle`).

    Returns:
        The exit status: 0 when done, 1 on any refusal (``error: <why>`` on stderr).
    """
    import argparse
    import sys

    from bench import progress

    parser = argparse.ArgumentParser(prog="python -m bench.bundle", description=DESCRIPTION)
    parser.add_argument("--tf-log", action="store_true",
                        help=f"show TensorFlow's C++ log lines (or set {progress.TF_LOG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write the cache's trained models of a tier to a bundle")
    out.add_argument("--tier", default="smoke")
    out.add_argument("--models", default=None, help="comma-separated (default: all)")
    out.add_argument("--out", required=True, type=Path, help="folder of the bundle and its .sha256 file")
    out.add_argument("--replace", action="store_true", help="overwrite a bundle of other weights")
    into = commands.add_parser("import", help="verify a bundle and put its models in the cache")
    into.add_argument("file", type=Path)
    expected = into.add_mutually_exclusive_group(required=True)
    expected.add_argument("--sha256", help="the bundle's expected sha256, from a source you trust")
    expected.add_argument("--digest-file", type=Path,
                          help="a sha256sum-format file with the expected digest (e.g. committed)")
    into.add_argument("--replace", action="store_true",
                      help="replace other weights the cache holds under the bundle's keys")
    args = parser.parse_args(argv)
    progress.native_logs(args.tf_log)  # before anything below imports TensorFlow
    try:
        if args.command == "export":
            path, digest = export(args.tier, args.models.split(",") if args.models else None, args.out,
                                  replace=args.replace)
            print(f"wrote {path} ({path.stat().st_size:,} bytes)\nsha256 {digest} (in {digest_path(path)})")
        else:
            digest = (parse_sha256(args.sha256, "--sha256") if args.sha256
                      else read_digest_file(args.digest_file, args.file))
            for line in import_bundle(args.file, digest, replace=args.replace):
                print(line)
            print(f"bundle {digest[:12]} verified; the bench now reuses its weights")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

