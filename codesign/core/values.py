"""Core immutable values shared by every package: layers, networks, accelerator configurations,
hardware reports, candidates and their evaluations.

Units are written in field names (``latency_ms``, ``energy_mj``, ``clock_mhz``). Sizes are in elements
unless a name says bytes or bits. Every value here is a frozen dataclass, hashable and safe to share.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from codesign.core.errors import CodesignError

LAYER_KINDS = ("conv", "linear", "pool", "add")
"""Layer kinds every hardware model must cost. Pointwise and depthwise convolutions are ``conv`` layers
(kernel 1, or groups equal to the channel count); global pooling is ``pool`` with the kernel equal to the
input size."""


class Fidelity(StrEnum):
    """Where a number came from."""

    PREDICTED = "predicted"
    EXACT = "exact"  # counted from the network itself (MACs, parameters, model size)
    SIMULATED = "simulated"
    TABLE = "table"
    MEASURED = "measured"


@dataclass(frozen=True)
class Layer:
    """One layer of a network with its shapes and bit-widths.

    ``in_h``/``in_w`` is the input feature-map size; the output size is derived. ``weight_bits`` is the
    precision of the weights (0 for layers without weights), ``act_bits`` the precision of the input
    activations. A ``linear`` layer has ``in_h == in_w == kernel == 1``. A ``pool`` layer's ``mode`` is
    ``"max"`` or ``"avg"``. An ``add`` layer sums ``in_channels``-wide inputs elementwise (a residual).
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    in_h: int = 1
    in_w: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    weight_bits: int = 8
    act_bits: int = 8
    bias: bool = False
    mode: str = ""

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise CodesignError(f"layer {self.name!r}: unknown kind {self.kind!r}; known: {', '.join(LAYER_KINDS)}")
        for name in ("in_channels", "out_channels", "in_h", "in_w", "kernel", "stride", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CodesignError(f"layer {self.name!r}: {name} must be a positive integer, got {value!r}")
        if self.padding < 0:
            raise CodesignError(f"layer {self.name!r}: padding must be >= 0, got {self.padding}")
        if self.kind == "conv" and (self.in_channels % self.groups or self.out_channels % self.groups):
            raise CodesignError(
                f"layer {self.name!r}: groups={self.groups} must divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        if self.kind in ("pool", "add") and self.in_channels != self.out_channels:
            raise CodesignError(f"layer {self.name!r}: a {self.kind} layer keeps its channel count")
        if self.has_weights and self.weight_bits < 1:
            raise CodesignError(f"layer {self.name!r}: weight_bits must be >= 1, got {self.weight_bits}")
        if self.act_bits < 1:
            raise CodesignError(f"layer {self.name!r}: act_bits must be >= 1, got {self.act_bits}")
        if self.out_h < 1 or self.out_w < 1:
            raise CodesignError(
                f"layer {self.name!r}: kernel {self.kernel}, stride {self.stride}, padding {self.padding} "
                f"leave no output from a {self.in_h}x{self.in_w} input"
            )

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "linear")

    @property
    def out_h(self) -> int:
        if self.kind == "add":
            return self.in_h
        return (self.in_h + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_w(self) -> int:
        if self.kind == "add":
            return self.in_w
        return (self.in_w + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.in_channels

    @property
    def is_pointwise(self) -> bool:
        return self.kind == "conv" and self.kernel == 1 and self.groups == 1

    @property
    def output_pixels(self) -> int:
        return self.out_h * self.out_w

    @property
    def params(self) -> int:
        """Number of weights (plus biases) of the layer."""
        if not self.has_weights:
            return 0
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
        return weights + (self.out_channels if self.bias else 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one input (batch 1). Pooling and adds have none."""
        if not self.has_weights:
            return 0
        per_pixel = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
        return per_pixel * self.output_pixels

    @property
    def ops(self) -> int:
        """Elementary operations for one input: MACs for weighted layers, comparisons or additions for
        pooling and residual adds (so no layer is free)."""
        if self.kind == "pool":
            return self.out_channels * self.output_pixels * self.kernel * self.kernel
        if self.kind == "add":
            return self.out_channels * self.output_pixels
        return self.macs

    @property
    def bit_ops(self) -> int:
        """MACs weighted by weight bits x activation bits (HAWQ-V3's BOPs)."""
        return self.macs * self.weight_bits * self.act_bits

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bits / 8.0

    @property
    def input_elems(self) -> int:
        return self.in_channels * self.in_h * self.in_w * (2 if self.kind == "add" else 1)

    @property
    def output_elems(self) -> int:
        return self.out_channels * self.out_h * self.out_w

    def with_bits(self, weight_bits: int, act_bits: int) -> Layer:
        from dataclasses import replace

        return replace(self, weight_bits=weight_bits, act_bits=act_bits)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CodesignError(f"layer: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Network:
    """An ordered list of layers plus the residual edges.

    ``residuals`` holds ``(source, add)`` layer-name pairs: the output of ``source`` (or the network input
    when ``source`` is ``"input"``) is kept until the ``add`` layer consumes it. ``ties`` groups layer
    names that read the same activation and so must share their bit-widths.
    """

    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int] = (1, 28, 28)
    residuals: tuple[tuple[str, str], ...] = ()
    ties: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            raise CodesignError(f"network {self.name!r} has no layers")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise CodesignError(f"network {self.name!r}: duplicate layer name(s) {', '.join(dup)}")
        known = set(names) | {"input"}
        for src, dst in self.residuals:
            if src not in known or dst not in known:
                raise CodesignError(f"network {self.name!r}: residual ({src!r}, {dst!r}) names an unknown layer")
        for group in self.ties:
            missing = [n for n in group if n not in known]
            if missing:
                raise CodesignError(f"network {self.name!r}: tie group names unknown layer(s) {', '.join(missing)}")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bit_ops(self) -> int:
        return sum(layer.bit_ops for layer in self.layers)

    @property
    def weight_bytes(self) -> float:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def model_size_mb(self) -> float:
        return self.weight_bytes / 1e6

    @property
    def weighted_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.has_weights)

    def with_bits(self, weight_bits: Mapping[str, int], act_bits: Mapping[str, int] | None = None) -> Network:
        """A copy with new bit-widths for the named layers (others unchanged)."""
        from dataclasses import replace

        act_bits = act_bits or {}
        unknown = sorted((set(weight_bits) | set(act_bits)) - {layer.name for layer in self.layers})
        if unknown:
            raise CodesignError(f"network {self.name!r}: no layer named {', '.join(unknown)}")
        layers = tuple(
            layer.with_bits(weight_bits.get(layer.name, layer.weight_bits), act_bits.get(layer.name, layer.act_bits))
            for layer in self.layers
        )
        return replace(self, layers=layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "residuals": [list(edge) for edge in self.residuals],
            "ties": [list(group) for group in self.ties],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Network:
        return cls(
            name=str(data["name"]),
            layers=tuple(Layer.from_dict(layer) for layer in data["layers"]),
            input_shape=tuple(data.get("input_shape", (1, 28, 28))),
            residuals=tuple(tuple(edge) for edge in data.get("residuals", ())),
            ties=tuple(tuple(group) for group in data.get("ties", ())),
        )


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


@dataclass(frozen=True)
class Candidate:
    """One point of a search: an architecture of a space, its per-layer bits and its accelerator.

    ``arch_id`` is the space's stable string id of the architecture. ``weight_bits``/``act_bits`` follow
    the order of the network's layers that carry weights. ``accelerator`` is ``None`` for problems with no
    accelerator choice (tabular benchmarks, measured devices).
    """

    space: str
    arch_id: str
    weight_bits: tuple[int, ...] = ()
    act_bits: tuple[int, ...] = ()
    accelerator: AcceleratorConfig | None = None

    @property
    def key(self) -> str:
        """A stable id of the whole pair, usable as a file or row name."""
        bits = "-".join(f"{w}.{a}" for w, a in zip(self.weight_bits, self.act_bits, strict=False))
        accel = ""
        if self.accelerator is not None:
            accel = f"|{self.accelerator.template}@{self.accelerator.device}:{self.accelerator.clock_mhz:g}:" + ",".join(
                f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in self.accelerator.params
            )
        return f"{self.space}:{self.arch_id}" + (f"|{bits}" if bits else "") + accel

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "arch_id": self.arch_id,
            "weight_bits": list(self.weight_bits),
            "act_bits": list(self.act_bits),
            "accelerator": None if self.accelerator is None else self.accelerator.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        accel = data.get("accelerator")
        return cls(
            space=str(data["space"]),
            arch_id=str(data["arch_id"]),
            weight_bits=tuple(int(b) for b in data.get("weight_bits", ())),
            act_bits=tuple(int(b) for b in data.get("act_bits", ())),
            accelerator=None if accel is None else AcceleratorConfig.from_dict(accel),
        )


@dataclass(frozen=True)
class Evaluation:
    """The numbers known about a candidate and where each came from."""

    candidate: Candidate
    metrics: Mapping[str, float]
    fidelity: Mapping[str, Fidelity]
    violations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = sorted(set(self.metrics) - set(self.fidelity))
        if missing:
            raise CodesignError(f"evaluation: no fidelity given for metric(s) {', '.join(missing)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.to_dict(),
            "metrics": dict(self.metrics),
            "fidelity": {k: v.value for k, v in self.fidelity.items()},
            "violations": list(self.violations),
        }
