"""Reading a table of measured latencies (CSV) into networks, accelerator configurations and targets.

Columns (one row per measurement):

- ``layers``: the network as JSON, either a list of layer objects (the fields of
  :class:`codesign.core.values.Layer`) or a whole network object (:meth:`codesign.core.values.Network.to_dict`); or
- ``arch``: an architecture id of a search space (the ``space`` column, or the default space given by the
  caller), with optional ``weight_bits`` / ``act_bits`` columns (JSON lists or ``4-8-8`` strings);
- ``accelerator`` (optional): the accelerator configuration as JSON
  (:meth:`codesign.core.values.AcceleratorConfig.to_dict`), empty when the device has no choice;
- ``latency_ms`` (required, > 0) and ``energy_mj`` (optional, > 0 where given; all rows or none).

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
        raise CodesignError(f"{_where(row, column)}: not valid JSON ({exc.msg} at char {exc.pos})") from exc


def _bits(value: Any, row: int, column: str) -> tuple[int, ...] | None:
    if _empty(value):
        return None
    text = str(value).strip()
    try:
        items = json.loads(text) if text.startswith("[") else [int(float(b)) for b in text.replace(",", "-").split("-")]
        bits = tuple(int(b) for b in items)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise CodesignError(f"{_where(row, column)}: expected bit-widths like [4, 8, 8] or 4-8-8, got {text!r}") from exc
    if any(b < 1 for b in bits):
        raise CodesignError(f"{_where(row, column)}: bit-widths must be >= 1, got {text!r}")
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
    return number


def _network(record: dict[str, Any], row: int, resolve_space: Callable[[str], Any] | None, default_space: str | None) -> Network:
    if not _empty(record.get("layers")):
        data = _json(str(record["layers"]), row, "layers")
        try:
            if isinstance(data, list):
                if not all(isinstance(item, dict) for item in data):
                    raise CodesignError("expected a list of layer objects")
                return Network(str(record.get("name") or f"row{row}"), tuple(Layer.from_dict(item) for item in data))
            if isinstance(data, dict):
                return Network.from_dict(data)
        except (CodesignError, KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"{_where(row, 'layers')}: {exc}") from exc
        raise CodesignError(f"{_where(row, 'layers')}: expected a JSON list of layers or a network object")
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
    try:
        return AcceleratorConfig.from_dict(data)
    except (CodesignError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodesignError(f"{_where(row, 'accelerator')}: {exc}; expected {{template, device, clock_mhz, params}}") from exc


def parse_measurements(
    frame: pd.DataFrame, *, resolve_space: Callable[[str], Any] | None = None, default_space: str | None = None
) -> MeasurementTable:
    """Validate and convert a table (see the module docstring); ``resolve_space`` turns a space name into
    a space object (e.g. :func:`search_spaces.registry.make_space`)."""
    unknown = [c for c in frame.columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise CodesignError(f"measurements: unknown column(s) {', '.join(map(str, unknown))}; known: {', '.join(KNOWN_COLUMNS)}")
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
    """Read and validate a CSV file of measurements."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise CodesignError(f"measurements: file {path} not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CodesignError(f"measurements: {path} is not a readable CSV table ({exc})") from exc
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
