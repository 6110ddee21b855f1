"""Reading a table of measured latencies (CSV) into networks, accelerator configurations and targets.

Columns (one row per measurement):

- ``layers``: the network as JSON, either a list of layer objects (the fields of
  :class:`codesign.core.values.Layer`) or a whole network object (:meth:`codesign.core.values.Network.to_dict`); or
- ``arch``: an architecture id of a search space (the ``space`` column, or the default space given by the
  caller), with optional ``weight_bits`` / ``act_bits`` columns (JSON lists or ``4-8-8`` strings);
- ``accelerator`` (optional): the accelerator configuration as JSON
  (:meth:`codesign.core.values.AcceleratorConfig.to_dict`), empty when the device has no choice;
- ``latency_ms`` (required) and ``energy_mj`` (optional; all rows or none), each between :data:`MIN_VALUE`
  and :data:`MAX_VALUE`.

Every problem is a :class:`CodesignError` naming the row (1-based, as a spreadsheet shows data rows after
the header) and the column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network

MAX_VALUE = 1e7
"""The largest latency (ms) or energy (mJ) a row may give, about three hours per inference: anything larger
is a unit or export mistake, and would overflow the fits' squared errors."""
MIN_VALUE = 1e-9
"""The smallest latency (ms) or energy (mJ) a row may give, a picosecond or picojoule per inference:
anything smaller is a unit mistake, and its reciprocal (the weight of a relative fit) can overflow."""
MAX_BITS = 64
"""The widest bit-width a row may give."""
MAX_SIZE = 2**31 - 1
"""The largest channel count, feature-map size, kernel, stride, padding or group count a layer may give."""
MAX_WORK = 1e18
"""The most operations (or weights) a measured network may have: far beyond any real one, and small enough
for the fits' features to stay finite in single precision (the tree models')."""
_LAYER_REQUIRED = ("name", "kind", "in_channels", "out_channels")
_LAYER_INTS = ("in_channels", "out_channels", "in_h", "in_w", "kernel", "stride", "padding", "groups", "weight_bits", "act_bits")
_NETWORK_FIELDS = ("name", "input_shape", "layers", "residuals", "ties", "dead")
KNOWN_COLUMNS = ("layers", "arch", "space", "weight_bits", "act_bits", "accelerator", "latency_ms", "energy_mj", "name")


@dataclass(frozen=True)
class MeasurementTable:
    """Parsed measurements: one network, accelerator (or ``None``) and latency per row."""

    networks: tuple[Network, ...]
    accels: tuple[AcceleratorConfig | None, ...]
    latency_ms: tuple[float, ...]
    energy_mj: tuple[float, ...] | None
    merged: int = 0
    """Rows that repeated an earlier row's network and accelerator: each such group is one row holding the
    mean of its measurements (repeats would otherwise sit on both sides of a cross-validation split)."""

    def __len__(self) -> int:
        return len(self.networks)


def _where(row: int, column: str) -> str:
    return f"row {row}, column {column!r}"


def _json(text: str, row: int, column: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodesignError(f"{_where(row, column)}: not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise CodesignError(f"{_where(row, column)}: JSON nested too deeply") from None
    except ValueError:  # json's int() of an integer with thousands of digits
        raise CodesignError(f"{_where(row, column)}: JSON holds a number with thousands of digits") from None


def _bits(value: Any, row: int, column: str) -> tuple[int, ...] | None:
    if _empty(value):
        return None
    text = str(value).strip()
    expected = f"{_where(row, column)}: expected bit-widths like [4, 8, 8] or 4-8-8, got {text!r}"
    try:
        items = _json(text, row, column) if text.startswith("[") else [float(b) for b in text.replace(",", "-").split("-")]
        if not isinstance(items, list):
            raise CodesignError(expected)
        numbers = [b for b in items if isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)]
        if len(numbers) != len(items) or any(b != int(b) for b in numbers):
            raise CodesignError(expected)
        bits = tuple(int(b) for b in numbers)
    except ValueError as exc:
        raise CodesignError(expected) from exc
    if any(not 1 <= b <= MAX_BITS for b in bits):
        raise CodesignError(f"{_where(row, column)}: bit-widths must be between 1 and {MAX_BITS}, got {text!r}")
    return bits


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _positive(value: Any, row: int, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise CodesignError(f"{_where(row, column)}: expected a positive number, got {value!r}")
    if number > MAX_VALUE:
        raise CodesignError(f"{_where(row, column)}: {value!r} is above {MAX_VALUE:g}; check the unit")
    if number < MIN_VALUE:
        raise CodesignError(f"{_where(row, column)}: {value!r} is below {MIN_VALUE:g}; check the unit")
    return number


def _layer(item: Any) -> Layer:
    """One layer object of a ``layers`` cell, its fields checked before :class:`Layer` sees them."""
    if not isinstance(item, dict):
        raise CodesignError(f"expected a list of layer objects, got {type(item).__name__} {item!r:.40}")
    missing = [f for f in _LAYER_REQUIRED if f not in item]
    if missing:
        raise CodesignError(f"layer {item.get('name', '?')!r}: missing field(s) {', '.join(missing)}")
    name = item["name"]
    if not isinstance(name, str) or not name:
        raise CodesignError(f"layer name must be a non-empty string, got {name!r:.40}")
    for field, value in item.items():
        if field in _LAYER_INTS and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE):
            raise CodesignError(f"layer {name!r}: {field} must be an integer from 0 to {MAX_SIZE}, got {value!r:.40}")
        if field in ("kind", "mode") and not isinstance(value, str):
            raise CodesignError(f"layer {name!r}: {field} must be a string, got {value!r:.40}")
        if field == "bias" and not isinstance(value, bool):
            raise CodesignError(f"layer {name!r}: bias must be true or false, got {value!r:.40}")
    for field in ("weight_bits", "act_bits"):
        if item.get(field, 8) > MAX_BITS:
            raise CodesignError(f"layer {name!r}: {field} must be at most {MAX_BITS}, got {item[field]!r}")
    return Layer.from_dict(item)


def _layers_network(data: Any, name: str) -> Network:
    """The network of a ``layers`` cell: a list of layer objects, or a network object."""
    if isinstance(data, list):
        return Network(name, tuple(_layer(item) for item in data))
    if not isinstance(data, dict):
        raise CodesignError("expected a JSON list of layers or a network object")
    unknown = sorted(str(k) for k in set(data) - set(_NETWORK_FIELDS))
    if unknown or "layers" not in data:
        problem = f"unknown field(s) {', '.join(unknown)}" if unknown else "missing field 'layers'"
        raise CodesignError(f"network object: {problem}; fields: {', '.join(_NETWORK_FIELDS)}")
    if not isinstance(data["layers"], list):
        raise CodesignError(f"network object: 'layers' must be a list of layer objects, got {data['layers']!r:.40}")
    for field in ("residuals", "ties"):
        groups = data.get(field, [])
        if not isinstance(groups, list) or not all(isinstance(g, list) and all(isinstance(n, str) for n in g) for g in groups):
            raise CodesignError(f"network object: {field!r} must be a list of lists of layer names, got {groups!r:.40}")
    dead = data.get("dead", [])
    if not isinstance(dead, list) or not all(isinstance(n, str) for n in dead):
        raise CodesignError(f"network object: 'dead' must be a list of layer names, got {dead!r:.40}")
    shape = data.get("input_shape", [1, 28, 28])
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise CodesignError(f"network object: 'input_shape' must be three positive integers, got {shape!r:.40}")
    layers = [_layer(item) for item in data["layers"]]
    return Network.from_dict({"name": name, **data, "layers": [layer.to_dict() for layer in layers]})


def _network(record: dict[str, Any], row: int, resolve_space: Callable[[str], Any] | None, default_space: str | None) -> Network:
    if not _empty(record.get("layers")):
        data = _json(str(record["layers"]), row, "layers")
        try:
            given = _layers_network(data, str(record.get("name") or f"row{row}"))
        except (CodesignError, KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"{_where(row, 'layers')}: {exc}") from exc
        work = max(sum(layer.ops for layer in given.layers), given.params)
        if work > MAX_WORK:
            raise CodesignError(f"{_where(row, 'layers')}: the network has {work:.3g} operations or weights, above {MAX_WORK:g}; check the sizes")
        return given
    if _empty(record.get("arch")):
        raise CodesignError(f"{_where(row, 'layers')}: each row needs a layer list ('layers') or an architecture id ('arch')")
    space_name = record.get("space") if not _empty(record.get("space")) else default_space
    if space_name is None or resolve_space is None:
        raise CodesignError(f"{_where(row, 'space')}: an 'arch' id needs a search space (a 'space' column or --space)")
    try:
        space = resolve_space(str(space_name))
    except CodesignError as exc:
        raise CodesignError(f"{_where(row, 'space')}: {exc}") from exc
    try:
        arch = space.from_id(str(record["arch"]).strip())
    except CodesignError as exc:
        raise CodesignError(f"{_where(row, 'arch')}: {exc}") from exc
    weight_bits = _bits(record.get("weight_bits"), row, "weight_bits")
    act_bits = _bits(record.get("act_bits"), row, "act_bits")
    try:
        network: Network = space.network(arch, weight_bits, act_bits)
        return network
    except CodesignError as exc:
        raise CodesignError(f"{_where(row, 'weight_bits')}: {exc}") from exc


def _accel(value: Any, row: int) -> AcceleratorConfig | None:
    if _empty(value):
        return None
    data = _json(str(value), row, "accelerator")
    where = f"{_where(row, 'accelerator')}: expected {{template, device, clock_mhz, params}}"
    if not isinstance(data, dict):
        raise CodesignError(f"{where}, got {type(data).__name__} {data!r:.40}")
    fields = ("template", "device", "clock_mhz", "params")
    unknown, missing = sorted(str(k) for k in set(data) - set(fields)), [k for k in fields[:3] if k not in data]
    if unknown or missing:
        raise CodesignError(f"{where}; {'unknown ' + ', '.join(unknown) if unknown else 'missing ' + ', '.join(missing)}")
    for key in ("template", "device"):
        if not isinstance(data[key], str) or not data[key]:
            raise CodesignError(f"{where}; {key} must be a non-empty string, got {data[key]!r:.40}")
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(_param(v) for v in params.values()):
        raise CodesignError(f"{where}; params must map names to numbers, strings or lists of integers, got {params!r:.60}")
    clock = data["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, int | float):
        raise CodesignError(f"{where}; clock_mhz must be a number, got {clock!r:.40}")
    try:
        return AcceleratorConfig.from_dict(data)
    except (CodesignError, OverflowError) as exc:
        raise CodesignError(f"{_where(row, 'accelerator')}: {exc}") from exc


def _param(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, int) and not isinstance(v, bool) and abs(v) <= MAX_SIZE for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SIZE)


def parse_measurements(
    frame: pd.DataFrame, *, resolve_space: Callable[[str], Any] | None = None, default_space: str | None = None
) -> MeasurementTable:
    """Validate and convert a table (see the module docstring); ``resolve_space`` turns a space name into
    a space object (e.g. :func:`search_spaces.registry.make_space`)."""
    unknown = [c for c in frame.columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise CodesignError(f"measurements: unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(KNOWN_COLUMNS)}")
    if "latency_ms" not in frame.columns:
        raise CodesignError("measurements: missing column 'latency_ms'")
    if "layers" not in frame.columns and "arch" not in frame.columns:
        raise CodesignError("measurements: need a 'layers' column (JSON layer list) or an 'arch' column (architecture id)")
    if len(frame) == 0:
        raise CodesignError("measurements: the table has no rows")
    has_energy = "energy_mj" in frame.columns
    networks, accels, latency, energy = [], [], [], []
    for i, record in enumerate(frame.to_dict(orient="records"), start=1):
        networks.append(_network(record, i, resolve_space, default_space))
        accels.append(_accel(record.get("accelerator"), i))
        latency.append(_positive(record["latency_ms"], i, "latency_ms"))
        if has_energy:
            energy.append(_positive(record["energy_mj"], i, "energy_mj"))
    with_accel = [a is not None for a in accels]
    if any(with_accel) and not all(with_accel):
        row = with_accel.index(False) + 1
        raise CodesignError(f"{_where(row, 'accelerator')}: missing while other rows give one; give it on every row or none")
    templates = {(a.template, a.device) for a in accels if a is not None}
    if len(templates) > 1:
        raise CodesignError(f"measurements: column 'accelerator' mixes templates/devices {sorted(templates)}; import one device per model")
    return _merge_repeats(networks, accels, latency, energy if has_energy else None)


def _merge_repeats(
    networks: list[Network], accels: list[AcceleratorConfig | None], latency: list[float], energy: list[float] | None
) -> MeasurementTable:
    """One row per distinct (layers, accelerator), holding the mean of its repeated measurements."""
    groups: dict[str, list[int]] = {}
    for i, (net, acc) in enumerate(zip(networks, accels, strict=True)):
        layers = [layer.to_dict() for layer in net.layers]
        key = json.dumps([layers, list(net.residuals), list(net.dead), None if acc is None else acc.to_dict()], sort_keys=True)
        groups.setdefault(key, []).append(i)
    rows = list(groups.values())
    mean = lambda values, idx: float(sum(values[i] for i in idx) / len(idx))  # noqa: E731
    return MeasurementTable(
        tuple(networks[idx[0]] for idx in rows),
        tuple(accels[idx[0]] for idx in rows),
        tuple(mean(latency, idx) for idx in rows),
        None if energy is None else tuple(mean(energy, idx) for idx in rows),
        merged=len(networks) - len(rows),
    )


def read_measurements(
    path: str | Path, *, resolve_space: Callable[[str], Any] | None = None, default_space: str | None = None
) -> MeasurementTable:
    """Read and validate a CSV file of measurements (UTF-8, with or without a byte-order mark)."""
    if Path(path).is_dir():
        raise CodesignError(f"measurements: {path} is a folder; expected a CSV table")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, encoding="utf-8-sig")
    except FileNotFoundError:
        raise CodesignError(f"measurements: file {path} not found") from None
    except UnicodeDecodeError as exc:
        raise CodesignError(
            f"measurements: {path} is not a readable CSV table: not UTF-8 text "
            f"(byte {exc.object[exc.start]:#04x} at position {exc.start})"
        ) from None
    except OSError as exc:
        raise CodesignError(f"measurements: cannot read {path} ({exc.strerror or exc})") from None
    except pd.errors.EmptyDataError:
        raise CodesignError(f"measurements: {path} is empty (expected a header and one row per measurement)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise CodesignError(f"measurements: {path} is not a readable CSV table ({reason})") from None
    header = [str(c).strip() for c in raw.iloc[0]]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise CodesignError(f"measurements: column(s) {', '.join(map(repr, repeated))} appear more than once in the header")
    separator = next((label for sep, label in ((";", ";"), ("\t", "tab"), ("|", "|")) if len(header) == 1 and sep in header[0]), None)
    if separator is not None:
        raise CodesignError(f"measurements: the header of {path} looks {separator}-separated ({header[0]!r:.60}); expected commas")
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = pd.Index(header)
    return parse_measurements(frame, resolve_space=resolve_space, default_space=default_space)


def as_table(networks: Sequence[Network], latency_ms: Sequence[float], accels: Sequence[AcceleratorConfig | None] | None = None) -> pd.DataFrame:
    """A measurements table for the given networks (the inverse of :func:`parse_measurements`)."""
    rows = []
    for i, (net, lat) in enumerate(zip(networks, latency_ms, strict=True)):
        row: dict[str, Any] = {"layers": json.dumps(net.to_dict()), "latency_ms": lat}
        if accels is not None and accels[i] is not None:
            row["accelerator"] = json.dumps(accels[i].to_dict())  # type: ignore[union-attr]
        rows.append(row)
    return pd.DataFrame(rows)
