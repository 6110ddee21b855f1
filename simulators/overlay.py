"""The overlay template: one Tm x Tn PE array reused layer by layer (HAO, DNNBuilder, Zhang et al. FPGA'15).

Parameters (``AcceleratorConfig.make("overlay", device, clock_mhz, tm=.., tn=.., tr=.., tc=..)``): ``tm``
output-channel lanes, ``tn`` input-channel lanes, ``tr`` x ``tc`` output tile (rows x columns).

Per weighted layer (M outputs, N inputs per group, R x C output, kernel K, stride S):

- compute cycles ``= ceil(G/gp) * ceil(M/Tm) * ceil(N/Tn') * ceil(R/Tr) * ceil(C/Tc) * Tr' * Tc' * K*K``
  where ``Tr' = min(Tr, R)`` (a loop never runs past the feature map, so a linear layer is not charged a
  whole tile) and ``gp = Tm // M`` groups share the array when a group has fewer outputs than lanes: a
  depthwise layer (M = N = 1) keeps only Tm of the Tm*Tn multipliers busy, the real weakness of the
  template;
- off-chip bytes: the input tile ``N*(S*Tr'+K-S)*(S*Tc'+K-S)`` is loaded once per output-channel tile,
  the weights once per spatial tile, the output written once; memory cycles ``= ceil(bytes / B)`` with
  ``B`` the device's effective bytes per cycle (:meth:`simulators.devices.Device.offchip_bytes_per_cycle`:
  ``min(peak x offchip_efficiency, axi_ports x axi_port_bits / 8 x clock) / clock``); with double
  buffering later transfers overlap compute, but the first tile's input (:func:`first_tile_bits`: the
  previous layer's output, so it cannot be prefetched) loads alone before the array can start, so the
  layer takes ``max(compute + first-tile cycles, memory cycles) + layer_overhead_cycles`` (the device's fixed cost per layer: configuration, DMA descriptor set-up,
  array fill; identical tiles make the per-tile max and the per-layer max the same number);
- pooling and residual adds run on a Tm-lane vector unit: ``ceil(C/Tm) * R*C * K*K`` (pool) or
  ``ceil(C/Tm) * R*C`` (add) cycles, again bounded by the bytes they read and write;
- a concat and an upsample are copies through the same vector unit (feature maps live off chip between
  layers): the input is read once and the ``C x R x C`` output written once, ``ceil(C/Tm) * R*C`` cycles
  (concat) or ``ceil(C/Tm) * R*C * K*K`` (upsample, K input taps per axis of each output pixel: 1 nearest,
  2 bilinear), so they are bound by those bytes at the device's off-chip bandwidth. A compiler that lets
  the producers of a concat write straight into their channel range saves the copy: this is the upper
  bound;
- a dilated conv's input tile spans its effective kernel ``d*(K-1)+1`` per axis (its MACs stay K*K).

These formulas are computed by :mod:`simulators.tiling`, their one copy (the latency predictors' cycle
hints call it too).

Mixed precision: the physical array is built for the widest weighted layer (its precision class, 4/8/16/32
bits), so ``DSP = ceil(Tm*Tn / packing(widest))``. A narrower layer packs more MACs into each DSP and runs
with ``Tn' = Tn * f`` input lanes, ``f = packing(layer) / packing(array)``, capped so that ``f`` narrow
operands fit in one lane word of the array's width (the buffers are built for that width). When every
weighted layer is at most 3 bits wide the array uses LUT multipliers (FINN-R cost) instead of DSPs.

Buffers (double-buffered, BRAM geometry of :func:`simulators.costs.memory_cost`): input ``Tn`` banks of
the largest input tile at the array width, weights ``Tm`` banks of ``K*K`` words of ``Tn`` weights, outputs
``Tm`` banks of ``Tr'*Tc'`` 32-bit partial sums; a bank at most 64 deep is LUTRAM at 2 LUTs per 64 x 1
bit (simple dual port), and a design whose LUTRAM exceeds the device's SLICEM LUTs
(:attr:`simulators.devices.Device.lutram_luts`) is reported with a ``lutram`` violation. Per-layer
resources in the report are zero: the array is shared and is charged once to the whole design. URAM is not used (only a device's memory-controller
overhead can contain some).

Energy: static power x latency, plus per layer MACs x energy per MAC at the layer's bits, pooling and add
operations, bytes written to and read from the on-chip buffers (twice the off-chip bytes, plus partial-sum
traffic) and off-chip bytes (constants in :mod:`simulators.costs`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Network
from simulators.common import BatchResult, LayerArrays, TemplateModel, int_param, layer_sum, tightest_resource
from simulators.costs import (
    ACC_BITS,
    LUT_MULT_MAX_BITS,
    UNIT_LUT_OVERHEAD,
    EnergyTable,
    adder_tree_luts,
    lut_per_multiplier,
    macs_per_dsp,
    memory_cost,
    precision_class,
)
from simulators.devices import Device
from simulators.tiling import (
    fixed_bits,
    input_bits,
    input_lane_passes,
    input_reloads,
    input_tile,
    output_lane_passes,
    packed_groups,
    pixel_cycles,
    tile_extent,
)

OVERLAY_PARAMS = ("tc", "tm", "tn", "tr")
TM_CHOICES = (4, 8, 16, 24, 32, 48, 64, 96, 128)
TN_CHOICES = (2, 4, 8, 16, 32, 64)
TILE_CHOICES = (4, 7, 8, 14, 16, 28, 32)
"""The default overlay grid: lane counts and tile sizes the exact inner search enumerates."""
_CONTROL_UNITS = 4  # conv engine, vector unit, input and output DMA
SOURCES = MappingProxyType(
    {
        "TM_CHOICES": "design choice: the search grid of output-channel lanes (powers of two from 4 to 128 and "
        "the 1.5x steps 24, 48, 96 between them); not a physical constant",
        "TN_CHOICES": "design choice: the search grid of input-channel lanes (powers of two up to 64); not a "
        "physical constant",
        "TILE_CHOICES": "design choice: output tile sizes that divide the usual feature-map sizes (7, 14, 28 "
        "and powers of two up to 32); not a physical constant",
        "_CONTROL_UNITS": "design choice: the overlay's four controlled units (conv engine, vector unit, input "
        "and output DMA), each charged UNIT_LUT_OVERHEAD",
        "OverlaySpace.tm": "derived: the default is TM_CHOICES",
        "OverlaySpace.tn": "derived: the default is TN_CHOICES",
        "OverlaySpace.tr": "derived: the default is TILE_CHOICES",
        "OverlaySpace.tc": "derived: the default is TILE_CHOICES",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


def array_precision(layers: LayerArrays, dsp_kind: str) -> tuple[bool, int, np.ndarray]:
    """(LUT-multiplier mode, array width in bits, per-layer speed-up factor ``f`` of the input lanes as an
    (L, 1) array). Computed on each call (a few operations on the layer columns): no state outlives it."""
    weighted = layers.weighted
    widest = np.maximum(layers.wbits, layers.abits)
    if not weighted.any():
        return False, 8, np.ones_like(widest)
    if int(widest[weighted].max()) <= LUT_MULT_MAX_BITS:
        return True, int(widest[weighted].max()), np.ones_like(widest)
    cls = precision_class(widest)
    width = int(cls[weighted].max())
    pack_array = float(macs_per_dsp(np.asarray(width), dsp_kind))
    ratio = np.maximum(1, np.floor(macs_per_dsp(cls, dsp_kind) / pack_array + 1e-9)).astype(np.int64)
    factor = np.minimum(ratio, width // cls)
    return False, width, np.where(weighted, factor, 1)


def _factor(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of the given (N,) columns and, for each configuration, the index of its row.

    Costs that depend on one parameter only are computed once per distinct value and gathered; for a few
    configurations the columns are used as they are (elementwise results are the same either way).
    """
    if len(columns[0]) <= 32:
        return columns, np.arange(len(columns[0]))
    unique, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    return tuple(unique[:, i] for i in range(len(columns))), inverse.ravel()


def overlay_arrays(
    layers: LayerArrays,
    tm: np.ndarray,
    tn: np.ndarray,
    tr: np.ndarray,
    tc: np.ndarray,
    clock_mhz: np.ndarray,
    device: Device,
    energy: EnergyTable,
) -> BatchResult:
    """The overlay cost of every layer on every configuration (configs are the ``(N,)`` arrays)."""
    lut_mode, width, factor = array_precision(layers, device.dsp_kind)
    weighted, is_add = layers.weighted, layers.is_add
    out_px = layers.out_pixels
    cin, cout, groups = layers.cin, layers.cout, layers.groups
    (tm_u,), i_m = _factor(tm)
    (tn_u,), i_n = _factor(tn)
    (tr_u, tc_u), i_rc = _factor(tr, tc)
    # the formulas are those of simulators.tiling, each factor computed once per distinct parameter value
    # factors of the output-channel lanes (L, distinct tm)
    by_m = output_lane_passes(cout, groups, tm_u, weighted)
    reloads = input_reloads(cout, groups, tm_u, weighted)
    # factors of the input-channel lanes (L, distinct tn): narrower layers get f times the lanes
    by_n = input_lane_passes(cin, groups, tn_u * factor, weighted)
    psum_pj = energy.onchip_pj(np.where(weighted, by_n * cout * out_px * (ACC_BITS / 8.0), 0.0))
    # factors of the output tile (L, distinct (tr, tc))
    tr_e = tile_extent(layers.out_h, tr_u)
    tc_e = tile_extent(layers.out_w, tc_u)
    by_rc = pixel_cycles(layers.out_h, layers.out_w, layers.kernel, tr_u, tc_u, weighted, layers.windowed)
    in_tile = input_tile(layers.stride, layers.extent, tr_e, tc_e)
    loaded_bits = input_bits(
        cin, layers.out_h, layers.out_w, layers.extent, layers.stride, layers.abits, tr_u, tc_u, weighted
    )
    other_bits = fixed_bits(
        cin, cout, layers.in_h, layers.in_w, layers.out_h, layers.out_w, layers.params, layers.wbits,
        layers.abits, tr_u, tc_u, weighted, is_add,
    )  # fmt: skip

    compute = np.take(by_m, i_m, axis=1) * np.take(by_n, i_n, axis=1) * np.take(by_rc, i_rc, axis=1)
    offchip = (
        np.take(reloads, i_m, axis=1) * np.take(loaded_bits, i_rc, axis=1) + np.take(other_bits, i_rc, axis=1)
    ) / 8.0
    bytes_per_cycle = device.offchip_bytes_per_cycle(clock_mhz)
    memory = np.ceil(offchip / bytes_per_cycle - 1e-9).astype(np.int64)
    first_bytes = np.minimum(first_tile_bits(layers, tm, tn, tr, tc, factor) / 8.0, offchip)
    first = np.ceil(first_bytes / bytes_per_cycle - 1e-9).astype(np.int64)
    # the first tile's load runs alone; the later loads overlap compute (double buffering)
    cycles = np.maximum(compute + first, memory) + device.layer_overhead_cycles

    ops = np.where(weighted, 0, layers.ops)
    per_layer_pj = layers.macs * energy.mac_pj(layers.wbits, layers.abits) + ops * energy.op_pj(layers.abits)
    dynamic = (
        per_layer_pj
        + energy.onchip_pj(2 * offchip)
        + energy.offchip_pj(offchip)
        + np.take(psum_pj, i_n, axis=1)
    )

    depth_in = np.where(weighted, in_tile, 0).max(axis=0)[i_rc]
    depth_out = np.where(weighted, tr_e * tc_e, 0).max(axis=0)[i_rc]
    resources = _overlay_resources(layers, tm, tn, depth_in, depth_out, lut_mode, width, device)
    zero = np.zeros_like(cycles)
    lutram = resources.pop("lutram")
    latency_ms = layer_sum(cycles) / (clock_mhz * 1e3)
    return BatchResult(
        cycles=cycles,
        offchip_bytes=offchip,
        dynamic_pj=dynamic,
        memory_bound=memory > compute + first,
        layer_resources={n: zero for n in RESOURCE_NAMES},
        resources=resources,
        layer_lutram=zero,
        lutram=lutram,
        clock_mhz=clock_mhz,
        throughput_fps=1e3 / latency_ms,
    )


def first_tile_bits(
    layers: LayerArrays, tm: np.ndarray, tn: np.ndarray, tr: np.ndarray, tc: np.ndarray, factor: np.ndarray
) -> np.ndarray:
    """Bits of each layer's first input tile, (L, N): what must be on chip before the array can start.

    A weighted layer: the input tiles of ``gp * min(N, Tn')`` channels (``gp`` groups share the array,
    ``Tn' = Tn * f``); any other layer: the input tiles of ``min(cin, Tm)`` channels (both operands of an
    add). The weights of the first tile are not counted: they do not depend on the previous layer's output,
    so they load into the idle half of the double-buffered weight buffer while the previous layer
    finishes, whereas the input is that output and cannot be fetched before it is written.
    """
    tile = input_tile(
        layers.stride, layers.extent, tile_extent(layers.out_h, tr), tile_extent(layers.out_w, tc)
    )
    gp = packed_groups(layers.cout, layers.groups, tm)
    conv = gp * np.minimum(layers.cin // layers.groups, tn * factor)
    other = np.where(layers.is_add, 2, 1) * np.minimum(layers.cin, tm)
    return np.where(layers.weighted, conv, other) * tile * layers.abits


def _overlay_resources(
    layers: LayerArrays,
    tm: np.ndarray,
    tn: np.ndarray,
    depth_in: np.ndarray,
    depth_out: np.ndarray,
    lut_mode: bool,
    width: int,
    device: Device,
) -> dict[str, np.ndarray]:
    weighted = layers.weighted
    lanes = tm * tn
    if lut_mode:
        wmax = int(layers.wbits[weighted].max())
        amax = int(layers.abits[weighted].max())
        dsp = np.zeros_like(lanes)
        mult_lut = lanes * lut_per_multiplier(np.asarray(wmax), np.asarray(amax)) + tm * adder_tree_luts(
            np.asarray(wmax), np.asarray(amax), tn
        )
    else:
        dsp = np.ceil(lanes / float(macs_per_dsp(np.asarray(width), device.dsp_kind)) - 1e-9).astype(np.int64)
        mult_lut = lanes * width // 2 + tm * ACC_BITS
    depth_w = int(np.where(weighted, layers.kernel * layers.kernel, 0).max())

    bram_in, lut_in = memory_cost(depth_in, np.full_like(depth_in, width))
    bram_w, lut_w = memory_cost(np.full_like(tm, depth_w), tn * width)
    bram_out, lut_out = memory_cost(depth_out, np.full_like(depth_out, ACC_BITS))
    bram = 2 * (tn * bram_in + tm * bram_w + tm * bram_out)
    buffer_lut = 2 * (tn * lut_in + tm * lut_w + tm * lut_out)
    vector_lut = tm * 2 * ACC_BITS
    lut = mult_lut + buffer_lut + vector_lut + _CONTROL_UNITS * UNIT_LUT_OVERHEAD
    ff = lanes * 2 * width + 2 * tm * ACC_BITS + _CONTROL_UNITS * UNIT_LUT_OVERHEAD
    shell = device.ddr_overhead
    return {
        "lut": (lut + shell.lut).astype(np.int64),
        "ff": (ff + shell.ff).astype(np.int64),
        "bram18": (bram + shell.bram18).astype(np.int64),
        "uram": np.full_like(lanes, shell.uram),
        "dsp": (dsp + shell.dsp).astype(np.int64),
        "lutram": buffer_lut.astype(np.int64),
    }


class OverlayModel(TemplateModel):
    """HAO-style overlay accelerator model (template name ``"overlay"``); options as
    :class:`simulators.common.TemplateModel`."""

    name = "overlay"
    param_names = OVERLAY_PARAMS
    resource_combine = "max"
    """How per-layer resource tables combine into a design: the shared array is sized by its widest layer."""

    def _compute(
        self, layers: LayerArrays, configs: Sequence[AcceleratorConfig], device: Device
    ) -> BatchResult:
        cols = {p: np.asarray([int_param(c, p) for c in configs], dtype=np.int64) for p in OVERLAY_PARAMS}
        clock = np.asarray([c.clock_mhz for c in configs], dtype=np.float64)
        return overlay_arrays(
            layers, cols["tm"], cols["tn"], cols["tr"], cols["tc"], clock, device, self.energy
        )

    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig, HardwareReport]:
        """The latency-optimal feasible configuration of the default overlay space (exhaustive, exact)."""
        space = OverlaySpace.for_device(self.catalog.get(device), clock_mhz=clock_mhz)
        return best_overlay(self, network, space)


@dataclass(frozen=True)
class OverlaySpace:
    """Every overlay configuration on one device: the product of the choice tuples (clock outermost)."""

    device: str
    clocks_mhz: tuple[float, ...]
    tm: tuple[int, ...] = TM_CHOICES
    tn: tuple[int, ...] = TN_CHOICES
    tr: tuple[int, ...] = TILE_CHOICES
    tc: tuple[int, ...] = TILE_CHOICES

    def __post_init__(self) -> None:
        for name in ("tm", "tn", "tr", "tc"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise CodesignError(
                    f"overlay space: {name} must be a non-empty tuple of positive integers, got {values!r}"
                )
        if not self.clocks_mhz or any(c <= 0 for c in self.clocks_mhz):
            raise CodesignError(f"overlay space: clocks_mhz must be positive, got {self.clocks_mhz!r}")

    @classmethod
    def for_device(cls, device: Device, clock_mhz: float | None = None) -> OverlaySpace:
        """The default grid on ``device`` at ``clock_mhz`` (the device's default clock when None)."""
        return cls(device=device.name, clocks_mhz=(float(clock_mhz or device.default_clock_mhz),))

    def __len__(self) -> int:
        return len(self.clocks_mhz) * len(self.tm) * len(self.tn) * len(self.tr) * len(self.tc)

    def grid(self) -> dict[str, np.ndarray]:
        """The configurations as parallel arrays (``clock_mhz``, ``tm``, ``tn``, ``tr``, ``tc``) in order."""
        mesh = np.meshgrid(
            np.asarray(self.clocks_mhz, dtype=np.float64),
            *(np.asarray(getattr(self, n), dtype=np.int64) for n in ("tm", "tn", "tr", "tc")),
            indexing="ij",
        )
        names = ("clock_mhz", "tm", "tn", "tr", "tc")
        return {name: m.ravel() for name, m in zip(names, mesh, strict=True)}

    def config_at(self, index: int) -> AcceleratorConfig:
        if not 0 <= index < len(self):
            raise CodesignError(f"overlay space: index {index} outside 0..{len(self) - 1}")
        clock, tm, tn, tr, tc = next(
            itertools.islice(
                itertools.product(self.clocks_mhz, self.tm, self.tn, self.tr, self.tc), index, None
            )
        )
        return AcceleratorConfig.make("overlay", self.device, clock, tm=tm, tn=tn, tr=tr, tc=tc)

    def configs(self, network: Network) -> tuple[AcceleratorConfig, ...]:
        """Every configuration (the network does not restrict the overlay grid)."""
        return tuple(
            AcceleratorConfig.make("overlay", self.device, clock, tm=tm, tn=tn, tr=tr, tc=tc)
            for clock, tm, tn, tr, tc in itertools.product(
                self.clocks_mhz, self.tm, self.tn, self.tr, self.tc
            )
        )

    def sample(self, network: Network, rng: np.random.Generator) -> AcceleratorConfig:
        return self.config_at(int(rng.integers(len(self))))


def best_overlay(
    model: OverlayModel, network: Network, space: OverlaySpace
) -> tuple[AcceleratorConfig, HardwareReport]:
    """The fastest feasible configuration of ``space`` for ``network`` and its report (exact: every grid
    point is evaluated; ties go to the first in grid order). Raises InfeasibleError when none fits."""
    device = model.catalog.get(space.device)
    grid = space.grid()
    layers = LayerArrays.of(network)
    result = overlay_arrays(
        layers, grid["tm"], grid["tn"], grid["tr"], grid["tc"], grid["clock_mhz"], device, model.energy
    )
    totals = result.totals(device)
    latency = np.where(totals["feasible"], totals["latency_ms"], np.inf)
    if not totals["feasible"].any():
        if all(c > device.max_clock_mhz for c in space.clocks_mhz):
            raise InfeasibleError(
                f"no overlay configuration fits {device.name}: clock_mhz {min(space.clocks_mhz):g} exceeds "
                f"the device limit {device.max_clock_mhz:g}"
            )
        raise InfeasibleError(
            f"no overlay configuration fits {device.name}: {tightest_resource(totals, device)}"
        )
    config = space.config_at(int(np.argmin(latency)))
    return config, model.evaluate(network, config)
