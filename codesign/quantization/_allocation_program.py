"""The integer linear program of bit allocation (HAWQ-V3's program, generalised): one binary variable per
(layer group, bit-width), built with pulp and solved by CBC to a *proven* optimum; the explanation of an
infeasible budget (its smallest feasible value); and the public solves :func:`allocate_bits` and
:func:`solve_program`.

Private: import the public names from :mod:`codesign.quantization.allocation`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NoReturn

import numpy as np
import pulp

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.quantization._allocation_problem import BitAllocation, BitAllocationProblem

_FEASIBILITY_TOL = 1e-9
"""Relative slack on budget limits, so a configuration whose cost equals the limit up to float rounding
counts as feasible (the same slack the brute-force checks use)."""


def _scale(values: Sequence[np.ndarray]) -> float:
    top = max((float(np.max(np.abs(v))) for v in values), default=0.0)
    return top if top > 0 else 1.0


_MAX_RESOLVES = 50
"""How many times :func:`_solve` re-solves, excluding the previous answer, when CBC's answer breaks a
budget once checked in the user's units (CBC's tolerances are absolute on the scaled rows)."""


def _within(value: float, limit: float) -> bool:
    """``value`` meets ``limit`` up to the relative float-rounding slack :data:`_FEASIBILITY_TOL`."""
    return value <= limit + _FEASIBILITY_TOL * max(1.0, abs(limit))


def _total(problem: BitAllocationProblem, c: int, chosen: Sequence[int]) -> float:
    return math.fsum(float(grp.costs[c][k]) for grp, k in zip(problem._groups, chosen, strict=True))


def _broken(
    problem: BitAllocationProblem, chosen: Sequence[int], limits: Mapping[int, float]
) -> list[tuple[int, float, float]]:
    """``(column, value, limit)`` of every budget the assignment ``chosen`` breaks, summed exactly
    (:func:`math.fsum`) in the column's own unit, independent of any scaling of the program."""
    out = []
    for c, limit in limits.items():
        value = _total(problem, c, chosen)
        if not _within(value, limit):
            out.append((c, value, limit))
    return out


def _usable(problem: BitAllocationProblem, limits: Mapping[int, float]) -> list[list[int]]:
    """Per group, the choices that can be part of an assignment within every limit. Costs are
    non-negative, so a choice whose cost plus every other group's cheapest cost exceeds a limit never can;
    leaving it out is exact, and keeps one huge cost from swamping the scaled budget row."""
    groups = problem._groups
    usable = [list(range(len(grp.bits))) for grp in groups]
    for c, limit in limits.items():
        cheapest = [float(np.min(grp.costs[c])) for grp in groups]
        for g, grp in enumerate(groups):
            others = math.fsum(v for h, v in enumerate(cheapest) if h != g)
            usable[g] = [k for k in usable[g] if _within(math.fsum((others, float(grp.costs[c][k]))), limit)]
    return usable


def _solve(
    problem: BitAllocationProblem,
    objective: int | None,
    limits: Mapping[int, float],
    time_limit_s: float | None,
    require_bits: int | None = None,
) -> list[int] | None:
    """Index of the chosen bit-width per group, or ``None`` when the constraints admit no point.

    ``objective`` is a cost-column index to minimise, or ``None`` for the summed omega; with
    ``require_bits`` at least one group takes that bit-width. Choices that cannot meet a limit on their
    own are left out, and rows are scaled to unit magnitude so CBC's absolute tolerances work for values
    of any size. Every answer is checked against the limits in the columns' own units; one that breaks a
    limit is excluded and the program solved again (at most :data:`_MAX_RESOLVES` times, then
    :class:`CodesignError`), so no answer that breaks a budget is ever returned.
    """
    usable = _usable(problem, limits)
    if any(not ks for ks in usable):
        return None
    cuts: list[list[int]] = []
    for _ in range(_MAX_RESOLVES + 1):
        chosen = _solve_once(problem, objective, limits, time_limit_s, require_bits, usable, cuts)
        if chosen is None:
            return None
        broken = _broken(problem, chosen, limits)
        if not broken:
            return chosen
        cuts.append(chosen)
    c, value, limit = broken[0]
    raise CodesignError(
        f"bit allocation: CBC's answer breaks the budget on {problem.columns[c]!r} ({value:.9g} > "
        f"{limit:.9g}) after {_MAX_RESOLVES} re-solves; the cost values span too many orders of magnitude"
    )


def _solve_once(
    problem: BitAllocationProblem,
    objective: int | None,
    limits: Mapping[int, float],
    time_limit_s: float | None,
    require_bits: int | None,
    usable: Sequence[Sequence[int]],
    cuts: Sequence[Sequence[int]],
) -> list[int] | None:
    """One CBC solve over the ``usable`` choices, each assignment in ``cuts`` excluded."""
    groups = problem._groups
    if require_bits is not None and not any(
        grp.bits[k] == require_bits for grp, ks in zip(groups, usable, strict=True) for k in ks
    ):
        return None
    prog = pulp.LpProblem("bit_allocation", pulp.LpMinimize)
    x = [{k: prog.add_variable(f"x_{g}_{k}", 0, 1, cat="Binary") for k in ks} for g, ks in enumerate(usable)]
    weights = [
        (grp.omega if objective is None else grp.costs[objective])[list(ks)]
        for grp, ks in zip(groups, usable, strict=True)
    ]
    scale = _objective_scale(weights)
    prog += pulp.lpSum(
        float(w[j]) / scale * x[g][k]
        for g, (w, ks) in enumerate(zip(weights, usable, strict=True))
        for j, k in enumerate(ks)
    )
    for g in range(len(groups)):
        prog += pulp.lpSum(x[g].values()) == 1
    if require_bits is not None:
        prog += (
            pulp.lpSum(x[g][k] for g, grp in enumerate(groups) for k in x[g] if grp.bits[k] == require_bits)
            >= 1
        )
    for c, limit in limits.items():
        rows = [grp.costs[c][list(ks)] for grp, ks in zip(groups, usable, strict=True)]
        cs = _scale(rows)
        slack = _FEASIBILITY_TOL * max(1.0, abs(limit)) / cs
        prog += (
            pulp.lpSum(
                float(r[j]) / cs * x[g][k]
                for g, (r, ks) in enumerate(zip(rows, usable, strict=True))
                for j, k in enumerate(ks)
            )
            <= limit / cs + slack
        )
    for cut in cuts:
        prog += pulp.lpSum(x[g][k] for g, k in enumerate(cut)) <= len(cut) - 1
    with warnings.catch_warnings():
        # pulp 3.x announces the bundled CBC's removal in 4.0; it is the only CBC a plain install has
        warnings.simplefilter("ignore", DeprecationWarning)
        # CBC 2.10's integer preprocessing can drop the optimum after substituting fixed rows: keep it off.
        # No ``threads`` option: CBC is single-threaded without it, and with ``-threads 1`` about one solve in
        # a hundred stalls for 10 s before it returns
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=0.0, options=["preprocess off"])
        status = prog.solve(solver)
    if status == pulp.LpStatusInfeasible:
        return None
    if status != pulp.LpStatusOptimal or prog.sol_status != pulp.LpSolutionOptimal:
        raise CodesignError(
            f"bit allocation: CBC did not prove optimality (status {pulp.LpStatus[status]}, "
            f"solution {pulp.LpSolution.get(prog.sol_status, prog.sol_status)}); raise the time limit"
        )
    return [max(row, key=lambda k, row=row: float(row[k].varValue or 0.0)) for row in x]  # type: ignore[misc]


def _result(
    problem: BitAllocationProblem, chosen: Sequence[int], limits: Mapping[int, float]
) -> BitAllocation:
    bits: dict[str, int] = {}
    for grp, k in zip(problem._groups, chosen, strict=True):
        for i in grp.members:
            bits[problem.layers[i]] = grp.bits[k]
    objective = float(sum(grp.omega[k] for grp, k in zip(problem._groups, chosen, strict=True)))
    values = tuple((column, _total(problem, c, chosen)) for c, column in enumerate(problem.columns))
    return BitAllocation(
        bits=tuple((name, bits[name]) for name in problem.layers),
        objective=objective,
        values=values,
        limits=tuple((problem.columns[c], limit) for c, limit in limits.items()),
    )


def _resolved_limits(problem: BitAllocationProblem) -> dict[int, float]:
    limits: dict[int, float] = {}
    for budget in problem.budgets:
        c = problem.columns.index(budget.column)
        limits[c] = min(limits.get(c, math.inf), problem.limit(budget))
    return limits


def _raise_infeasible(problem: BitAllocationProblem, time_limit_s: float | None) -> NoReturn:
    """Find the first budget that cannot be met given the budgets before it and report its smallest
    feasible value (the optimum of the program that minimises that budget's column)."""
    imposed: dict[int, float] = {}
    for budget in problem.budgets:
        c = problem.columns.index(budget.column)
        limit = problem.limit(budget)
        best = _solve(problem, c, imposed, time_limit_s)
        if best is None:  # pragma: no cover - the previous budgets were checked feasible
            break
        smallest = _total(problem, c, best)
        if not _within(smallest, limit):
            given = (
                f" given {', '.join(str(b) for b in problem.budgets[: problem.budgets.index(budget)])}"
                if imposed
                else ""
            )
            raise InfeasibleError(
                f"budget {budget} (limit {limit:.6g}) is infeasible{given}: the smallest feasible {budget.column} is {smallest:.6g}"
            )
        imposed[c] = min(imposed.get(c, math.inf), limit)
    raise InfeasibleError("the budgets admit no bit assignment")  # pragma: no cover


def allocate_bits(problem: BitAllocationProblem, *, time_limit_s: float | None = None) -> BitAllocation:
    """The assignment minimising summed Omega under every budget of ``problem``, proven optimal by CBC and
    checked against every budget in the columns' own units before it is returned.

    Raises :class:`InfeasibleError` naming the first budget that cannot be met and its smallest feasible
    value, and :class:`CodesignError` when CBC stops before proving optimality (``time_limit_s``).
    """
    limits = _resolved_limits(problem)
    chosen = _solve(problem, None, limits, time_limit_s)
    if chosen is None:
        _raise_infeasible(problem, time_limit_s)
    return _result(problem, chosen, limits)


def solve_program(
    problem: BitAllocationProblem,
    *,
    minimise: str | None = None,
    require_bits: int | None = None,
    time_limit_s: float | None = None,
) -> BitAllocation | None:
    """The proven optimum of summed Omega (or of the cost column ``minimise``) under the problem's
    budgets, with at least one layer at ``require_bits`` when given; ``None`` when nothing is feasible."""
    if minimise is not None and minimise not in problem.columns:
        raise CodesignError(
            f"unknown cost column {minimise!r}; known: {', '.join(problem.columns) or 'none'}"
        )
    limits = _resolved_limits(problem)
    objective = None if minimise is None else problem.columns.index(minimise)
    chosen = _solve(problem, objective, limits, time_limit_s, require_bits)
    return None if chosen is None else _result(problem, chosen, limits)


def _objective_scale(weights: Sequence[np.ndarray]) -> float:
    """A divisor that puts the smallest possible objective (every group at its cheapest choice) near
    1000: CBC's tolerances are absolute, and with Omega spanning many orders of magnitude a unit-scaled
    objective let it stop at a point 1e-6 to 1e-2 worse than the optimum. Bounded so that no coefficient
    exceeds 1e9."""
    top = _scale(weights)
    low = sum(float(np.min(np.abs(w))) for w in weights)
    return max(low / 1000.0, top * 1e-9)
