"""The loop-tiling formulas of the overlay template (Zhang et al. FPGA'15): one Tm x Tn PE array, Tr x Tc
output tiles, a Tm-lane vector unit for pooling and residual adds.

This module is the one copy of these formulas: :func:`simulators.overlay.overlay_arrays` costs every layer
with them, and the latency predictors' cycle hints (:mod:`codesign.predictors.features`,
:mod:`codesign.predictors.layer_features`) call :func:`layer_tiling_cycles` and
:func:`layer_tiling_offchip_bytes`. The formulas themselves are written out in :mod:`simulators.overlay`'s
docstring.

The array functions work elementwise on integers or on integer numpy arrays that broadcast (the overlay
multiplies ``(L, 1)`` layer columns by rows of distinct parameter values): per layer, ``cout``/``cin`` are
its output/input channels, ``groups`` its convolution groups (1 for every other kind), ``weighted`` and
``is_pool``/``is_add`` its kind. A layer's compute cycles are the product
``output_lane_passes * input_lane_passes * pixel_cycles`` and its off-chip bits
``input_reloads * input_bits + fixed_bits``, so a batch can compute each factor once per distinct value of
the parameters it depends on.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from codesign.core.values import Layer

Int: TypeAlias = "int | np.ndarray"
"""An integer or an integer array (broadcasting)."""


def cdiv(a: Int, b: Int) -> Int:
    """``ceil(a / b)`` of positive integers, exactly."""
    return -(-a // b)


def tile_extent(size: Int, tile: Int) -> np.ndarray:
    """``Tr' = min(Tr, R)``: a loop never runs past the feature map, so a small map is not charged a
    whole tile."""
    return np.minimum(tile, size)


def packed_groups(cout: Int, groups: Int, tm: Int) -> np.ndarray:
    """``gp``: the groups that share the array when a group has fewer outputs ``M = cout / G`` than the
    ``Tm`` lanes (``min(max(1, Tm // M), G)``; 1 when ``M >= Tm``)."""
    m_g = cout // groups
    return np.minimum(np.where(m_g < tm, np.maximum(1, tm // m_g), 1), groups)


def output_lane_passes(cout: Int, groups: Int, tm: Int, weighted: Int) -> np.ndarray:
    """Passes over the ``Tm`` output lanes: ``ceil(G/gp) * ceil(M/Tm)`` for a weighted layer,
    ``ceil(cout/Tm)`` on the vector unit otherwise."""
    passes = cdiv(groups, packed_groups(cout, groups, tm)) * cdiv(cout // groups, tm)
    return np.where(weighted, passes, cdiv(cout, tm))


def input_lane_passes(cin: Int, groups: Int, tn_lanes: Int, weighted: Int) -> np.ndarray:
    """Passes over the input lanes: ``ceil(N/Tn')`` for a weighted layer (``N = cin / G`` inputs per
    group, ``Tn' = Tn * f`` lanes, ``f`` the narrow-precision speed-up), 1 otherwise."""
    return np.where(weighted, cdiv(cin // groups, tn_lanes), 1)


def spatial_tiles(out_h: Int, out_w: Int, tr: Int, tc: Int) -> Int:
    """``ceil(R/Tr) * ceil(C/Tc)``: the output tiles of an ``R x C`` output."""
    return cdiv(out_h, tr) * cdiv(out_w, tc)


def pixel_cycles(
    out_h: Int, out_w: Int, kernel: Int, tr: Int, tc: Int, weighted: Int, windowed: Int
) -> np.ndarray:
    """Cycles per lane pass: ``ceil(R/Tr) * ceil(C/Tc) * Tr' * Tc' * K*K`` for a weighted layer, ``R*C*K*K``
    on the vector unit for a ``windowed`` layer (pooling, upsampling: K*K input taps per output) and
    ``R*C`` for an add or a concat (one element per lane and cycle)."""
    k2 = kernel * kernel
    tiled = spatial_tiles(out_h, out_w, tr, tc) * tile_extent(out_h, tr) * tile_extent(out_w, tc) * k2
    out_px = out_h * out_w
    return np.where(weighted, tiled, np.where(windowed, out_px * k2, out_px))


def input_tile(stride: Int, kernel: Int, tr_e: Int, tc_e: Int) -> Int:
    """Input elements per channel of one ``Tr' x Tc'`` output tile: ``(S*Tr'+K-S) * (S*Tc'+K-S)``, with
    ``K`` the window's extent (the effective kernel of a dilated conv)."""
    return (stride * tr_e + kernel - stride) * (stride * tc_e + kernel - stride)


def input_reloads(cout: Int, groups: Int, tm: Int, weighted: Int) -> np.ndarray:
    """How often a weighted layer's input tiles are loaded: once per output-channel tile, ``ceil(M/Tm)``
    (0 for other layers, whose input counts in :func:`fixed_bits`)."""
    return np.where(weighted, cdiv(cout // groups, tm), 0)


def input_bits(
    cin: Int, out_h: Int, out_w: Int, kernel: Int, stride: Int, abits: Int, tr: Int, tc: Int, weighted: Int
) -> np.ndarray:
    """Bits of one load of a weighted layer's input tiles: ``ceil(R/Tr)*ceil(C/Tc) * cin * input tile *
    act bits`` (0 for other layers); ``kernel`` is the window's extent."""
    tile = input_tile(stride, kernel, tile_extent(out_h, tr), tile_extent(out_w, tc))
    return np.where(weighted, spatial_tiles(out_h, out_w, tr, tc) * cin * tile * abits, 0)


def fixed_bits(
    cin: Int,
    cout: Int,
    in_h: Int,
    in_w: Int,
    out_h: Int,
    out_w: Int,
    params: Int,
    wbits: Int,
    abits: Int,
    tr: Int,
    tc: Int,
    weighted: Int,
    is_add: Int,
) -> np.ndarray:
    """Off-chip bits that do not depend on ``Tm``: the weights once per spatial tile (a weighted layer) or
    the input once (twice for an add), plus the output written once."""
    other = np.where(is_add, 2, 1) * cin * in_h * in_w * abits
    read = np.where(weighted, spatial_tiles(out_h, out_w, tr, tc) * params * wbits, other)
    return read + cout * out_h * out_w * abits


def _columns(layer: Layer) -> dict[str, int]:
    """A layer's integers as :class:`simulators.common.LayerArrays` holds them (groups only for
    convolutions, weight bits 0 without weights)."""
    return {
        "cin": layer.in_channels,
        "cout": layer.out_channels,
        "groups": layer.groups if layer.kind == "conv" else 1,
        "weighted": layer.has_weights,
        "wbits": layer.weight_bits if layer.has_weights else 0,
    }


def layer_tiling_cycles(layer: Layer, tm: int, tn: int, tr: int, tc: int, lane_factor: int = 1) -> int:
    """Compute cycles of one layer on a ``tm x tn`` array with ``tr x tc`` output tiles (the vector unit
    for pooling and adds); ``lane_factor`` is the narrow-precision speed-up ``f`` of the input lanes
    (:func:`simulators.overlay.array_precision`; 1 at the array's own precision)."""
    c = _columns(layer)
    weighted = c["weighted"]
    cycles = (
        output_lane_passes(c["cout"], c["groups"], tm, weighted)
        * input_lane_passes(c["cin"], c["groups"], tn * lane_factor, weighted)
        * pixel_cycles(layer.out_h, layer.out_w, layer.kernel, tr, tc, weighted, layer.kind in ("pool", "upsample"))
    )
    return int(cycles)


def layer_tiling_offchip_bytes(layer: Layer, tm: int, tr: int, tc: int) -> float:
    """Off-chip bytes of one layer with ``tm`` output lanes and ``tr x tc`` output tiles: input tiles once
    per output-channel tile, weights once per spatial tile, output once."""
    c = _columns(layer)
    weighted, abits = c["weighted"], layer.act_bits
    reloads = input_reloads(c["cout"], c["groups"], tm, weighted)
    loaded = input_bits(
        c["cin"], layer.out_h, layer.out_w, layer.effective_kernel, layer.stride, abits, tr, tc, weighted
    )
    fixed = fixed_bits(
        c["cin"], c["cout"], layer.in_h, layer.in_w, layer.out_h, layer.out_w, layer.params, c["wbits"],
        abits, tr, tc, weighted, layer.kind == "add",
    )  # fmt: skip
    return int(reloads * loaded + fixed) / 8.0
