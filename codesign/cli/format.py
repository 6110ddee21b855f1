"""Terminal formatting shared by the subcommands (plain Python: printing a table needs no pandas), and the
checks and writes of their output files."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _records(data: Any) -> tuple[list[str], list[Mapping[str, Any]]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return [str(c) for c in data.columns], data.to_dict("records")
    records = list(data)
    return list(dict.fromkeys(k for r in records for k in r)), records


def table(data: Sequence[Mapping[str, Any]] | Any, columns: list[str] | None = None, *, max_key: int = 60) -> str:
    """A plain aligned text table of ``data`` (rows as mappings, or a pandas DataFrame), optionally only
    ``columns`` (those present, in that order); long candidate keys are shortened in the middle. Numbers
    are right-aligned, a missing value (None) shows as ``-``."""
    names, records = _records(data)
    headers = names if columns is None else [c for c in columns if c in names]
    if not records or not headers:
        return "(no rows)"
    rows = [[_cell(r.get(h)) for h in headers] for r in records]
    for name in ("key", "arch"):
        if name in headers:
            k = headers.index(name)
            for row in rows:
                if len(row[k]) > max_key:
                    row[k] = row[k][: max_key // 2 - 2] + "...." + row[k][-(max_key // 2 - 2) :]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [_numeric([r[i] for r in rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric(cells: list[str]) -> bool:
    """A column of numbers, some perhaps missing (``-``): right-aligned."""
    return any(c != "-" for c in cells) and all(c == "-" or _is_number(c) for c in cells)


def _int_at_least(text: str, low: int, kind: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse ``type`` for seeds and indices: a non-negative integer, else argparse's one-line error."""
    return _int_at_least(text, 0, "non-negative")


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts and intervals: an integer of at least 1, else argparse's one-line error."""
    return _int_at_least(text, 1, "positive")


def check_output_file(path: str, flag: str) -> Path:
    """Check, before any work, that ``path`` can receive a file: it is not a folder and no file stands
    where one of its folders belongs. Missing folders are fine: :func:`write_output_file` creates them,
    as most tools that write an output file do."""
    from codesign.core.errors import CodesignError

    target = Path(path)
    if not target.name or path.endswith(("/", os.sep)) or target.is_dir():
        raise CodesignError(f"{flag} {path}: is a folder; give a file name")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CodesignError(f"{flag} {path}: {parent} is a file, not a folder")
            break
    return target


def write_output_file(path: str, text: str, flag: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, creating its missing folders; any failure is a one-line
    :class:`CodesignError` naming the option and the path."""
    from codesign.core.files import write_text

    return write_text(check_output_file(path, flag), text, f"{flag} {path}")
