"""Fixed-length numeric features of (network, accelerator) pairs for latency predictors, and the versioned
:class:`FeatureSchema` that a saved predictor checks before it accepts new inputs.

Network features aggregate the layer list: MACs by bit-width bucket and by layer type, parameters, bytes
moved (weights and activations), layer counts and shapes. Accelerator features are the clock and the
template's numeric parameters (tuples such as per-layer PE counts contribute their sum and maximum), plus a
hint of the compute cycles implied by loop tiling (``tm``/``tn``/``tr``/``tc``) or by per-layer folding
(``pe``/``simd``) when the configuration has those parameters. Bytes are bytes, MACs are per input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from simulators.common import LayerArrays
from simulators.folding import Folding
from simulators.tiling import cdiv, layer_tiling_cycles

NETWORK_FEATURES_VERSION = 4
"""Bumped whenever :func:`network_features` or the accelerator hints change meaning; saved predictors refuse
another version. 3: ``tiling_cycles`` is the overlay simulator's compute-cycle formula
(:mod:`simulators.tiling`: groups packed onto the array, tiles clamped to the feature map). 4: the work of
dead layers (:attr:`codesign.core.values.Network.dead`) by layer type, ``dead_*``."""

_BIT_BUCKETS = ((4, "b4"), (8, "b8"), (16, "b16"), (10**9, "b32"))


@dataclass(frozen=True)
class FeatureSchema:
    """The names and order of a feature vector, with a version for the code that computes it."""

    name: str
    version: int
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise CodesignError(f"feature schema {self.name!r}: duplicate feature names")

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        return f"{self.name} v{self.version} ({len(self.names)} features)"

    def check(self, other: FeatureSchema) -> None:
        """Raise :class:`CodesignError` naming both schemas unless ``other`` is this schema."""
        if self == other:
            return
        detail = ""
        if self.name == other.name and self.version == other.version:
            missing = [n for n in self.names if n not in other.names]
            extra = [n for n in other.names if n not in self.names]
            detail = f"; expected features missing: {', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(extra[:5]) or 'none'}"
        raise CodesignError(f"feature schema mismatch: saved {self.describe()}, current {other.describe()}{detail}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        try:
            return cls(str(data["name"]), int(data["version"]), tuple(str(n) for n in data["names"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"feature schema: malformed record ({exc}); expected name, version and names") from exc


def _bucket(layer: Layer) -> str:
    width = max(layer.weight_bits, layer.act_bits)
    for limit, label in _BIT_BUCKETS:
        if width <= limit:
            return label
    return _BIT_BUCKETS[-1][1]


def _kind_feature(layer: Layer) -> str:
    """The :data:`KIND_FEATURE_NAMES` entry a layer's work counts in (concat and upsample layers, which
    only stream data as an add does, count with the adds; no version bump: no saved predictor has seen them)."""
    if layer.kind in ("concat", "upsample"):
        return "ops_add"
    if layer.kind in ("pool", "add"):
        return f"ops_{layer.kind}"
    if layer.kind == "linear":
        return "macs_linear"
    return f"macs_{_kind_key(layer)}"


def _kind_work(layer: Layer) -> float:
    return float(layer.macs if layer.has_weights else layer.ops)


def _kind_key(layer: Layer) -> str:
    if layer.kind == "conv":
        if layer.is_depthwise:
            return "dw"
        if layer.kernel == 1:
            return "k1"
        return "k3" if layer.kernel <= 3 else "k5"
    return layer.kind


KIND_FEATURE_NAMES = ("macs_k1", "macs_k3", "macs_k5", "macs_dw", "macs_linear", "ops_pool", "ops_add")
"""The work of each layer type: MACs of convolutions by kernel (``dw`` depthwise) and of linear layers,
element operations of pool and add layers."""
DEAD_FEATURE_NAMES = tuple(f"dead_{name}" for name in KIND_FEATURE_NAMES)

NETWORK_FEATURE_NAMES: tuple[str, ...] = (
    "macs", "params", "bit_ops", "weight_bytes", "act_bytes", "max_layer_act_bytes", "ops",
    *(f"macs_{label}" for _, label in _BIT_BUCKETS),
    *KIND_FEATURE_NAMES,
    "n_layers", "n_conv", "n_depthwise", "n_pointwise", "n_linear", "n_pool", "n_add",
    "max_channels", "mean_channels", "max_in_pixels", "mean_weight_bits", "mean_act_bits", "n_residuals",
    *DEAD_FEATURE_NAMES,
)  # fmt: skip
"""Every count is over all layers; ``dead_*`` repeats the per-type work (``macs_k1`` .. ``ops_add``) of
the dead layers alone, so a latency model can cost them apart (a runtime may prune them, or run them)."""


def network_features(network: Network) -> dict[str, float]:
    """Aggregates of the layer list, keyed by :data:`NETWORK_FEATURE_NAMES`."""
    out = dict.fromkeys(NETWORK_FEATURE_NAMES, 0.0)
    weighted = network.weighted_layers
    dead = set(network.dead)
    for layer in network.layers:
        act_bytes = (layer.input_elems + layer.output_elems) * layer.act_bits / 8.0
        out["act_bytes"] += act_bytes
        out["max_layer_act_bytes"] = max(out["max_layer_act_bytes"], act_bytes)
        out["ops"] += layer.ops
        out["n_layers"] += 1
        out["max_channels"] = max(out["max_channels"], layer.in_channels, layer.out_channels)
        out["mean_channels"] += (layer.in_channels + layer.out_channels) / 2.0
        out["max_in_pixels"] = max(out["max_in_pixels"], layer.in_h * layer.in_w)
        kind, work = _kind_feature(layer), _kind_work(layer)
        out[kind] += work
        if layer.name in dead:
            out[f"dead_{kind}"] += work
        if layer.kind == "pool":
            out["n_pool"] += 1
        elif layer.kind == "add":
            out["n_add"] += 1
        elif layer.kind == "linear":
            out["n_linear"] += 1
        elif layer.kind == "conv":
            out["n_conv"] += 1
            out["n_depthwise"] += layer.is_depthwise
            out["n_pointwise"] += layer.is_pointwise
        if layer.has_weights:
            out[f"macs_{_bucket(layer)}"] += layer.macs
    out["mean_channels"] /= max(len(network.layers), 1)
    out["macs"] = float(network.macs)
    out["params"] = float(network.params)
    out["bit_ops"] = float(network.bit_ops)
    out["weight_bytes"] = float(network.weight_bytes)
    out["mean_weight_bits"] = float(np.mean([lay.weight_bits for lay in weighted])) if weighted else 0.0
    out["mean_act_bits"] = float(np.mean([lay.act_bits for lay in network.layers]))
    out["n_residuals"] = float(len(network.residuals))
    return out


def _tiling_cycles(network: Network, params: Mapping[str, Any]) -> float:
    """Compute cycles of the weighted layers on a Tm x Tn PE array with Tr x Tc output tiles (Zhang et al.
    FPGA'15 loop tiling): the overlay simulator's formula (:func:`simulators.tiling.layer_tiling_cycles`)
    at the array's own precision."""
    tm, tn = int(params["tm"]), int(params["tn"])
    tr, tc = int(params.get("tr", 1)), int(params.get("tc", 1))
    return float(sum(layer_tiling_cycles(layer, tm, tn, tr, tc) for layer in network.weighted_layers))


def folded_shape(layer: Layer) -> tuple[int, int, int]:
    """(MH, MW, pixels) of a layer as a matrix-vector engine: FINN's folding as the dataflow simulator
    defines it (:class:`simulators.folding.Folding`)."""
    return folded_shapes(Network(layer.name, (layer,)))[0]


def folded_shapes(network: Network) -> list[tuple[int, int, int]]:
    """(MH, MW, pixels) of every layer in order, from :class:`simulators.folding.Folding`."""
    fold = Folding.of(LayerArrays.of(network))
    return list(zip(fold.mh[:, 0].tolist(), fold.mw[:, 0].tolist(), fold.pixels[:, 0].tolist(), strict=True))


def folded_cycles(shape: tuple[int, int, int], pe: int, simd: int) -> int:
    """``ceil(MH/PE) * ceil(MW/SIMD) * pixels``: the dataflow simulator's cycles per frame
    (:mod:`simulators.dataflow`, which takes only divisors of MH and MW), for any ``pe`` and ``simd``."""
    mh, mw, pixels = shape
    return int(cdiv(mh, pe) * cdiv(mw, simd) * pixels)


def _folding_cycles(network: Network, params: Mapping[str, Any]) -> tuple[float, float]:
    """Sum and maximum over layers of ``ceil(MH/PE)*ceil(MW/SIMD)*pixels`` (FINN's folding; one PE and SIMD
    per layer in layer order, or one value for all)."""
    pe, simd = params["pe"], params["simd"]
    n = len(network.layers)
    pe_all = tuple(int(v) for v in pe) if isinstance(pe, tuple) and len(pe) == n else (int(pe[0] if isinstance(pe, tuple) else pe),) * n
    simd_all = tuple(int(v) for v in simd) if isinstance(simd, tuple) and len(simd) == n else (int(simd[0] if isinstance(simd, tuple) else simd),) * n
    cycles = [folded_cycles(shape, p, s) for shape, p, s in zip(folded_shapes(network), pe_all, simd_all, strict=True)]
    return float(sum(cycles)), float(max(cycles, default=0))


HINT_NAMES = ("tiling_cycles", "folding_cycles_sum", "folding_cycles_max")


def accelerator_hints(network: Network, accel: AcceleratorConfig | None) -> dict[str, float]:
    """Template-aware cycle estimates (0 when the configuration lacks the parameters they need)."""
    out = dict.fromkeys(HINT_NAMES, 0.0)
    if accel is None:
        return out
    params = accel.param_dict()
    if "tm" in params and "tn" in params:
        out["tiling_cycles"] = _tiling_cycles(network, params)
    if "pe" in params and "simd" in params:
        out["folding_cycles_sum"], out["folding_cycles_max"] = _folding_cycles(network, params)
    return out


def _param_columns(name: str, value: Any) -> dict[str, float]:
    if isinstance(value, tuple):
        numbers = [float(v) for v in value]
        return {f"accel.{name}.sum": sum(numbers), f"accel.{name}.max": max(numbers, default=0.0)}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {f"accel.{name}": float(value)}
    return {}


@dataclass(frozen=True)
class LatencyFeaturizer:
    """Turns (network, accelerator) pairs into rows of :attr:`schema`.

    ``accel_columns`` are the accelerator columns (``accel.<param>`` or ``accel.<param>.sum``/``.max``)
    found in the training data; build with :meth:`for_configs`. ``templates`` lists the templates and
    ``devices`` the devices seen, each becoming a 0/1 column.
    """

    accel_columns: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    @classmethod
    def for_configs(cls, accels: Sequence[AcceleratorConfig | None]) -> LatencyFeaturizer:
        columns: set[str] = set()
        templates: set[str] = set()
        devices: set[str] = set()
        for accel in accels:
            if accel is None:
                continue
            templates.add(accel.template)
            devices.add(accel.device)
            for name, value in accel.params:
                columns.update(_param_columns(name, value))
        return cls(tuple(sorted(columns)), tuple(sorted(templates)), tuple(sorted(devices)))

    @property
    def schema(self) -> FeatureSchema:
        names = (
            *NETWORK_FEATURE_NAMES, *HINT_NAMES, "accel.clock_mhz", *self.accel_columns,
            *(f"template={t}" for t in self.templates), *(f"device={d}" for d in self.devices),
        )  # fmt: skip
        return FeatureSchema("latency", NETWORK_FEATURES_VERSION, names)

    def row(self, network: Network, accel: AcceleratorConfig | None) -> np.ndarray:
        values = network_features(network) | accelerator_hints(network, accel)
        if accel is not None:
            values["accel.clock_mhz"] = accel.clock_mhz
            for name, value in accel.params:
                values.update(_param_columns(name, value))
            values[f"template={accel.template}"] = 1.0
            values[f"device={accel.device}"] = 1.0
        return np.array([values.get(name, 0.0) for name in self.schema.names], dtype=float)

    def transform(self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None]) -> np.ndarray:
        """A ``(len(networks), len(schema))`` matrix."""
        if len(networks) != len(accels):
            raise CodesignError(f"features: {len(networks)} networks but {len(accels)} accelerator configs")
        return np.stack([self.row(net, acc) for net, acc in zip(networks, accels, strict=True)]) if networks else np.zeros((0, len(self.schema)))

    def to_dict(self) -> dict[str, Any]:
        return {"accel_columns": list(self.accel_columns), "templates": list(self.templates), "devices": list(self.devices)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyFeaturizer:
        return cls(
            tuple(data.get("accel_columns", ())), tuple(data.get("templates", ())), tuple(data.get("devices", ()))
        )
