"""The dataflow template: one engine per layer, all layers pipelined (FINN, hls4ml, Tomato).

Parameters (``AcceleratorConfig.make("dataflow", device, clock_mhz, pe=(..), simd=(..))``): one ``pe`` and
one ``simd`` per layer of the network, in layer order. Each layer is a matrix-vector engine of height MH
and width MW folded onto PE x SIMD lanes; ``pe`` must divide MH and ``simd`` must divide MW:

=========  ===========================  ====================  ===========
kind       MH                           MW                    pixels
=========  ===========================  ====================  ===========
conv       out_channels                 K*K*in_channels/groups  R*C (output)
linear     out_channels                 in_channels           1
pool       channels                     K*K                   R*C
add        channels                     1                     R*C
concat     channels (all inputs)        1                     R*C
upsample   channels                     K*K (taps)            R*C (output)
=========  ===========================  ====================  ===========

cycles per frame ``= (MH/PE) * (MW/SIMD) * pixels`` (FINN's folding); throughput ``= clock / max cycles``;
latency ``= sum of cycles / clock`` (every layer's fill on the critical path: pessimistic, as FINN's own
estimate). No ``layer_overhead_cycles`` is added: the engines are configured once, when the bitstream is
loaded, and stream without per-layer DMA descriptors, while the pipeline fill is already in the latency
(each layer's whole cycle count is on the critical path, an upper bound of the fill). Off-chip traffic is
only the network input and output, which stream alongside the first and last engines, so neither the
bandwidth nor its efficiency enters the cycles. Per-layer resources, summed over layers plus the
memory-controller overhead:

- multipliers: ``ceil(PE*SIMD / packing(bits))`` DSPs, or FINN-R LUT multipliers and adder trees when
  weights and activations are at most 3 bits;
- weights on chip: depth ``MW*MH/(PE*SIMD)``, width ``PE*SIMD*W`` bits (LUTRAM when at most 64 deep, at
  2 LUTs per 64 x 1 bit, as every small memory; a design whose LUTRAM exceeds the device's SLICEM LUTs,
  :attr:`simulators.devices.Device.lutram_luts`, is reported with a ``lutram`` violation);
- a sliding-window line buffer of the input rows a K > 1 convolution or pooling window spans (its effective
  kernel when dilated);
- a residual add buffers its skip branch: one whole feature map (a pessimistic FIFO depth); a concat
  merges its input streams and buffers the ones that arrive first: one whole feature map of its input
  channels (pessimistic by the last input's share);
- an upsample keeps the input rows it replays (nearest: 1) or interpolates (bilinear: 2);
- 300 LUTs of control per engine (FINN-R).

URAM is not used. Energy: static power x latency, plus per layer MACs x energy per MAC, pooling and add
operations, on-chip weight reads (every weight once per output pixel) and activation streams, and the
off-chip bytes of the network input and output (constants in :mod:`simulators.costs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Network
from simulators.common import BatchResult, LayerArrays, TemplateModel
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
from simulators.folding import DataflowSpace, Folding, best_folding, folding_param

DATAFLOW_PARAMS = ("pe", "simd")


def engine_resources(
    layers: LayerArrays,
    pe: np.ndarray,
    simd: np.ndarray,
    device: Device,
    *,
    weight_depth: np.ndarray,
    weight_copies: int,
    skip_depth: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-layer resources (L, N) of PE x SIMD engines, one per layer (shared by the dataflow and pipeline
    templates): the keys of RESOURCE_NAMES, and ``lutram``, the LUTs among ``lut`` that are distributed RAM
    (they must fit the device's SLICEM LUTs).

    Multipliers: ``ceil(PE*SIMD / packing(bits))`` DSPs, or FINN-R LUT multipliers and adder trees at <= 3
    bits; pooling, upsampling, add and concat engines are LUT adders and multiplexers. Memories:
    ``weight_copies`` weight memories of ``weight_depth`` words of ``PE*SIMD*W`` bits, a sliding-window
    line buffer of as many input rows as the window spans (its extent: the effective kernel of a dilated
    conv) for K > 1 convolutions and pooling, of K input rows for upsampling (the row it repeats or the
    two it interpolates), and a skip buffer of ``skip_depth`` words of ``PE*A`` bits for a residual add or
    a concat; 300 LUTs of control per engine and per line buffer (FINN-R).
    """
    weighted, is_pool, windowed = layers.weighted, layers.is_pool, layers.windowed
    w, a = layers.wbits, layers.abits
    lanes = pe * simd
    widest = np.maximum(w, a)
    lut_mult = widest <= LUT_MULT_MAX_BITS
    dsp = np.where(
        weighted & ~lut_mult,
        np.ceil(lanes / macs_per_dsp(precision_class(widest), device.dsp_kind) - 1e-9),
        0,
    )
    mult_lut = np.where(
        lut_mult, lanes * lut_per_multiplier(w, a) + pe * adder_tree_luts(w, a, simd), pe * ACC_BITS
    )
    op_lut = np.where(windowed, lanes * a * 2, pe * a)
    lut = np.where(weighted, mult_lut, op_lut) + UNIT_LUT_OVERHEAD

    window = ((layers.extent > 1) & (weighted | is_pool)) | layers.is_upsample
    par = np.where(windowed, pe, np.gcd(simd, layers.cin))
    line_depth = np.where(window, layers.extent * layers.in_w * layers.cin // par, 0)
    weight_bram, weight_lut = memory_cost(weight_depth, lanes * w)
    line_bram, line_lut = memory_cost(line_depth, par * a)
    skip_bram, skip_lut = memory_cost(skip_depth, pe * a)
    memory_lut = weight_copies * weight_lut + line_lut + skip_lut
    lut = lut + memory_lut + np.where(window, UNIT_LUT_OVERHEAD, 0)
    ff = np.where(weighted, lanes * (w + a) + pe * ACC_BITS, lanes * a) + UNIT_LUT_OVERHEAD
    return {
        "lut": lut.astype(np.int64),
        "ff": ff.astype(np.int64),
        "bram18": (weight_copies * weight_bram + line_bram + skip_bram).astype(np.int64),
        "uram": np.zeros(lanes.shape, dtype=np.int64),
        "dsp": dsp.astype(np.int64),
        "lutram": memory_lut.astype(np.int64),
    }


def engine_dynamic_pj(layers: LayerArrays, fold: Folding, energy: EnergyTable) -> np.ndarray:
    """On-chip dynamic energy (pJ) of every layer, (L, 1): MACs, pooling and add operations, every weight
    read once per output pixel and the activation streams written and read once."""
    a = layers.abits
    stream_bytes = (
        (np.where(layers.is_add, 2, 1) * layers.cin * layers.in_h * layers.in_w + layers.cout * fold.pixels)
        * a
        / 8.0
    )
    ops = np.where(layers.weighted, 0, layers.ops)
    return (
        layers.macs * energy.mac_pj(layers.wbits, a)
        + ops * energy.op_pj(a)
        + energy.onchip_pj(layers.macs * layers.wbits / 8.0 + 2 * stream_bytes)
    )


def dataflow_arrays(
    layers: LayerArrays,
    pe: np.ndarray,
    simd: np.ndarray,
    clock_mhz: np.ndarray,
    device: Device,
    energy: EnergyTable,
) -> BatchResult:
    """The dataflow cost of every layer on every configuration; ``pe``/``simd`` are (L, N), clock (N,)."""
    fold = Folding.of(layers)
    if (fold.mh % pe).any() or (fold.mw % simd).any():
        raise CodesignError("dataflow: every pe must divide its layer's MH and every simd its MW")
    cycles = (fold.mh // pe) * (fold.mw // simd) * fold.pixels
    lanes = pe * simd
    layer_res = engine_resources(
        layers,
        pe,
        simd,
        device,
        weight_depth=np.where(layers.weighted, fold.mw * fold.mh // lanes, 0),
        weight_copies=1,
        skip_depth=np.where(layers.is_add | layers.is_concat, layers.cin * layers.in_h * layers.in_w // pe, 0),
    )
    layer_lutram = layer_res.pop("lutram")
    shell = device.ddr_overhead
    totals = {n: layer_res[n].sum(axis=0) + getattr(shell, n) for n in RESOURCE_NAMES}

    a = layers.abits
    offchip = np.zeros(cycles.shape, dtype=np.float64)
    offchip[0] += float(layers.cin[0, 0] * layers.in_h[0, 0] * layers.in_w[0, 0] * a[0, 0]) / 8.0
    offchip[-1] += float(layers.cout[-1, 0] * fold.pixels[-1, 0] * a[-1, 0]) / 8.0
    dynamic = engine_dynamic_pj(layers, fold, energy) + energy.offchip_pj(offchip)
    return BatchResult(
        cycles=cycles,
        offchip_bytes=offchip,
        dynamic_pj=dynamic,
        memory_bound=np.zeros(cycles.shape, dtype=bool),
        layer_resources=layer_res,
        resources=totals,
        layer_lutram=layer_lutram,
        lutram=layer_lutram.sum(axis=0),
        clock_mhz=clock_mhz,
        throughput_fps=clock_mhz * 1e6 / cycles.max(axis=0),
    )


class FoldedModel(TemplateModel):
    """The shell of templates with one PE x SIMD engine per layer (parameters ``pe`` and ``simd``, one per
    layer): parameter parsing and checks, and the exact latency-optimal folding. A subclass implements
    :meth:`folding_arrays`."""

    param_names = DATAFLOW_PARAMS
    resource_combine = "sum"
    """How per-layer resource tables combine into a design: one engine per layer, so they add up."""

    def folding_arrays(
        self, layers: LayerArrays, pe: np.ndarray, simd: np.ndarray, clock_mhz: np.ndarray, device: Device
    ) -> BatchResult:
        """The cost of every layer for every folding: ``pe``/``simd`` are (L, N), ``clock_mhz`` (N,)."""
        raise NotImplementedError

    def _compute(
        self, layers: LayerArrays, configs: Sequence[AcceleratorConfig], device: Device
    ) -> BatchResult:
        n = len(layers.names)
        pe = np.asarray([folding_param(c, "pe", n) for c in configs], dtype=np.int64).T
        simd = np.asarray([folding_param(c, "simd", n) for c in configs], dtype=np.int64).T
        fold = Folding.of(layers)
        bad = np.argwhere((fold.mh % pe != 0) | (fold.mw % simd != 0))
        if bad.size:
            i, j = (int(v) for v in bad[0])
            raise CodesignError(
                f"{self.name}: layer {layers.names[i]!r} needs pe dividing MH={int(fold.mh[i, 0])} and simd "
                f"dividing MW={int(fold.mw[i, 0])}, got pe={int(pe[i, j])}, simd={int(simd[i, j])}"
            )
        clock = np.asarray([c.clock_mhz for c in configs], dtype=np.float64)
        return self.folding_arrays(layers, pe, simd, clock, device)

    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig, HardwareReport]:
        """The latency-optimal feasible folding (exact, by a multiple-choice integer program)."""
        space = DataflowSpace.for_device(self.catalog.get(device), clock_mhz=clock_mhz, template=self.name)
        return best_folding(self, network, space)


class DataflowModel(FoldedModel):
    """FINN-style dataflow accelerator model (template name ``"dataflow"``); options as
    :class:`simulators.common.TemplateModel`."""

    name = "dataflow"

    def folding_arrays(
        self, layers: LayerArrays, pe: np.ndarray, simd: np.ndarray, clock_mhz: np.ndarray, device: Device
    ) -> BatchResult:
        return dataflow_arrays(layers, pe, simd, clock_mhz, device, self.energy)
