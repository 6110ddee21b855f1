"""Exact solver of the multiple-choice knapsack that per-layer accelerator choices form.

Pick one choice per layer to minimise the summed cost (cycles) subject to several summed resource budgets.

1. Dominated choices are dropped (another is no slower and no more expensive in every resource), and
   budgets that every combination meets are dropped.
2. Relaxation by dynamic programming: for each remaining budget of small capacity (DSP, BRAM), the
   problem with only that budget is solved exactly by DP over the capacity (O(layers x choices x
   capacity), vectorized). A relaxation's optimum that meets every other budget is the optimum of the
   full problem.
3. Otherwise an integer program is solved with CBC (identical layers grouped into one integer count per
   choice, which removes the symmetry between them). With ``gap_rel=0`` (the default) it is solved to
   proven optimality (absolute gap below one cycle); a positive ``gap_rel`` lets CBC stop at that relative
   gap. ``time_limit_s`` bounds CBC's run; the best solution found by then is returned. Either way such an
   answer is not proven optimal, and the returned :class:`MCKPSolution` says so (``proven`` False): the
   callers record it, so an unproven answer is never presented as exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

DP_MAX_CAPACITY = 50_000
SOURCES = MappingProxyType(
    {
        "DP_MAX_CAPACITY": "design choice: the largest budget solved by dynamic programming (its table is "
        "layers x choices x capacity); above it the integer program is used. A solver setting, not hardware",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


@dataclass(frozen=True)
class MCKPSolution:
    """One choice index per layer, and whether it is proven optimal (False only when the integer program
    stopped at a positive relative gap or at its time limit)."""

    choice: list[int]
    proven: bool = True


def pareto_choices(cycles: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Indices of choices not dominated in (cycles, every resource); the first of equal ones is kept."""
    points = np.column_stack([cycles, costs])
    no_worse = (points[:, None, :] <= points[None, :, :]).all(axis=2)  # [k, i]: k no worse than i
    better = (points[:, None, :] < points[None, :, :]).any(axis=2)
    equal = no_worse & (points[:, None, :] == points[None, :, :]).all(axis=2)
    earlier = np.arange(len(points))[:, None] < np.arange(len(points))[None, :]
    dominated = (no_worse & better).any(axis=0) | (equal & earlier).any(axis=0)
    return np.flatnonzero(~dominated)


def _dp_single(cycles: Sequence[np.ndarray], cost: Sequence[np.ndarray], capacity: int) -> list[int] | None:
    """Exact minimum of summed cycles with one budget, by DP over ``0..capacity``; None when infeasible.

    One layer is one vectorized step over (choices, capacity); ties go to the first choice."""
    inf = np.iinfo(np.int64).max // 4
    best = np.zeros(capacity + 1, dtype=np.int64)  # best[d]: min cycles of layers so far using <= d
    budgets = np.arange(capacity + 1)
    picks = []
    for c, r in zip(cycles, cost, strict=True):
        need = np.asarray(r, dtype=np.int64)[:, None]
        rest = budgets[None, :] - need  # (choices, capacity + 1): budget left for the earlier layers
        candidate = np.where(
            rest >= 0,
            np.minimum(best[np.maximum(rest, 0)] + np.asarray(c, dtype=np.int64)[:, None], inf),
            inf,
        )
        pick = np.argmin(candidate, axis=0)
        best = candidate[pick, budgets]
        picks.append(np.where(best >= inf, -1, pick))
    if best[capacity] >= inf:
        return None
    chosen: list[int] = []
    d = capacity
    for pick, r in zip(reversed(picks), reversed(list(cost)), strict=True):
        j = int(pick[d])
        chosen.append(j)
        d -= int(r[j])
    return chosen[::-1]


def _ilp(
    cycles: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    budget: np.ndarray,
    rows: list[int],
    gap_rel: float,
    time_limit_s: float,
) -> tuple[list[int], bool] | None:
    """Identical layers (same choices, cycles and costs) form one group with an integer count per choice:
    the same optimum without the symmetric copies that make branch and bound slow."""
    import pulp

    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for i, (c, r) in enumerate(zip(cycles, costs, strict=True)):
        groups.setdefault((np.asarray(c).tobytes(), np.asarray(r).tobytes()), []).append(i)
    members = list(groups.values())
    problem = pulp.LpProblem("multiple_choice_knapsack", pulp.LpMinimize)
    ys = [
        [
            problem.add_variable(f"y_{g}_{j}", 0, len(layers), cat="Integer" if len(layers) > 1 else "Binary")
            for j in range(len(cycles[layers[0]]))
        ]
        for g, layers in enumerate(members)
    ]
    for layers, row in zip(members, ys, strict=True):
        problem += pulp.lpSum(row) == len(layers)
    problem += pulp.lpSum(
        int(cycles[layers[0]][j]) * y
        for layers, row in zip(members, ys, strict=True)
        for j, y in enumerate(row)
    )
    for k in rows:
        problem += pulp.lpSum(
            int(costs[layers[0]][j, k]) * y
            for layers, row in zip(members, ys, strict=True)
            for j, y in enumerate(row)
        ) <= int(budget[k])
    with warnings.catch_warnings():
        # pulp 3.x announces the bundled CBC's removal in 4.0; it is the only CBC a plain install has
        warnings.simplefilter("ignore", DeprecationWarning)
        # CBC 2.10's integer preprocessing can drop the optimum after substituting fixed rows: keep it off
        solver = pulp.PULP_CBC_CMD(
            msg=False,
            gapAbs=0.5,
            gapRel=gap_rel,
            timeLimit=time_limit_s,
            threads=1,
            options=["preprocess off"],
        )
        problem.solve(solver)
    if problem.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    choice = [0] * len(cycles)
    for layers, row in zip(members, ys, strict=True):
        picks = [j for j, y in enumerate(row) for _ in range(round(y.value() or 0))]
        for layer, j in zip(layers, picks, strict=True):
            choice[layer] = j
    return choice, problem.sol_status == pulp.LpSolutionOptimal and gap_rel == 0


def solve_mckp(
    cycles: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    budget: np.ndarray,
    *,
    gap_rel: float = 0.0,
    time_limit_s: float = 60.0,
) -> MCKPSolution | None:
    """One choice index per layer minimising ``sum cycles[i][j_i]`` with ``sum costs[i][j_i] <= budget``.

    ``cycles[i]`` is (C_i,) integers, ``costs[i]`` is (C_i, R) integers, ``budget`` is (R,). Returns None when
    no combination fits.
    """
    budget = np.asarray(budget, dtype=np.int64)
    kept = [pareto_choices(c, r) for c, r in zip(cycles, costs, strict=True)]
    cyc = [np.asarray(c)[k] for c, k in zip(cycles, kept, strict=True)]
    cst = [np.asarray(r)[k] for r, k in zip(costs, kept, strict=True)]
    low = np.sum([r.min(axis=0) for r in cst], axis=0)
    if (low > budget).any():
        return None
    high = np.sum([r.max(axis=0) for r in cst], axis=0)
    binding = [k for k in range(len(budget)) if high[k] > budget[k]]

    def fits(choice: list[int]) -> bool:
        used = np.sum([r[j] for r, j in zip(cst, choice, strict=True)], axis=0)
        return bool((used <= budget).all())

    def original(choice: list[int]) -> list[int]:
        return [int(k[j]) for k, j in zip(kept, choice, strict=True)]

    if not binding:
        return MCKPSolution(original([int(np.argmin(c)) for c in cyc]))
    for k in sorted(binding, key=lambda k: budget[k]):
        if budget[k] > DP_MAX_CAPACITY:
            continue
        choice = _dp_single(cyc, [r[:, k] for r in cst], int(budget[k]))
        if choice is None:
            return None
        if fits(choice):
            return MCKPSolution(original(choice))
    solved = _ilp(cyc, cst, budget, binding, gap_rel, time_limit_s)
    return None if solved is None else MCKPSolution(original(solved[0]), proven=solved[1])
