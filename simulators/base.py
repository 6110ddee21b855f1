"""The hardware-model contract.

A hardware model turns a (network, accelerator configuration) pair into a :class:`HardwareReport`.
It is a plain class with a ``name`` and an ``evaluate`` method; third-party models are registered through
the ``codesign.hardware_models`` entry-point group and checked by subclassing
:class:`simulators.testing.HardwareModelConformance`.

Rules every model keeps:
- ``evaluate`` is pure: no I/O, no mutation of its arguments or of the model, same answer every call;
- an unknown layer kind is an error (:class:`codesign.core.errors.CodesignError`), never a zero cost;
- a design that does not fit the device is reported with ``violations``, not dropped and not raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from codesign.core.values import AcceleratorConfig, HardwareReport, Network


@runtime_checkable
class HardwareModel(Protocol):
    """What the search needs from hardware."""

    name: str

    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        """Latency, throughput, energy and resources of ``network`` on ``accel``."""
        ...


class AcceleratorSpace(Protocol):
    """The accelerator configurations a template can take on one device, for one network."""

    def configs(self, network: Network) -> Sequence[AcceleratorConfig]:
        """Every configuration worth considering (finite, deterministic order)."""
        ...

    def sample(self, network: Network, rng: np.random.Generator) -> AcceleratorConfig: ...


class OptimizableHardwareModel(HardwareModel, Protocol):
    """A model that can also pick its own best accelerator (HAO's inner problem)."""

    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig, HardwareReport]:
        """The latency-optimal feasible configuration for ``network`` on ``device``; raises
        :class:`codesign.core.errors.InfeasibleError` naming the tightest resource when none fits."""
        ...
