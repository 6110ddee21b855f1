"""Hand-computed FINN-style folding cases and properties of the dataflow template."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from simulators.dataflow import DataflowModel

MODEL = DataflowModel()
CONV = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)


def fold(
    network: Network, pe: tuple[int, ...], simd: tuple[int, ...], device: str = "xczu3eg"
) -> AcceleratorConfig:
    return AcceleratorConfig.make("dataflow", device, 200, pe=pe, simd=simd)


def test_conv_folding_weights_and_dsp_by_hand() -> None:
    net = Network("one", (CONV,), (16, 16, 16))
    report = MODEL.evaluate(net, fold(net, (4,), (9,)))
    cost = report.per_layer[0]
    # MH = 32, MW = 3*3*16 = 144: (32/4) * (144/9) * 16*16 output pixels
    assert cost.cycles == 8 * 16 * 256 == 32768
    assert math.isclose(report.latency_ms, 32768 / 200e3)
    assert math.isclose(report.throughput_fps, 200e6 / 32768)
    assert cost.resources.dsp == 36 // 2  # 36 lanes, two 8-bit MACs per DSP48E2
    # weights: depth 144*32/36 = 128 words of 36*8 = 288 bits -> 8 RAMB18 at 512 x 36;
    # line buffer: 3 rows x 16 px x 16 ch / gcd(9, 16)=1 -> 768 deep x 8 bit -> 1 RAMB18 (2048 x 9)
    assert cost.resources.bram18 == 8 + 1


def test_small_weight_memories_go_to_lutram() -> None:
    layer = Layer("pw", "conv", 16, 16, 8, 8, 1)  # MW = 16, MH = 16
    net = Network("one", (layer,), (16, 8, 8))
    cost = MODEL.evaluate(net, fold(net, (4,), (4,))).per_layer[0]
    # depth 16*16/16 = 16 <= 64: LUTRAM of 16 x (4*4*8) bits, no BRAM
    assert cost.resources.bram18 == 0
    assert cost.cycles == 4 * 4 * 64


def test_throughput_is_clock_over_slowest_layer_and_latency_the_sum() -> None:
    second = Layer("d", "conv", 32, 32, 16, 16, 1)
    net = Network("two", (CONV, second), (16, 16, 16))
    report = MODEL.evaluate(net, fold(net, (4, 32), (9, 32)))
    cycles = [c.cycles for c in report.per_layer]
    assert cycles == [32768, 256]
    assert math.isclose(report.throughput_fps, 200e6 / 32768)
    assert math.isclose(report.latency_ms, sum(cycles) / 200e3)
    assert report.throughput_fps > 1e3 / report.latency_ms


def test_resources_sum_over_layers() -> None:
    second = Layer("d", "conv", 32, 32, 16, 16, 1)
    net = Network("two", (CONV, second), (16, 16, 16))
    report = MODEL.evaluate(net, fold(net, (4, 8), (9, 8)))
    for name in ("dsp", "lut", "ff", "bram18"):
        assert getattr(report.resources, name) == sum(getattr(c.resources, name) for c in report.per_layer)


def test_low_bits_use_lut_multipliers() -> None:
    net = Network("one", (CONV.with_bits(2, 2),), (16, 16, 16))
    cost = MODEL.evaluate(net, fold(net, (4,), (9,))).per_layer[0]
    assert cost.resources.dsp == 0
    # FINN-R: 36 multipliers of (2*ceil(4/6)-1)*4 = 4 LUTs, adder trees 4*(2*9-1) per PE, 300 control
    assert cost.resources.lut >= 36 * 4 + 4 * 4 * 17 + 300


def test_folding_must_divide() -> None:
    net = Network("one", (CONV,), (16, 16, 16))
    with pytest.raises(CodesignError, match="pe dividing MH=32"):
        MODEL.evaluate(net, fold(net, (3,), (9,)))
    with pytest.raises(CodesignError, match="one entry per layer"):
        MODEL.evaluate(net, fold(net, (4, 4), (9, 9)))
    with pytest.raises(CodesignError, match="unknown parameter"):
        MODEL.evaluate(net, AcceleratorConfig.make("dataflow", "xczu3eg", 200, pe=(4,), simd=(9,), tm=4))


def test_batch_equals_scalar(tiny: Network) -> None:
    configs = [
        fold(tiny, (1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 1, 1)),
        fold(tiny, (8, 8, 8, 8, 8, 10), (27, 9, 8, 1, 4, 512)),
        fold(tiny, (2, 4, 8, 2, 4, 5), (3, 3, 4, 1, 2, 64)),
    ]
    totals = MODEL.evaluate_batch(tiny, configs)
    for j, config in enumerate(configs):
        report = MODEL.evaluate(tiny, config)
        assert totals["latency_ms"][j] == report.latency_ms
        assert totals["throughput_fps"][j] == report.throughput_fps
        assert totals["energy_mj"][j] == report.energy_mj
        assert totals["lut"][j] == report.lut and totals["feasible"][j] == report.feasible


divisors_16 = st.sampled_from([1, 2, 4, 8, 16])


@settings(max_examples=60, deadline=None)
@given(
    pe=divisors_16, simd=st.sampled_from([1, 3, 9, 16, 48, 144]), wb=st.integers(2, 16), ab=st.integers(2, 16)
)
def test_fewer_bits_never_cost_more_dsp_or_memory(pe: int, simd: int, wb: int, ab: int) -> None:
    layer = Layer("c", "conv", 16, 16, 8, 8, 3, 1, 1, weight_bits=wb, act_bits=ab)
    config = fold(Network("n", (layer,)), (pe,), (simd,))
    high = MODEL.evaluate(Network("n", (layer,)), config)
    low = MODEL.evaluate(Network("n", (layer.with_bits(max(1, wb - 2), max(1, ab - 3)),)), config)
    assert low.dsp <= high.dsp and low.bram18 <= high.bram18
    assert low.per_layer[0].cycles == high.per_layer[0].cycles
