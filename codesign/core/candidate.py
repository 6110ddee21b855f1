"""Search points and what is known about them: a candidate (architecture, per-layer bits, accelerator), its
evaluation with its per-layer breakdown, and the fidelity that says where each number came from.

Every value is frozen and safe to share. Re-exported by :mod:`codesign.core.values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from codesign.core.errors import CodesignError
from codesign.core.hardware import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Resources
from codesign.core.network import Layer, Network


class Fidelity(StrEnum):
    """Where a number came from."""

    PREDICTED = "predicted"
    EXACT = "exact"  # counted from the network itself (MACs, parameters, model size)
    SIMULATED = "simulated"
    TABLE = "table"
    MEASURED = "measured"


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

    def bits_summary(self) -> str:
        """Layers per (weight, activation) bit pair, e.g. ``w4a4:10 w8a4:5``."""
        counts: dict[tuple[int, int], int] = {}
        for w, a in zip(self.weight_bits, self.act_bits, strict=False):
            counts[(w, a)] = counts.get((w, a), 0) + 1
        return " ".join(f"w{w}a{a}:{n}" for (w, a), n in sorted(counts.items()))

    def accelerator_summary(self) -> str:
        """``overlay tm=64 tn=8 tr=4 tc=4 @200MHz`` (per-layer tuples shown by their length)."""
        accel = self.accelerator
        if accel is None:
            return ""
        params = " ".join(f"{k}={'[' + str(len(v)) + ']' if isinstance(v, tuple) else v}" for k, v in accel.params)
        return f"{accel.template} {params} @{accel.clock_mhz:g}MHz"

    def summary(self) -> str:
        """One readable line: architecture, bits and accelerator (what a trial's ``codesign.summary`` holds)."""
        parts = [f"{self.space} {self.arch_id}", self.bits_summary(), self.accelerator_summary()]
        return " | ".join(p for p in parts if p)

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
class LayerRecord:
    """One layer of an evaluated pair: its shape, its bits and what the hardware model says it costs.

    ``weight_bits`` is 0 for a layer without weights. ``bound`` is ``"compute"`` or ``"memory"`` (which
    side of the roofline the layer sits on); ``resources`` is the layer's own share (empty for a shared
    array whose resources belong to the design as a whole)."""

    name: str
    kind: str
    shape: str
    """``CxHxW -> CxHxW`` plus the kernel, stride and groups of a conv (``k3 s2 g16``)."""
    weight_bits: int
    act_bits: int
    macs: int
    cycles: int
    latency_ms: float
    energy_mj: float
    offchip_bytes: float
    bound: str
    resources: Resources

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "shape": self.shape,
            "weight_bits": self.weight_bits,
            "act_bits": self.act_bits,
            "macs": self.macs,
            "cycles": self.cycles,
            "latency_ms": self.latency_ms,
            "energy_mj": self.energy_mj,
            "offchip_bytes": self.offchip_bytes,
            "bound": self.bound,
        }
        out.update(self.resources.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerRecord:
        try:
            return cls(
                name=str(data["name"]),
                kind=str(data["kind"]),
                shape=str(data.get("shape", "")),
                weight_bits=int(data["weight_bits"]),
                act_bits=int(data["act_bits"]),
                macs=int(data["macs"]),
                cycles=int(data["cycles"]),
                latency_ms=float(data["latency_ms"]),
                energy_mj=float(data["energy_mj"]),
                offchip_bytes=float(data["offchip_bytes"]),
                bound=str(data["bound"]),
                resources=Resources(**{n: int(data.get(n, 0)) for n in RESOURCE_NAMES}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"per-layer record {dict(data)!r} is malformed: {exc}") from None


def _shape(layer: Layer) -> str:
    text = f"{layer.in_channels}x{layer.in_h}x{layer.in_w} -> {layer.out_channels}x{layer.out_h}x{layer.out_w}"
    if layer.kind == "conv":
        text += f" k{layer.kernel} s{layer.stride}" + (f" g{layer.groups}" if layer.groups > 1 else "")
    return text


def layer_records(network: Network, report: HardwareReport) -> tuple[LayerRecord, ...]:
    """The report's per-layer costs beside each layer's shape and bits (empty when the hardware model
    reports no per-layer breakdown, e.g. a board measured as a whole). A breakdown that names other layers
    than the network's is an error: it would pin costs on the wrong layers."""
    if not report.per_layer:
        return ()
    layers = {layer.name: layer for layer in network.layers}
    unknown = [c.name for c in report.per_layer if c.name not in layers]
    if unknown:
        raise CodesignError(f"hardware report names layers the network {network.name!r} lacks: {', '.join(unknown[:5])}")
    out = []
    for cost in report.per_layer:
        layer = layers[cost.name]
        out.append(
            LayerRecord(
                name=cost.name,
                kind=layer.kind,
                shape=_shape(layer),
                weight_bits=layer.weight_bits if layer.has_weights else 0,
                act_bits=layer.act_bits,
                macs=layer.macs,
                cycles=int(cost.cycles),
                latency_ms=float(cost.latency_ms),
                energy_mj=float(cost.energy_mj),
                offchip_bytes=float(cost.offchip_bytes),
                bound=cost.bound,
                resources=cost.resources,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Evaluation:
    """The numbers known about a candidate and where each came from."""

    candidate: Candidate
    metrics: Mapping[str, float]
    fidelity: Mapping[str, Fidelity]
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """What a user must know about how the numbers were obtained: every fallback or unproven step (e.g.
    the joint program fell back to bit allocation alone). Shown in the trial record and the front table."""
    layers: tuple[LayerRecord, ...] = ()
    """The per-layer breakdown of the hardware numbers (empty where the model gives none)."""

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
            "notes": list(self.notes),
            "layers": [layer.to_dict() for layer in self.layers],
        }
