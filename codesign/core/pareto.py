"""Pareto machinery: pure functions over arrays.

Every function first turns objectives into losses (all minimised), as pymoo and Optuna do. Constraints
follow the same convention as Optuna: a point is feasible when every constraint value is <= 0. Fronts are
taken over feasible points only; an all-infeasible set has an empty front.

Non-dominance and hypervolume use moocore's exact C implementations.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

from codesign.core.errors import CodesignError

DIRECTIONS = ("minimize", "maximize")


def to_losses(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``values`` (n, k) as losses: maximised columns are negated."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise CodesignError(f"objectives: expected an (n, {len(directions)}) array, got shape {values.shape}")
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise CodesignError(f"objectives: unknown direction {bad[0]!r}; expected one of {', '.join(DIRECTIONS)}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * sign


def feasible_mask(constraints: np.ndarray | None, n: int) -> np.ndarray:
    """True where every constraint value is <= 0 (all True when there are no constraints)."""
    if constraints is None:
        return np.ones(n, dtype=bool)
    constraints = np.asarray(constraints, dtype=float).reshape(n, -1)
    if constraints.shape[1] == 0:
        return np.ones(n, dtype=bool)
    return np.all(constraints <= 0.0, axis=1)


def pareto_mask(losses: np.ndarray, constraints: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the feasible non-dominated rows of ``losses`` (n, k), all minimised.

    Identical points are all kept (two different pairs with equal objectives are both optimal). Rows with
    NaN objectives are never on the front.
    """
    losses = np.asarray(losses, dtype=float)
    n = losses.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    ok = feasible_mask(constraints, n) & np.all(np.isfinite(losses), axis=1)
    idx = np.flatnonzero(ok)
    if idx.size:
        mask[idx] = moocore.is_nondominated(losses[idx], keep_weakly=True)
    return mask


def pareto_ranks(losses: np.ndarray, constraints: np.ndarray | None = None) -> np.ndarray:
    """Non-domination rank per row (0 = the front); infeasible rows rank after every feasible one, ordered
    by their total violation; rows with NaN objectives get the last rank."""
    losses = np.asarray(losses, dtype=float)
    n = losses.shape[0]
    ranks = np.full(n, -1, dtype=int)
    feasible = feasible_mask(constraints, n) & np.all(np.isfinite(losses), axis=1)
    next_rank = 0
    if feasible.any():
        idx = np.flatnonzero(feasible)
        ranks[idx] = moocore.pareto_rank(losses[idx])
        next_rank = int(ranks[idx].max()) + 1
    rest = np.flatnonzero(ranks < 0)
    if rest.size:
        if constraints is not None:
            violation = np.clip(np.asarray(constraints, dtype=float).reshape(n, -1)[rest], 0.0, None).sum(axis=1)
        else:
            violation = np.zeros(rest.size)
        order = np.argsort(violation, kind="stable")
        _, dense = np.unique(violation[order], return_inverse=True)
        ranks[rest[order]] = next_rank + dense
    return ranks


def hypervolume(losses: np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Exact hypervolume dominated by ``losses`` (n, k; minimised) and bounded by ``reference``.

    Points that do not strictly dominate the reference contribute nothing.
    """
    losses = np.asarray(losses, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if losses.ndim != 2 or losses.shape[1] != ref.size:
        raise CodesignError(f"hypervolume: points of shape {losses.shape} do not match a {ref.size}-d reference")
    inside = np.all(losses < ref, axis=1) & np.all(np.isfinite(losses), axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(losses[inside], ref=ref))


def reference_point(losses: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """The nadir of ``losses`` plus ``margin`` times each objective's range (a common, scale-aware choice)."""
    losses = np.asarray(losses, dtype=float)
    finite = losses[np.all(np.isfinite(losses), axis=1)]
    if finite.size == 0:
        raise CodesignError("hypervolume: no finite point to take a reference from")
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return hi + margin * span
