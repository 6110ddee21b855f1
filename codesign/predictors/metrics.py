"""Regression and ranking metrics for predictors: MAPE, RMSE, share within a relative band, Spearman's rho
and Kendall's tau, bundled as one frozen :class:`RegressionMetrics`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from codesign.core.errors import CodesignError


@dataclass(frozen=True)
class RegressionMetrics:
    """How well ``predicted`` matches ``actual``.

    ``mape`` is the mean absolute percentage error as a fraction (0.03 means 3 %), ``rmse`` is in the
    target's unit, ``within_5``/``within_10``/``within_15`` are the shares of predictions whose relative
    error is at most 5/10/15 %, ``spearman`` and ``kendall`` are rank correlations in [-1, 1].
    """

    n: int
    mape: float
    rmse: float
    within_5: float
    within_10: float
    within_15: float
    spearman: float
    kendall: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _as_pair(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if y.shape != p.shape:
        raise CodesignError(f"metrics: {y.size} actual values but {p.size} predictions; expected equal lengths")
    if y.size < 2:
        raise CodesignError(f"metrics: need at least 2 values, got {y.size}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise CodesignError("metrics: actual and predicted values must be finite numbers")
    return y, p


def relative_errors(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> np.ndarray:
    """``|predicted - actual| / |actual|`` per value; raises when an actual value is 0."""
    y, p = _as_pair(actual, predicted)
    if np.any(y == 0):
        raise CodesignError("metrics: relative errors need non-zero actual values, found a 0")
    return np.abs(p - y) / np.abs(y)


def mape(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error as a fraction."""
    return float(np.mean(relative_errors(actual, predicted)))


def rmse(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    y, p = _as_pair(actual, predicted)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def within(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray, fraction: float) -> float:
    """Share of predictions whose relative error is at most ``fraction`` (0.1 for +-10 %)."""
    # a tiny slack so that an error of exactly 10 % counts as within 10 % despite float rounding
    return float(np.mean(relative_errors(actual, predicted) <= fraction + 1e-12))


def _rank_corr(value: float) -> float:
    # constant inputs make the correlation undefined; report no correlation rather than NaN
    return 0.0 if not np.isfinite(value) else float(value)


def _constant(*arrays: np.ndarray) -> bool:
    return any(a.size and np.all(a == a.flat[0]) for a in arrays)


def spearman(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho (tied values take their average rank); 0 when either side is constant."""
    y, p = _as_pair(actual, predicted)
    return 0.0 if _constant(y, p) else _rank_corr(stats.spearmanr(y, p).statistic)


def kendall(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (ties handled); 0 when either side is constant."""
    y, p = _as_pair(actual, predicted)
    return 0.0 if _constant(y, p) else _rank_corr(stats.kendalltau(y, p).statistic)


def regression_metrics(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> RegressionMetrics:
    """Every metric at once. Relative metrics need non-zero actual values."""
    y, p = _as_pair(actual, predicted)
    rel = relative_errors(y, p)
    return RegressionMetrics(
        n=int(y.size),
        mape=float(np.mean(rel)),
        rmse=rmse(y, p),
        within_5=float(np.mean(rel <= 0.05 + 1e-12)),
        within_10=float(np.mean(rel <= 0.10 + 1e-12)),
        within_15=float(np.mean(rel <= 0.15 + 1e-12)),
        spearman=spearman(y, p),
        kendall=kendall(y, p),
    )
