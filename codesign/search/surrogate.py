"""Surrogate models of the guided sampler: a bootstrap ensemble with a calibrated spread, and an output
warping that makes skewed objectives (accuracy) easier to regress.

- :class:`Surrogate`: ridge regression plus gradient-boosted trees on its residuals, bootstrapped; an additive
  quantity (latency as a sum of per-operation costs) is exact from a few dozen points while interactions
  (accuracy) are left to the trees. Its predictive standard deviation combines the members' spread with
  the out-of-bag error of the members, so it does not collapse to zero where the members agree but are
  wrong.
- :class:`OutputWarp`: standardise, Yeo-Johnson power transform with the maximum-likelihood lambda, and
  standardise again (HEBO's output warping, Cowen-Rivers et al. 2022); the inverse maps predictive draws
  back to the objective's units, clipped inside the transform's range where it saturates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb
from scipy import stats


class Surrogate:
    """Bootstrap ensemble of ridge regression plus boosted trees on the ridge residuals.

    ``fit`` returns self; ``predict`` gives the members' mean and the predictive standard deviation (target
    units): ``sqrt(spread**2 + noise**2)`` where ``noise`` (``residual_std_``) is the root mean square of the
    members' errors on the rows their bootstrap sample left out (0 with a single member).
    Learned attributes: ``x_mean_``, ``x_scale_``, ``y_mean_``, ``y_scale_``, ``members_``, ``residual_std_``.
    """

    def __init__(
        self,
        *,
        n_members: int = 4,
        n_estimators: int = 60,
        max_depth: int = 4,
        learning_rate: float = 0.15,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.n_members = n_members
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.ridge = ridge
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float).ravel()
        self.x_mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.x_scale_ = np.where(std > 0, std, 1.0)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        Xs, ys = (X - self.x_mean_) / self.x_scale_, (y - self.y_mean_) / self.y_scale_
        rng = np.random.default_rng(self.seed)
        members: list[tuple[np.ndarray, float, Any]] = []
        out_of_bag: list[np.ndarray] = []
        for m in range(self.n_members):
            rows = rng.integers(0, len(ys), len(ys)) if self.n_members > 1 else np.arange(len(ys))
            Xb, yb = Xs[rows], ys[rows]
            coef, bias = self._ridge(Xb, yb)
            residual = yb - Xb @ coef - bias
            trees = None
            if self.n_estimators > 0 and len(yb) >= 8 and float(np.std(residual)) > 1e-9:
                trees = xgb.XGBRegressor(
                    n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                    subsample=0.8, colsample_bytree=0.8, min_child_weight=1.0, random_state=self.seed * 31 + m,
                    n_jobs=1, tree_method="hist",
                )  # fmt: skip
                trees.fit(Xb, residual)
            members.append((coef, bias, trees))
            left_out = np.setdiff1d(np.arange(len(ys)), rows)
            if self.n_members > 1 and left_out.size:
                out_of_bag.append(ys[left_out] - self._member_predict(members[-1], Xs[left_out]))
        self.members_ = members
        errors = np.concatenate(out_of_bag) if out_of_bag else np.zeros(0)
        self.residual_std_ = float(np.sqrt(np.mean(errors**2))) * self.y_scale_ if errors.size else 0.0
        return self

    def _ridge(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        x0, y0 = X.mean(axis=0), float(y.mean())
        Xc = X - x0
        gram = Xc.T @ Xc + self.ridge * np.eye(X.shape[1])
        coef = np.linalg.solve(gram, Xc.T @ (y - y0))
        return coef, y0 - float(x0 @ coef)

    @staticmethod
    def _member_predict(member: tuple[np.ndarray, float, Any], Xs: np.ndarray) -> np.ndarray:
        coef, bias, trees = member
        p = Xs @ coef + bias
        return p + trees.predict(Xs) if trees is not None else p

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xs = (np.asarray(X, dtype=float) - self.x_mean_) / self.x_scale_
        stack = np.stack([self._member_predict(m, Xs) for m in self.members_])
        spread = stack.std(axis=0) * self.y_scale_
        return stack.mean(axis=0) * self.y_scale_ + self.y_mean_, np.sqrt(spread**2 + self.residual_std_**2)


@dataclass(frozen=True)
class OutputWarp:
    """``z = (yeojohnson((y - loc) / scale, lam) - w_loc) / w_scale``, fitted on observed values."""

    loc: float
    scale: float
    lam: float
    w_loc: float
    w_scale: float

    @classmethod
    def fit(cls, y: np.ndarray) -> OutputWarp:
        y = np.asarray(y, dtype=float)
        loc, scale = float(y.mean()), float(y.std())
        if not scale > 0:
            return cls(loc, 1.0, 1.0, 0.0, 1.0)  # constant values: the identity up to a shift
        u = (y - loc) / scale
        lam = float(np.clip(stats.yeojohnson_normmax(u), -4.0, 6.0))
        w = stats.yeojohnson(u, lmbda=lam)
        return cls(loc, scale, lam, float(w.mean()), float(w.std() or 1.0))

    def transform(self, y: np.ndarray) -> np.ndarray:
        u = (np.asarray(y, dtype=float) - self.loc) / self.scale
        return (stats.yeojohnson(u, lmbda=self.lam) - self.w_loc) / self.w_scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Warped values back to the objective's units; values beyond where the transform saturates
        (``lam`` < 0 above, ``lam`` > 2 below) are clipped just inside it."""
        w = np.asarray(z, dtype=float) * self.w_scale + self.w_loc
        lam = self.lam
        pos = w >= 0
        u = np.empty_like(w)
        if abs(lam) < 1e-9:
            u[pos] = np.expm1(w[pos])
        else:
            base = np.maximum(lam * w[pos] + 1.0, 1e-12)
            u[pos] = base ** (1.0 / lam) - 1.0
        if abs(lam - 2.0) < 1e-9:
            u[~pos] = -np.expm1(-w[~pos])
        else:
            base = np.maximum(1.0 - (2.0 - lam) * w[~pos], 1e-12)
            u[~pos] = 1.0 - base ** (1.0 / (2.0 - lam))
        return u * self.scale + self.loc
