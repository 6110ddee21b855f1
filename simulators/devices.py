"""The FPGA device catalog, kept as data: one YAML file per device.

A device file has exactly these keys (units in the names)::

    name: xczu3eg                      # catalog key
    board: Ultra96                     # free text
    resources: {lut: 70560, ff: 141120, bram18: 432, uram: 0, dsp: 360}   # device totals
    usable_fractions: {lut: 0.7, ff: 0.5, bram18: 0.8, uram: 0.8, dsp: 0.8}
    max_clock_mhz: 300                 # fastest clock a design may request
    default_clock_mhz: 200             # clock used when none is given
    offchip_gb_per_s: 8.5              # peak DRAM bandwidth, GB/s (1e9 bytes/s)
    static_power_w: 0.35               # power drawn whatever the design does, W
    dsp_kind: dsp48e2                  # dsp48e1 | dsp48e2 | dsp58
    ddr_overhead: {lut: 0, ff: 0, bram18: 0, uram: 0, dsp: 0}   # soft memory controller cost
    offchip_efficiency: 0.8            # share of the peak a DMA stream achieves (optional)
    axi_ports: 4                       # PL ports to DRAM (optional; absent: no port limit)
    axi_port_bits: 128                 # data width of one port, bits (optional, with axi_ports)
    layer_overhead_cycles: 1000        # fixed cost per layer: configuration, DMA set-up (optional)
    slicem_fraction: 0.4               # share of the LUTs that can be LUTRAM (SLICEM) (optional)
    sources:                           # where each figure comes from: field -> citation
      resources: "Zynq UltraScale+ MPSoC data sheet DS891, ZU3EG column"
      offchip_gb_per_s: "Ultra96 hardware user guide: 32-bit LPDDR4 at 2133 MT/s; 32 x 2133 / 8 = 8,532 MB/s"
      ...                              # one entry for each of SOURCED_FIELDS

The optional keys default to :data:`DEFAULTS` (sourced in :data:`SOURCES`), so a user's file that predates
them keeps loading; the built-in files give every one of them. Effective off-chip bandwidth is
:meth:`Device.offchip_bytes_per_cycle`: ``min(peak x efficiency, ports x port bits / 8 x accelerator
clock)``.

Users add a device by writing such a file and passing its path (or its folder) to :class:`DeviceCatalog`.
Loading validates the schema: unknown, duplicate or missing keys and bad values raise
:class:`codesign.core.errors.CodesignError` naming the key and the file.

``sources`` (a mapping from a field of :data:`SOURCED_FIELDS` to a non-empty citation: a data sheet, user
guide, white paper or paper, or ``"estimate: <how it was chosen>"`` where no document gives the figure) is
required in the built-in files: a built-in file that leaves a field unsourced is an error naming the device
and the field. In a user's device file it is optional, so an existing file keeps loading: a field without a
source raises an :class:`UnsourcedDeviceWarning` naming the device and the fields, never an error. Where
``sources`` is given, an unknown field or an empty citation is an error in every file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from codesign.core.errors import CodesignError
from codesign.core.values import RESOURCE_NAMES, Resources

DSP_KINDS = ("dsp48e1", "dsp48e2", "dsp58")
BUILTIN_DIR = Path(__file__).resolve().parent / "devices"
MAX_COUNT = 10**12
"""The largest resource count or number a device file may give: anything larger is a unit mistake (and
would overflow the float arithmetic of the usable share)."""
_KEYS = (
    "name",
    "board",
    "resources",
    "usable_fractions",
    "max_clock_mhz",
    "default_clock_mhz",
    "offchip_gb_per_s",
    "static_power_w",
    "dsp_kind",
    "ddr_overhead",
)
_TUNING_KEYS = (
    "offchip_efficiency",
    "axi_ports",
    "axi_port_bits",
    "layer_overhead_cycles",
    "slicem_fraction",
)
_OPTIONAL_KEYS = (*_TUNING_KEYS, "sources")
SOURCED_FIELDS = (*(k for k in _KEYS if k not in ("name", "board")), *_TUNING_KEYS)
"""The fields of a device file whose figures need a citation in ``sources`` (every numeric field, and the
DSP slice kind, a data-sheet fact)."""
DEFAULTS = MappingProxyType(
    {
        "offchip_efficiency": 0.8,
        "axi_ports": 0,
        "axi_port_bits": 0,
        "layer_overhead_cycles": 1000,
        "slicem_fraction": 0.25,
    }
)
"""Values of the optional keys when a (user's) device file leaves them out; ``axi_ports: 0`` means no port
limit (the efficiency-scaled peak is the only bound)."""
SOURCES = MappingProxyType(
    {
        "DEFAULTS": "estimate: offchip_efficiency 0.8, inside the 0.7-0.85 of peak that streaming DMA "
        "typically reaches on a DDR controller (refresh, bank and read/write turnaround cost the rest); "
        "axi_ports 0: no port limit unless the file names its ports; layer_overhead_cycles 1000: a few "
        "microseconds of AXI-lite register writes and DMA descriptor set-up per layer (about 20 writes of "
        "about 100-200 ns each at a 200 MHz clock) plus the fill of the PE array; slicem_fraction 0.25: "
        "the low end of the 25-50% SLICEM share of Xilinx families (UG474: about a third of 7-series "
        "slices are SLICEM), so an unknown device is not credited more LUTRAM than it may have",
        "Device.offchip_efficiency": "derived: DEFAULTS['offchip_efficiency']",
        "Device.axi_ports": "design choice: 0 means no port limit (DEFAULTS['axi_ports'])",
        "Device.axi_port_bits": "design choice: 0 goes with axi_ports 0 (DEFAULTS['axi_port_bits'])",
        "Device.layer_overhead_cycles": "derived: DEFAULTS['layer_overhead_cycles']",
        "Device.slicem_fraction": "derived: DEFAULTS['slicem_fraction']",
        "MAX_COUNT": "design choice: a sanity bound of the file validator (10^12 is orders of magnitude above "
        "any FPGA's resource count), not a property of a device",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


class UnsourcedDeviceWarning(UserWarning):
    """A user's device file leaves some figures without a source (see the module docstring)."""


@dataclass(frozen=True)
class Device:
    """One FPGA device: totals, the usable share (totals x fractions), clock limits, memory, power."""

    name: str
    board: str
    resources: Resources
    usable_fractions: tuple[tuple[str, float], ...]
    max_clock_mhz: float
    default_clock_mhz: float
    offchip_gb_per_s: float
    static_power_w: float
    dsp_kind: str
    ddr_overhead: Resources
    offchip_efficiency: float = DEFAULTS["offchip_efficiency"]
    """Share of the peak bandwidth a DMA stream achieves (0, 1]."""
    axi_ports: int = 0
    """Ports through which the programmable logic reaches DRAM (0: no port limit)."""
    axi_port_bits: int = 0
    """Data width of one such port, bits."""
    layer_overhead_cycles: int = 1000
    """Fixed cycles per layer (configuration, DMA descriptor set-up, pipeline fill)."""
    slicem_fraction: float = DEFAULTS["slicem_fraction"]
    """Share of the LUTs that sit in SLICEMs and so can be distributed RAM."""
    source: str = ""
    """The file the device was read from."""
    sources: tuple[tuple[str, str], ...] = ()
    """``(field, citation)`` for each sourced field of :data:`SOURCED_FIELDS`, in that order."""

    @property
    def usable(self) -> Resources:
        """The budget a design may use (device totals times the usable fractions, rounded down)."""
        return self.resources.scaled(dict(self.usable_fractions))

    @property
    def offchip_bytes_per_s(self) -> float:
        """The peak DRAM bandwidth, bytes/s (what the data sheet gives; no efficiency, no port limit)."""
        return self.offchip_gb_per_s * 1e9

    def offchip_bytes_per_cycle(self, clock_mhz: Any) -> Any:
        """Bytes per accelerator cycle a DMA stream moves: ``min(peak x efficiency, ports x port bits / 8 x
        clock) / clock`` (the port term only when the device names its ports); works on arrays of clocks."""
        clock_hz = np.asarray(clock_mhz, dtype=np.float64) * 1e6
        dram = self.offchip_bytes_per_s * self.offchip_efficiency / clock_hz
        if self.axi_ports == 0:
            return dram
        return np.minimum(dram, self.axi_ports * self.axi_port_bits / 8.0)

    @property
    def lutram_luts(self) -> int:
        """LUTs a design may use as distributed RAM: the usable LUTs times the SLICEM share (rounded down)."""
        return math.floor(self.usable.lut * self.slicem_fraction)

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML/JSON-ready view (same keys as a device file, plus the derived ``usable``)."""
        return {
            "name": self.name,
            "board": self.board,
            "resources": self.resources.to_dict(),
            "usable_fractions": dict(self.usable_fractions),
            "usable": self.usable.to_dict(),
            "max_clock_mhz": self.max_clock_mhz,
            "default_clock_mhz": self.default_clock_mhz,
            "offchip_gb_per_s": self.offchip_gb_per_s,
            "static_power_w": self.static_power_w,
            "dsp_kind": self.dsp_kind,
            "ddr_overhead": self.ddr_overhead.to_dict(),
            "offchip_efficiency": self.offchip_efficiency,
            "axi_ports": self.axi_ports,
            "axi_port_bits": self.axi_port_bits,
            "layer_overhead_cycles": self.layer_overhead_cycles,
            "slicem_fraction": self.slicem_fraction,
            "source": self.source,
            "sources": dict(self.sources),
        }


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise CodesignError(
                f"{loader.name}: a mapping key must be a plain value, got {type(key).__name__} "
                f"(line {key_node.start_mark.line + 1})"
            )
        if key in seen:
            raise CodesignError(f"{loader.name}: duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _number(data: Mapping[str, Any], key: str, where: str, *, minimum: float, strict: bool) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodesignError(f"{where}: {key} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CodesignError(f"{where}: {key} must be a finite number, got {value!r}")
    if value > MAX_COUNT:
        raise CodesignError(f"{where}: {key} must be at most {MAX_COUNT:g}, got {value!r}; check the unit")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise CodesignError(f"{where}: {key} must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _resource_map(data: Mapping[str, Any], key: str, where: str, *, fractions: bool) -> dict[str, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise CodesignError(f"{where}: {key} must be a mapping of {', '.join(RESOURCE_NAMES)}, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - set(RESOURCE_NAMES))
    missing = [n for n in RESOURCE_NAMES if n not in value]
    if unknown or missing:
        problem = f"unknown {', '.join(map(str, unknown))}" if unknown else f"missing {', '.join(missing)}"
        raise CodesignError(f"{where}: {key}: {problem}; expected exactly {', '.join(RESOURCE_NAMES)}")
    for name, count in value.items():
        if fractions:
            ok = isinstance(count, int | float) and not isinstance(count, bool) and 0 <= count <= 1
            expected = "a fraction in [0, 1]"
        else:
            ok = isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_COUNT
            expected = f"a non-negative integer of at most {MAX_COUNT:g}"
        if not ok:
            raise CodesignError(f"{where}: {key}.{name} must be {expected}, got {count!r}")
    return dict(value)


def _sources(data: Mapping[str, Any], where: str, *, required: bool) -> tuple[tuple[str, str], ...]:
    """The validated ``sources`` mapping: an error for an unknown field or an empty citation, and for a
    missing field when ``required``; otherwise a missing field is an :class:`UnsourcedDeviceWarning`."""
    value = data.get("sources", {})
    if not isinstance(value, Mapping):
        raise CodesignError(f"{where}: sources must be a mapping of field -> citation, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - set(SOURCED_FIELDS))
    if unknown:
        raise CodesignError(
            f"{where}: sources: unknown field(s) {', '.join(unknown)}; expected {', '.join(SOURCED_FIELDS)}"
        )
    for field, citation in value.items():
        if not isinstance(citation, str) or not citation.strip():
            raise CodesignError(f"{where}: sources.{field} must be a non-empty citation, got {citation!r}")
    missing = [f for f in SOURCED_FIELDS if f not in value and (required or f in data)]
    if missing:
        device = data.get("name", "?")
        message = f"{where}: device {device!r} gives no source for {', '.join(missing)}"
        if required:
            raise CodesignError(f"{message}; add them under sources: (field: citation)")
        hint = "add them under sources: to say where the figures come from"
        warnings.warn(f"{message} ({hint})", UnsourcedDeviceWarning, stacklevel=4)
    return tuple((f, value[f].strip()) for f in SOURCED_FIELDS if f in value)


def _integer(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise CodesignError(
            f"{where}: {key} must be a non-negative integer of at most {MAX_COUNT:g}, got {value!r}"
        )
    return value


def _tuning(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional keys (:data:`DEFAULTS` where absent), validated."""
    values = {**DEFAULTS, **{k: data[k] for k in _TUNING_KEYS if k in data}}
    out: dict[str, Any] = {}
    for key in ("offchip_efficiency", "slicem_fraction"):
        out[key] = _number(values, key, where, minimum=0, strict=True)
        if out[key] > 1:
            raise CodesignError(f"{where}: {key} must be a fraction in (0, 1], got {values[key]!r}")
    for key in ("axi_ports", "axi_port_bits", "layer_overhead_cycles"):
        out[key] = _integer(values, key, where)
    if (out["axi_ports"] == 0) != (out["axi_port_bits"] == 0):
        raise CodesignError(
            f"{where}: axi_ports and axi_port_bits go together (both 0 for no port limit), got "
            f"{out['axi_ports']} and {out['axi_port_bits']}"
        )
    return out


def device_from_dict(
    data: Mapping[str, Any], where: str = "device", *, require_sources: bool = False
) -> Device:
    """Validate one device description (the parsed content of a device file) and build the Device.

    ``require_sources``: a field of :data:`SOURCED_FIELDS` without a citation is an error (built-in files)
    rather than an :class:`UnsourcedDeviceWarning` (users' files)."""
    if not isinstance(data, Mapping):
        raise CodesignError(f"{where}: expected a mapping of device keys, got {type(data).__name__}")
    unknown = sorted(str(k) for k in set(data) - set(_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise CodesignError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(_KEYS + _OPTIONAL_KEYS)}"
        )
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise CodesignError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("name", "board"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise CodesignError(f"{where}: {key} must be a non-empty string, got {data[key]!r}")
    if data["dsp_kind"] not in DSP_KINDS:
        raise CodesignError(
            f"{where}: dsp_kind must be one of {', '.join(DSP_KINDS)}, got {data['dsp_kind']!r}"
        )
    max_clock = _number(data, "max_clock_mhz", where, minimum=0, strict=True)
    default_clock = _number(data, "default_clock_mhz", where, minimum=0, strict=True)
    if default_clock > max_clock:
        raise CodesignError(
            f"{where}: default_clock_mhz {default_clock:g} exceeds max_clock_mhz {max_clock:g}"
        )
    fractions = _resource_map(data, "usable_fractions", where, fractions=True)
    resources = Resources(**_resource_map(data, "resources", where, fractions=False))
    ddr_overhead = Resources(**_resource_map(data, "ddr_overhead", where, fractions=False))
    offchip = _number(data, "offchip_gb_per_s", where, minimum=0, strict=True)
    static_power = _number(data, "static_power_w", where, minimum=0, strict=False)
    if require_sources:
        absent = [k for k in _TUNING_KEYS if k not in data]
        if absent:
            raise CodesignError(f"{where}: a built-in device file must give {', '.join(absent)}")
    tuning = _tuning(data, where)
    return Device(
        name=data["name"].strip(),
        board=data["board"],
        resources=resources,
        usable_fractions=tuple((n, float(fractions[n])) for n in RESOURCE_NAMES),
        max_clock_mhz=max_clock,
        default_clock_mhz=default_clock,
        offchip_gb_per_s=offchip,
        static_power_w=static_power,
        dsp_kind=data["dsp_kind"],
        ddr_overhead=ddr_overhead,
        **tuning,
        source=where,
        sources=_sources(data, where, required=require_sources),
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong with a YAML text and where (PyYAML's own messages span lines)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"{exc.reason}: character #x{exc.character:04x} at position {exc.position}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem or exc.context or 'malformed'}{where}"
    return " ".join(str(exc).split())


def load_device_file(path: str | Path, *, require_sources: bool = False) -> Device:
    """Read and validate one device YAML (or JSON) file, UTF-8 with or without a byte-order mark.

    ``require_sources`` as in :func:`device_from_dict` (True for the built-in files)."""
    path = Path(path)
    if path.is_dir():
        raise CodesignError(f"device file {path}: is a folder, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CodesignError(f"device file {path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise CodesignError(
            f"device file {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}); "
            "expected a YAML file"
        ) from None
    try:
        loader = _StrictLoader(text)
        loader.name = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise CodesignError(f"device file {path}: not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise CodesignError(f"device file {path}: not valid YAML: nested too deeply") from None
    except ValueError as exc:  # a value PyYAML cannot convert: a bad date, an integer of 5,000 digits
        reason = " ".join(str(exc).split(";")[0].split())
        raise CodesignError(f"device file {path}: not valid YAML: a value cannot be read ({reason})") from None
    return device_from_dict(data, str(path), require_sources=require_sources)


def _device_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            try:
                found = sorted(p for p in entry.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            except OSError as exc:
                raise CodesignError(f"device folder {entry}: cannot read ({exc.strerror or exc})") from None
            if not found:
                raise CodesignError(f"device folder {entry}: holds no .yaml or .yml file")
            files.extend(found)
        elif entry.is_file():
            files.append(entry)
        else:
            raise CodesignError(f"device path {entry}: no such file or folder")
    return files


def builtin_devices() -> tuple[Device, ...]:
    """The devices shipped with the package, read afresh on each call (a few milliseconds; no process-wide
    cache, so each catalog sees the files as they are)."""
    return tuple(load_device_file(p, require_sources=True) for p in _device_files([BUILTIN_DIR]))


@dataclass(frozen=True)
class DeviceCatalog:
    """Devices by name: the built-ins plus any extra files or folders of YAML files.

    A later file may not silently replace a device: two files with the same ``name`` are an error.
    """

    devices: tuple[Device, ...]

    @classmethod
    def load(cls, extra_paths: Iterable[str | Path] = (), *, include_builtin: bool = True) -> DeviceCatalog:
        devices = list(builtin_devices()) if include_builtin else []
        devices.extend(load_device_file(p) for p in _device_files(extra_paths))
        seen: dict[str, str] = {}
        for device in devices:
            if device.name in seen:
                raise CodesignError(
                    f"device {device.name!r} is defined twice: in {seen[device.name]} and in {device.source}"
                )
            seen[device.name] = device.source
        return cls(tuple(devices))

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(d.name for d in self.devices))

    def get(self, name: str) -> Device:
        for device in self.devices:
            if device.name == name:
                return device
        raise CodesignError(f"unknown device {name!r}; known: {', '.join(self.names())}")

    def __contains__(self, name: object) -> bool:
        return any(d.name == name for d in self.devices)


def default_catalog() -> DeviceCatalog:
    """The built-in devices only."""
    return DeviceCatalog(builtin_devices())
