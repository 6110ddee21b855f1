"""Search points and what is known about them: a candidate (architecture, per-layer bits, accelerator), its
evaluation, and the fidelity that says where each number came from.

Every value is frozen and safe to share. Re-exported by :mod:`codesign.core.values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from codesign.core.errors import CodesignError
from codesign.core.hardware import AcceleratorConfig


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
    notes: tuple[str, ...] = ()
    """What a user must know about how the numbers were obtained: every fallback or unproven step (e.g.
    the joint program fell back to bit allocation alone). Shown in the trial record and the front table."""

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
        }
