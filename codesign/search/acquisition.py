"""Acquisition for the guided sampler: how much hypervolume a candidate would add to the measured front.

- :func:`hypervolume_improvement`: the exact gain of each candidate on its own (vectorised in two dimensions);
- :func:`best_improvement`: the same, exact only for the rows that can be the arg-max in three or more;
- :func:`expected_improvement`: the expected gain under the surrogates' predictive distribution, by Monte
  Carlo over shared draws (expected hypervolume improvement, Emmerich et al. 2006);
- :func:`epsilon_gap`: how far a dominated candidate is from the front, the tie-breaker when nothing gains.

Every function works on minimised objectives.
"""

from __future__ import annotations

import moocore
import numpy as np


def hypervolume_improvement(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each row of ``points`` (n, k; minimised) would add to ``front`` (m, k) on its own,
    bounded by ``reference``. Exact; vectorised in two dimensions."""
    points = np.asarray(points, dtype=float)
    n, k = points.shape
    out = np.zeros(n)
    inside = np.all(points < reference, axis=1)
    front = front[np.all(front < reference, axis=1)] if len(front) else front.reshape(0, k)
    if len(front):
        dominated = np.zeros(n, dtype=bool)
        for f in front:
            dominated |= np.all(f <= points, axis=1)
        inside &= ~dominated
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return out
    if len(front) == 0:
        out[idx] = np.prod(reference - points[idx], axis=1)
        return out
    if k == 2:
        front = front[moocore.is_nondominated(front)]
        front = front[np.argsort(front[:, 0])]
        # staircase: the area of the box [p, ref] minus the part the front already covers
        xs = np.concatenate([front[:, 0], [reference[0]]])
        ys = front[:, 1]
        p = points[idx]
        x_lo = np.maximum(xs[:-1][None, :], p[:, :1])
        x_hi = np.maximum(xs[1:][None, :], p[:, :1])
        heights = np.clip(reference[1] - np.maximum(ys[None, :], p[:, 1:2]), 0.0, None)
        covered = ((x_hi - x_lo) * heights).sum(axis=1)
        out[idx] = np.prod(reference - p, axis=1) - covered
        return np.clip(out, 0.0, None)
    base = float(moocore.hypervolume(front, ref=reference))
    for i in idx:
        out[i] = float(moocore.hypervolume(np.vstack([front, points[i]]), ref=reference)) - base
    return np.clip(out, 0.0, None)


def best_improvement(
    points: np.ndarray, front: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, shortlist: int = 200
) -> np.ndarray:
    """``weights * hypervolume_improvement`` for the rows that can be the arg-max. Exact for every row in
    two dimensions; in more, exact only for a shortlist: the ``shortlist`` best rows by the summed
    two-dimensional gains over every pair of objectives (vectorised) and by the weighted volume of the box
    between the point and the reference (an upper bound); the other rows score 0."""
    k = points.shape[1]
    if k == 2 or len(front) == 0:
        return hypervolume_improvement(points, front, reference) * weights
    proxy = np.zeros(len(points))
    for a in range(k):
        for b in range(a + 1, k):
            cols = [a, b]
            proxy += hypervolume_improvement(points[:, cols], front[:, cols], reference[cols])
    bound = np.prod(np.clip(reference - points, 0.0, None), axis=1)
    rows = np.union1d(
        np.argsort(-proxy * weights, kind="stable")[:shortlist],
        np.argsort(-bound * weights, kind="stable")[:shortlist],
    )
    rows = rows[(proxy[rows] > 0) | (bound[rows] > 0)]
    out = np.zeros(len(points))
    if rows.size:
        out[rows] = hypervolume_improvement(points[rows], front, reference) * weights[rows]
    return out


def epsilon_gap(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """The additive amount each row of ``points`` must improve in every objective to no longer be
    dominated by ``front`` (0 for non-dominated rows)."""
    if len(front) == 0:
        return np.zeros(len(points))
    gaps = np.full(len(points), -np.inf)
    for f in front:
        gaps = np.maximum(gaps, np.min(points - f[None, :], axis=1))
    return np.clip(gaps, 0.0, None)


def expected_improvement(
    draws: np.ndarray, front: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, shortlist: int = 200
) -> np.ndarray:
    """Mean over ``draws`` (samples, n, k) of :func:`best_improvement`: the expected hypervolume gain of
    each of the ``n`` candidates, weighted by ``weights`` (their probability of being feasible)."""
    total = np.zeros(draws.shape[1])
    for sample in draws:
        total += best_improvement(sample, front, reference, weights, shortlist=shortlist)
    return total / len(draws)
