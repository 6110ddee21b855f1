"""Search problems: what a trial proposes and how a candidate is evaluated.

:class:`CodesignProblem` couples an architecture space, per-layer bit-widths, a hardware model on one
device and a source of real accuracy. :class:`TableProblem` is a tabular benchmark (NAS-Bench-201) where
every number is a table look-up. Both are built from an experiment by :mod:`codesign.search.build`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from codesign.core.errors import InfeasibleError
from codesign.core.values import (
    RESOURCE_NAMES,
    AcceleratorConfig,
    Candidate,
    Evaluation,
    Fidelity,
    HardwareReport,
    Network,
    layer_records,
)
from search_spaces.base import ArchitectureSpace
from search_spaces.bitwidth import BitWidthSpace
from simulators.base import HardwareModel

ARCH_PREFIX = "arch."
BITS_PREFIX = "bits."


class AccuracyMeasurement(Protocol):
    fp32_acc: float
    quant_acc: float


class AccuracySource(Protocol):
    """Real accuracy of an architecture in full precision and at given per-layer bits (fractions, 0..1)."""

    def measure(self, arch: Any, weight_bits: Sequence[int], act_bits: Sequence[int], *, split: str = "val") -> AccuracyMeasurement: ...


class Decisions(Protocol):
    """What proposes values: an Optuna trial or anything with the same ``suggest_categorical``."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def suggest_arch(space: ArchitectureSpace, trial: Decisions) -> Any:
    values = {k: trial.suggest_categorical(ARCH_PREFIX + k, list(v)) for k, v in space.choices().items()}
    return space.from_choices(values)


HARDWARE_METRICS = (
    "latency_ms",
    "throughput_fps",
    "energy_mj",
    *RESOURCE_NAMES,
    *(f"{n.removesuffix('18')}_fraction" for n in RESOURCE_NAMES),
)
NETWORK_METRICS = ("model_size_mb", "bit_ops", "macs", "params")


def network_metrics(network: Network) -> dict[str, float]:
    return {
        "model_size_mb": network.model_size_mb,
        "bit_ops": float(network.bit_ops),
        "macs": float(network.macs),
        "params": float(network.params),
    }


@dataclass(frozen=True)
class CodesignProblem:
    """Architecture x per-layer bits x accelerator on one device.

    ``accelerator`` decides how a candidate's accelerator is chosen: ``"best"`` asks the hardware model for
    the latency-optimal feasible configuration (exact), which is HAO's inner problem.
    """

    space: ArchitectureSpace
    bits: BitWidthSpace
    hardware: HardwareModel
    device: str
    clock_mhz: float | None
    accuracy: AccuracySource

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy", "fp32_accuracy", *HARDWARE_METRICS, *NETWORK_METRICS)

    def suggest(self, trial: Decisions) -> tuple[Any, Candidate]:
        """Architecture and bits from the trial's decisions; the accelerator is left to :meth:`complete`."""
        arch = suggest_arch(self.space, trial)
        plain = self.space.network(arch)
        values = {k: trial.suggest_categorical(BITS_PREFIX + k, v) for k, v in self.bits.choices(plain).items()}
        weight_bits, act_bits = self.bits.expand(values, plain)
        return arch, Candidate(self.space.name, self.space.arch_id(arch), weight_bits, act_bits)

    def network(self, candidate: Candidate) -> Network:
        arch = self.space.from_id(candidate.arch_id)
        return self.space.network(arch, candidate.weight_bits, candidate.act_bits)

    def choose_accelerator(self, network: Network) -> tuple[AcceleratorConfig | None, HardwareReport | None, str]:
        """The latency-optimal feasible accelerator, or ``(None, None, why)`` when nothing fits. A model
        without accelerator choices (a measured board) reports on its own fixed design: ``(None, report, "")``."""
        try:
            accel, report = self.hardware.best_accelerator(network, self.device, self.clock_mhz)
        except InfeasibleError as exc:
            return None, None, str(exc)
        return accel, report, ""

    def evaluate(self, candidate: Candidate, *, split: str = "val") -> Evaluation:
        """Measure accuracy for real and simulate the hardware; infeasible designs get infinite costs and a
        violation, so they are kept (and never on a front)."""
        arch = self.space.from_id(candidate.arch_id)
        network = self.space.network(arch, candidate.weight_bits, candidate.act_bits)
        if candidate.accelerator is None:
            accel, report, why = self.choose_accelerator(network)
            candidate = Candidate(candidate.space, candidate.arch_id, candidate.weight_bits, candidate.act_bits, accel)
        else:
            report, why = self.hardware.evaluate(network, candidate.accelerator), ""
        metrics: dict[str, float] = {}
        fidelity: dict[str, Fidelity] = {}
        if report is not None:
            metrics.update(report.metrics())
            violations = report.violations
        else:
            metrics.update({m: math.inf for m in HARDWARE_METRICS})
            violations = (why,)
        fidelity.update(dict.fromkeys(HARDWARE_METRICS, Fidelity(self.hardware.fidelity)))
        metrics.update(network_metrics(network))
        fidelity.update({m: Fidelity.EXACT for m in NETWORK_METRICS})
        measured = self.accuracy.measure(arch, candidate.weight_bits, candidate.act_bits, split=split)
        metrics["accuracy"] = float(measured.quant_acc)
        metrics["fp32_accuracy"] = float(measured.fp32_acc)
        fidelity["accuracy"] = fidelity["fp32_accuracy"] = Fidelity.MEASURED
        notes = report.notes if report is not None else ()
        layers = layer_records(network, report) if report is not None else ()
        return Evaluation(candidate, metrics, fidelity, tuple(violations), notes, layers)


class Table(Protocol):
    """A tabular benchmark: every metric of every architecture is known."""

    def lookup(self, arch_id: str) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class TableProblem:
    """Architectures only, every number looked up in a table (``accuracy`` is the ``accuracy_column``)."""

    space: ArchitectureSpace
    table: Table
    accuracy_column: str
    columns: tuple[str, ...]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy", *self.columns)

    def suggest(self, trial: Decisions) -> tuple[Any, Candidate]:
        arch = suggest_arch(self.space, trial)
        return arch, Candidate(self.space.name, self.space.arch_id(arch))

    def evaluate(self, candidate: Candidate, *, split: str = "val") -> Evaluation:
        row = self.table.lookup(self.space.arch_id(self.space.from_id(candidate.arch_id)))
        metrics = {c: float(row[c]) for c in self.columns}
        metrics["accuracy"] = float(row[self.accuracy_column])
        return Evaluation(candidate, metrics, dict.fromkeys(metrics, Fidelity.TABLE))


Problem = CodesignProblem | TableProblem


def objective_values(evaluation: Evaluation, names: Sequence[str]) -> list[float]:
    return [float(evaluation.metrics[n]) for n in names]

