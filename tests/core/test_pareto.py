"""Pareto sets and hypervolume against brute force on random data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from codesign.core import pareto
from codesign.core.errors import CodesignError


def brute_front(losses: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    n = len(losses)
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if not feasible[i]:
            continue
        dominated = any(
            feasible[j] and np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i]) for j in range(n) if j != i
        )
        out[i] = not dominated
    return out


def brute_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact: split space into the grid cells of all coordinates and add the dominated cells."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    axes = [np.unique(np.concatenate([points[:, d], [ref[d]]])) for d in range(points.shape[1])]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        lo = np.array([axes[d][c] for d, c in enumerate(cell)])
        hi = np.array([axes[d][c + 1] for d, c in enumerate(cell)])
        if np.any(np.all(points <= lo, axis=1)):
            total += float(np.prod(hi - lo))
    return total


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_front_matches_brute_force_with_constraints(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    losses = rng.integers(0, 6, size=(60, k)).astype(float)  # small integers: many ties and duplicates
    g = rng.normal(size=(60, 2))
    got = pareto.pareto_mask(losses, g)
    want = brute_front(losses, np.all(g <= 0, axis=1))
    np.testing.assert_array_equal(got, want)


def test_mixed_directions_negate_maximised_objectives() -> None:
    values = np.array([[0.9, 5.0], [0.8, 4.0], [0.7, 6.0], [0.9, 4.5]])
    mask = pareto.pareto_mask(pareto.to_losses(values, ["maximize", "minimize"]))
    assert mask.tolist() == [False, True, False, True]


def test_all_infeasible_gives_empty_front_and_ranks_by_violation() -> None:
    losses = np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 3.0]])
    g = np.array([[2.0], [0.5], [1.0]])
    assert not pareto.pareto_mask(losses, g).any()
    assert pareto.pareto_ranks(losses, g).tolist() == [2, 0, 1]


def test_ranks_put_feasible_fronts_first() -> None:
    losses = np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    g = np.array([[0.0], [0.0], [1.0], [0.0]])
    assert pareto.pareto_ranks(losses, g).tolist() == [0, 1, 3, 2]


def test_nan_rows_are_never_on_the_front() -> None:
    losses = np.array([[np.nan, 0.0], [1.0, 1.0]])
    assert pareto.pareto_mask(losses).tolist() == [False, True]


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_hypervolume_matches_brute_force(k: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    points = rng.random((25 if k == 2 else 12, k))
    ref = np.full(k, 0.9)  # some points lie outside the reference box
    assert pareto.hypervolume(points, ref) == pytest.approx(brute_hypervolume(points, ref), rel=1e-12, abs=1e-15)


def test_hypervolume_hand_case() -> None:
    assert pareto.hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == pytest.approx(3.0)
    assert pareto.hypervolume(np.array([[4.0, 4.0]]), [3.0, 3.0]) == 0.0


def test_reference_point_is_nadir_plus_margin() -> None:
    ref = pareto.reference_point(np.array([[0.0, 10.0], [2.0, 20.0]]), margin=0.01)
    np.testing.assert_allclose(ref, [2.02, 20.1])


def test_bad_shapes_and_directions_are_named() -> None:
    with pytest.raises(CodesignError, match="unknown direction 'up'"):
        pareto.to_losses(np.zeros((2, 1)), ["up"])
    with pytest.raises(CodesignError, match="reference"):
        pareto.hypervolume(np.zeros((2, 2)), [1.0, 1.0, 1.0])
