"""Hand-checked cost primitives: BRAM geometry, LUTRAM, DSP packing, FINN-R LUT formulas, energy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.core.errors import CodesignError
from simulators.costs import (
    DEFAULT_ENERGY,
    adder_tree_luts,
    bram18_blocks,
    dsp_count,
    lut_per_multiplier,
    macs_per_dsp,
    memory_cost,
)


@pytest.mark.parametrize(
    ("depth", "width", "blocks"),
    [
        (512, 36, 1),  # 512 x 36 simple dual port
        (1024, 18, 1),
        (2048, 9, 1),
        (2048, 8, 1),
        (16384, 1, 1),
        (1025, 18, 2),
        (512, 72, 2),
        (100, 8, 1),
        (32768, 1, 2),
        (3000, 16, 3),  # 4096 x 4 four times would be 4; 1024 x 18 three times is 3
        (0, 8, 0),
    ],
)
def test_bram18_geometry(depth: int, width: int, blocks: int) -> None:
    assert int(bram18_blocks(np.asarray(depth), np.asarray(width))) == blocks


def test_small_memories_use_lutram() -> None:
    brams, luts = memory_cost(np.asarray([64, 65, 16]), np.asarray([10, 10, 288]))
    assert brams.tolist() == [0, 1, 0]
    assert luts.tolist() == [20, 0, 576]  # simple dual port: 2 LUTs per 64 x 1 bit (RAM64X1D)


def test_dsp_packing_by_bits_and_kind() -> None:
    bits = np.asarray([2, 4, 8, 12, 16, 32])
    assert macs_per_dsp(bits, "dsp48e2").tolist() == [4, 4, 2, 1, 1, 0.2]
    assert macs_per_dsp(bits, "dsp58").tolist() == [3, 3, 3, 1, 1, 0.2]
    assert macs_per_dsp(bits, "dsp48e1").tolist() == [2, 2, 1, 1, 1, 0.2]
    assert dsp_count(np.asarray(128), np.asarray(8), "dsp48e2") == 64
    assert dsp_count(np.asarray(3), np.asarray(32), "dsp48e2") == 15  # about 5 DSPs per fp32 MAC
    with pytest.raises(CodesignError, match="dsp_kind"):
        macs_per_dsp(bits, "dsp99")


def test_finn_r_lut_formulas() -> None:
    assert lut_per_multiplier(np.asarray([2, 4, 8]), np.asarray([2, 4, 8])).tolist() == [4, 24, 80]
    assert int(adder_tree_luts(np.asarray(4), np.asarray(4), np.asarray(9))) == 8 * 17


def test_energy_scales_with_bits() -> None:
    assert DEFAULT_ENERGY.mac_pj(np.asarray(4), np.asarray(4)) < DEFAULT_ENERGY.mac_pj(
        np.asarray(8), np.asarray(8)
    )
    assert DEFAULT_ENERGY.offchip_pj(np.asarray(1.0)) == pytest.approx(160.0)  # 640 pJ per 32-bit DRAM access
    assert DEFAULT_ENERGY.onchip_pj(np.asarray(1.0)) < DEFAULT_ENERGY.offchip_pj(np.asarray(1.0))


@settings(max_examples=200, deadline=None)
@given(
    depth=st.integers(1, 100_000), width=st.integers(1, 600), dd=st.integers(0, 5000), dw=st.integers(0, 64)
)
def test_bram_monotone_and_bounded(depth: int, width: int, dd: int, dw: int) -> None:
    small = int(bram18_blocks(np.asarray(depth), np.asarray(width)))
    assert small <= int(bram18_blocks(np.asarray(depth + dd), np.asarray(width + dw)))
    assert small * 18 * 1024 >= depth * width  # never less than the raw capacity needed
