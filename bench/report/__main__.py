"""``python -m bench.report``: the command line of :mod:`bench.report.cli`."""

import sys

from bench.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
