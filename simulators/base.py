"""The hardware-model contract: everything the search asks of a hardware model, in one base class.

A hardware model turns a (network, accelerator configuration) pair into a :class:`HardwareReport`, and
finds the latency-optimal accelerator for a network on a device (HAO's inner problem). Third-party models
subclass :class:`HardwareModel`, register in the ``codesign.hardware_models`` entry-point group and check
themselves by subclassing :class:`simulators.testing.HardwareModelConformance`.

Required: ``name``, :meth:`HardwareModel.evaluate` and :meth:`HardwareModel.best_accelerator` (a model
of one fixed design, such as a measured board, returns that design). Optional capabilities, each with a
documented default that is correct for any model:

- :meth:`HardwareModel.evaluate_batch` (default: :meth:`evaluate` per configuration) — override with a
  vectorised path when many configurations of one network are costed at once;
- ``resource_combine`` (default ``"sum"``) — how per-layer resources add up into a design;
- ``fidelity`` (default :attr:`Fidelity.SIMULATED`) — how the search labels the model's numbers.

The model is built with keyword-only options and always receives ``catalog``: the device catalog of the
experiment, with the user's device files (``hardware.device_files``) included.

Rules every model keeps:
- ``evaluate`` is pure: no I/O, no mutation of its arguments or of the model, same answer every call;
- an unknown layer kind is an error (:class:`codesign.core.errors.CodesignError`), never a zero cost;
- a design that does not fit the device is reported with ``violations``, not dropped and not raised;
  each violation reads ``"<what>: <detail>"`` where ``<what>`` is a resource name (``lut``, ``ff``,
  ``bram18``, ``uram``, ``dsp``) or ``clock_mhz``, e.g. ``"dsp: 512 > 288"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol

import numpy as np

from codesign.core.values import RESOURCE_NAMES, AcceleratorConfig, Fidelity, HardwareReport, Network
from simulators.devices import DeviceCatalog, default_catalog

ResourceCombine = Literal["sum", "max"]
VIOLATION_SUBJECTS = (*RESOURCE_NAMES, "lutram", "clock_mhz")
"""What a violation message may start with (before its colon); ``lutram``: the distributed RAM of a design
exceeds the device's SLICEM LUTs."""


class HardwareModel(ABC):
    """What the search needs from hardware."""

    name: str = ""
    """The registered name (also the template name of the configurations it reads)."""
    fidelity: ClassVar[Fidelity] = Fidelity.SIMULATED
    """How the search labels this model's numbers (``predicted`` for a learned model)."""
    resource_combine: ClassVar[ResourceCombine] = "sum"
    """How per-layer resources combine into a design: ``"sum"`` (one engine per layer) or ``"max"`` (one
    shared array sized by its widest layer). Used by the per-layer resource budgets of bit allocation."""

    def __init__(self, *, catalog: DeviceCatalog | None = None) -> None:
        self.catalog = default_catalog() if catalog is None else catalog

    @abstractmethod
    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        """Latency, throughput, energy and resources of ``network`` on ``accel``."""

    @abstractmethod
    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig | None, HardwareReport]:
        """The latency-optimal feasible configuration for ``network`` on ``device`` (at ``clock_mhz``, the
        device's default clock when None) and its report. Raises :class:`codesign.core.errors.InfeasibleError`
        naming the tightest resource when nothing fits. A model of one fixed design (a measured board with
        nothing to configure) returns ``(None, report)``. Called by the search for every candidate."""

    def evaluate_batch(self, network: Network, configs: Sequence[AcceleratorConfig]) -> dict[str, np.ndarray]:
        """The totals of :meth:`evaluate` for many configurations at once: arrays of length N under
        ``latency_ms``, ``throughput_fps``, ``energy_mj``, the resource names and ``feasible``. Must agree
        exactly with :meth:`evaluate`; the default calls it once per configuration."""
        reports = [self.evaluate(network, c) for c in configs]
        out = {
            "latency_ms": np.array([r.latency_ms for r in reports], dtype=np.float64),
            "throughput_fps": np.array([r.throughput_fps for r in reports], dtype=np.float64),
            "energy_mj": np.array([r.energy_mj for r in reports], dtype=np.float64),
        }
        for name in RESOURCE_NAMES:
            out[name] = np.array([getattr(r.resources, name) for r in reports], dtype=np.int64)
        out["feasible"] = np.array([r.feasible for r in reports], dtype=bool)
        return out


class AcceleratorSpace(Protocol):
    """The accelerator configurations a template can take on one device, for one network."""

    def configs(self, network: Network) -> Sequence[AcceleratorConfig]:
        """Every configuration worth considering (finite, deterministic order)."""
        ...

    def sample(self, network: Network, rng: np.random.Generator) -> AcceleratorConfig: ...
