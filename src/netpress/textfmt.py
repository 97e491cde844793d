"""Plain-text formatting shared by every layer (tables for the CLI and for ``BitPlan.table()``-style reports).

Example:
    >>> print(table([{"layer": "fc1", "bits": 4}]))
    layer  bits
    -----  ----
    fc1       4
"""
from __future__ import annotations

from typing import Any


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain aligned text table: first column left-aligned, the others right-aligned.

    Args:
        rows: one dict per row.
        columns: the keys to show, in order (default: the first row's keys).

    Returns:
        The table as lines joined by newlines (``'(empty)'`` for no rows).
    """
    if not rows:
        return "(empty)"
    columns = columns or list(rows[0])
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def fmt(v: Any) -> str:
    """One cell: floats with 4 decimals (thousands separators from 1000 up), ``None`` empty."""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)
