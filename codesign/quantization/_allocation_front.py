"""The sensitivity-versus-cost front of a bit-allocation problem (HAWQ-V2's Pareto frontier): a sweep of
the budget on one cost column, evenly spaced or exact (epsilon-constraint), reduced to its non-dominated
optima.

Private: import :func:`sensitivity_front` from :mod:`codesign.quantization.allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from codesign.core.errors import CodesignError
from codesign.quantization._allocation_problem import BitAllocation, BitAllocationProblem
from codesign.quantization._allocation_program import (
    _FEASIBILITY_TOL,
    _raise_infeasible,
    _resolved_limits,
    _result,
    _solve,
)


def sensitivity_front(
    problem: BitAllocationProblem, column: str, *, points: int | None = 25, max_points: int = 10_000
) -> tuple[BitAllocation, ...]:
    """The sensitivity-versus-cost front on ``column`` (HAWQ-V2's Pareto frontier), other budgets kept.

    With ``points`` the budget on ``column`` sweeps that many evenly spaced values from its smallest
    feasible total to the total of the unconstrained optimum (beyond it Omega cannot fall); with ``points=None`` the sweep is exact (epsilon-constraint:
    each next budget is just below the last optimum's cost), so every Pareto-optimal point is found.
    Returns the distinct non-dominated optima, cheapest first.
    """
    if column not in problem.columns:
        raise CodesignError(
            f"front: unknown cost column {column!r}; known: {', '.join(problem.columns) or 'none'}"
        )
    if points is not None and points < 2:
        raise CodesignError(f"front: points must be >= 2 or None, got {points}")
    others = problem.with_budgets([b for b in problem.budgets if b.column != column])
    c = problem.columns.index(column)
    base = _resolved_limits(others)
    cheapest = _solve(others, c, base, None)
    if cheapest is None:
        _raise_infeasible(others, None)
    low = _result(others, cheapest, base).values_dict()[column]
    found: list[BitAllocation] = []
    if points is not None:
        best = _solve(others, None, base, None)
        if best is None:  # pragma: no cover - cheapest is feasible under the same budgets
            _raise_infeasible(others, None)
        high = _result(others, best, base).values_dict()[column]
        for limit in np.linspace(low, max(low, high), points):
            chosen = _solve(others, None, {**base, c: float(limit)}, None)
            if chosen is not None:
                found.append(_result(others, chosen, {**base, c: float(limit)}))
    else:
        limit = math.inf
        while len(found) < max_points:
            chosen = _solve(others, None, base if math.isinf(limit) else {**base, c: limit}, None)
            if chosen is None:
                break
            point = _result(others, chosen, {**base, c: limit})
            found.append(point)
            cost = point.values_dict()[column]
            if cost <= low:
                break
            limit = cost - max(1e-7 * max(abs(cost), 1.0), 2 * _FEASIBILITY_TOL * max(1.0, abs(cost)))
    return _non_dominated(found, column)


def _non_dominated(points: Sequence[BitAllocation], column: str) -> tuple[BitAllocation, ...]:
    ordered = sorted(points, key=lambda p: (p.values_dict()[column], p.objective))
    front: list[BitAllocation] = []
    for point in ordered:
        if not front or point.objective < front[-1].objective - 1e-12 * max(1.0, abs(front[-1].objective)):
            front.append(point)
    return tuple(front)
