"""``python -m bench.bundle``: the command line of :mod:`bench.bundle.cli`."""

import sys

from bench.bundle.cli import main

if __name__ == "__main__":
    sys.exit(main())
