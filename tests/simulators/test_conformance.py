"""The shipped conformance suite, run on the built-in templates."""

from __future__ import annotations

import dataclasses

import pytest

from codesign.core.values import AcceleratorConfig, HardwareReport, Network
from simulators.dataflow import DataflowModel
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


def test_suite_catches_broken_models() -> None:
    suite = TestOverlayConformance()
    network = conformance_network()
    with pytest.raises(AssertionError):
        suite.test_pure(_CountingModel(), network, "xczu3eg")
    with pytest.raises(AssertionError):
        suite.test_over_budget_is_reported(_NoViolationsModel(), network, "xczu3eg")
    suite.test_pure(OverlayModel(), network, "xczu3eg")
