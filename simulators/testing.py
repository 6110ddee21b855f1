"""The conformance suite every hardware model runs.

A new model gets the whole suite by subclassing one class in a test module and overriding the ``model``
fixture and two methods (and :meth:`HardwareModelConformance.build` when its constructor needs more than
``catalog``)::

    from simulators.testing import HardwareModelConformance

    class TestMyModel(HardwareModelConformance):
        @pytest.fixture
        def model(self):
            return MyModel()

        def make_accelerator(self, network, device):
            return AcceleratorConfig.make("mine", device, 200, lanes=64)

        def make_oversized_accelerator(self, network, device):
            return AcceleratorConfig.make("mine", device, 200, lanes=10**6)

Checks what the search uses: the contract's declared capabilities, determinism, purity, units and
sanity, monotonic sanity in bit-widths, unknown layer kinds raise, every known layer kind is costed
(:func:`every_kind_network`), configurations of another template raise, over-budget designs and
over-limit clocks are reported as violations in the documented format (not raised), the per-layer breakdown sums to the totals, the batch path agrees exactly with
``evaluate``, ``best_accelerator`` returns a feasible design no slower than a known feasible one and
raises :class:`InfeasibleError` on a device nothing fits, and devices from the experiment's catalog
(the user's device files) reach the model.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import (
    LAYER_KINDS,
    RESOURCE_NAMES,
    AcceleratorConfig,
    Fidelity,
    HardwareReport,
    Layer,
    Network,
    Resources,
)
from simulators.base import VIOLATION_SUBJECTS, HardwareModel
from simulators.devices import DeviceCatalog, default_catalog


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


def every_kind_network(bits: int = 8) -> Network:
    """A small network with a layer of every kind in :data:`~codesign.core.values.LAYER_KINDS`, plus a
    dilated conv, a max and an average pool, a nearest and a bilinear upsample: a branch joined by a
    concat and a residual add (a U-Net-like skip)."""
    w, a = bits, bits
    layers = (
        Layer("stem", "conv", 3, 8, 16, 16, 3, 1, 1, weight_bits=w, act_bits=a),
        Layer("dilated", "conv", 8, 8, 16, 16, 3, 1, 2, weight_bits=w, act_bits=a, dilation=2),
        Layer("cat", "concat", 16, 16, 16, 16, act_bits=a),  # stem and dilated joined: 16 x 16 x 16
        Layer("down", "pool", 16, 16, 16, 16, 2, 2, 0, act_bits=a, mode="max"),
        Layer("up", "upsample", 16, 16, 8, 8, 1, 2, act_bits=a, mode="nearest"),
        Layer("skip", "add", 16, 16, 16, 16, act_bits=a),  # up + cat
        Layer("down2", "pool", 16, 16, 16, 16, 2, 2, 0, act_bits=a, mode="avg"),
        Layer("up2", "upsample", 16, 16, 8, 8, 2, 2, act_bits=a, mode="bilinear"),
        Layer("gap", "pool", 16, 16, 16, 16, 16, 16, 0, act_bits=a, mode="avg"),
        Layer("fc", "linear", 16, 10, weight_bits=w, act_bits=a),
    )
    return Network("every_kind", layers, (3, 16, 16), residuals=(("stem", "cat"), ("cat", "skip")))


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


def same_state(before: Any, after: Any, *, _depth: int = 0) -> bool:
    """Whether two snapshots of a model's state hold the same values: numpy arrays by content, mappings,
    sequences and plain objects (without their own ``__eq__``) field by field, anything else by ``==``."""
    if _depth > 20:
        return True
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        return (
            isinstance(before, np.ndarray)
            and isinstance(after, np.ndarray)
            and before.shape == after.shape
            and before.dtype == after.dtype
            and bool(np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
        )
    if type(before) is not type(after):
        return False
    if isinstance(before, Mapping):
        return before.keys() == after.keys() and all(same_state(before[k], after[k], _depth=_depth + 1) for k in before)
    if isinstance(before, list | tuple):
        return len(before) == len(after) and all(
            same_state(b, a, _depth=_depth + 1) for b, a in zip(before, after, strict=True)
        )
    if type(before).__eq__ is object.__eq__ and hasattr(before, "__dict__"):
        return same_state(vars(before), vars(after), _depth=_depth + 1)
    try:
        return bool(before == after)
    except (TypeError, ValueError):  # an __eq__ that returns an array or refuses
        return repr(before) == repr(after)


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

    def build(self, model: HardwareModel, catalog: DeviceCatalog) -> HardwareModel:
        """A new model like ``model`` on ``catalog`` (how the search builds it: ``catalog=`` keyword)."""
        return type(model)(catalog=catalog)

    def test_is_a_hardware_model(self, model: HardwareModel) -> None:
        assert isinstance(model, HardwareModel), "subclass simulators.base.HardwareModel"
        assert isinstance(model.name, str) and model.name
        assert model.resource_combine in ("sum", "max")
        assert isinstance(model.fidelity, Fidelity)
        assert isinstance(model.catalog, DeviceCatalog)

    def test_deterministic(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        first = model.evaluate(network, accel)
        assert model.evaluate(network, accel) == first
        assert self.build(model, model.catalog).evaluate(network, accel) == first

    def test_pure(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        network_before, accel_before = copy.deepcopy(network), copy.deepcopy(accel)
        state_before = copy.deepcopy(vars(model))
        model.evaluate(network, accel)
        model.best_accelerator(network, device)
        assert network == network_before and accel == accel_before
        assert vars(model).keys() == state_before.keys(), "evaluate added or removed model attributes"
        for key, value in state_before.items():
            assert same_state(value, vars(model)[key]), f"evaluate changed model attribute {key!r}"

    def test_best_accelerator(self, model: HardwareModel, network: Network, device: str) -> None:
        accel, report = model.best_accelerator(network, device)
        _check_report(report, network)
        assert report.feasible, report.violations
        if accel is None:  # one fixed design: nothing to configure
            return
        assert accel.device == device
        # notes (e.g. "not proven optimal") describe how the design was found, not its costs
        assert dataclasses.replace(model.evaluate(network, accel), notes=()) == dataclasses.replace(report, notes=())
        known = model.evaluate(network, self.make_accelerator(network, device))
        assert report.latency_ms <= known.latency_ms * (1 + 1e-9), "slower than a known feasible design"

    def test_nothing_fits_raises(self, model: HardwareModel, network: Network, device: str) -> None:
        base = model.catalog.get(device)
        tiny = dataclasses.replace(
            base, name="conformance_tiny", resources=Resources(lut=64, ff=64, bram18=0, uram=0, dsp=0)
        )
        built = self.build(model, DeviceCatalog(devices=(*model.catalog.devices, tiny)))
        with pytest.raises(InfeasibleError):
            built.best_accelerator(network, "conformance_tiny")

    def test_catalog_reaches_the_model(self, model: HardwareModel, network: Network, device: str) -> None:
        """A device that only the experiment's catalog holds (a user's device file) is usable."""
        copy_of = dataclasses.replace(default_catalog().get(device), name="conformance_copy")
        built = self.build(model, DeviceCatalog(devices=(*default_catalog().devices, copy_of)))
        accel = self.make_accelerator(network, device)
        on_copy = built.evaluate(network, dataclasses.replace(accel, device="conformance_copy"))
        assert on_copy.latency_ms == model.evaluate(network, accel).latency_ms
        _, report = built.best_accelerator(network, "conformance_copy")
        assert report.feasible

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

    def test_every_layer_kind_is_costed(self, model: HardwareModel, device: str) -> None:
        """No layer kind is free or unknown to the model: each layer of :func:`every_kind_network` takes
        time and energy, on a given design and on the model's best one."""
        network = every_kind_network()
        assert {layer.kind for layer in network.layers} == set(LAYER_KINDS), "every_kind_network lacks a kind"
        report = model.evaluate(network, self.make_accelerator(network, device))
        _check_report(report, network)
        assert all(c.latency_ms > 0 and c.energy_mj > 0 for c in report.per_layer), report.per_layer
        _, best = model.best_accelerator(network, device)
        _check_report(best, network)
        assert best.feasible, best.violations

    def test_other_template_raises(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = self.make_accelerator(network, device)
        other = dataclasses.replace(accel, template=accel.template + "_other")
        with pytest.raises(CodesignError):
            model.evaluate(network, other)

    def test_over_budget_is_reported(self, model: HardwareModel, network: Network, device: str) -> None:
        report = model.evaluate(network, self.make_oversized_accelerator(network, device))
        _check_report(report, network)
        assert not report.feasible
        assert all(v.split(":")[0] in VIOLATION_SUBJECTS for v in report.violations), report.violations

    def test_over_limit_clock_is_reported(self, model: HardwareModel, network: Network, device: str) -> None:
        accel = dataclasses.replace(self.make_accelerator(network, device), clock_mhz=100_000.0)
        report = model.evaluate(network, accel)
        assert any(v.startswith("clock_mhz") for v in report.violations)

    def test_batch_agrees_with_evaluate(self, model: HardwareModel, network: Network, device: str) -> None:
        configs = [self.make_accelerator(network, device), self.make_oversized_accelerator(network, device)]
        totals = model.evaluate_batch(network, configs)
        for j, accel in enumerate(configs):
            report = model.evaluate(network, accel)
            assert totals["latency_ms"][j] == report.latency_ms
            assert totals["throughput_fps"][j] == report.throughput_fps
            assert totals["energy_mj"][j] == report.energy_mj
            assert bool(totals["feasible"][j]) == report.feasible
            for name in RESOURCE_NAMES:
                assert int(totals[name][j]) == getattr(report.resources, name)
        assert all(isinstance(v, np.ndarray) and len(v) == len(configs) for v in totals.values())
