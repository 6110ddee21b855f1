"""The layer-pipelined template: one engine per layer, feature maps and weights streamed through off-chip
memory (the chunk-based pipeline of Shen et al., ISCA 2017 "multi-CLP", taken to one chunk per layer, as in
DNNBuilder, ICCAD 2018, and the HLS design behind HW-NAS-Bench's FPGA latencies, Li et al., ICLR 2021).

Parameters (``AcceleratorConfig.make("pipeline", device, clock_mhz, pe=(..), simd=(..))``): one ``pe`` and
one ``simd`` per layer, as in the dataflow template (``pe`` divides the layer's matrix height MH, ``simd``
its width MW; see :mod:`simulators.dataflow` for MH and MW of each layer kind). The difference from the
dataflow template is where the data lives: here every engine reads its input feature map(s) from and
writes its output to off-chip memory, and streams its weights from there one output-channel tile at a time
into a double-buffered tile buffer. Nothing but the current tiles is kept on chip, so the design fits a
mid-size device whatever the depth of the network, and the device's DSP budget is partitioned among the
engines (the per-network latency-optimal partition is :meth:`PipelineModel.best_accelerator`).

Per layer (one frame; ``A``/``W`` activation/weight bits):

- compute cycles ``= (MH/PE) * (MW/SIMD) * output pixels`` (FINN's folding);
- off-chip bits: the weights once (``params * W``: every output-channel tile of PE rows is loaded once);
  the input ``MH/PE`` times for a weighted layer (once per output-channel tile; a tile of a grouped
  convolution reads only the channels of the groups it spans, so a depthwise layer reads its input once),
  once for pooling, twice for an add (both operands); the output once;
- memory cycles ``= ceil(off-chip bytes / bytes per cycle)`` at the device's effective bandwidth
  (:meth:`simulators.devices.Device.offchip_bytes_per_cycle`: the peak times ``offchip_efficiency``, capped
  by the AXI ports at the accelerator clock; while one frame goes through the pipeline its layers run one
  after another, each with the whole memory port); with double-buffered tiles transfers overlap compute,
  so the layer takes ``max(compute, memory) + layer_overhead_cycles`` cycles (the device's fixed cost of
  starting a layer's engine and DMA for a frame).

So pooling and element-wise adds cost the data they stream (they do no MACs but move as many bytes as a
1x1 convolution), and a 1x1 convolution with few MACs per byte is memory bound where a 3x3 one is not. A
concat reads each of its inputs once and writes the joined map (a copy: the upper bound of a compiler
that writes the producers into their channel range), an upsample reads its input once and writes the
``stride^2`` times larger output; both are bound by those bytes.

Latency is the sum of the layer cycles over the clock (one frame passes every stage in turn). Throughput is
that of the full pipeline (a different frame in every stage): the clock over the larger of the slowest
stage and the whole frame's off-chip traffic at the shared bandwidth.

Resources, summed over the engines (:func:`simulators.dataflow.engine_resources`): multipliers as in the
dataflow template (DSP packing by bit-width, FINN-R LUT multipliers at <= 3 bits), LUT adders for pooling
and adds, two weight tiles of ``MW/SIMD`` words of ``PE*SIMD*W`` bits (double buffering), the K-row line
buffer of a K > 1 convolution or pooling, 300 LUTs of control per engine; no skip buffers (the operands of an
add come from memory). URAM is not used. Energy: static power x latency, plus the on-chip terms of the
dataflow template and the off-chip bytes (constants in :mod:`simulators.costs`).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from codesign.core.values import RESOURCE_NAMES
from simulators.common import BatchResult, LayerArrays
from simulators.costs import EnergyTable
from simulators.dataflow import FoldedModel, Folding, engine_dynamic_pj, engine_resources
from simulators.devices import Device

WEIGHT_TILE_COPIES = 2
"""Weight tile buffers per engine: one being computed on while the next is loaded."""
SOURCES = MappingProxyType(
    {
        "WEIGHT_TILE_COPIES": "design choice: double (ping-pong) buffering so loads overlap compute, as in "
        "Zhang et al. FPGA'15 and DNNBuilder (ICCAD 2018)",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


def offchip_bits(layers: LayerArrays, fold: Folding, pe: np.ndarray) -> np.ndarray:
    """Bits every layer moves to and from off-chip memory for one frame, (L, N) (see the module docstring)."""
    weighted = layers.weighted
    in_map = layers.in_h * layers.in_w * layers.abits
    m_g = layers.cout // layers.groups
    n_g = layers.cin // layers.groups
    channels_per_tile = np.minimum(layers.cin, -(-pe // m_g) * n_g)
    input_bits = np.where(
        weighted,
        (fold.mh // pe) * channels_per_tile * in_map,
        np.where(layers.is_add, 2, 1) * layers.cin * in_map,
    )
    weight_bits = np.where(weighted, layers.params * layers.wbits, 0)
    return input_bits + weight_bits + layers.cout * fold.pixels * layers.abits


def pipeline_arrays(
    layers: LayerArrays,
    pe: np.ndarray,
    simd: np.ndarray,
    clock_mhz: np.ndarray,
    device: Device,
    energy: EnergyTable,
) -> BatchResult:
    """The pipeline cost of every layer on every configuration; ``pe``/``simd`` are (L, N), clock (N,)."""
    fold = Folding.of(layers)
    compute = (fold.mh // pe) * (fold.mw // simd) * fold.pixels
    offchip = offchip_bits(layers, fold, pe) / 8.0
    bytes_per_cycle = device.offchip_bytes_per_cycle(clock_mhz)
    memory = np.ceil(offchip / bytes_per_cycle - 1e-9).astype(np.int64)
    cycles = np.maximum(compute, memory) + device.layer_overhead_cycles

    layer_res = engine_resources(
        layers,
        pe,
        simd,
        device,
        weight_depth=np.where(layers.weighted, fold.mw // simd, 0),
        weight_copies=WEIGHT_TILE_COPIES,
        skip_depth=np.zeros_like(pe),
    )
    layer_lutram = layer_res.pop("lutram")
    shell = device.ddr_overhead
    totals = {n: layer_res[n].sum(axis=0) + getattr(shell, n) for n in RESOURCE_NAMES}
    frame_memory = np.ceil(offchip.sum(axis=0) / bytes_per_cycle - 1e-9)
    return BatchResult(
        cycles=cycles,
        offchip_bytes=offchip,
        dynamic_pj=engine_dynamic_pj(layers, fold, energy) + energy.offchip_pj(offchip),
        memory_bound=memory > compute,
        layer_resources=layer_res,
        resources=totals,
        layer_lutram=layer_lutram,
        lutram=layer_lutram.sum(axis=0),
        clock_mhz=clock_mhz,
        throughput_fps=clock_mhz * 1e6 / np.maximum(cycles.max(axis=0), frame_memory),
    )


class PipelineModel(FoldedModel):
    """Layer-pipelined accelerator model with off-chip feature maps and weights (template name
    ``"pipeline"``); options as :class:`simulators.common.TemplateModel`. ``best_accelerator`` partitions
    the device's budgets among the engines to minimise the latency of the given network (exact)."""

    name = "pipeline"

    def folding_arrays(
        self, layers: LayerArrays, pe: np.ndarray, simd: np.ndarray, clock_mhz: np.ndarray, device: Device
    ) -> BatchResult:
        return pipeline_arrays(layers, pe, simd, clock_mhz, device, self.energy)
