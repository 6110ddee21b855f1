"""Hand-computed overlay cases and property tests of the overlay template."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.core.values import AcceleratorConfig, Layer, Network
from simulators.common import LayerArrays
from simulators.overlay import OverlayModel, array_precision, first_tile_bits, overlay_arrays
from simulators.testing import conv_stack

MODEL = OverlayModel()
# xczu3eg at 200 MHz: min(8.5 GB/s x 0.8 efficiency, 4 HP ports x 128 bit / 8 x 200 MHz) = 6.8 GB/s, 34 B/cycle
BYTES_PER_CYCLE = min(8.5e9 * 0.8, 4 * 128 / 8 * 200e6) / 200e6
OVERHEAD = 1000  # xczu3eg layer_overhead_cycles


def accel(
    tm: int = 16, tn: int = 8, tr: int = 8, tc: int = 8, device: str = "xczu3eg", clock: float = 200
) -> AcceleratorConfig:
    return AcceleratorConfig.make("overlay", device, clock, tm=tm, tn=tn, tr=tr, tc=tc)


def single(layer: Layer) -> Network:
    return Network("one", (layer,), (layer.in_channels, layer.in_h, layer.in_w))


def first_tile_cycles(layer: Layer, tm: int, tn: int, tile: int, device: str = "xczu3eg") -> int:
    """The exposed load of the layer's first input tile, in cycles at 200 MHz: a layer takes ``first +
    max(compute, memory - first) + overhead`` cycles, so ``cycles - first`` is its steady state."""
    layers = LayerArrays.of(single(layer))
    dev = MODEL.catalog.get(device)
    _, _, factor = array_precision(layers, dev.dsp_kind)
    one = np.asarray([1])
    bits = first_tile_bits(layers, tm * one, tn * one, tile * one, tile * one, factor)
    report = MODEL.evaluate(single(layer), accel(tm, tn, tile, tile, device=device))
    nbytes = min(float(bits[0, 0]) / 8, report.per_layer[0].offchip_bytes)
    return math.ceil(nbytes / float(dev.offchip_bytes_per_cycle(200.0)) - 1e-9)


def test_conv_tile_counts_bytes_dsp_and_bram_by_hand() -> None:
    # 16 -> 32 channels, 16x16, 3x3, 8-bit on Tm=16, Tn=8, Tr=Tc=8 at 200 MHz on xczu3eg (8.5 GB/s).
    layer = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    report = MODEL.evaluate(single(layer), accel())
    cost = report.per_layer[0]
    # ceil(32/16) * ceil(16/8) * ceil(16/8) * ceil(16/8) * 8 * 8 * 9
    compute = 2 * 2 * 4 * 64 * 9
    # the first input tile (8 channels x 10 x 10 x 8 bit = 800 bytes) loads before the array starts
    first = math.ceil(8 * 10 * 10 * 8 / 8 / BYTES_PER_CYCLE)
    assert first == 24
    assert cost.cycles == compute + first + OVERHEAD == 10240
    # inputs (8+3-1)^2 per channel per spatial tile per output-channel tile, weights per spatial tile, outputs once
    bits = 2 * 4 * 16 * 10 * 10 * 8 + 4 * (32 * 16 * 9) * 8 + 32 * 256 * 8
    assert cost.offchip_bytes == bits / 8 == 39424
    assert cost.bound == "compute"
    assert math.ceil(39424 / BYTES_PER_CYCLE) == 1160 < compute + first
    assert math.isclose(report.latency_ms, 10240 / 200e3)
    assert report.dsp == 16 * 8 // 2  # two 8-bit MACs per DSP48E2
    # input buffer: 8 banks of a 100 x 8 bit tile -> 1 RAMB18 each (2048 x 9); weights (9 deep) and partial
    # sums (64 deep) live in LUTRAM; everything double-buffered
    assert report.bram18 == 2 * 8 * 1


def test_memory_bound_linear_layer_by_hand() -> None:
    layer = Layer("fc", "linear", 1024, 256)
    cost = MODEL.evaluate(single(layer), accel()).per_layer[0]
    compute = 16 * 128  # ceil(256/16) * ceil(1024/8), one pixel: no tile padding for a linear layer
    nbytes = 16 * 1024 + 1024 * 256 + 256
    assert cost.offchip_bytes == nbytes
    memory = math.ceil(nbytes / BYTES_PER_CYCLE)  # 34 B/cycle, not the 42.5 of the peak
    assert memory == 8200 > compute + 1  # first tile: 8 channels x 1 byte, 1 cycle
    assert cost.cycles == memory + OVERHEAD
    assert cost.bound == "memory"


def test_depthwise_uses_one_lane_per_output_channel() -> None:
    dw = Layer("dw", "conv", 32, 32, 16, 16, 3, 1, 1, groups=32)
    dense = Layer("dense", "conv", 32, 32, 16, 16, 3, 1, 1)
    dw_cycles = MODEL.evaluate(single(dw), accel()).per_layer[0].cycles
    dense_cycles = MODEL.evaluate(single(dense), accel()).per_layer[0].cycles
    dw_compute = 2 * 4 * 64 * 9  # 16 channels side by side on the Tm lanes, 2 passes, 4 tiles
    # first input tile: the 16 packed groups' channels x 10 x 10 bytes = 1600 bytes; dense: 8 channels
    assert math.ceil(1600 / BYTES_PER_CYCLE) == 48
    assert dw_cycles == dw_compute + 48 + OVERHEAD
    assert dense_cycles == 2 * 4 * 4 * 64 * 9 + 24 + OVERHEAD
    utilisation = dw.macs / (dw_compute * 16 * 8)
    assert utilisation == pytest.approx(1 / 8)  # only Tm of the Tm x Tn multipliers are busy


def test_pool_and_add_cost_cycles() -> None:
    pool = Layer("p", "pool", 32, 32, 16, 16, 2, 2, 0, mode="max")
    add = Layer("a", "add", 32, 32, 16, 16)
    assert MODEL.evaluate(single(pool), accel()).per_layer[0].cycles >= 2 * 64 * 4
    add_cost = MODEL.evaluate(single(add), accel()).per_layer[0]
    assert add_cost.cycles >= 2 * 256
    assert add_cost.offchip_bytes == 3 * 32 * 256


def test_mixed_precision_array_is_sized_for_widest_layer() -> None:
    wide = Layer("a", "conv", 16, 16, 8, 8, 3, 1, 1, weight_bits=8, act_bits=8)
    narrow = Layer("b", "conv", 16, 16, 8, 8, 3, 1, 1, weight_bits=4, act_bits=4)
    mixed = MODEL.evaluate(Network("m", (wide, narrow)), accel(tm=16, tn=8))
    assert mixed.dsp == 64  # 128 lanes at 8 bit
    # the 4-bit layer packs 4 MACs per DSP where the array packs 2: twice the input lanes
    # (both first input tiles are 6400 bits: 8 lanes x 100 x 8 bit and 16 lanes x 100 x 4 bit, 24 cycles)
    fixed = 24 + OVERHEAD
    assert (mixed.per_layer[1].cycles - fixed) * 2 == mixed.per_layer[0].cycles - fixed == 1152
    all_narrow = MODEL.evaluate(Network("n", (wide.with_bits(4, 4), narrow)), accel(tm=16, tn=8))
    assert all_narrow.dsp == 32
    lut_array = MODEL.evaluate(Network("l", (narrow.with_bits(2, 2),)), accel(tm=16, tn=8))
    assert lut_array.dsp == 0 and lut_array.lut > all_narrow.lut - 2000


def test_over_budget_design_is_reported_not_raised() -> None:
    report = MODEL.evaluate(single(Layer("c", "conv", 64, 64, 8, 8, 3, 1, 1)), accel(tm=128, tn=64))
    assert not report.feasible
    assert any(v.startswith("dsp:") for v in report.violations)
    assert report.dsp == 128 * 64 // 2


def test_batch_equals_scalar(stack20: Network) -> None:
    configs = [accel(tm, tn, tr, tr) for tm in (8, 32, 128) for tn in (4, 16, 64) for tr in (7, 16)]
    totals = MODEL.evaluate_batch(stack20, configs)
    for j, config in enumerate(configs):
        report = MODEL.evaluate(stack20, config)
        assert totals["latency_ms"][j] == report.latency_ms
        assert totals["energy_mj"][j] == report.energy_mj
        assert totals["dsp"][j] == report.dsp and totals["bram18"][j] == report.bram18
        assert totals["feasible"][j] == report.feasible
    assert not totals["feasible"].all() and totals["feasible"].any()


layers = st.builds(
    lambda cin, cout, size, kernel, stride, depthwise, wb, ab: Layer(
        "x",
        "conv",
        cin,
        cin if depthwise else cout,
        size,
        size,
        kernel,
        stride,
        kernel // 2,
        groups=cin if depthwise else 1,
        weight_bits=wb,
        act_bits=ab,
    ),
    st.integers(1, 96),
    st.integers(1, 96),
    st.integers(1, 32),
    st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 2]),
    st.booleans(),
    st.integers(2, 16),
    st.integers(2, 16),
)
arrays = st.tuples(
    st.sampled_from([4, 8, 16, 32, 64]), st.sampled_from([2, 4, 8, 16]), st.sampled_from([4, 7, 8, 16])
)


@settings(max_examples=60, deadline=None)
@given(layer=layers, array=arrays, grow=st.sampled_from(["tm", "tn"]))
def test_larger_array_never_slower(layer: Layer, array: tuple[int, int, int], grow: str) -> None:
    """In its steady state (the cycles less the exposed first-tile load and the fixed per-layer cost); the
    first tile of a larger array is larger, so a tiny layer may take its load's few extra cycles (see
    test_first_tile_of_a_larger_array_can_cost_more_than_it_saves)."""
    tm, tn, tile = array
    small = MODEL.evaluate(single(layer), accel(tm, tn, tile, tile)).per_layer[0]
    big_params = {"tm": tm * 2 if grow == "tm" else tm, "tn": tn * 2 if grow == "tn" else tn}
    big = MODEL.evaluate(single(layer), accel(big_params["tm"], big_params["tn"], tile, tile)).per_layer[0]
    steady_small = small.cycles - first_tile_cycles(layer, tm, tn, tile)
    steady_big = big.cycles - first_tile_cycles(layer, big_params["tm"], big_params["tn"], tile)
    assert steady_big <= steady_small


def test_first_tile_of_a_larger_array_can_cost_more_than_it_saves() -> None:
    # 14 -> 1 channels, 1x1 stride 2 on an 11 x 11 map (6 x 6 output), 2-bit weights, 14-bit activations
    layer = Layer("x", "conv", 14, 1, 11, 11, 1, 2, 0, weight_bits=2, act_bits=14)
    small = MODEL.evaluate(single(layer), accel(4, 8, 7, 7)).per_layer[0]
    big = MODEL.evaluate(single(layer), accel(4, 16, 7, 7)).per_layer[0]
    tile = (2 * 6 + 1 - 2) ** 2  # 121 input pixels per channel
    memory = math.ceil(small.offchip_bytes / BYTES_PER_CYCLE)
    assert (small.offchip_bytes, memory) == (3031, 90)
    # Tn = 8: two passes of 36 cycles after an 8-channel first tile; Tn = 16: one pass after all 14 channels
    first_small = math.ceil(8 * tile * 14 / 8 / BYTES_PER_CYCLE)
    first_big = math.ceil(14 * tile * 14 / 8 / BYTES_PER_CYCLE)
    assert (first_small, first_big) == (50, 88)
    assert small.cycles == 2 * 36 + first_small + OVERHEAD == 1122
    assert big.cycles == 36 + first_big + OVERHEAD == 1124


@settings(max_examples=60, deadline=None)
@given(layer=layers, array=arrays, dw=st.integers(0, 6), da=st.integers(0, 6))
def test_fewer_bits_never_cost_more_dsp_or_bytes(
    layer: Layer, array: tuple[int, int, int], dw: int, da: int
) -> None:
    tm, tn, tile = array
    other = Layer("y", "conv", layer.out_channels, 8, layer.out_h, layer.out_w, 1)
    high = Network("h", (layer, other))
    low = high.with_bits({"x": max(1, layer.weight_bits - dw)}, {"x": max(1, layer.act_bits - da)})
    a = accel(tm, tn, tile, tile)
    rh, rl = MODEL.evaluate(high, a), MODEL.evaluate(low, a)
    assert rl.dsp <= rh.dsp and rl.bram18 <= rh.bram18
    assert np.sum([c.offchip_bytes for c in rl.per_layer]) <= np.sum([c.offchip_bytes for c in rh.per_layer])


@settings(max_examples=40, deadline=None)
@given(
    tm=st.sampled_from([4, 16, 64, 128, 256]),
    tn=st.sampled_from([2, 8, 32, 64, 128]),
    tile=st.sampled_from([4, 16, 32, 64]),
    clock=st.sampled_from([100.0, 300.0, 450.0]),
    device=st.sampled_from(["xc7z020", "xczu3eg", "u250"]),
)
def test_violations_list_exactly_the_exceeded_budgets(
    tm: int, tn: int, tile: int, clock: float, device: str
) -> None:
    report = MODEL.evaluate(conv_stack(8), accel(tm, tn, tile, tile, device=device, clock=clock))
    usable = MODEL.catalog.get(device).usable
    over = {
        n for n in ("lut", "ff", "bram18", "uram", "dsp") if getattr(report.resources, n) > getattr(usable, n)
    }
    if clock > MODEL.catalog.get(device).max_clock_mhz:
        over.add("clock_mhz")
    dev = MODEL.catalog.get(device)
    one = np.asarray([1])
    cols = LayerArrays.of(conv_stack(8))
    lutram = overlay_arrays(
        cols, tm * one, tn * one, tile * one, tile * one, clock * one, dev, MODEL.energy
    ).lutram
    if lutram[0] > dev.lutram_luts:
        over.add("lutram")
    assert {v.split(":")[0] for v in report.violations} == over
    assert report.feasible == (not over)
