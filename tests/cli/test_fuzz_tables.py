"""Malformed tables fed to ``codesign hardware import`` and ``codesign allocate-bits``: valid tables mutated
(columns dropped, renamed or repeated; cells made non-numeric, NaN, infinite, negative or huge; rows ragged;
other delimiters, byte-order marks, other encodings, binary garbage, empty files; unknown layer, space and
architecture names). Whatever the bytes, the command ends with exit code 0, or 2 and the project's one-line
``codesign: error: ...``; never a traceback or another exception (none is caught here)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codesign.cli import main

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

Table = tuple[list[str], list[list[str]]]

# --- cells -------------------------------------------------------------------------------------------

ODD_NUMBERS = [
    "nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "-0", "-0.0", "1e308", "1e309", "-1e400", "1e-320",
    "9" * 400, "1" * 5000, "1_000", "0x10", " 3 ", "1,5", "3.5.1", "", " ", "true", "None", "null", "1e7",
    "10000000.5", "2.5", "64", "65", "1e2", "-4", "४",
]  # fmt: skip
ODD_NUMBER = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=1e-12, max_value=1e12).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
EXTREME_VALUES = st.sampled_from(
    [
        st.floats(min_value=1e-3, max_value=1e3).map(repr),
        st.floats(min_value=1e-9, max_value=1e7).map(repr),
        st.sampled_from(["1e-9", "1e-6", "1", "1e7", "9999999.999", " 2 ", "1_0", "3"]),
        st.floats(min_value=5e-324, max_value=1e7, allow_subnormal=True).map(repr),
        st.sampled_from(["5e-324", "1e-300", "1e-12", "1e-100", "1e100", "1e200", "0"]),
    ]
)
"""Value strategies for a whole table at once: plausible, wide, extreme but accepted, and below or beyond
what a command accepts."""
ODD_JSON_VALUES = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 0.5, 1.5, True, False, None, "", "x", [], {}, [1, 2], {"a": 1}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)


def odd_cell() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_NUMBERS),
        st.text(max_size=12),
        st.binary(max_size=8).map(lambda b: b.decode("latin-1")),
        st.sampled_from(["[", "{", '{"a":', "[[[[", "[" * 3000 + "]" * 3000, '"\\ud800"', "[1, 2, 3]", "{}", "[]", "3"]),
    )


# --- serialising a table -------------------------------------------------------------------------------


def _quote(cell: str, delimiter: str) -> str:
    if any(c in cell for c in (delimiter, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def table_bytes(draw: st.DrawFn, table: st.SearchStrategy[Table]) -> bytes:
    """A table written as bytes: usually comma-separated UTF-8; sometimes with another delimiter, a BOM,
    another encoding, CRLF line ends, unquoted cells, or replaced by garbage or nothing."""
    kind = draw(st.sampled_from(["csv"] * 16 + ["empty", "blank", "binary", "nul"]))
    if kind == "empty":
        return b""
    if kind == "blank":
        return draw(st.sampled_from([b"\n", b"\n\n\n", b"   \n", b",,,\n", b"\r\n"]))
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=200))
    header, rows = draw(table)
    delimiter = draw(st.sampled_from([","] * 16 + [";", "\t", "|", " "]))
    quote = delimiter != "," or draw(st.integers(min_value=0, max_value=9)) < 9  # unquoted JSON splits apart
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    lines = [
        delimiter.join(_quote(c, delimiter) if quote else c for c in line) for line in [header, *rows]
    ]
    text = newline.join(lines) + draw(st.sampled_from([newline, "", newline * 3]))
    if kind == "nul":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + "\x00" + text[at:]
    encoding = draw(st.sampled_from(["utf-8"] * 12 + ["utf-8-sig", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(min_value=0, max_value=9)) == 9:  # a few garbage bytes spliced in
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    return data


# --- mutating a table ------------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, base: Table, columns: list[str], cell: st.SearchStrategy[str], numeric: tuple[str, ...]) -> Table:
    """``base`` with one to four mutations (mostly one): cells of the ``numeric`` columns made odd numbers
    (the structure kept, so the command gets as far as fitting or solving); other cells replaced by ``cell``
    or odd text; columns dropped, renamed, repeated or added; rows dropped, repeated, emptied or ragged."""
    header, rows = list(base[0]), [list(r) for r in base[1]]
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4]))):
        op = draw(
            st.sampled_from(
                ["number"] * 8 + ["cell"] * 8 + ["drop_col", "rename_col", "dup_col", "add_col", "drop_rows",
                 "dup_row", "ragged", "no_rows", "blank_row", "swap_cols"]
            )
        )  # fmt: skip
        width = len(header)
        at = [c for c, name in enumerate(header) if name in numeric]
        if op == "number" and rows and at:
            r = draw(st.integers(min_value=0, max_value=len(rows) - 1))
            c = draw(st.sampled_from(at))
            if c < len(rows[r]):
                rows[r][c] = draw(ODD_NUMBER)
        elif op == "cell" and rows and width:
            r = draw(st.integers(min_value=0, max_value=len(rows) - 1))
            c = draw(st.integers(min_value=0, max_value=len(rows[r]) - 1)) if rows[r] else 0
            if rows[r]:
                rows[r][c] = draw(st.one_of(cell, odd_cell()))
        elif op == "drop_col" and width:
            c = draw(st.integers(min_value=0, max_value=width - 1))
            header.pop(c)
            for row in rows:
                if c < len(row):
                    row.pop(c)
        elif op == "rename_col" and width:
            c = draw(st.integers(min_value=0, max_value=width - 1))
            header[c] = draw(st.one_of(st.sampled_from([*columns, "", " ", "Unnamed: 0", "latency", "LAYER"]), st.text(max_size=8)))
        elif op == "dup_col" and width:
            c = draw(st.integers(min_value=0, max_value=width - 1))
            header.append(header[c])
            for row in rows:
                row.append(row[c] if c < len(row) else "")
        elif op == "add_col":
            header.append(draw(st.one_of(st.sampled_from([*columns, "extra", "note"]), st.text(max_size=8))))
            for row in rows:
                row.append(draw(st.one_of(cell, odd_cell())))
        elif op == "drop_rows" and rows:
            keep = draw(st.integers(min_value=0, max_value=len(rows)))
            rows = rows[:keep]
        elif op == "dup_row" and rows:
            rows.append(list(draw(st.sampled_from(rows))))
        elif op == "ragged" and rows:
            r = draw(st.integers(min_value=0, max_value=len(rows) - 1))
            if draw(st.booleans()) or not rows[r]:
                rows[r] = [*rows[r], *draw(st.lists(odd_cell(), min_size=1, max_size=3))]
            else:
                rows[r] = rows[r][: draw(st.integers(min_value=0, max_value=len(rows[r]) - 1))]
        elif op == "no_rows":
            rows = []
        elif op == "blank_row":
            rows.insert(draw(st.integers(min_value=0, max_value=len(rows))), [""] * width)
        elif op == "swap_cols" and width >= 2:
            a, b = draw(st.lists(st.integers(min_value=0, max_value=width - 1), min_size=2, max_size=2, unique=True))
            header[a], header[b] = header[b], header[a]
    return header, rows


# --- running the command -------------------------------------------------------------------------------


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        yield out, err


def run_and_check(argv: list[str]) -> int:
    """Run the command; exit code 0, or 2 with exactly one line ``codesign: error: ...``."""
    with captured() as (_, err):
        code = main(argv)
    text = err.getvalue()
    event(f"exit {code}")  # the share of runs that got through, with --hypothesis-show-statistics
    assert "Traceback" not in text, text
    if code == 2:
        assert text.startswith("codesign: error: ") and text.count("\n") == 1 and text.endswith("\n"), text
    else:
        assert code == 0, (code, text)
        for line in text.splitlines():  # a successful import may warn, in the project's own words only
            assert line.startswith(("warning: ", "codesign: warning: ", "note: ")), text
    return code


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- hardware import ---------------------------------------------------------------------------------------

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
MEASUREMENT_COLUMNS = ["layers", "arch", "space", "weight_bits", "act_bits", "accelerator", "latency_ms", "energy_mj", "name"]


def _nb201_arch(i: int) -> str:
    """The ``i``-th of a few distinct NAS-Bench-201 cells."""
    ops = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect")
    a, b, c = ops[i % 4], ops[(i // 4) % 4], ops[(i + 1) % 4]
    return f"|{a}~0|+|{b}~0|{c}~1|+|nor_conv_3x3~0|{a}~1|skip_connect~2|"


def _layer(width: int) -> dict[str, Any]:
    return {"name": "fc", "kind": "linear", "in_channels": width, "out_channels": 10}


def _network(width: int) -> dict[str, Any]:
    return {"name": f"n{width}", "input_shape": [1, 28, 28], "layers": [_layer(width)], "residuals": [], "ties": []}


@st.composite
def odd_layers_json(draw: st.DrawFn) -> str:
    """A layer list or network object with one field made odd, a field dropped or added, or the JSON cut."""
    width = draw(st.integers(min_value=1, max_value=64))
    doc: Any = _network(width) if draw(st.booleans()) else [_layer(width)]
    layer = doc["layers"][0] if isinstance(doc, dict) else doc[0]
    op = draw(st.sampled_from(["layer_field", "layer_field", "drop", "add", "network_field", "cut", "shape"]))
    if op == "layer_field":
        key = draw(st.sampled_from(["name", "kind", "in_channels", "out_channels", "in_h", "in_w", "kernel", "stride",
                                    "padding", "groups", "weight_bits", "act_bits", "bias", "mode"]))  # fmt: skip
        layer[key] = draw(ODD_JSON_VALUES)
    elif op == "drop":
        layer.pop(draw(st.sampled_from(sorted(layer))))
    elif op == "add":
        layer[draw(st.text(max_size=6))] = draw(ODD_JSON_VALUES)
    elif op == "network_field" and isinstance(doc, dict):
        doc[draw(st.sampled_from(["name", "layers", "input_shape", "residuals", "ties", "dead", "other"]))] = draw(
            st.one_of(ODD_JSON_VALUES, st.just([["fc", "nope"]]), st.just(["fc"]), st.just([[1, 2, 3]]))
        )
    elif op == "shape":
        layer.update(kind="conv", in_h=draw(st.integers(-2, 70)), in_w=4, kernel=draw(st.integers(-1, 9)),
                     stride=draw(st.integers(-1, 3)), padding=draw(st.integers(-2, 3)), groups=draw(st.integers(-1, 4)))  # fmt: skip
    text = json.dumps(doc)
    if op == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return text


@st.composite
def accelerator_json(draw: st.DrawFn) -> str:
    good = {"template": "overlay", "device": "xczu3eg", "clock_mhz": 200, "params": {"tm": 8, "tn": 8, "tr": 4, "tc": 8}}
    if not draw(st.booleans()):
        return json.dumps(good)
    key = draw(st.sampled_from(["template", "device", "clock_mhz", "params", "extra"]))
    return json.dumps({**good, key: draw(ODD_JSON_VALUES)})


@st.composite
def measurement_table(draw: st.DrawFn) -> Table:
    """A valid table of five to seven rows (layer lists, or NB-201 architecture ids, with optional energy
    and accelerator columns), then mutated."""
    n = draw(st.integers(min_value=5, max_value=7))
    by_arch = draw(st.integers(min_value=0, max_value=5)) == 5
    header = ["arch", "space"] if by_arch else ["layers"]
    rows: list[list[str]] = []
    for i in range(n):
        rows.append([_nb201_arch(i), "nb201"] if by_arch else [json.dumps(_network(8 * (i + 1)))])
    header.append("latency_ms")
    for i, row in enumerate(rows):
        row.append(f"{1.0 + i * 0.7:g}")
    if draw(st.booleans()):
        header.append("energy_mj")
        for i, row in enumerate(rows):
            row.append(f"{0.5 + i:g}")
    if draw(st.integers(min_value=0, max_value=3)) == 3:
        header.append("accelerator")
        accel = draw(accelerator_json())
        for row in rows:
            row.append(accel)
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # structure kept, extreme values: the fit runs
        for c, name in enumerate(header):
            if name in ("latency_ms", "energy_mj"):
                values = draw(EXTREME_VALUES)
                for row in rows:
                    row[c] = draw(values)
        return header, rows
    cell = st.one_of(odd_layers_json(), st.sampled_from(["nb201", "nope", "nasbench", NB201_ARCH, "|x~0|", "4-8-8", "[4, 8]"]),
                     accelerator_json())  # fmt: skip
    return draw(mutated((header, rows), MEASUREMENT_COLUMNS, cell, ("latency_ms", "energy_mj")))


@FUZZ
@given(data=table_bytes(measurement_table()), extra=st.sampled_from([[], [], ["--space", "nb201"], ["--space", "nope"]]))
def test_hardware_import_survives_malformed_tables(workdir: Path, data: bytes, extra: list[str]) -> None:
    path = workdir / "measurements.csv"
    path.write_bytes(data)
    run_and_check(["hardware", "import", str(path), "--name", "fuzzed", "--out", str(workdir / "models"), "--force", *extra])


# --- allocate-bits -----------------------------------------------------------------------------------------

ALLOCATION_COLUMNS = ["layer", "bits", "omega", "size_mb", "latency_ms", "trace", "params", "note"]
LAYERS = ("conv1", "conv2", "fc")


@st.composite
def allocation_table(draw: st.DrawFn) -> Table:
    """A valid per-(layer, bits) table of two or three layers at 2, 4 and 8 bits, then mutated."""
    layers = LAYERS[: draw(st.integers(min_value=2, max_value=3))]
    header = ["layer", "bits", "omega", "size_mb", "latency_ms", "trace", "params", "note"]
    rows = []
    for i, layer in enumerate(layers):
        for k, bits in enumerate((2, 4, 8)):
            omega = 0.9 / (i + 1) / 4**k
            rows.append([layer, str(bits), f"{omega:g}", f"{0.01 * (i + 1) * bits:g}", f"{0.5 + 0.3 * k + i:g}",
                         f"{omega * 3:g}" if i != 1 else "-0.5", str(100 * (i + 1)), "x"])  # fmt: skip
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # structure kept, extreme values: the solver runs
        for c in (2, 3, 4):
            values = st.one_of(draw(EXTREME_VALUES), st.just("0"))
            for row in rows:
                row[c] = draw(values)
        return header, rows
    cell = st.sampled_from([*LAYERS, "nope", "conv1 ", "CONV1", "2", "4", "8", "0", "3"])
    return draw(mutated((header, rows), ALLOCATION_COLUMNS, cell, ("bits", "omega", "size_mb", "latency_ms", "trace", "params")))


ALLOCATION_ARGS = st.sampled_from(
    [
        [], [], ["--format", "json"],
        ["--budget", "size_mb<=alpha:0.5"], ["--budget", "latency_ms<=4"], ["--budget", "size_mb<=0.2", "--budget", "latency_ms<=alpha:0.3"],
        ["--budget", "note<=1"], ["--budget", "nope<=1"],
        ["--front", "size_mb"], ["--front", "latency_ms", "--points", "4"], ["--front", "note"],
        ["--fix", "conv1=4"], ["--fix", "nope=4"], ["--fix", "conv2=3"],
        ["--tie", "conv1,fc"], ["--tie", "conv1,nope"], ["--allow", "conv2=2,4"], ["--allow", "fc=16"],
    ]
)  # fmt: skip


@FUZZ
@given(data=table_bytes(allocation_table()), extra=ALLOCATION_ARGS)
def test_allocate_bits_survives_malformed_tables(workdir: Path, data: bytes, extra: list[str]) -> None:
    path = workdir / "layers.csv"
    path.write_bytes(data)
    run_and_check(["allocate-bits", str(path), *extra])
