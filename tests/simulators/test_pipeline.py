"""Hand-computed cases of the layer-pipelined template (xc7z045: DSP48E1, 4.26 GB/s peak at 0.8 efficiency,
below its four 64-bit HP ports at 200 MHz, so 17.04 bytes per cycle; 1000 cycles per layer) and its exact
latency-optimal partition, checked against brute force."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from simulators.folding import DataflowSpace, best_folding, refold
from simulators.pipeline import PipelineModel
from tests.search_spaces.test_accelerator import catalog, small_net

MODEL = PipelineModel()
BYTES_PER_CYCLE = min(4.26e9 * 0.8, 4 * 64 / 8 * 200e6) / 200e6
OVERHEAD = 1000  # xc7z045 layer_overhead_cycles


def fold(pe: tuple[int, ...], simd: tuple[int, ...], device: str = "xc7z045") -> AcceleratorConfig:
    return AcceleratorConfig.make("pipeline", device, 200, pe=pe, simd=simd)


def one(layer: Layer) -> Network:
    return Network("one", (layer,), (layer.in_channels, layer.in_h, layer.in_w))


def test_compute_bound_conv_by_hand() -> None:
    layer = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    report = MODEL.evaluate(one(layer), fold((4,), (9,)))
    cost = report.per_layer[0]
    # MH = 32, MW = 144: (32/4) * (144/9) * 256 output pixels
    assert cost.cycles == 8 * 16 * 256 + OVERHEAD == 33768
    assert cost.bound == "compute"
    # input re-read by each of the 8 output-channel tiles, weights once, output once (bits)
    bits = 8 * 16 * 256 * 8 + 16 * 32 * 9 * 8 + 32 * 256 * 8
    assert cost.offchip_bytes == bits / 8 == 45568
    assert math.ceil(45568 / BYTES_PER_CYCLE) == 2675 < 32768
    assert math.isclose(report.latency_ms, 33768 / 200e3)
    assert report.dsp == 36  # 36 lanes, one 8-bit MAC per DSP48E1
    # weight tiles: 144/9 = 16 words of 36*8 bits -> LUTRAM; line buffer 3 x 16 x 16 bytes -> 1 RAMB18
    assert report.bram18 == 1


def test_pointwise_conv_is_memory_bound() -> None:
    layer = Layer("pw", "conv", 64, 64, 8, 8, 1)
    cost = MODEL.evaluate(one(layer), fold((64,), (64,))).per_layer[0]
    nbytes = (64 * 64 * 8 + 64 * 64 * 8 + 64 * 64 * 8) / 8  # input, weights, output
    assert cost.offchip_bytes == nbytes
    assert cost.cycles - OVERHEAD == math.ceil(nbytes / BYTES_PER_CYCLE) == 722 > 64
    assert cost.bound == "memory"


def test_pooling_and_adds_cost_the_bytes_they_stream() -> None:
    pool = Layer("p", "pool", 16, 16, 32, 32, 3, 1, 1, mode="avg")
    add = Layer("a", "add", 16, 16, 32, 32)
    fmap = 16 * 32 * 32  # bytes of one 8-bit feature map
    pool_cost = MODEL.evaluate(one(pool), fold((16,), (9,))).per_layer[0]
    add_cost = MODEL.evaluate(one(add), fold((16,), (1,))).per_layer[0]
    assert pool_cost.offchip_bytes == 2 * fmap and add_cost.offchip_bytes == 3 * fmap
    assert pool_cost.cycles - OVERHEAD == math.ceil(2 * fmap / BYTES_PER_CYCLE) == 1924
    assert add_cost.cycles - OVERHEAD == math.ceil(3 * fmap / BYTES_PER_CYCLE) == 2885
    # with one lane the pool is compute bound again: 16 channels x 9 window taps x 1024 pixels
    assert MODEL.evaluate(one(pool), fold((1,), (1,))).per_layer[0].cycles == 16 * 9 * 1024 + OVERHEAD


def test_depthwise_tiles_read_only_their_channels() -> None:
    layer = Layer("dw", "conv", 16, 16, 16, 16, 3, 1, 1, groups=16)
    cost = MODEL.evaluate(one(layer), fold((4,), (9,))).per_layer[0]
    assert cost.offchip_bytes == 16 * 256 + 16 * 9 + 16 * 256  # input once, weights, output


def test_latency_sums_stages_and_throughput_is_the_slowest_stage_or_the_memory() -> None:
    first = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    second = Layer("pw", "conv", 32, 32, 16, 16, 1)
    net = Network("two", (first, second), (16, 16, 16))
    report = MODEL.evaluate(net, fold((4, 32), (9, 32)))
    cycles = [c.cycles for c in report.per_layer]
    assert cycles[0] == 32768 + OVERHEAD and report.per_layer[1].bound == "memory"
    assert math.isclose(report.latency_ms, sum(cycles) / 200e3)
    frame = math.ceil(sum(c.offchip_bytes for c in report.per_layer) / BYTES_PER_CYCLE)
    assert math.isclose(report.throughput_fps, 200e6 / max(max(cycles), frame))
    for name in ("dsp", "lut", "ff", "bram18"):
        assert getattr(report.resources, name) == sum(getattr(c.resources, name) for c in report.per_layer)


def test_bad_folding_names_the_template_and_layer() -> None:
    layer = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    with pytest.raises(CodesignError, match="pipeline: layer 'c' needs pe dividing MH=32"):
        MODEL.evaluate(one(layer), fold((3,), (9,)))
    with pytest.raises(CodesignError, match="pipeline: pe must be a tuple with one entry per layer"):
        MODEL.evaluate(one(layer), fold((4, 4), (9, 9)))


def test_space_of_another_template_is_refused() -> None:
    space = DataflowSpace(device="xc7z045", clocks_mhz=(200.0,))
    with pytest.raises(CodesignError, match="'dataflow' space cannot configure the 'pipeline' template"):
        best_folding(MODEL, small_net(), space)


@pytest.mark.parametrize(("lut", "bram", "dsp"), [(6000, 30, 12), (4200, 30, 40), (100000, 4, 6)])
def test_best_partition_equals_brute_force(tmp_path: Path, lut: int, bram: int, dsp: int) -> None:
    model = PipelineModel(catalog=catalog(tmp_path, "tiny", lut, bram, dsp))
    space = DataflowSpace(device="tiny", clocks_mhz=(200.0,), max_pe=4, max_simd=9, template="pipeline")
    net = small_net()
    totals = model.evaluate_batch(net, space.configs(net))
    assert totals["feasible"].any() and not totals["feasible"].all()
    config, report = best_folding(model, net, space)
    assert config.template == "pipeline" and report.feasible
    latency = np.where(totals["feasible"], totals["latency_ms"], np.inf)
    assert report.latency_ms == pytest.approx(latency.min(), rel=1e-12)


def test_best_accelerator_uses_the_device_budget() -> None:
    config, report = MODEL.best_accelerator(small_net(), "xc7z045")
    assert report.feasible and config.device == "xc7z045" and config.clock_mhz == 200.0
    assert report.latency_ms < MODEL.evaluate(small_net(), fold((1,) * 4, (1,) * 4)).latency_ms


def slot_of(name: str) -> str:
    return name.split("_")[0]


def refold_source() -> Network:
    layers = (
        Layer("e1_conv3", "conv", 16, 24, 8, 8, 3, 1, 1),
        Layer("n1_add", "add", 24, 24, 8, 8),
    )
    return Network("source", layers, (16, 8, 8))


def test_refold_keeps_each_slot_within_its_engine_lanes() -> None:
    source = refold_source()
    design = fold((12, 24), (36, 1))
    pointwise = Network(
        "pw", (Layer("e1_conv1", "conv", 16, 16, 8, 8, 1), Layer("n1_add", "add", 16, 16, 8, 8)), (16, 8, 8)
    )
    config = refold(design, source, pointwise, slot=slot_of)
    # conv1: MH = 16, MW = 16 -> largest divisors of 16 not above pe 12 and simd 36; add: MH = 16 <= 24
    assert config.get("pe") == (8, 16) and config.get("simd") == (16, 1)
    assert config.template == "pipeline" and config.device == "xc7z045" and config.clock_mhz == 200.0
    pool = Network("pool", (Layer("e1_pool", "pool", 16, 16, 8, 8, 3, 1, 1, mode="avg"),), (16, 8, 8))
    assert refold(design, source, pool, slot=slot_of).get("simd") == (9,)  # MW = 9 taps
    # the slot's lanes bound the target's: 8 x 16 = 128 one-MAC DSP48E1s against 12 x 36 = 432
    assert MODEL.evaluate(pointwise, config).dsp == 128 < MODEL.evaluate(source, design).dsp == 432


def test_refold_onto_its_own_design_is_the_design() -> None:
    config, _ = MODEL.best_accelerator(small_net(), "xc7z045")
    assert refold(config, small_net(), small_net()) == config


def test_refold_names_a_layer_without_engine_and_a_shared_slot() -> None:
    source, design = refold_source(), fold((12, 24), (36, 1))
    stray = Network("stray", (Layer("e2_conv1", "conv", 16, 16, 8, 8, 1),), (16, 8, 8))
    with pytest.raises(CodesignError, match="layer 'e2_conv1' of 'stray' has no engine.*slot 'e2'"):
        refold(design, source, stray, slot=slot_of)
    with pytest.raises(CodesignError, match="slot 'x' holds more than one layer of 'source'"):
        refold(design, source, source, slot=lambda name: "x")
    with pytest.raises(CodesignError, match="pe must be a tuple with one entry per layer"):
        refold(fold((12,), (36,)), source, source)
