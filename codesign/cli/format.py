"""Terminal formatting shared by the subcommands."""

from __future__ import annotations

import math

import pandas as pd


def _cell(value: object) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def table(frame: pd.DataFrame, columns: list[str] | None = None, *, max_key: int = 60) -> str:
    """A plain aligned text table; long candidate keys are shortened in the middle."""
    frame = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    if frame.empty:
        return "(no rows)"
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    headers = list(frame.columns)
    for name in ("key", "arch"):
        if name in headers:
            k = headers.index(name)
            for row in rows:
                if len(row[k]) > max_key:
                    row[k] = row[k][: max_key // 2 - 2] + "...." + row[k][-(max_key // 2 - 2) :]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
