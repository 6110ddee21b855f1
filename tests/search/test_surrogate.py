"""The guided sampler's surrogates: the ensemble's calibrated spread and the output warping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from codesign.search.surrogate import OutputWarp, Surrogate


def skewed(n: int, seed: int = 0) -> np.ndarray:
    """Accuracy-like values: most near the top, a long tail of poor ones."""
    rng = np.random.default_rng(seed)
    return 95.0 - rng.gamma(1.0, 6.0, size=n)


def test_warp_standardises_and_unskews_and_inverts() -> None:
    y = skewed(400)
    warp = OutputWarp.fit(y)
    z = warp.transform(y)
    assert z.mean() == pytest.approx(0.0, abs=1e-9)
    assert z.std() == pytest.approx(1.0, rel=1e-9)
    assert abs(stats.skew(z)) < 0.2 < abs(stats.skew(y))
    np.testing.assert_allclose(warp.inverse(z), y, rtol=1e-9, atol=1e-9)
    # monotonic: the order of the values is kept both ways
    grid = np.linspace(-3, 3, 61)
    assert np.all(np.diff(warp.inverse(grid)) > 0)


def test_warp_inverse_stays_finite_where_the_transform_saturates() -> None:
    warp = OutputWarp.fit(skewed(200, seed=1))
    assert warp.lam > 2  # left tail: the transform saturates below
    values = warp.inverse(np.array([-1e3, -50.0, 0.0, 50.0]))
    assert np.all(np.isfinite(values))
    assert values[0] <= values[1] <= values[2] <= values[3]


def test_warp_of_constant_values_is_a_shift() -> None:
    warp = OutputWarp.fit(np.full(5, 3.0))
    np.testing.assert_allclose(warp.transform(np.array([3.0, 4.0])), [0.0, 1.0])
    np.testing.assert_allclose(warp.inverse(np.array([0.0, 1.0])), [3.0, 4.0])


def test_surrogate_is_exact_on_additive_targets_and_its_spread_includes_the_noise() -> None:
    rng = np.random.default_rng(2)
    X = rng.integers(0, 2, size=(120, 8)).astype(float)
    coef = rng.normal(size=8)
    exact = Surrogate(n_members=4, n_estimators=20, ridge=1e-6, seed=0).fit(X, X @ coef + 1.0)
    mean, std = exact.predict(X[:20])
    np.testing.assert_allclose(mean, X[:20] @ coef + 1.0, atol=1e-3)
    assert exact.residual_std_ < 1e-3

    noisy = Surrogate(n_members=4, n_estimators=20, seed=0).fit(X, X @ coef + rng.normal(0.0, 0.5, size=120))
    _, std = noisy.predict(X[:20])
    # the out-of-bag error sees the noise that the members agree to ignore
    assert 0.3 < noisy.residual_std_ < 0.9
    assert np.all(std >= noisy.residual_std_ - 1e-12)


def test_surrogate_is_seeded() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((60, 5))
    y = np.sin(4 * X[:, 0]) + X[:, 1] * X[:, 2]
    a = Surrogate(seed=4).fit(X, y).predict(X)
    b = Surrogate(seed=4).fit(X, y).predict(X)
    c = Surrogate(seed=5).fit(X, y).predict(X)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
