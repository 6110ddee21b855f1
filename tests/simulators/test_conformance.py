"""The shipped conformance suite, run on the built-in templates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, HardwareReport, Network
from simulators.base import HardwareModel
from simulators.dataflow import DataflowModel
from simulators.devices import DeviceCatalog
from simulators.folding import DataflowSpace
from simulators.overlay import OverlayModel
from simulators.pipeline import PipelineModel
from simulators.testing import HardwareModelConformance, conformance_network


class TestOverlayConformance(HardwareModelConformance):
    @pytest.fixture
    def model(self) -> OverlayModel:
        return OverlayModel()

    def make_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        return AcceleratorConfig.make("overlay", device, 200, tm=16, tn=8, tr=8, tc=8)

    def make_oversized_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        return AcceleratorConfig.make("overlay", device, 200, tm=128, tn=64, tr=32, tc=32)


class TestDataflowConformance(HardwareModelConformance):
    template = "dataflow"

    @pytest.fixture
    def model(self) -> DataflowModel:
        return DataflowModel()

    def _uniform(self, network: Network, device: str, lanes: int) -> AcceleratorConfig:
        """The largest folding with pe and simd at most ``lanes`` per layer."""
        choices = DataflowSpace(
            device=device, clocks_mhz=(200.0,), max_pe=lanes, max_simd=lanes
        ).layer_choices(network)
        pe = tuple(max(p for p, _ in c) for c in choices)
        simd = tuple(max(s for _, s in c) for c in choices)
        return AcceleratorConfig.make(self.template, device, 200, pe=pe, simd=simd)

    def make_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        return self._uniform(network, device, 4)

    def make_oversized_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        return self._uniform(network, device, 64)


class TestPipelineConformance(TestDataflowConformance):
    template = "pipeline"

    @pytest.fixture
    def model(self) -> PipelineModel:  # type: ignore[override]
        return PipelineModel()


class _CountingModel(OverlayModel):
    """Breaks purity: remembers how often it was called."""

    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        self.calls = getattr(self, "calls", 0) + 1
        return super().evaluate(network, accel)


class _NoViolationsModel(OverlayModel):
    """Breaks infeasibility reporting: drops every violation."""

    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        return dataclasses.replace(super().evaluate(network, accel), violations=())


class _EvaluateOnly:
    """What the README once documented: a name and ``evaluate``, no ``best_accelerator``."""

    name = "evaluate_only"

    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        return OverlayModel().evaluate(network, accel)


class _SlowBestModel(OverlayModel):
    """Breaks best_accelerator: returns the smallest design, not the fastest."""

    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig, HardwareReport]:
        accel = AcceleratorConfig.make("overlay", device, 200, tm=4, tn=2, tr=4, tc=4)
        return accel, self.evaluate(network, accel)


class _IgnoresCatalogModel(OverlayModel):
    """Breaks device files: always looks devices up in the built-in catalog."""

    def __init__(self, *, catalog: DeviceCatalog | None = None) -> None:
        super().__init__(catalog=None)


class _StatefulHelper:
    """A helper object without value equality (compared field by field by the suite)."""

    def __init__(self) -> None:
        self.weights = np.linspace(0.0, 1.0, 5)


class _ArrayHoldingModel(OverlayModel):
    """Pure, but holds a numpy array and a helper object: the purity check must not crash on them."""

    def __init__(self, *, catalog: DeviceCatalog | None = None) -> None:
        super().__init__(catalog=catalog)
        self.table = np.arange(6.0).reshape(2, 3)
        self.helper = _StatefulHelper()


class _ArrayMutatingModel(_ArrayHoldingModel):
    def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
        self.helper.weights[0] += 1.0
        return super().evaluate(network, accel)


def test_suite_catches_broken_models() -> None:
    suite = TestOverlayConformance()
    network = conformance_network()
    with pytest.raises(AssertionError):
        suite.test_pure(_CountingModel(), network, "xczu3eg")
    with pytest.raises(AssertionError):
        suite.test_over_budget_is_reported(_NoViolationsModel(), network, "xczu3eg")
    with pytest.raises(AssertionError, match="subclass"):
        suite.test_is_a_hardware_model(_EvaluateOnly())  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="slower"):
        suite.test_best_accelerator(_SlowBestModel(), network, "xczu3eg")
    with pytest.raises(CodesignError, match="conformance_copy"):
        suite.test_catalog_reaches_the_model(_IgnoresCatalogModel(), network, "xczu3eg")
    with pytest.raises(AssertionError, match="helper"):
        suite.test_pure(_ArrayMutatingModel(), network, "xczu3eg")
    suite.test_pure(OverlayModel(), network, "xczu3eg")
    suite.test_pure(_ArrayHoldingModel(), network, "xczu3eg")


def test_a_model_without_best_accelerator_cannot_be_built() -> None:
    class Half(HardwareModel):
        name = "half"

        def evaluate(self, network: Network, accel: AcceleratorConfig) -> HardwareReport:
            return OverlayModel().evaluate(network, accel)

    with pytest.raises(TypeError, match="best_accelerator"):
        Half()  # type: ignore[abstract]
