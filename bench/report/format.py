"""Table cells: one function per kind of value, each returning "n/a" for a missing one.

Shared by every table the report tool prints (REPORT.md and ``compare``), so a value reads the
same wherever it appears. Sizes use decimal units (1 KB = 1000 B, 1 MB = 1000 KB), as file managers
and the reference report do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from tabulate import tabulate

NOT_AVAILABLE = "n/a"


def is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool, not None, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_significant(value: float, digits: int = 3) -> str:
    """Formats with ``digits`` significant digits in fixed notation (no exponent).

    ``format(x, ".3g")`` switches to exponents (``1.53e+03``) and drops trailing zeros
    (``31``), which both read badly in a table column.
    """
    if value == 0:
        return "0"
    # Round first: 0.9996 must count its digits as 1.00, not as 0.9996 (which would give "1.000").
    rounded = float(f"{value:.{digits - 1}e}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def format_size(size_bytes: Any) -> str:
    """Formats a byte count with decimal units (1 KB = 1000 B) and 3 significant digits.

    Examples: ``512 B``, ``31.0 KB``, ``1.00 MB``, ``59.1 MB``.
    """
    if not is_number(size_bytes):
        return NOT_AVAILABLE
    if abs(size_bytes) < 1000:
        return f"{size_bytes:.0f} B"
    value = float(size_bytes)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        text = format_significant(value)
        # 999,600 B rounds to "1000 KB": move up a unit instead.
        if abs(float(text)) < 1000:
            return f"{text} {unit}"
    return f"{format_significant(value / 1000)} TB"


def format_signed_size(delta_bytes: Any) -> str:
    """A size change with its sign, e.g. ``+1.20 KB`` or ``-512 B``."""
    if not is_number(delta_bytes):
        return NOT_AVAILABLE
    sign = "+" if delta_bytes > 0 else "-" if delta_bytes < 0 else ""
    return sign + format_size(abs(delta_bytes))


def format_percent(fraction: Any) -> str:
    """A fraction 0..1 as a percentage with 2 decimals, without the sign: ``90.12``."""
    return f"{100 * fraction:.2f}" if is_number(fraction) else NOT_AVAILABLE


def format_pp(value: Any) -> str:
    """Percentage points with 2 decimals, without a sign: ``0.07``."""
    return f"{value:.2f}" if is_number(value) else NOT_AVAILABLE


def format_signed_pp(value: Any) -> str:
    """Points with their sign and 2 decimals, ``+0.28`` or ``-0.27``; ``0.00`` without a sign."""
    if not is_number(value):
        return NOT_AVAILABLE
    # "-0.00" (a tiny loss, or the -0.0 of negating nothing) would read as a loss that is not there.
    return "0.00" if round(value, 2) == 0 else f"{value:+.2f}"


def format_drop_with_interval(drop_pp: Any, interval_pp: Any) -> str:
    """The accuracy drop with its paired 95 % interval: ``0.38 [0.05, 0.71]``."""
    if not is_number(drop_pp):
        return NOT_AVAILABLE
    has_interval = (isinstance(interval_pp, list | tuple) and len(interval_pp) == 2
                    and all(is_number(bound) for bound in interval_pp))
    if not has_interval:
        return f"{drop_pp:.2f}"
    low, high = interval_pp
    return f"{drop_pp:.2f} [{low:.2f}, {high:.2f}]"


def format_ratio(value: Any) -> str:
    """A ratio with 2 decimals and a multiplication sign: ``3.16x``."""
    return f"{value:.2f}x" if is_number(value) else NOT_AVAILABLE


def format_milliseconds(value: Any) -> str:
    """Latency with 3 significant digits: ``0.120``, ``12.3``, ``153``."""
    return format_significant(value) if is_number(value) else NOT_AVAILABLE


def format_throughput(value: Any) -> str:
    """Images per second, whole, with thousands separators: ``25,000``."""
    return f"{value:,.0f}" if is_number(value) else NOT_AVAILABLE


def format_count(value: Any) -> str:
    """An integer with thousands separators: ``3,251,259``."""
    return f"{value:,.0f}" if is_number(value) else NOT_AVAILABLE


def format_scientific(value: Any) -> str:
    """A small magnitude with 2 significant digits: ``1.2e-05``."""
    return f"{value:.2g}" if is_number(value) else NOT_AVAILABLE


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A github-format table whose cells are shown exactly as given.

    ``disable_numparse`` keeps tabulate from re-reading "0.120" as 0.12 and dropping the digits
    chosen on purpose; pipes are escaped because they would split a cell in markdown.
    """
    cells = [[str(cell).replace("|", "\\|") for cell in row] for row in rows]
    return tabulate(cells, headers=list(headers), tablefmt="github", disable_numparse=True)

