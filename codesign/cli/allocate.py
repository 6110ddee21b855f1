"""``codesign allocate-bits LAYERS.csv --budget "latency_ms<=3.5"``: the proven-optimal per-layer bit-widths
for any model, from a table with one row per (layer, bits): columns ``layer``, ``bits``, ``omega`` (the
layer's perturbation at those bits) and any cost columns the budgets name (``size_mb``, ``bops``,
``latency_ms``, ``dsp``, ...). Budgets are absolute (``size_mb<=1.5``) or a fraction between the all-lowest
and all-highest network (``size_mb<=alpha:0.5``). Every omega and cost value must be 0 or between 1e-100
and 1e100, every bit-width an integer from 1 to 64. When the table has a ``trace`` column (as
:meth:`PerturbationTable.write_csv` writes it), a layer whose raw Hessian trace estimate was negative is
named in a note (its magnitude gave the omega)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesign.cli.format import check_output_file, table, write_output_file
from codesign.core.errors import CodesignError
from codesign.quantization.allocation import (
    MAX_VALUE,
    MIN_VALUE,
    BitAllocation,
    BitAllocationProblem,
    Budget,
    allocate_bits,
    negative_trace_note,
    sensitivity_front,
)

REQUIRED = ("layer", "bits", "omega")
INFORMATION = ("trace", "params")
"""Per-layer columns :meth:`codesign.quantization.sensitivity.PerturbationTable.write_csv` adds; not summed costs."""
MAX_BITS = 64
"""The widest bit-width a table row may give."""
MAX_POINTS = 1000
"""The most budgets ``--points`` may sweep: each is one solve of the integer program."""


@dataclass(frozen=True)
class LayerTable:
    """A parsed LAYERS.csv: ``omega[layer][bits]`` and ``costs[column][layer][bits]`` in file order, and
    the raw Hessian ``traces[layer]`` of its ``trace`` column where it has one."""

    omega: dict[str, dict[int, float]]
    costs: dict[str, dict[str, dict[int, float]]]
    traces: dict[str, float] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """A line per layer whose raw trace was negative (the omega came from its magnitude)."""
        return [negative_trace_note(layer, t) for layer, t in self.traces.items() if t < 0]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "allocate-bits",
        help="optimal per-layer bit-widths under budgets (integer program)",
        description=__doc__,
    )
    p.add_argument(
        "layers_csv",
        metavar="LAYERS.csv",
        help="one row per (layer, bits): layer, bits, omega and cost columns",
    )
    p.add_argument(
        "--budget",
        action="append",
        default=[],
        help='e.g. "latency_ms<=3.5" or "size_mb<=alpha:0.5" (repeatable)',
    )
    p.add_argument(
        "--tie",
        action="append",
        default=[],
        metavar="A,B",
        help="layers that must share their bits (repeatable)",
    )
    p.add_argument(
        "--fix", action="append", default=[], metavar="LAYER=BITS", help="pin a layer's bits (repeatable)"
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="LAYER=B1,B2",
        help="narrow a layer's bit choices (repeatable)",
    )
    p.add_argument(
        "--front",
        metavar="COLUMN",
        help="print the sensitivity-versus-COLUMN front instead of one allocation",
    )
    p.add_argument(
        "--points",
        type=int,
        default=0,
        help=f"with --front: sweep this many evenly spaced budgets, at most {MAX_POINTS} (default: the exact "
        "front, which a sweep at least as long as the table's distinct allocations gives too)",
    )
    p.add_argument("--out", help="also write the result as JSON to this file (missing folders are created)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=handle)


def _number(text: str | None, row: int, column: str, path: str) -> float:
    try:
        value = float(text if text is not None else "")
    except ValueError:
        raise CodesignError(f"{path} row {row}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CodesignError(f"{path} row {row}, column {column!r}: {text!r} is not a finite number")
    return value


def _read_rows(path: str | Path) -> tuple[list[str], list[dict[str | None, Any]]]:
    """The header (names stripped of spaces) and the rows of a CSV file, UTF-8 with or without a byte-order
    mark; every way the file cannot be read is a :class:`CodesignError` naming it."""
    name = str(path)
    if Path(path).is_dir():
        raise CodesignError(f"{name}: is a folder; expected a CSV table with columns {', '.join(REQUIRED)}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except FileNotFoundError:
        raise CodesignError(f"{name}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CodesignError(
            f"{name}: not a readable CSV table: not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start})"
        ) from None
    except OSError as exc:
        raise CodesignError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise CodesignError(f"{name}: not a readable CSV table ({' '.join(str(exc).split())})") from None
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise CodesignError(f"{name}: column(s) {', '.join(map(repr, duplicated))} appear more than once in the header")
    return header, rows


def read_layer_table(path: str | Path, cost_columns: list[str]) -> LayerTable:
    """Parse LAYERS.csv; ``cost_columns`` must be numeric in every row, other extra columns (except
    ``trace`` and ``params``) are reported when they are numeric and non-negative throughout. Rows are numbered as in a
    spreadsheet (header = row 1)."""
    name = str(path)
    header, rows = _read_rows(path)
    expected = f"expected a header with {', '.join(REQUIRED)} and one row per layer and bits"
    if not header:
        raise CodesignError(f"{name}: empty file ({expected})")
    if not rows:
        raise CodesignError(f"{name}: no rows ({expected})")
    missing = [c for c in (*REQUIRED, *cost_columns) if c not in header]
    if missing:
        known = ", ".join(c for c in header if c not in REQUIRED) or "none"
        hint = next(
            (f" (the header looks {label}-separated; expected commas)" for sep, label in ((";", ";"), ("\t", "tab"), ("|", "|"))
             if len(header) == 1 and sep in header[0]),
            "",
        )  # fmt: skip
        raise CodesignError(f"{name}: missing column(s) {', '.join(missing)}; cost columns present: {known}{hint}")
    extra = [c for c in header if c not in (*REQUIRED, *INFORMATION, *cost_columns)]
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise CodesignError(f"{name} row {number}: more cells than header columns")
        if any(value is None for value in row.values()):
            raise CodesignError(f"{name} row {number}: fewer cells than header columns")
    reported = [c for c in extra if all(_is_cost(r.get(c)) for r in rows)]
    traces: dict[str, float] = {}
    omega: dict[str, dict[int, float]] = {}
    costs: dict[str, dict[str, dict[int, float]]] = {c: {} for c in (*cost_columns, *reported)}
    for number, row in enumerate(rows, start=2):
        layer = (row["layer"] or "").strip()
        if not layer:
            raise CodesignError(f"{name} row {number}, column 'layer': empty layer name")
        bits_value = _number(row["bits"], number, "bits", name)
        if bits_value != int(bits_value) or not 1 <= bits_value <= MAX_BITS:
            raise CodesignError(
                f"{name} row {number}, column 'bits': {row['bits']!r} is not a positive integer of at most {MAX_BITS}"
            )
        bits = int(bits_value)
        if bits in omega.get(layer, {}):
            raise CodesignError(f"{name} row {number}: second row for layer {layer!r} at {bits} bits")
        omega.setdefault(layer, {})[bits] = _number(row["omega"], number, "omega", name)
        for column in costs:
            costs[column].setdefault(layer, {})[bits] = _number(row[column], number, column, name)
        trace = row.get("trace")
        if layer not in traces and _is_finite(trace):
            traces[layer] = float(trace or "")
    return LayerTable(omega, costs, traces)


def _is_finite(text: str | None) -> bool:
    try:
        return math.isfinite(float(text if text is not None else ""))
    except ValueError:
        return False


def _is_cost(text: str | None) -> bool:
    """A value the program accepts (an extra column holding any other is not reported)."""
    return _is_finite(text) and (float(text or "") == 0 or MIN_VALUE <= float(text or "") <= MAX_VALUE)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        layer, sep, value = item.partition("=")
        if not sep or not layer.strip() or not value.strip():
            raise CodesignError(f"{flag} {item!r}: expected LAYER=VALUE")
        if layer.strip() in out and out[layer.strip()] != value.strip():
            raise CodesignError(f"{flag} given twice for layer {layer.strip()!r}: {out[layer.strip()]} and {value.strip()}")
        out[layer.strip()] = value.strip()
    return out


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise CodesignError(f"{flag}: {text!r} is not a comma-separated list of integers") from None


def _one_int(text: str, flag: str, layer: str) -> int:
    values = _int_list(text, flag)
    if len(values) != 1:
        raise CodesignError(f"{flag} {layer}={text}: expected one bit-width")
    return values[0]


def build_problem(args: argparse.Namespace) -> BitAllocationProblem:
    """The integer program the command line describes (the table checked for completeness)."""
    return _build(args)[0]


def _build(args: argparse.Namespace) -> tuple[BitAllocationProblem, LayerTable]:
    budgets = [Budget.parse(text) for text in args.budget]
    columns = list(dict.fromkeys([b.column for b in budgets] + ([args.front] if args.front else [])))
    table = read_layer_table(args.layers_csv, columns)
    allowed = {layer: _int_list(v, "--allow") for layer, v in _pairs(args.allow, "--allow").items()}
    fixed = {layer: _one_int(v, "--fix", layer) for layer, v in _pairs(args.fix, "--fix").items()}
    ties = [[n.strip() for n in text.split(",") if n.strip()] for text in args.tie]
    for group in ties:
        if len(group) < 2:
            raise CodesignError(f"--tie {','.join(group)!r}: name at least two layers separated by commas")
    every = sorted({b for per_bits in table.omega.values() for b in per_bits})
    for layer, per_bits in table.omega.items():
        need = allowed.get(layer, every)
        lacking = [b for b in need if b not in per_bits]
        if lacking:
            raise CodesignError(
                f"{args.layers_csv}: layer {layer!r} has no row for bits {', '.join(map(str, lacking))} "
                f"(every layer needs {', '.join(map(str, every))}; narrow a layer with --allow {layer}=B1,B2)"
            )
    unknown = sorted((set(allowed) | set(fixed) | {n for g in ties for n in g}) - set(table.omega))
    if unknown:
        raise CodesignError(
            f"no layer named {', '.join(unknown)} in {args.layers_csv}; layers: {', '.join(table.omega)}"
        )
    problem = BitAllocationProblem.from_tables(
        omega=table.omega, costs=table.costs, ties=ties, fixed=fixed, budgets=budgets, allowed=allowed or None
    )
    return problem, table


def _report(result: BitAllocation, problem: BitAllocationProblem) -> dict[str, Any]:
    out = result.to_dict()
    out["budgets"] = {
        str(b): {"column": b.column, "limit": problem.limit(b), "value": result.values_dict()[b.column]}
        for b in problem.budgets
    }
    return out


def _text(result: BitAllocation, problem: BitAllocationProblem) -> str:
    index = {name: i for i, name in enumerate(problem.layers)}
    rows = []
    for layer, bits in result.bits:
        i = index[layer]
        k = problem.choices[i].index(bits)
        row: dict[str, Any] = {"layer": layer, "bits": bits, "omega": problem.omega[i][k]}
        row.update({column: t[i][k] for column, t in problem.costs})
        rows.append(row)
    lines = [table(rows), "", f"objective (summed omega): {result.objective:.6g}"]
    values = result.values_dict()
    for b in problem.budgets:
        lines.append(f"budget {b}: {values[b.column]:.6g} <= {problem.limit(b):.6g}")
    return "\n".join(lines)


def _sweep_points(points: int, problem: BitAllocationProblem) -> int | None:
    """The ``points`` of :func:`sensitivity_front` for ``--points``: ``None`` (the exact front) for 0, and
    for a sweep at least as long as the problem has distinct assignments, whose front the exact sweep finds
    in full with fewer solves."""
    if points < 0 or points == 1 or points > MAX_POINTS:
        raise CodesignError(f"--points must be 0 (exact front) or between 2 and {MAX_POINTS}, got {points}")
    return None if points == 0 or points >= problem.assignments else points


def handle(args: argparse.Namespace) -> int:
    if args.out:
        check_output_file(args.out, "--out")
    problem, layers = _build(args)
    notes = layers.notes()
    if args.front:
        front = sensitivity_front(problem, args.front, points=_sweep_points(args.points, problem))
        payload: Any = {"column": args.front, "points": [p.to_dict() for p in front]}
        text = _front_text(front, args.front)
    else:
        result = allocate_bits(problem)
        payload = _report(result, problem)
        text = _text(result, problem)
    if notes:
        payload["notes"] = notes
        text += "".join(f"\nnote: {line}" for line in notes)
    if args.format == "json":
        text = json.dumps(payload, indent=2)
    sys.stdout.write(text + "\n")  # first: a failing --out loses nothing
    if args.out:
        write_output_file(args.out, json.dumps(payload, indent=2) + "\n", "--out")
    return 0


def _front_text(front: tuple[BitAllocation, ...], column: str) -> str:
    rows = [
        {column: p.values_dict()[column], "omega": p.objective, "bits": " ".join(str(b) for _, b in p.bits)}
        for p in front
    ]
    return f"{len(front)} optimal points, omega against {column}\n" + table(rows)
