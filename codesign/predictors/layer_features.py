"""Per-layer features for latency models that learn from per-layer costs (nn-Meter style: the latency of
a network is the sum of its layers' predicted latencies).

Each row describes one layer in its network and on its accelerator: the layer's shape, bits, MACs and
bytes, the widest precision in the network (a shared array is built for it), the accelerator's numeric
parameters and device, and cycle hints: loop-tiled compute cycles (``tm``/``tn``/``tr``/``tc``), folded
cycles (``pe``/``simd``), or lane-parallel element operations for pooling and adds, with a tiling-aware
estimate of the off-chip bytes. A predictor learns the ratio between the real latency and the hint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from codesign.predictors.features import (
    FeatureSchema,
    LatencyFeaturizer,
    folded_cycles,
    folded_shape,
    folded_shapes,
)
from simulators.tiling import layer_tiling_cycles, layer_tiling_offchip_bytes

LAYER_FEATURES_VERSION = 2
LAYER_FEATURE_NAMES: tuple[str, ...] = (
    "is_conv", "is_depthwise", "is_pointwise", "is_linear", "is_pool", "is_add",
    "in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "kernel", "stride", "groups",
    "weight_bits", "act_bits", "net_max_weight_bits", "net_max_act_bits", "macs", "params", "ops",
    "input_bytes", "output_bytes", "weight_bytes", "hint_cycles", "log_hint_ms", "offchip_bytes_hint",
    "log_bytes_per_hint_cycle", "position",
)  # fmt: skip


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    return int(value[0]) if isinstance(value, tuple) else int(value)


def _tiling_hint(layer: Layer, params: dict[str, Any]) -> tuple[float, float]:
    """Compute cycles and off-chip bytes of one layer on a Tm x Tn array with Tr x Tc output tiles (the
    Tm-lane vector unit for pooling and adds): the overlay simulator's formulas
    (:mod:`simulators.tiling`) at the array's own precision."""
    tm, tn = _int(params, "tm", 1), _int(params, "tn", 1)
    tr, tc = _int(params, "tr", layer.out_h), _int(params, "tc", layer.out_w)
    return float(layer_tiling_cycles(layer, tm, tn, tr, tc)), layer_tiling_offchip_bytes(layer, tm, tr, tc)


def _folding_hint(
    layer: Layer, index: int, params: dict[str, Any], shape: tuple[int, int, int] | None = None
) -> tuple[float, float]:
    """Cycles ``ceil(MH/PE)*ceil(MW/SIMD)*pixels`` of the ``index``-th layer with per-layer PE/SIMD (FINN);
    ``shape`` is the layer's (MH, MW, pixels) when the caller has it (:func:`folded_shape` otherwise)."""
    pe_all, simd_all = params["pe"], params["simd"]
    pe = int(pe_all[index]) if isinstance(pe_all, tuple) and index < len(pe_all) else _int(params, "pe", 1)
    simd = int(simd_all[index]) if isinstance(simd_all, tuple) and index < len(simd_all) else _int(params, "simd", 1)
    cycles = folded_cycles(folded_shape(layer) if shape is None else shape, pe, simd)
    return float(cycles), (layer.input_elems + layer.output_elems) * layer.act_bits / 8.0


def layer_hint(
    layer: Layer, position: int, accel: AcceleratorConfig | None, shape: tuple[int, int, int] | None = None
) -> tuple[float, float]:
    """(cycles, off-chip bytes) estimate of the layer at ``position`` in its network; element operations
    over one lane without a template the hint understands. ``shape`` optionally gives the layer's folded
    (MH, MW, pixels)."""
    params = accel.param_dict() if accel is not None else {}
    if "pe" in params and "simd" in params:
        return _folding_hint(layer, position, params, shape)
    if "tm" in params:
        return _tiling_hint(layer, params)
    return float(max(layer.ops, 1)), (layer.input_elems + layer.output_elems) * layer.act_bits / 8.0 + layer.weight_bytes


@dataclass(frozen=True)
class LayerFeaturizer:
    """Rows of :attr:`schema` for every layer of (network, accelerator) pairs; accelerator columns as in
    :class:`codesign.predictors.features.LatencyFeaturizer`."""

    accel: LatencyFeaturizer = LatencyFeaturizer()

    @classmethod
    def for_configs(cls, accels: Sequence[AcceleratorConfig | None]) -> LayerFeaturizer:
        return cls(LatencyFeaturizer.for_configs(accels))

    @property
    def accel_names(self) -> tuple[str, ...]:
        a = self.accel
        return ("accel.clock_mhz", *a.accel_columns, *(f"template={t}" for t in a.templates), *(f"device={d}" for d in a.devices))

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema("latency_layer", LAYER_FEATURES_VERSION, (*LAYER_FEATURE_NAMES, *self.accel_names))

    def _accel_row(self, accel: AcceleratorConfig | None) -> list[float]:
        values: dict[str, float] = {}
        if accel is not None:
            values["accel.clock_mhz"] = accel.clock_mhz
            for name, value in accel.params:
                if isinstance(value, tuple):
                    numbers = [float(v) for v in value]
                    values[f"accel.{name}.sum"], values[f"accel.{name}.max"] = sum(numbers), max(numbers, default=0.0)
                elif isinstance(value, int | float):
                    values[f"accel.{name}"] = float(value)
            values[f"template={accel.template}"] = 1.0
            values[f"device={accel.device}"] = 1.0
        return [values.get(name, 0.0) for name in self.accel_names]

    def rows(self, network: Network, accel: AcceleratorConfig | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``(len(network), len(schema))`` feature matrix and the hint latency (ms) of every layer."""
        weighted = network.weighted_layers
        max_w = max((lay.weight_bits for lay in weighted), default=0)
        max_a = max((lay.act_bits for lay in weighted), default=0)
        clock_mhz = accel.clock_mhz if accel is not None else 1.0
        accel_row = self._accel_row(accel)
        rows, hints = [], []
        folding = accel is not None and {"pe", "simd"} <= set(accel.param_dict())
        shapes = folded_shapes(network) if folding else [None] * len(network)
        for position, layer in enumerate(network.layers):
            cycles, offchip = layer_hint(layer, position, accel, shapes[position])
            cycles = max(cycles, 1.0)
            hint_ms = cycles / (clock_mhz * 1e3)
            row = [
                layer.kind == "conv", layer.is_depthwise, layer.is_pointwise, layer.kind == "linear",
                layer.kind == "pool", layer.kind == "add", layer.in_channels, layer.out_channels, layer.in_h,
                layer.in_w, layer.out_h, layer.out_w, layer.kernel, layer.stride, layer.groups,
                layer.weight_bits if layer.has_weights else 0, layer.act_bits, max_w, max_a, layer.macs,
                layer.params, layer.ops, layer.input_elems * layer.act_bits / 8.0,
                layer.output_elems * layer.act_bits / 8.0, layer.weight_bytes, cycles, math.log(hint_ms),
                offchip, math.log(max(offchip, 1.0) / cycles), position / max(len(network) - 1, 1),
            ]  # fmt: skip
            rows.append([float(v) for v in row] + accel_row)
            hints.append(hint_ms)
        return np.array(rows, dtype=float), np.array(hints, dtype=float)

    def transform(
        self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stacked layer rows, their hint latencies (ms) and the index of the network each row belongs to."""
        if len(networks) != len(accels):
            raise CodesignError(f"features: {len(networks)} networks but {len(accels)} accelerator configs")
        if not networks:
            raise CodesignError("features: no networks given")
        parts = [self.rows(net, acc) for net, acc in zip(networks, accels, strict=True)]
        owner = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
        return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), owner

    def to_dict(self) -> dict[str, Any]:
        return self.accel.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerFeaturizer:
        return cls(LatencyFeaturizer.from_dict(data))
