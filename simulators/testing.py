"""The conformance suite every hardware model runs.

A new model gets the whole suite by subclassing one class in a test module and overriding the ``model``
fixture and two methods::

    from simulators.testing import HardwareModelConformance

    class TestMyModel(HardwareModelConformance):
        @pytest.fixture
        def model(self):
            return MyModel()

        def make_accelerator(self, network, device):
            return AcceleratorConfig.make("mine", device, 200, lanes=64)

        def make_oversized_accelerator(self, network, device):
            return AcceleratorConfig.make("mine", device, 200, lanes=10**6)

Checks: determinism, purity, units and sanity, monotonic sanity in bit-widths, unknown layer kinds raise,
configurations of another template raise, over-budget designs and over-limit clocks are reported as
violations (not raised), the per-layer breakdown sums to the totals, and (when the model has one) the
batch path agrees exactly with ``evaluate``.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Layer, Network
from simulators.base import HardwareModel


def conformance_network(bits: int = 8) -> Network:
    """A small network with every layer kind: conv, depthwise, pointwise, residual add, pooling, linear."""
    layers = (
        Layer("stem", "conv", 3, 16, 16, 16, 3, 1, 1, weight_bits=bits, act_bits=bits),
        Layer("dw", "conv", 16, 16, 16, 16, 3, 1, 1, groups=16, weight_bits=bits, act_bits=bits),
        Layer("pw", "conv", 16, 16, 16, 16, 1, weight_bits=bits, act_bits=bits),
        Layer("add", "add", 16, 16, 16, 16, act_bits=bits),
        Layer("pool", "pool", 16, 16, 16, 16, 2, 2, 0, act_bits=bits, mode="max"),
        Layer("fc", "linear", 16 * 8 * 8, 10, weight_bits=bits, act_bits=bits),
    )
    return Network("conformance", layers, (3, 16, 16), residuals=(("stem", "add"),))


def conv_stack(n_layers: int = 20, *, bits: int = 8) -> Network:
    """A CIFAR-like plain network of ``n_layers`` layers: ``n_layers - 2`` 3x3 convolutions (16/32/64
    channels in three stages, stride 2 between stages), global average pooling and a linear classifier."""
    if n_layers < 3:
        raise CodesignError(f"conv_stack needs at least 3 layers, got {n_layers}")
    layers = []
    channels, size = 3, 32
    convs = n_layers - 2
    for i in range(convs):
        out = 16 * 2 ** min(2, 3 * i // convs)
        stride = 2 if channels not in (3, out) else 1
        layer = Layer(
            f"conv{i}", "conv", channels, out, size, size, 3, stride, 1, weight_bits=bits, act_bits=bits
        )
        layers.append(layer)
        channels, size = out, layer.out_h
    layers.append(Layer("gap", "pool", channels, channels, size, size, size, 1, 0, act_bits=bits, mode="avg"))
    layers.append(Layer("fc", "linear", channels, 10, weight_bits=bits, act_bits=bits))
    return Network(f"stack{n_layers}", tuple(layers), (3, 32, 32))


def _check_report(report: HardwareReport, network: Network) -> None:
    assert math.isfinite(report.latency_ms) and report.latency_ms > 0
    assert math.isfinite(report.throughput_fps) and report.throughput_fps > 0
    assert math.isfinite(report.energy_mj) and report.energy_mj > 0
    # a pipelined design may exceed 1 / latency, nothing may fall below it
    assert report.throughput_fps >= 1e3 / report.latency_ms * (1 - 1e-9)
    for name in RESOURCE_NAMES:
        value = getattr(report.resources, name)
        assert isinstance(value, int) and value >= 0, f"{name} = {value!r}"
    assert [c.name for c in report.per_layer] == [layer.name for layer in network.layers]


class HardwareModelConformance:
    """Subclass in a test module; override ``model``, :meth:`make_accelerator` and
    :meth:`make_oversized_accelerator`. Override ``device`` to test on another device."""

    @pytest.fixture
    def model(self) -> HardwareModel:
        raise NotImplementedError("override the model fixture")

    @pytest.fixture
    def device(self) -> str:
        return "xczu3eg"

    @pytest.fixture
    def network(self) -> Network:
        return conformance_network()

    def make_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        """A configuration of the model's template for ``network`` that fits ``device``."""
        raise NotImplementedError

    def make_oversized_accelerator(self, network: Network, device: str) -> AcceleratorConfig:
        """A configuration that exceeds at least one of ``device``'s usable budgets."""
        raise NotImplementedError

    def test_is_a_hardware_model(self, model: HardwareModel) -> None:
        assert isinstance(model, HardwareModel)
        assert isinstance(model.name, str) and model.name

    def test_deterministic(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        first = model.evaluate(network, accel)
        assert model.evaluate(network, accel) == first
        assert type(model)().evaluate(network, accel) == first

    def test_pure(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        network_before, accel_before = copy.deepcopy(network), copy.deepcopy(accel)
        state_before = copy.deepcopy(vars(model))
        model.evaluate(network, accel)
        assert network == network_before and accel == accel_before
        assert vars(model).keys() == state_before.keys()
        for key, value in state_before.items():
            assert vars(model)[key] == value, f"evaluate changed model attribute {key!r}"

    def test_units_and_sanity(self, model: HardwareModel, network: Network, device: str) -> None:
        report = model.evaluate(network, self.make_accelerator(network, device))
        _check_report(report, network)
        assert report.feasible, report.violations
        assert all(getattr(report.device_resources, n) >= 0 for n in RESOURCE_NAMES)
        assert report.device_resources.lut > 0

    def test_per_layer_sums_to_totals(self, model: HardwareModel, network: Network, device: str) -> None:
        report = model.evaluate(network, self.make_accelerator(network, device))
        assert math.isclose(sum(c.latency_ms for c in report.per_layer), report.latency_ms, rel_tol=1e-9)
        assert math.isclose(sum(c.energy_mj for c in report.per_layer), report.energy_mj, rel_tol=1e-9)
        assert all(c.latency_ms > 0 for c in report.per_layer), "no layer may be free"

    @pytest.mark.parametrize("low", [4, 2])
    def test_fewer_bits_never_cost_more(
        self, model: HardwareModel, network: Network, device: str, low: int
    ) -> None:
        accel = self.make_accelerator(network, device)
        base = model.evaluate(network, accel)
        lowered = [network.with_bits({layer.name: low for layer in network.weighted_layers})]
        for layer in network.weighted_layers:
            lowered.append(network.with_bits({layer.name: low}, {layer.name: low}))
        for variant in lowered:
            report = model.evaluate(variant, accel)
            assert report.dsp <= base.dsp
            assert report.bram18 <= base.bram18
            assert report.uram <= base.uram
            assert sum(c.offchip_bytes for c in report.per_layer) <= sum(
                c.offchip_bytes for c in base.per_layer
            )

    def test_unknown_layer_kind_raises(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        odd = copy.copy(network.layers[-1])
        object.__setattr__(odd, "kind", "lstm")  # bypass Layer's own validation, as a plugin might
        broken = dataclasses.replace(network, layers=(*network.layers[:-1], odd))
        with pytest.raises(CodesignError, match="lstm"):
            model.evaluate(broken, accel)

    def test_other_template_raises(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        other = dataclasses.replace(accel, template=accel.template + "_other")
        with pytest.raises(CodesignError):
            model.evaluate(network, other)

    def test_over_budget_is_reported(self, model: HardwareModel, network: Network, device: str) -> None:
        report = model.evaluate(network, self.make_oversized_accelerator(network, device))
        _check_report(report, network)
        assert not report.feasible
        assert all(v.split(":")[0] in RESOURCE_NAMES + ("clock_mhz",) for v in report.violations)

    def test_over_limit_clock_is_reported(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = dataclasses.replace(self.make_accelerator(network, device), clock_mhz=100_000.0)
        report = model.evaluate(network, accel)
        assert any(v.startswith("clock_mhz") for v in report.violations)

    def test_batch_agrees_with_evaluate(self, model: HardwareModel, network: Network, device: str) -> None:
        batch = getattr(model, "evaluate_batch", None)
        if batch is None:
            pytest.skip("the model has no batch path")
        configs = [self.make_accelerator(network, device), self.make_oversized_accelerator(network, device)]
        totals = batch(network, configs)
        for j, accel in enumerate(configs):
            report = model.evaluate(network, accel)
            assert totals["latency_ms"][j] == report.latency_ms
            assert totals["throughput_fps"][j] == report.throughput_fps
            assert totals["energy_mj"][j] == report.energy_mj
            assert bool(totals["feasible"][j]) == report.feasible
            for name in RESOURCE_NAMES:
                assert int(totals[name][j]) == getattr(report.resources, name)
        assert all(isinstance(v, np.ndarray) and len(v) == len(configs) for v in totals.values())
