"""Learned latency predictors for (network, accelerator) pairs, with the FLOPs/bit-ops baseline.

:class:`LatencyPredictor` learns in one of two ways:

- from per-layer latencies (a simulator's per-layer report): an XGBoost model of the log ratio between
  each layer's latency and its cycle hint (:mod:`codesign.predictors.layer_features`); a network's latency
  is the sum of its layers', passed through a non-negative linear calibration fitted on the totals (exact
  for models whose layers add up, a correction for pipelined ones). Layers recur across architecture
  families, so this generalises to families never seen in training;
- from whole-network latencies only (measurements): a non-negative linear model on a few scale features
  (MACs, bit-ops, bytes moved, cycle hints divided by the clock, or a prior such as a simulator's
  estimate), then an XGBoost model of the log ratio between the latency and that linear base. The linear
  base keeps predictions sane outside the training range; the trees learn what it misses.

:class:`BitOpsBaseline` is the plain linear fit on MACs and bit-ops that every report shows beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from scipy.optimize import nnls

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Network
from codesign.predictors.features import (
    DEAD_FEATURE_NAMES,
    KIND_FEATURE_NAMES,
    FeatureSchema,
    LatencyFeaturizer,
)
from codesign.predictors.layer_features import LayerFeaturizer
from codesign.predictors.persist import read_meta, write_meta

PRIOR_FEATURE = "prior_ms"
_BASE_COLUMNS = (
    "macs", "bit_ops", "act_bytes", "weight_bytes", "ops_pool", "ops_add", "n_layers",
    "tiling_ms", "folding_sum_ms", "folding_max_ms",
)  # fmt: skip
_KERNEL_COLUMNS = KIND_FEATURE_NAMES
_LIVE_COLUMNS = tuple(f"live_{name}" for name in KIND_FEATURE_NAMES)
BASES = {
    "scale": _BASE_COLUMNS,
    "kernels": _KERNEL_COLUMNS,
    "kernels+dead": (*_LIVE_COLUMNS, *DEAD_FEATURE_NAMES),
    "live_kernels": _LIVE_COLUMNS,
    "prior": (PRIOR_FEATURE,),
    "prior+kernels": (PRIOR_FEATURE, *_KERNEL_COLUMNS),
}
"""Column sets of the linear base. ``kernels`` is the per-operation additive model: latency = sum over
layer types of a cost per MAC or per element operation (nn-Meter's and HELP's additivity). Where networks
list dead layers (:attr:`codesign.core.values.Network.dead`), ``kernels+dead`` costs their work apart
from the live layers' (a runtime that runs them, at its own cost) and ``live_kernels`` leaves it out (one
that prunes them). ``prior`` is a linear calibration of an estimate such as a simulator's."""
BASES_WITH_DEAD = ("kernels+dead", "live_kernels")
"""The bases that only differ from ``kernels`` when some network lists dead layers."""
LOSSES = ("relative", "absolute")
"""What the linear base minimises: squared relative error (every latency weighs the same in proportion)
or squared error in ms (near-zero latencies, such as a runtime that folds a whole network away, weigh
next to nothing instead of dominating)."""
_CYCLE_COLUMNS = {"tiling_ms": "tiling_cycles", "folding_sum_ms": "folding_cycles_sum", "folding_max_ms": "folding_cycles_max"}


def _column(X: np.ndarray, schema: FeatureSchema, name: str) -> np.ndarray:
    if name.startswith("live_"):  # the work of the layers that are not dead
        total = name.removeprefix("live_")
        return X[:, schema.names.index(total)] - X[:, schema.names.index(f"dead_{total}")]
    if name in _CYCLE_COLUMNS:
        clock = X[:, schema.names.index("accel.clock_mhz")]
        cycles = X[:, schema.names.index(_CYCLE_COLUMNS[name])]
        # cycles / (MHz * 1e3) is milliseconds; configurations without a clock contribute nothing
        return np.divide(cycles, clock * 1e3, out=np.zeros_like(cycles), where=clock > 0)
    return X[:, schema.names.index(name)]


@dataclass(frozen=True)
class LinearFit:
    """``latency = intercept + sum(coef * column)`` with every coefficient >= 0 (more work is never
    faster), fitted to minimise squared relative error (``relative``) or squared error."""

    columns: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float

    @classmethod
    def fit(cls, columns: Sequence[str], A: np.ndarray, y: np.ndarray, *, relative: bool = True) -> LinearFit:
        scale = np.maximum(np.abs(A).max(axis=0), 1e-30)
        design = np.column_stack([A / scale, np.ones(len(y))])
        # relative: minimise sum((pred - y) / y)^2; absolute: rows scaled by the mean so the solver sees O(1)
        weight = 1.0 / y if relative else np.full(len(y), 1.0 / float(np.mean(y)))
        solution, _ = nnls(design * weight[:, None], y * weight, maxiter=50 * design.shape[1])
        coef = solution[:-1] / scale
        return cls(tuple(columns), tuple(float(c) for c in coef), float(solution[-1]))

    def predict(self, A: np.ndarray) -> np.ndarray:
        return A @ np.asarray(self.coef, dtype=float) + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearFit:
        return cls(tuple(data["columns"]), tuple(float(c) for c in data["coef"]), float(data["intercept"]))


def _latency_targets(latency_ms: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(latency_ms, dtype=float).ravel()
    if y.size != n:
        raise CodesignError(f"latency predictor: {n} inputs but {y.size} latencies")
    bad = np.flatnonzero(~(np.isfinite(y) & (y > 0)))
    if bad.size:
        raise CodesignError(f"latency predictor: latency #{bad[0]} is {y[bad[0]]!r}; expected a positive number of ms")
    return y


class BitOpsBaseline:
    """Latency as a non-negative linear function of MACs and bit-ops (the FLOPs baseline)."""

    columns = ("macs", "bit_ops")

    def fit(self, networks: Sequence[Network], latency_ms: Sequence[float] | np.ndarray) -> BitOpsBaseline:
        y = _latency_targets(latency_ms, len(networks))
        self.fit_ = LinearFit.fit(self.columns, self._design(networks), y)
        return self

    def _design(self, networks: Sequence[Network]) -> np.ndarray:
        return np.array([[float(net.macs), float(net.bit_ops)] for net in networks]).reshape(len(networks), 2)

    def predict(self, networks: Sequence[Network]) -> np.ndarray:
        if not hasattr(self, "fit_"):
            raise CodesignError("BitOpsBaseline: call fit before predict")
        return np.maximum(self.fit_.predict(self._design(networks)), 1e-12)


class LatencyPredictor:
    """Latency (ms) of (network, accelerator) pairs; see the module docstring for the two ways it learns.

    ``residual`` is ``"xgboost"`` or ``"none"`` (the linear base alone, for very few whole-network
    samples). ``base`` names the columns of the whole-network linear base (:data:`BASES`); ``"auto"`` is
    ``"prior"`` when a prior is given, else ``"scale"``. ``loss`` is what the linear base minimises
    (:data:`LOSSES`). Learned attributes: ``mode_`` (``"layer"`` or ``"network"``), ``featurizer_``, ``schema_``,
    ``base_`` (the linear base or calibration), ``booster_`` (``None`` without a residual model).
    """

    def __init__(
        self,
        *,
        residual: str = "xgboost",
        base: str = "auto",
        loss: str = "relative",
        n_estimators: int = 600,
        max_depth: int = 8,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.residual = residual
        self.base = base
        self.loss = loss
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        keys = ("residual", "base", "loss", "n_estimators", "max_depth", "learning_rate", "subsample", "min_child_weight", "reg_lambda", "seed")
        return {k: getattr(self, k) for k in keys}

    def _booster(self) -> xgb.XGBRegressor:
        return xgb.XGBRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=0.8, min_child_weight=self.min_child_weight,
            reg_lambda=self.reg_lambda, random_state=self.seed, n_jobs=1, tree_method="hist",
        )  # fmt: skip

    def _check_fitted(self) -> None:
        if not hasattr(self, "schema_"):
            raise CodesignError("latency predictor: call fit (or load) before predict")

    # -- whole-network mode --------------------------------------------------------------------------
    def _network_matrix(self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None], prior_ms: Sequence[float] | np.ndarray | None) -> np.ndarray:
        assert isinstance(self.featurizer_, LatencyFeaturizer)
        X = self.featurizer_.transform(networks, accels)
        uses_prior = PRIOR_FEATURE in self.schema_.names
        if uses_prior != (prior_ms is not None):
            raise CodesignError(
                f"latency predictor: trained {'with' if uses_prior else 'without'} a prior_ms column, "
                f"called {'with' if prior_ms is not None else 'without'} one"
            )
        if prior_ms is not None:
            X = np.column_stack([X, _latency_targets(prior_ms, len(networks))])
        return X

    def _fit_network(self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None], y: np.ndarray, prior_ms: Sequence[float] | np.ndarray | None) -> None:
        self.featurizer_: LatencyFeaturizer | LayerFeaturizer = LatencyFeaturizer.for_configs(list(accels))
        schema = self.featurizer_.schema
        if prior_ms is not None:
            schema = FeatureSchema(schema.name, schema.version, (*schema.names, PRIOR_FEATURE))
        self.schema_ = schema
        X = self._network_matrix(networks, accels, prior_ms)
        base = self.base if self.base != "auto" else ("prior" if prior_ms is not None else "scale")
        if base not in BASES:
            raise CodesignError(f"latency predictor: base {self.base!r} unknown; expected auto, {', '.join(BASES)}")
        columns = BASES[base]
        if (PRIOR_FEATURE in columns) != (prior_ms is not None):
            raise CodesignError(f"latency predictor: base {base!r} {'needs' if prior_ms is None else 'does not use'} prior_ms")
        design = np.column_stack([_column(X, schema, name) for name in columns])
        self.base_ = LinearFit.fit(columns, design, y, relative=self.loss == "relative")
        base = np.maximum(self.base_.predict(design), 1e-12)
        if self.booster_ is not None:
            self.booster_.fit(np.column_stack([X, np.log(base)]), np.log(y / base))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Latency (ms) for whole-network rows already laid out in :attr:`schema_` order."""
        self._check_fitted()
        if self.mode_ != "network":
            raise CodesignError("latency predictor: predict_matrix needs a predictor fitted on whole-network latencies")
        if X.ndim != 2 or X.shape[1] != len(self.schema_):
            raise CodesignError(f"latency predictor: rows have {X.shape[-1]} features, schema {self.schema_.describe()} expects {len(self.schema_)}")
        design = np.column_stack([_column(X, self.schema_, name) for name in self.base_.columns])
        base = np.maximum(self.base_.predict(design), 1e-12)
        if self.booster_ is None:
            return base
        return base * np.exp(self.booster_.predict(np.column_stack([X, np.log(base)])))

    # -- per-layer mode ------------------------------------------------------------------------------
    def _layer_sums(self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None]) -> np.ndarray:
        assert isinstance(self.featurizer_, LayerFeaturizer)
        X, hint, owner = self.featurizer_.transform(networks, accels)
        layer_ms = hint if self.booster_ is None else hint * np.exp(self.booster_.predict(X))
        return np.bincount(owner, weights=layer_ms, minlength=len(networks))

    def _fit_layers(self, networks: Sequence[Network], accels: Sequence[AcceleratorConfig | None], y: np.ndarray, per_layer_ms: Sequence[Sequence[float]]) -> None:
        if len(per_layer_ms) != len(networks):
            raise CodesignError(f"latency predictor: {len(networks)} networks but {len(per_layer_ms)} per-layer latency lists")
        for i, (net, layers) in enumerate(zip(networks, per_layer_ms, strict=True)):
            if len(layers) != len(net):
                raise CodesignError(f"latency predictor: network #{i} has {len(net)} layers but {len(layers)} per-layer latencies")
        self.featurizer_ = LayerFeaturizer.for_configs(list(accels))
        self.schema_ = self.featurizer_.schema
        X, hint, _ = self.featurizer_.transform(networks, accels)
        target = np.concatenate([np.asarray(v, dtype=float) for v in per_layer_ms])
        if np.any(~np.isfinite(target) | (target < 0)):
            raise CodesignError("latency predictor: per-layer latencies must be finite and >= 0 ms")
        # a layer the model reports as free gets a floor of a thousandth of its hint so the log stays finite
        target = np.maximum(target, hint * 1e-3)
        if self.booster_ is not None:
            self.booster_.fit(X, np.log(target / hint))
        sums = self._layer_sums(networks, accels)
        self.base_ = LinearFit.fit(("layer_sum_ms",), sums[:, None], y, relative=self.loss == "relative")

    # -- common --------------------------------------------------------------------------------------
    def fit(
        self,
        networks: Sequence[Network],
        accels: Sequence[AcceleratorConfig | None],
        latency_ms: Sequence[float] | np.ndarray,
        *,
        per_layer_ms: Sequence[Sequence[float]] | None = None,
        prior_ms: Sequence[float] | np.ndarray | None = None,
    ) -> LatencyPredictor:
        """Learn from measured or simulated latencies (ms). ``per_layer_ms`` (one list per network, in layer
        order) selects the per-layer mode; ``prior_ms`` is an optional estimate per input (e.g. a
        simulator's) for the whole-network mode, that then must also be given to :meth:`predict`."""
        if self.residual not in ("xgboost", "none"):
            raise CodesignError(f"latency predictor: residual {self.residual!r} unknown; expected 'xgboost' or 'none'")
        if self.loss not in LOSSES:
            raise CodesignError(f"latency predictor: loss {self.loss!r} unknown; expected {' or '.join(map(repr, LOSSES))}")
        y = _latency_targets(latency_ms, len(networks))
        if len(networks) < 3:
            raise CodesignError(f"latency predictor: need at least 3 samples, got {len(networks)}")
        if per_layer_ms is not None and prior_ms is not None:
            raise CodesignError("latency predictor: give per_layer_ms or prior_ms, not both")
        self.booster_: xgb.XGBRegressor | None = self._booster() if self.residual == "xgboost" else None
        self.mode_ = "layer" if per_layer_ms is not None else "network"
        if per_layer_ms is not None:
            self._fit_layers(networks, accels, y, per_layer_ms)
        else:
            self._fit_network(networks, accels, y, prior_ms)
        return self

    def predict(
        self,
        networks: Sequence[Network],
        accels: Sequence[AcceleratorConfig | None],
        *,
        prior_ms: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Predicted latency (ms) per (network, accelerator) pair."""
        self._check_fitted()
        if self.mode_ == "layer":
            if prior_ms is not None:
                raise CodesignError("latency predictor: trained on per-layer latencies, takes no prior_ms")
            if len(networks) != len(accels):
                raise CodesignError(f"latency predictor: {len(networks)} networks but {len(accels)} accelerator configs")
            sums = self._layer_sums(networks, accels)
            return np.maximum(self.base_.predict(sums[:, None]), 1e-12)
        return self.predict_matrix(self._network_matrix(networks, accels, prior_ms))

    def save(self, folder: str | Path) -> Path:
        """Write the predictor into ``folder`` (created if needed)."""
        if not hasattr(self, "schema_"):
            raise CodesignError("latency predictor: nothing to save before fit")
        payload = {"mode": self.mode_, "params": self.get_params(), "featurizer": self.featurizer_.to_dict(), "base": self.base_.to_dict()}
        path = write_meta(folder, "latency", self.schema_, payload)
        if self.booster_ is not None:
            self.booster_.save_model(path / "residual.json")
        return path

    @classmethod
    def load(cls, folder: str | Path, *, schema: FeatureSchema | None = None) -> LatencyPredictor:
        """Read a saved predictor; raises :class:`CodesignError` naming both schemas when the saved one is not
        what this code (or the given ``schema``) computes."""
        meta, saved = read_meta(folder, "latency")
        predictor = cls(**meta["params"])
        predictor.mode_ = str(meta.get("mode", "network"))
        if predictor.mode_ == "layer":
            predictor.featurizer_ = LayerFeaturizer.from_dict(meta["featurizer"])
            current = predictor.featurizer_.schema
        else:
            predictor.featurizer_ = LatencyFeaturizer.from_dict(meta["featurizer"])
            current = predictor.featurizer_.schema
            if PRIOR_FEATURE in saved.names:
                current = FeatureSchema(current.name, current.version, (*current.names, PRIOR_FEATURE))
        saved.check(schema if schema is not None else current)
        predictor.schema_ = saved
        predictor.base_ = LinearFit.from_dict(meta["base"])
        predictor.booster_ = None
        if predictor.residual == "xgboost":
            booster = xgb.XGBRegressor()
            booster.load_model(Path(folder) / "residual.json")
            predictor.booster_ = booster
        return predictor


class AdditiveLatencyModel:
    """Latency as a cost per operation type: ``intercept + sum_j cost_j * count_j`` with every cost >= 0
    (nn-Meter's and HELP's additivity, in its simplest form). ``counts`` are per-input counts of each
    operation type (e.g. :data:`codesign.predictors.cells.CELL_FEATURE_NAMES` ``count=...`` columns or
    MACs per layer type); a handful of measurements fixes the costs. Learned attribute: ``fit_``."""

    def fit(self, counts: np.ndarray, latency_ms: Sequence[float] | np.ndarray, *, names: Sequence[str] | None = None) -> AdditiveLatencyModel:
        A = np.asarray(counts, dtype=float)
        if A.ndim != 2:
            raise CodesignError(f"additive latency model: counts must be a 2-D matrix, got shape {A.shape}")
        y = _latency_targets(latency_ms, A.shape[0])
        names = tuple(names) if names is not None else tuple(f"op{i}" for i in range(A.shape[1]))
        if len(names) != A.shape[1]:
            raise CodesignError(f"additive latency model: {len(names)} names for {A.shape[1]} count columns")
        self.fit_ = LinearFit.fit(names, A, y)
        return self

    def predict(self, counts: np.ndarray) -> np.ndarray:
        if not hasattr(self, "fit_"):
            raise CodesignError("additive latency model: call fit before predict")
        return np.maximum(self.fit_.predict(np.asarray(counts, dtype=float)), 1e-12)

    def costs_ms(self) -> dict[str, float]:
        """The learned latency of one operation of each type (ms), and the fixed ``intercept``."""
        return {**dict(zip(self.fit_.columns, self.fit_.coef, strict=True)), "intercept": self.fit_.intercept}
