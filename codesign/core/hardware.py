"""Accelerator configurations and what hardware models report about them: FPGA resource counts, per-layer
costs and the whole-design report.

Units are written in field names (``latency_ms``, ``energy_mj``, ``clock_mhz``); BRAM is counted in 18 Kb
blocks. Every value is a frozen dataclass, hashable and safe to share. Re-exported by
:mod:`codesign.core.values`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codesign.core.errors import CodesignError

ParamValue = int | float | str | tuple[int, ...]


@dataclass(frozen=True)
class AcceleratorConfig:
    """An accelerator instance: which template on which device, at which clock, with which parameters.

    ``params`` are template-specific (e.g. ``tm``, ``tn``, ``tr``, ``tc`` for the overlay; per-layer
    ``pe`` and ``simd`` tuples for the dataflow template), stored sorted by name so equal configurations
    compare and hash equal. Use :meth:`make` to build one from keyword arguments.
    """

    template: str
    device: str
    clock_mhz: float
    params: tuple[tuple[str, ParamValue], ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.clock_mhz, int | float) and math.isfinite(self.clock_mhz) and self.clock_mhz > 0):
            raise CodesignError(f"accelerator: clock_mhz must be a positive number, got {self.clock_mhz!r}")
        names = [name for name, _ in self.params]
        if names != sorted(set(names)):
            raise CodesignError("accelerator: params must be sorted and unique; build with AcceleratorConfig.make")

    @classmethod
    def make(cls, template: str, device: str, clock_mhz: float, **params: ParamValue) -> AcceleratorConfig:
        normalised = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return cls(template, device, float(clock_mhz), tuple(sorted(normalised.items())))

    def get(self, name: str, default: ParamValue | None = None) -> ParamValue:
        for key, value in self.params:
            if key == name:
                return value
        if default is None:
            raise CodesignError(
                f"accelerator ({self.template}): missing parameter {name!r}; has {', '.join(k for k, _ in self.params) or 'none'}"
            )
        return default

    def param_dict(self) -> dict[str, ParamValue]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "device": self.device,
            "clock_mhz": self.clock_mhz,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AcceleratorConfig:
        return cls.make(str(data["template"]), str(data["device"]), float(data["clock_mhz"]), **dict(data.get("params", {})))


RESOURCE_NAMES = ("lut", "ff", "bram18", "uram", "dsp")


@dataclass(frozen=True)
class Resources:
    """FPGA resource counts (BRAM in 18 Kb blocks)."""

    lut: int = 0
    ff: int = 0
    bram18: int = 0
    uram: int = 0
    dsp: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, n) + getattr(other, n) for n in RESOURCE_NAMES))

    def scaled(self, fractions: Mapping[str, float]) -> Resources:
        """Each count times its fraction (rounded down): the usable share of a device."""
        return Resources(*(int(getattr(self, n) * fractions.get(n, 1.0)) for n in RESOURCE_NAMES))

    def exceeds(self, budget: Resources) -> tuple[str, ...]:
        """Human-readable violations of ``budget`` (empty when everything fits)."""
        return tuple(
            f"{n}: {getattr(self, n)} > {getattr(budget, n)}" for n in RESOURCE_NAMES if getattr(self, n) > getattr(budget, n)
        )

    def to_dict(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in RESOURCE_NAMES}


@dataclass(frozen=True)
class LayerCost:
    """One layer's share of a hardware report."""

    name: str
    cycles: int
    latency_ms: float
    energy_mj: float = 0.0
    offchip_bytes: float = 0.0
    bound: str = "compute"
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class HardwareReport:
    """What a hardware model says of a (network, accelerator) pair.

    ``latency_ms`` is the time for one input; ``throughput_fps`` is frames per second in steady state
    (larger than ``1000 / latency_ms`` for pipelined designs). ``resources`` is what the design uses,
    ``device_resources`` what the whole device has; ``violations`` is empty when the design fits the
    device's usable budget.
    """

    latency_ms: float
    throughput_fps: float
    energy_mj: float
    resources: Resources
    device_resources: Resources
    per_layer: tuple[LayerCost, ...] = ()
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Fallbacks or unproven steps behind these numbers (e.g. a time-limited optimiser's unproven answer);
    the search copies them into the evaluation's notes."""

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def dsp(self) -> int:
        return self.resources.dsp

    @property
    def lut(self) -> int:
        return self.resources.lut

    @property
    def ff(self) -> int:
        return self.resources.ff

    @property
    def bram18(self) -> int:
        return self.resources.bram18

    @property
    def uram(self) -> int:
        return self.resources.uram

    def fraction(self, resource: str) -> float:
        """Used share of the whole device for one resource (0 when the device has none and none is used)."""
        used = getattr(self.resources, resource)
        total = getattr(self.device_resources, resource)
        if total == 0:
            return 0.0 if used == 0 else math.inf
        return used / total

    def metrics(self) -> dict[str, float]:
        """Every scalar of the report by its metric name (the names objectives and constraints use)."""
        out: dict[str, float] = {
            "latency_ms": self.latency_ms,
            "throughput_fps": self.throughput_fps,
            "energy_mj": self.energy_mj,
        }
        for name in RESOURCE_NAMES:
            out[name] = float(getattr(self.resources, name))
            out[f"{name.removesuffix('18')}_fraction"] = self.fraction(name)
        return out
