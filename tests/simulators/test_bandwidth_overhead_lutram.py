"""Hand-computed cases of the effective off-chip bandwidth (DMA efficiency and the AXI port limit), the fixed
per-layer cost, the exposed first tile of the overlay and LUTRAM at its simple-dual-port cost against the
device's SLICEM LUTs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from simulators.costs import memory_cost
from simulators.dataflow import DataflowModel
from simulators.devices import DEFAULTS, DeviceCatalog, load_device_file
from simulators.overlay import OverlayModel
from simulators.pipeline import PipelineModel
from tests.helpers import USER_DEVICE

CATALOG = DeviceCatalog.load()
OVERLAY = OverlayModel()



def single(layer: Layer) -> Network:
    return Network("one", (layer,), (layer.in_channels, layer.in_h, layer.in_w))


def overlay(tm: int, tn: int, tile: int, device: str = "xczu3eg", clock: float = 200.0) -> AcceleratorConfig:
    return AcceleratorConfig.make("overlay", device, clock, tm=tm, tn=tn, tr=tile, tc=tile)


@pytest.mark.parametrize(
    ("device", "clock", "expected"),
    [
        ("xczu3eg", 200.0, 8.5e9 * 0.8 / 200e6),  # 34: the DRAM bounds (ports: 4 x 16 B = 64 B/cycle)
        ("xczu3eg", 50.0, 4 * 128 / 8),  # 8.5e9 x 0.8 / 50e6 = 136 > 64: the HP ports bound
        ("xc7z020", 100.0, 2.1e9 * 0.8 / 100e6),  # 16.8 < 4 x 64 / 8 = 32
        ("xc7z020", 25.0, 4 * 64 / 8),  # 67.2 > 32
        ("u250", 200.0, 4 * 512 / 8),  # 76.8e9 x 0.8 / 200e6 = 307.2 > 256
    ],
)
def test_effective_bandwidth_is_the_lower_of_dram_and_ports(
    device: str, clock: float, expected: float
) -> None:
    assert float(CATALOG.get(device).offchip_bytes_per_cycle(clock)) == pytest.approx(expected, rel=1e-12)


def test_memory_bound_layer_is_port_limited_at_a_low_clock() -> None:
    layer = Layer("fc", "linear", 1024, 256)
    nbytes = 16 * 1024 + 1024 * 256 + 256  # input once per 16-lane output tile, weights, output
    at_200 = OVERLAY.evaluate(single(layer), overlay(16, 8, 8)).per_layer[0]
    at_50 = OVERLAY.evaluate(single(layer), overlay(16, 8, 8, clock=50.0)).per_layer[0]
    assert at_200.cycles == math.ceil(nbytes / 34.0) + 1000 == 8200 + 1000
    # at 50 MHz four 128-bit ports move 64 bytes a cycle, less than the DRAM's 136
    assert at_50.cycles == math.ceil(nbytes / 64.0) + 1000 == 4356 + 1000
    assert at_50.bound == at_200.bound == "memory"


def test_overlay_add_pays_its_first_tile_and_the_layer_overhead() -> None:
    add = Layer("a", "add", 32, 32, 16, 16)
    cost = OVERLAY.evaluate(single(add), overlay(16, 8, 8)).per_layer[0]
    compute = 2 * 256  # ceil(32/16) lane passes x 256 pixels on the vector unit
    first = math.ceil(2 * 16 * 8 * 8 / 34.0)  # both operands, 16 channels x one 8 x 8 tile, 8 bit: 61
    memory = math.ceil(3 * 32 * 256 / 34.0)  # two maps read, one written: 723
    assert (first, memory) == (61, 723) and compute + first < memory
    assert cost.cycles == memory + 1000 and cost.bound == "memory"


def test_network_latency_counts_the_overhead_once_per_layer() -> None:
    conv = Layer("c", "conv", 16, 16, 16, 16, 3, 1, 1)
    one = OVERLAY.evaluate(single(conv), overlay(16, 16, 16))
    layers = tuple(Layer(f"c{i}", "conv", 16, 16, 16, 16, 3, 1, 1) for i in range(3))
    three = OVERLAY.evaluate(Network("three", layers, (16, 16, 16)), overlay(16, 16, 16))
    # compute 1 x 1 x 1 x 256 x 9; first tile 16 channels x 18 x 18 bytes = 5184 bytes -> 153 cycles
    assert one.per_layer[0].cycles == 256 * 9 + math.ceil(5184 / 34.0) + 1000 == 2304 + 153 + 1000
    assert math.isclose(three.latency_ms, 3 * one.latency_ms)


def test_dataflow_adds_no_per_layer_overhead() -> None:
    conv = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    config = AcceleratorConfig.make("dataflow", "xczu3eg", 200, pe=(4,), simd=(9,))
    assert DataflowModel().evaluate(single(conv), config).per_layer[0].cycles == 8 * 16 * 256


def test_pipeline_adds_the_overhead_to_every_stage() -> None:
    conv = Layer("c", "conv", 16, 32, 16, 16, 3, 1, 1)
    config = AcceleratorConfig.make("pipeline", "xczu3eg", 200, pe=(4,), simd=(9,))
    report = PipelineModel().evaluate(single(conv), config)
    assert report.per_layer[0].cycles == 8 * 16 * 256 + 1000
    assert math.isclose(report.throughput_fps, 200e6 / (8 * 16 * 256 + 1000))


def test_lutram_is_two_luts_per_64_by_1_bit() -> None:
    brams, luts = memory_cost(np.asarray([1, 64, 65, 128]), np.asarray([8, 8, 8, 8]))
    assert luts.tolist() == [16, 16, 0, 0] and brams.tolist() == [0, 0, 1, 1]


def test_overlay_lutram_beyond_the_slicem_luts_is_a_violation() -> None:
    conv = Layer("c", "conv", 16, 16, 8, 8, 3, 1, 1)
    # per copy: 32 input banks of 36 x 8 bit (2 x 8 LUTs), 16 weight banks of 9 x 256 bit (2 x 256),
    # 16 partial-sum banks of 16 x 32 bit (2 x 32); double-buffered
    lutram = 2 * (32 * 16 + 16 * 512 + 16 * 64)
    assert lutram == 19456
    z7 = CATALOG.get("xc7z020")
    assert z7.lutram_luts == math.floor(math.floor(53200 * 0.7) * 0.33) == 12289
    report = OVERLAY.evaluate(single(conv), overlay(16, 32, 4, device="xc7z020", clock=100.0))
    assert f"lutram: {lutram} > 12289 (SLICEM LUTs)" in report.violations and not report.feasible
    zu9 = OVERLAY.evaluate(single(conv), overlay(16, 32, 4, device="xczu9eg"))
    assert CATALOG.get("xczu9eg").lutram_luts == math.floor(math.floor(274080 * 0.7) * 0.25) == 47964
    assert not any(v.startswith("lutram") for v in zu9.violations)


def test_dataflow_lutram_adds_up_over_the_engines() -> None:
    model = DataflowModel()

    # per engine: weights 144 x 16 / 256 = 9 words of 256 x 8 bit (2 x 2048 LUTs) and a 3-row line buffer
    # of 3 x 16 x 16 / 16 = 48 words of 16 x 8 bit (2 x 128 LUTs): 4352 LUTs of LUTRAM
    def net(n: int) -> Network:
        return Network(
            "n", tuple(Layer(f"c{i}", "conv", 16, 16, 16, 16, 3, 1, 1) for i in range(n)), (16, 16, 16)
        )

    def lutram_violations(n: int) -> list[str]:
        config = AcceleratorConfig.make("dataflow", "xc7z020", 100, pe=(16,) * n, simd=(16,) * n)
        return [v for v in model.evaluate(net(n), config).violations if v.startswith("lutram")]

    assert lutram_violations(2) == []  # 8704 <= 12289
    assert lutram_violations(3) == ["lutram: 13056 > 12289 (SLICEM LUTs)"]


def test_user_device_without_the_new_keys_takes_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mydev.yaml"
    path.write_text(USER_DEVICE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = load_device_file(path)
    # no source is asked for the keys the file leaves out (only for the fields it gives)
    assert not any("offchip_efficiency" in str(w.message) for w in caught)
    assert device.offchip_efficiency == DEFAULTS["offchip_efficiency"] == 0.8
    assert device.layer_overhead_cycles == 1000 and device.axi_ports == 0
    assert device.slicem_fraction == 0.25 and device.lutram_luts == 125  # 500 usable LUTs x 0.25
    assert float(device.offchip_bytes_per_cycle(100.0)) == pytest.approx(2.0e9 * 0.8 / 100e6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("offchip_efficiency: 1.5\n", "offchip_efficiency must be a fraction in"),
        ("slicem_fraction: 0\n", "slicem_fraction must be > 0"),
        ("axi_ports: 4\n", "axi_ports and axi_port_bits go together"),
        ("layer_overhead_cycles: -1\n", "layer_overhead_cycles must be a non-negative integer"),
        ("axi_port_bits: 64.5\naxi_ports: 2\n", "axi_port_bits must be a non-negative integer"),
    ],
)
def test_bad_new_keys_are_errors_naming_them(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "mydev.yaml"
    path.write_text(USER_DEVICE + extra)
    with pytest.raises(CodesignError, match=message):
        load_device_file(path)


def test_builtin_files_must_give_the_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "mydev.yaml"
    path.write_text(USER_DEVICE)
    with pytest.raises(CodesignError, match="a built-in device file must give offchip_efficiency"):
        load_device_file(path, require_sources=True)
