"""Cost primitives shared by the FPGA templates, all vectorized over numpy arrays.

Sources: DSP packing from Xilinx WP486 (INT8 on DSP48E2), WP521 (INT4) and the Versal DSP58 INT8 dot
product; LUT multiplier and adder-tree costs from FINN-R (Blott et al., TRETS 2018); BRAM aspect ratios
from the 7-series/UltraScale memory resources guides (UG473/UG573). Energy constants: Horowitz, "Computing's
energy problem", ISSCC 2014 (45 nm), with on-chip figures scaled by the FPGA/ASIC dynamic-power gap of
Kuon & Rose (TCAD 2007, 7-14x; 10x is used). Each constant's own source is in :data:`SOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from codesign.core.errors import CodesignError

# (depth, width) aspect ratios of one RAMB18 in simple dual-port mode.
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
_SHAPE_DEPTHS = np.asarray([d for d, _ in BRAM18_SHAPES], dtype=np.int64)
_SHAPE_WIDTHS = np.asarray([w for _, w in BRAM18_SHAPES], dtype=np.int64)
_SHAPE_DEPTHS.flags.writeable = False
_SHAPE_WIDTHS.flags.writeable = False
LUTRAM_MAX_DEPTH = 64
"""Memories this shallow go to LUTRAM: one LUT6 holds 64 x 1 bit (RAM64X1S)."""
LUTS_PER_LUTRAM_COLUMN = 2
"""LUTs of one 64 x 1 simple dual-port memory (one write, one read port): RAM64X1D, two LUT6s."""
LUT_MULT_MAX_BITS = 3
"""Operands this narrow (both weights and activations) use LUT multipliers instead of DSPs."""
UNIT_LUT_OVERHEAD = 300
"""Fixed LUTs of control logic per compute unit (FINN-R)."""
ACC_BITS = 32
"""Width of partial-sum accumulators (bits)."""
DSP_MACS_PER_SLICE = MappingProxyType(
    {
        "dsp48e2": ((4, 4.0), (8, 2.0), (16, 1.0)),
        "dsp48e1": ((4, 2.0), (16, 1.0)),
        "dsp58": ((8, 3.0), (16, 1.0)),
    }
)
"""MACs per cycle of one DSP slice, by kind: ``(widest operand bits, MACs)``, narrowest first; the first
bound that covers the operands applies."""
FLOAT_MACS_PER_DSP = 0.2
"""MACs per DSP slice per cycle beyond 16 bits (floating point: about 5 slices per MAC)."""


def precision_class(bits: np.ndarray) -> np.ndarray:
    """The datapath width a multiplier is built for: 4, 8, 16 or 32 bits (the smallest that covers)."""
    bits = np.asarray(bits)
    return np.where(bits <= 4, 4, np.where(bits <= 8, 8, np.where(bits <= 16, 16, 32)))


def macs_per_dsp(bits: np.ndarray, dsp_kind: str) -> np.ndarray:
    """MACs one DSP slice performs per cycle for operands of ``bits`` (the wider of weight and activation).

    DSP48E2: 2 at <= 8 bit (two weights share one activation, WP486), 4 at <= 4 bit (WP521), 1 at <= 16
    bit. DSP48E1 (25x18): 2 at <= 4 bit, else 1. DSP58: a 3-element INT8 dot product at <= 8 bit, else 1.
    Floating point (> 16 bit) costs about 5 DSPs per MAC, i.e. 0.2 MACs per DSP.
    """
    bits = np.asarray(bits)
    if dsp_kind not in DSP_MACS_PER_SLICE:
        raise CodesignError(f"unknown dsp_kind {dsp_kind!r}; expected dsp48e1, dsp48e2 or dsp58")
    packed = np.ones(bits.shape, dtype=np.float64)
    for limit, macs in reversed(DSP_MACS_PER_SLICE[dsp_kind]):
        packed = np.where(bits <= limit, macs, packed)
    return np.where(bits > 16, FLOAT_MACS_PER_DSP, packed)


def dsp_count(lanes: np.ndarray, bits: np.ndarray, dsp_kind: str) -> np.ndarray:
    """DSP slices for ``lanes`` parallel multipliers at ``bits`` (integer array)."""
    pack = macs_per_dsp(bits, dsp_kind)
    return np.ceil(np.asarray(lanes) / pack - 1e-9).astype(np.int64)


def lut_per_multiplier(weight_bits: np.ndarray, act_bits: np.ndarray) -> np.ndarray:
    """FINN-R's LUT cost of one W x A multiplier: ``(2*ceil((W+A)/6) - 1) * (W+A)``."""
    width = np.asarray(weight_bits) + np.asarray(act_bits)
    return (2 * -(-width // 6) - 1) * width


def adder_tree_luts(weight_bits: np.ndarray, act_bits: np.ndarray, simd: np.ndarray) -> np.ndarray:
    """FINN-R's LUT cost of the adder tree of one PE summing ``simd`` products: ``(W+A)*(2*SIMD-1)``."""
    return (np.asarray(weight_bits) + np.asarray(act_bits)) * (2 * np.asarray(simd) - 1)


def bram18_blocks(depth: np.ndarray, width_bits: np.ndarray) -> np.ndarray:
    """RAMB18 blocks for a memory of ``depth`` words of ``width_bits``, best-fitting aspect ratio.

    ``ceil(depth / d) * ceil(width / w)`` minimised over the (d, w) shapes of a RAMB18; 0 for an empty
    memory.
    """
    depth = np.asarray(depth, dtype=np.int64)
    width = np.asarray(width_bits, dtype=np.int64)
    blocks = -(-depth[..., None] // _SHAPE_DEPTHS) * -(-width[..., None] // _SHAPE_WIDTHS)
    best = blocks.min(axis=-1)
    return np.where((depth > 0) & (width > 0), best, 0)


def memory_cost(depth: np.ndarray, width_bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RAMB18 blocks, LUTs) of one simple dual-port memory (one write, one read port: a buffer filled while
    it is read): LUTRAM when ``depth <= 64``, at :data:`LUTS_PER_LUTRAM_COLUMN` LUTs per 64 x 1 bit
    (RAM64X1D), else BRAM. Those LUTs must be SLICEM LUTs: the templates report them as the design's
    LUTRAM, checked against :attr:`simulators.devices.Device.lutram_luts`."""
    depth = np.asarray(depth, dtype=np.int64)
    width = np.asarray(width_bits, dtype=np.int64)
    small = depth <= LUTRAM_MAX_DEPTH
    luts = np.where(small, LUTS_PER_LUTRAM_COLUMN * -(-depth // LUTRAM_MAX_DEPTH) * width, 0)
    brams = np.where(small, 0, bram18_blocks(depth, width))
    return brams.astype(np.int64), luts.astype(np.int64)


@dataclass(frozen=True)
class EnergyTable:
    """Dynamic energy constants in picojoules (pJ).

    Horowitz (ISSCC 2014, 45 nm): 8-bit integer multiply 0.2 pJ, 8-bit add 0.03 pJ, 32-bit add 0.1 pJ,
    32-bit SRAM (8 KB) read 5 pJ, 32-bit DRAM access 640 pJ. A multiply scales with the product of the
    operand widths, an add with the width. On-chip figures are multiplied by ``fpga_factor`` (Kuon & Rose:
    FPGA dynamic power is 7-14x an ASIC's); DRAM is the same chip either way.
    """

    mult_8x8_pj: float = 0.2
    add_32_pj: float = 0.1
    sram_byte_pj: float = 5.0 / 4
    dram_byte_pj: float = 640.0 / 4
    fpga_factor: float = 10.0

    def mac_pj(self, weight_bits: np.ndarray, act_bits: np.ndarray) -> np.ndarray:
        """Energy of one multiply-accumulate at the given widths (pJ)."""
        w = np.asarray(weight_bits, dtype=np.float64)
        a = np.asarray(act_bits, dtype=np.float64)
        return self.fpga_factor * (self.mult_8x8_pj * w * a / 64.0 + self.add_32_pj * ACC_BITS / 32.0)

    def op_pj(self, act_bits: np.ndarray) -> np.ndarray:
        """Energy of one add or compare on activations (pooling, residual adds) (pJ)."""
        return self.fpga_factor * self.add_32_pj * np.asarray(act_bits, dtype=np.float64) / 32.0

    def onchip_pj(self, nbytes: np.ndarray) -> np.ndarray:
        return self.fpga_factor * self.sram_byte_pj * np.asarray(nbytes, dtype=np.float64)

    def offchip_pj(self, nbytes: np.ndarray) -> np.ndarray:
        return self.dram_byte_pj * np.asarray(nbytes, dtype=np.float64)


DEFAULT_ENERGY = EnergyTable()
PJ_TO_MJ = 1e-9

SOURCES = MappingProxyType(
    {
        "BRAM18_SHAPES": "UltraScale architecture memory resources user guide (UG573) and 7 Series FPGAs memory "
        "resources user guide (UG473): a RAMB18 is 16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18, or 512 x 36 in "
        "simple dual-port mode",
        "_SHAPE_DEPTHS": "derived: the depths of BRAM18_SHAPES",
        "_SHAPE_WIDTHS": "derived: the widths of BRAM18_SHAPES",
        "LUTRAM_MAX_DEPTH": "UltraScale architecture CLB user guide (UG574) / 7 Series CLB user guide (UG474): "
        "a LUT6 is a 64 x 1 distributed RAM (RAM64X1S); using LUTRAM up to exactly one LUT's depth is an "
        "estimate: the cut-over point between LUTRAM and BRAM is a tool heuristic, not a documented figure",
        "LUTS_PER_LUTRAM_COLUMN": "7 Series CLB user guide (UG474) and UltraScale architecture CLB user guide "
        "(UG574), distributed RAM: a 64 x 1 simple/dual-port RAM (RAM64X1D) takes two LUTs of a SLICEM (one "
        "LUT6 per port), against one for a single-port RAM64X1S",
        "LUT_MULT_MAX_BITS": "estimate: below about 4 bits LUT multipliers are cheaper than DSP slices (FINN-R, "
        "Blott et al., TRETS 2018: (2*ceil((W+A)/6)-1)*(W+A) LUTs, 6 LUTs at 3 x 3 bits against 24 at 4 x 4); "
        "the cut at 3 bits is the model's choice",
        "UNIT_LUT_OVERHEAD": "FINN-R (Blott et al., TRETS 2018) LUT model as implemented in FINN's "
        "MatrixVectorActivation.lut_estimation: constant term c0 = 300 LUTs per compute unit",
        "ACC_BITS": "design choice: 32-bit partial sums, as FINN/HLS accumulators are usually sized; a "
        "DSP48E1/E2 accumulator is 48 bits wide (UG479, UG579), so 32 bits fit without extra slices",
        "DSP_MACS_PER_SLICE": "dsp48e2: Xilinx WP486 (Deep learning with INT8 optimization on Xilinx devices: two "
        "INT8 MACs sharing one operand per DSP48E2) and WP521 (Convolutional neural network with INT4 "
        "optimization: four INT4 MACs per DSP48E2); dsp58: Versal DSP engine architecture manual (AM004), INT8 "
        "mode: a 3-element dot product per cycle; dsp48e1: estimate: two <= 4-bit products packed as in WP486 "
        "fit the 25 x 18 multiplier (UG479), while WP486 explains why two INT8 products do not; 1 MAC per slice "
        "up to 16 bits (a 25/27 x 18 multiplier, UG479/UG579)",
        "FLOAT_MACS_PER_DSP": "estimate from the Floating-Point Operator product guide (PG060) resource tables: "
        "a single-precision multiplier with full DSP usage takes 3 DSP slices and an adder 2, about 5 per MAC",
        "EnergyTable.mult_8x8_pj": "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm: 8-bit integer "
        "multiply 0.2 pJ (32-bit: 3.1 pJ, about 0.2 x (32 x 32) / (8 x 8), so the product-of-widths scaling holds)",
        "EnergyTable.add_32_pj": "Horowitz, ISSCC 2014, 45 nm: 32-bit integer add 0.1 pJ",
        "EnergyTable.sram_byte_pj": "Horowitz, ISSCC 2014, 45 nm, as tabulated by Han et al. (EIE, ISCA 2016, "
        "Table I): 32-bit SRAM read 5 pJ, i.e. 5 / 4 pJ per byte",
        "EnergyTable.dram_byte_pj": "Horowitz, ISSCC 2014, 45 nm, as tabulated by Han et al. (EIE, ISCA 2016, "
        "Table I): 32-bit DRAM read 640 pJ, i.e. 640 / 4 pJ per byte",
        "EnergyTable.fpga_factor": "Kuon & Rose, 'Measuring the gap between FPGAs and ASICs', IEEE TCAD 2007: "
        "FPGA dynamic power 7.1-14x an ASIC's; estimate: 10x, inside that range",
        "PJ_TO_MJ": "unit conversion: 1 pJ = 1e-12 J = 1e-9 mJ",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""
