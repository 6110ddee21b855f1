"""Machinery shared by the FPGA templates: a network as column arrays, the per-layer/per-config result
arrays every template fills, and turning one column of them into a :class:`HardwareReport`.

Both templates compute everything as ``(layers, configs)`` arrays in one function, and ``evaluate`` is that
same function on a single configuration, so the batch path and the scalar path agree exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from types import MappingProxyType

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import (
    LAYER_KINDS,
    RESOURCE_NAMES,
    AcceleratorConfig,
    HardwareReport,
    LayerCost,
    Network,
    Resources,
)
from simulators.base import HardwareModel
from simulators.costs import DEFAULT_ENERGY, PJ_TO_MJ, EnergyTable
from simulators.devices import Device, DeviceCatalog

KIND_CODES = {kind: i for i, kind in enumerate(LAYER_KINDS)}
BATCH_KEYS = ("latency_ms", "throughput_fps", "energy_mj", *RESOURCE_NAMES, "feasible")
SOURCES = MappingProxyType(
    {"KIND_CODES": "design choice: a layer kind's code is its position in LAYER_KINDS (a label, not a figure)"}
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


@dataclass(frozen=True, eq=False)
class LayerArrays:
    """Per-layer integer columns of a network, each of shape ``(L, 1)`` so they broadcast over configs."""

    names: tuple[str, ...]
    kind: np.ndarray
    cin: np.ndarray
    cout: np.ndarray
    groups: np.ndarray
    in_h: np.ndarray
    in_w: np.ndarray
    out_h: np.ndarray
    out_w: np.ndarray
    kernel: np.ndarray
    """Kernel taps per axis (``kernel * kernel`` MACs per output of one channel pair)."""
    extent: np.ndarray
    """Pixels per axis a kernel window spans (:attr:`codesign.core.values.Layer.effective_kernel`: the
    kernel itself unless dilated); what input tiles and line buffers hold."""
    stride: np.ndarray
    wbits: np.ndarray
    abits: np.ndarray
    macs: np.ndarray
    params: np.ndarray
    ops: np.ndarray
    """:attr:`codesign.core.values.Layer.ops` (MACs of weighted layers; element operations otherwise)."""

    @classmethod
    def of(cls, network: Network) -> LayerArrays:
        """The columns of ``network`` (built on each call: no process-wide cache)."""
        return cls.build(network)

    @classmethod
    def build(cls, network: Network) -> LayerArrays:
        for layer in network.layers:
            if layer.kind not in KIND_CODES:
                raise CodesignError(f"layer {layer.name!r}: no cost model for kind {layer.kind!r}")

        def col(values: list[int]) -> np.ndarray:
            array = np.asarray(values, dtype=np.int64).reshape(-1, 1)
            array.flags.writeable = False
            return array

        layers = network.layers
        return cls(
            names=tuple(layer.name for layer in layers),
            kind=col([KIND_CODES[layer.kind] for layer in layers]),
            cin=col([layer.in_channels for layer in layers]),
            cout=col([layer.out_channels for layer in layers]),
            groups=col([layer.groups if layer.kind == "conv" else 1 for layer in layers]),
            in_h=col([layer.in_h for layer in layers]),
            in_w=col([layer.in_w for layer in layers]),
            out_h=col([layer.out_h for layer in layers]),
            out_w=col([layer.out_w for layer in layers]),
            kernel=col([layer.kernel for layer in layers]),
            extent=col([layer.effective_kernel for layer in layers]),
            stride=col([layer.stride for layer in layers]),
            wbits=col([layer.weight_bits if layer.has_weights else 0 for layer in layers]),
            abits=col([layer.act_bits for layer in layers]),
            macs=col([layer.macs for layer in layers]),
            params=col([layer.params for layer in layers]),
            ops=col([layer.ops for layer in layers]),
        )

    @functools.cached_property
    def weighted(self) -> np.ndarray:
        return (self.kind == KIND_CODES["conv"]) | (self.kind == KIND_CODES["linear"])

    @functools.cached_property
    def is_pool(self) -> np.ndarray:
        return self.kind == KIND_CODES["pool"]

    @functools.cached_property
    def is_add(self) -> np.ndarray:
        return self.kind == KIND_CODES["add"]

    @functools.cached_property
    def is_concat(self) -> np.ndarray:
        return self.kind == KIND_CODES["concat"]

    @functools.cached_property
    def is_upsample(self) -> np.ndarray:
        return self.kind == KIND_CODES["upsample"]

    @functools.cached_property
    def windowed(self) -> np.ndarray:
        """Layers without weights that read ``kernel x kernel`` inputs per output (pooling, upsampling)."""
        return self.is_pool | self.is_upsample

    @functools.cached_property
    def out_pixels(self) -> np.ndarray:
        return self.out_h * self.out_w

    @functools.cached_property
    def kernel_area(self) -> np.ndarray:
        return self.kernel * self.kernel


def layer_sum(values: np.ndarray) -> np.ndarray:
    """Sum over layers (axis 0) strictly in layer order (an accumulate, unlike numpy's pairwise ``sum``),
    so one configuration and a batch of them round exactly the same way."""
    return np.add.accumulate(values, axis=0)[-1]


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a template computes for L layers x N configurations.

    Per layer ``(L, N)``: ``cycles``, ``offchip_bytes``, ``dynamic_pj``, ``memory_bound`` and the layer's own
    resources (``layer_dsp`` ...). Per configuration ``(N,)``: total resources (including shared units and
    the memory-controller overhead), ``clock_mhz``, ``throughput_fps``. ``layer_lutram`` (L, N) and
    ``lutram`` (N,): the LUTs among ``lut`` that are distributed RAM; a design is feasible only when
    ``lutram`` fits the device's SLICEM LUTs (:attr:`simulators.devices.Device.lutram_luts`).
    """

    cycles: np.ndarray
    offchip_bytes: np.ndarray
    dynamic_pj: np.ndarray
    memory_bound: np.ndarray
    layer_resources: Mapping[str, np.ndarray]
    resources: Mapping[str, np.ndarray]
    clock_mhz: np.ndarray
    throughput_fps: np.ndarray
    layer_lutram: np.ndarray
    lutram: np.ndarray

    def layer_latency_ms(self) -> np.ndarray:
        return self.cycles / (self.clock_mhz * 1e3)

    def layer_energy_mj(self, device: Device) -> np.ndarray:
        return device.static_power_w * self.layer_latency_ms() + self.dynamic_pj * PJ_TO_MJ

    def totals(self, device: Device) -> dict[str, np.ndarray]:
        """Latency, throughput, energy, resources and feasibility per configuration."""
        out: dict[str, np.ndarray] = {
            "latency_ms": layer_sum(self.layer_latency_ms()),
            "throughput_fps": self.throughput_fps,
            "energy_mj": layer_sum(self.layer_energy_mj(device)),
        }
        feasible = (self.clock_mhz <= device.max_clock_mhz) & (self.lutram <= device.lutram_luts)
        usable = device.usable
        for name in RESOURCE_NAMES:
            out[name] = self.resources[name]
            feasible = feasible & (self.resources[name] <= getattr(usable, name))
        out["feasible"] = feasible
        return out

    def report(self, device: Device, names: tuple[str, ...], j: int = 0) -> HardwareReport:
        """The full report of configuration ``j``."""
        totals = self.totals(device)
        latency = self.layer_latency_ms()[:, j]
        energy = self.layer_energy_mj(device)[:, j]
        layer_res = np.stack([self.layer_resources[n][:, j] for n in RESOURCE_NAMES], axis=1).tolist()
        zero = Resources()
        per_layer = tuple(
            LayerCost(
                name=name,
                cycles=cycles,
                latency_ms=lat,
                energy_mj=en,
                offchip_bytes=off,
                bound="memory" if mem else "compute",
                resources=Resources(*res) if any(res) else zero,
            )
            for name, cycles, lat, en, off, mem, res in zip(
                names,
                self.cycles[:, j].tolist(),
                latency.tolist(),
                energy.tolist(),
                self.offchip_bytes[:, j].tolist(),
                self.memory_bound[:, j].tolist(),
                layer_res,
                strict=True,
            )
        )
        used = Resources(**{n: int(self.resources[n][j]) for n in RESOURCE_NAMES})
        violations = used.exceeds(device.usable)
        lutram = int(self.lutram[j])
        if lutram > device.lutram_luts:
            violations += (f"lutram: {lutram} > {device.lutram_luts} (SLICEM LUTs)",)
        clock = float(self.clock_mhz[j])
        if clock > device.max_clock_mhz:
            violations += (f"clock_mhz: {clock:g} > {device.max_clock_mhz:g}",)
        return HardwareReport(
            latency_ms=float(totals["latency_ms"][j]),
            throughput_fps=float(totals["throughput_fps"][j]),
            energy_mj=float(totals["energy_mj"][j]),
            resources=used,
            device_resources=device.resources,
            per_layer=per_layer,
            violations=violations,
        )


def check_configs(template: str, configs: list[AcceleratorConfig] | tuple[AcceleratorConfig, ...]) -> str:
    """The one device all ``configs`` target; raises when a config belongs to another template."""
    if not configs:
        raise CodesignError(f"{template}: no accelerator configurations given")
    devices = {c.device for c in configs}
    for config in configs:
        if config.template != template:
            raise CodesignError(
                f"{template} model cannot evaluate a {config.template!r} accelerator configuration"
            )
    if len(devices) > 1:
        raise CodesignError(f"{template}: a batch must target one device, got {', '.join(sorted(devices))}")
    return configs[0].device


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_float(value: float) -> float:
    """``float(value)``; NaN for an integer too large for a float (so every bound check fails)."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def energy_table(energy: EnergyTable | Mapping[str, float] | None) -> EnergyTable:
    """The ``energy`` option: the default constants, an :class:`EnergyTable`, or a mapping (from an
    experiment file) of some of its fields to positive numbers of pJ, the rest left at their defaults."""
    if energy is None:
        return DEFAULT_ENERGY
    if isinstance(energy, EnergyTable):
        return energy
    known = [f.name for f in fields(EnergyTable)]
    if not isinstance(energy, Mapping):
        raise CodesignError(
            f"option energy must be a mapping of {', '.join(known)} to numbers of pJ, got {_shown(energy)}"
        )
    values: dict[str, float] = {}
    for key, value in energy.items():
        if key not in known:
            raise CodesignError(f"option energy: unknown constant {_shown(key)}; known: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < _as_float(value) < math.inf:
            raise CodesignError(f"option energy: {key} must be a positive finite number, got {_shown(value)}")
        values[key] = float(value)
    return replace(DEFAULT_ENERGY, **values)


def int_param(config: AcceleratorConfig, name: str) -> int:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CodesignError(
            f"accelerator ({config.template}): {name} must be a positive integer, got {value!r}"
        )
    return value


class TemplateModel(HardwareModel):
    """The shared shell of the FPGA templates: device lookup, parameter checks, scalar and batch paths.

    A template sets ``name`` and ``param_names`` and implements :meth:`_compute`; ``evaluate`` and
    ``evaluate_batch`` both call it, so they agree exactly. Constructor options are keyword-only:
    ``catalog`` resolves device names (built-in devices by default), ``energy`` holds the dynamic-energy
    constants. The model keeps no other state.
    """

    param_names: tuple[str, ...] = ()

    def __init__(
        self, *, catalog: DeviceCatalog | None = None, energy: EnergyTable | Mapping[str, float] | None = None
    ) -> None:
        super().__init__(catalog=catalog)
        self.energy = energy_table(energy)

    def _compute(
        self, layers: LayerArrays, configs: Sequence[AcceleratorConfig], device: Device
    ) -> BatchResult:
        raise NotImplementedError

    def _arrays(
        self, network: Network, configs: Sequence[AcceleratorConfig]
    ) -> tuple[BatchResult, Device, LayerArrays]:
        device = self.catalog.get(check_configs(self.name, list(configs)))
        for config in configs:
            unknown = sorted(set(config.param_dict()) - set(self.param_names))
            if unknown:
                raise CodesignError(
                    f"{self.name}: unknown parameter(s) {', '.join(unknown)}; expected {', '.join(self.param_names)}"
                )
        layers = LayerArrays.of(network)
        return self._compute(layers, configs, device), device, layers

    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        """Latency, throughput, energy, resources and per-layer costs of ``network`` on ``accel``."""
        result, device, layers = self._arrays(network, [accel])
        return result.report(device, layers.names)

    def evaluate_batch(self, network: Network, configs: Sequence[AcceleratorConfig]) -> dict[str, np.ndarray]:
        """The totals of :meth:`evaluate` for many configurations of one device at once: arrays of length N
        under ``latency_ms``, ``throughput_fps``, ``energy_mj``, the resource names and ``feasible``."""
        result, device, _ = self._arrays(network, configs)
        return result.totals(device)


def tightest_resource(totals: Mapping[str, np.ndarray], device: Device) -> str:
    """Why nothing fits: the budget that even its most frugal configuration exceeds by the most."""
    usable = device.usable
    worst_name, worst_ratio, worst_need = "", 0.0, 0.0
    for name in RESOURCE_NAMES:
        need = float(np.min(totals[name]))
        budget = getattr(usable, name)
        ratio = np.inf if budget == 0 and need > 0 else (need / budget if budget else 0.0)
        if ratio > 1.0 and ratio > worst_ratio:
            worst_name, worst_ratio, worst_need = name, ratio, need
    if not worst_name:
        return "no single resource is over budget in every configuration, but none fits all budgets at once"
    return f"{worst_name} needs at least {worst_need:g} but {getattr(usable, worst_name)} are usable"
