"""Exact bit allocation by integer linear programming (HAWQ-V3's program, generalised).

One binary variable per (layer group, allowed bit-width): every group of tied layers takes exactly one
bit-width, the summed perturbation ``Omega`` is minimised, and every budget is a linear constraint on a
named per-(layer, bits) cost column (model size, bit-ops, latency from a hardware model's table, DSP or
any other resource total). The program is solved by CBC (bundled with pulp) and only a *proven* optimum is
returned; an infeasible budget raises :class:`codesign.core.errors.InfeasibleError` whose message states the
smallest value that budget can take.

This is the public module. The parts live in private modules by stage, re-exported here:
:class:`Budget` (``_budget``); :class:`BitAllocationProblem` and :class:`BitAllocation`
(``_allocation_problem``); the program and its solves :func:`allocate_bits`, :func:`solve_program`
(``_allocation_program``); :func:`sensitivity_front` (``_allocation_front``); :func:`negative_trace_note`
(``_notes``, for a table's ``trace`` column). The model-size and bit-ops
cost columns of a network (:func:`network_costs`) are defined here.
"""

from __future__ import annotations

from collections.abc import Sequence

from codesign.core.values import Network
from codesign.quantization._allocation_front import sensitivity_front
from codesign.quantization._allocation_problem import (
    MAX_VALUE,
    MIN_VALUE,
    BitAllocation,
    BitAllocationProblem,
)
from codesign.quantization._allocation_program import allocate_bits, solve_program
from codesign.quantization._budget import Budget
from codesign.quantization._notes import negative_trace_note

__all__ = [
    "MAX_VALUE",
    "MIN_VALUE",
    "BitAllocation",
    "BitAllocationProblem",
    "Budget",
    "allocate_bits",
    "negative_trace_note",
    "network_costs",
    "sensitivity_front",
    "solve_program",
]


def network_costs(network: Network, bit_choices: Sequence[int]) -> dict[str, dict[str, dict[int, float]]]:
    """Model-size and bit-ops cost columns for the weighted layers of ``network`` at each weight
    bit-width: ``size_mb`` (params x bits / 8 / 1e6) and ``bops`` (MACs x weight bits x activation bits,
    activation bits as the network gives them)."""
    size: dict[str, dict[int, float]] = {}
    bops: dict[str, dict[int, float]] = {}
    for layer in network.weighted_layers:
        size[layer.name] = {b: layer.params * b / 8e6 for b in bit_choices}
        bops[layer.name] = {b: float(layer.macs * b * layer.act_bits) for b in bit_choices}
    return {"size_mb": size, "bops": bops}
