"""Accuracy predictors with an uncertainty for every prediction (for active learning).

Inputs are rows of :class:`AccuracyFeaturizer`: the space's architecture encoding, the bit-widths (summary
statistics plus per-layer values, by position or by layer slot) and, optionally, the summed
Hessian-weighted quantization perturbation ``sum_i Omega_i(b_i)`` (HAWQ). The model is ``"xgboost"`` or
``"mlp"`` (a bootstrap ensemble; the spread of its members is the uncertainty) or ``"gp"`` (a Gaussian
process; its predictive standard deviation is the uncertainty). For quantized candidates,
:class:`codesign.predictors.quantized.QuantizedAccuracyPredictor` combines two of these."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from codesign.core.errors import CodesignError
from codesign.predictors.features import FeatureSchema
from codesign.predictors.persist import read_meta, write_meta

ACCURACY_FEATURES_VERSION = 1
MODELS = ("xgboost", "gp", "mlp")


@dataclass(frozen=True)
class AccuracyFeaturizer:
    """Lays out accuracy-predictor rows: ``encoding_dim`` encoding values, bit statistics, per-layer bits,
    and the perturbation when ``use_perturbation``.

    Per-layer bits are laid out by position, padded with zeros to ``max_layers``, or, when ``slots`` names
    every layer position the space can have (e.g. :meth:`codesign.nn.supernet.Supernet.layer_names` of the
    largest architecture), by slot: each row then says which slot each of its layers fills
    (``layer_slots`` of :meth:`transform`), so a layer's bits land in the same column whatever blocks
    precede it, and absent slots hold zeros."""

    encoding_dim: int
    max_layers: int = 0
    use_perturbation: bool = False
    space: str = ""
    slots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.encoding_dim < 0 or self.max_layers < 0:
            raise CodesignError(
                f"accuracy features: encoding_dim and max_layers must be >= 0, got {self.encoding_dim} and {self.max_layers}"
            )
        if self.slots and self.max_layers:
            raise CodesignError(
                f"accuracy features: lay bits out by position (max_layers={self.max_layers}) or by slot, not both"
            )
        if len(set(self.slots)) != len(self.slots):
            raise CodesignError(f"accuracy features: slot names repeat in {list(self.slots)}")

    @property
    def schema(self) -> FeatureSchema:
        names = [f"enc{i}" for i in range(self.encoding_dim)]
        if self.max_layers or self.slots:
            names += ["w_mean", "w_min", "w_max", "a_mean", "a_min", "a_max"]
        if self.max_layers:
            names += [f"w{i}" for i in range(self.max_layers)] + [f"a{i}" for i in range(self.max_layers)]
        if self.slots:
            names += [f"w@{s}" for s in self.slots] + [f"a@{s}" for s in self.slots]
        if self.use_perturbation:
            names.append("log_perturbation")
        return FeatureSchema(
            f"accuracy:{self.space}" if self.space else "accuracy", ACCURACY_FEATURES_VERSION, tuple(names)
        )

    def transform(
        self,
        encodings: np.ndarray | Sequence[Sequence[float]],
        weight_bits: Sequence[Sequence[int]] | None = None,
        act_bits: Sequence[Sequence[int]] | None = None,
        perturbation: Sequence[float] | np.ndarray | None = None,
        *,
        layer_slots: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Feature rows; ``weight_bits``/``act_bits`` (activation bits default to the weight bits) give
        each row's bits per weighted layer, ``layer_slots`` each layer's slot when :attr:`slots` is set."""
        enc = np.asarray(encodings, dtype=float)
        if enc.ndim != 2 or enc.shape[1] != self.encoding_dim:
            raise CodesignError(
                f"accuracy features: encodings have shape {enc.shape}, expected (n, {self.encoding_dim})"
            )
        blocks = [enc]
        n = enc.shape[0]
        if self.max_layers or self.slots:
            if weight_bits is None or len(weight_bits) != n:
                raise CodesignError(f"accuracy features: expected weight bits for each of the {n} rows")
            acts = act_bits if act_bits is not None else weight_bits
            if len(acts) != n:
                raise CodesignError(f"accuracy features: expected activation bits for each of the {n} rows")
            if self.slots and (layer_slots is None or len(layer_slots) != n):
                raise CodesignError(
                    f"accuracy features: bits are laid out by slot; expected layer slots for each of the {n} rows"
                )
            rows = []
            for row, (w, a) in enumerate(zip(weight_bits, acts, strict=True)):
                names = layer_slots[row] if self.slots and layer_slots is not None else None
                rows.append(self._bit_row(w, a, row, names))
            blocks.append(np.array(rows, dtype=float).reshape(n, -1))
        if self.use_perturbation:
            if perturbation is None or len(perturbation) != n:
                raise CodesignError(
                    f"accuracy features: the predictor uses the perturbation; expected one value for each of the {n} rows"
                )
            pert = np.asarray(perturbation, dtype=float)
            if np.any(~np.isfinite(pert) | (pert < 0)):
                raise CodesignError("accuracy features: perturbation values must be finite and >= 0")
            blocks.append(np.log10(pert + 1e-12)[:, None])
        return np.column_stack(blocks)

    def _bit_row(
        self, weight: Sequence[int], act: Sequence[int], row: int, names: Sequence[str] | None
    ) -> list[float]:
        limit = len(self.slots) if self.slots else self.max_layers
        if not weight or len(weight) > limit or len(act) != len(weight):
            raise CodesignError(
                f"accuracy features: row {row} has {len(weight)} weight and {len(act)} activation bit-widths; "
                f"expected equal counts between 1 and {limit}"
            )
        w, a = [float(b) for b in weight], [float(b) for b in act]
        stats = [float(np.mean(w)), min(w), max(w), float(np.mean(a)), min(a), max(a)]
        if names is None:
            pad = [0.0] * (self.max_layers - len(weight))
            return [*stats, *w, *pad, *a, *pad]
        unknown = [s for s in names if s not in self.slots]
        if len(names) != len(weight) or len(set(names)) != len(names) or unknown:
            raise CodesignError(
                f"accuracy features: row {row} names slots {list(names)} for its {len(weight)} layers; expected "
                f"{len(weight)} distinct names among {', '.join(self.slots)}"
            )
        by_slot_w, by_slot_a = dict(zip(names, w, strict=True)), dict(zip(names, a, strict=True))
        return [
            *stats,
            *(by_slot_w.get(s, 0.0) for s in self.slots),
            *(by_slot_a.get(s, 0.0) for s in self.slots),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding_dim": self.encoding_dim, "max_layers": self.max_layers, "use_perturbation": self.use_perturbation,
            "space": self.space, "slots": list(self.slots),
        }  # fmt: skip


class AccuracyPredictor:
    """Predicts accuracy (in the unit of the training targets) and its uncertainty.

    ``model`` is ``"xgboost"``, ``"gp"`` or ``"mlp"``; ``n_members`` bootstrap members for the ensembles.
    Learned attributes: ``schema_``, ``x_mean_``, ``x_scale_``, ``y_mean_``, ``y_scale_``, ``members_``.
    """

    def __init__(
        self,
        *,
        model: str = "xgboost",
        n_members: int = 5,
        n_estimators: int = 400,
        max_depth: int = 4,
        learning_rate: float = 0.03,
        hidden_layer_sizes: tuple[int, ...] = (64, 64),
        alpha: float = 1e-4,
        max_iter: int = 300,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.n_members = n_members
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        keys = (
            "model",
            "n_members",
            "n_estimators",
            "max_depth",
            "learning_rate",
            "hidden_layer_sizes",
            "alpha",
            "max_iter",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}

    def _member(self, seed: int) -> Any:
        if self.model == "xgboost":
            return xgb.XGBRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                subsample=0.8, colsample_bytree=0.8, random_state=seed, n_jobs=1, tree_method="hist",
            )  # fmt: skip
        if self.model == "mlp":
            return MLPRegressor(
                hidden_layer_sizes=tuple(self.hidden_layer_sizes), alpha=self.alpha, learning_rate_init=1e-3,
                max_iter=self.max_iter, early_stopping=False, random_state=seed,
            )  # fmt: skip
        # one length scale over standardised features: per-feature (ARD) scales cost minutes to fit at
        # a few hundred rows and tens of features, for little gain in ranking
        kernel = ConstantKernel(1.0) * Matern(
            length_scale=float(np.sqrt(len(self.schema_))), nu=2.5
        ) + WhiteKernel(1e-1, noise_level_bounds=(1e-8, 1e2))
        return GaussianProcessRegressor(
            kernel=kernel, normalize_y=False, n_restarts_optimizer=0, random_state=seed
        )

    def fit(
        self, X: np.ndarray, y: Sequence[float] | np.ndarray, *, schema: FeatureSchema | None = None
    ) -> AccuracyPredictor:
        """Learn from feature rows ``X`` (laid out by ``schema``, e.g. :attr:`AccuracyFeaturizer.schema`)
        and measured accuracies ``y``."""
        if self.model not in MODELS:
            raise CodesignError(
                f"accuracy predictor: model {self.model!r} unknown; expected one of {', '.join(MODELS)}"
            )
        if self.n_members < 1:
            raise CodesignError(f"accuracy predictor: n_members must be >= 1, got {self.n_members}")
        X = np.asarray(X, dtype=float)
        target = np.asarray(y, dtype=float).ravel()
        if X.ndim != 2 or X.shape[0] != target.size or target.size < 3:
            raise CodesignError(
                f"accuracy predictor: X has shape {X.shape} and y {target.size} values; expected (n, d) and n >= 3 values"
            )
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(target))):
            raise CodesignError("accuracy predictor: features and accuracies must be finite")
        self.schema_ = schema or FeatureSchema(
            "accuracy", ACCURACY_FEATURES_VERSION, tuple(f"x{i}" for i in range(X.shape[1]))
        )
        if len(self.schema_) != X.shape[1]:
            raise CodesignError(
                f"accuracy predictor: X has {X.shape[1]} columns, schema {self.schema_.describe()} has {len(self.schema_)}"
            )
        self.x_mean_, self.x_scale_ = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        self.y_mean_, self.y_scale_ = float(target.mean()), float(target.std() or 1.0)
        Xs, ys = (X - self.x_mean_) / self.x_scale_, (target - self.y_mean_) / self.y_scale_
        rng = np.random.default_rng(self.seed)
        members = []
        n_members = 1 if self.model == "gp" else self.n_members
        # one BLAS thread: these matrices are small, and threads fighting over a busy machine made a
        # one-second Gaussian-process fit take twenty
        with threadpool_limits(1):
            for _ in range(n_members):
                seed = int(rng.integers(2**31 - 1))
                # each ensemble member sees a bootstrap resample; a lone member sees every row
                rows = rng.integers(0, len(ys), len(ys)) if n_members > 1 else np.arange(len(ys))
                members.append(self._member(seed).fit(Xs[rows], ys[rows]))
        self.members_ = members
        return self

    def predict_with_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean prediction and its standard deviation per row (same unit as the targets)."""
        if not hasattr(self, "members_"):
            raise CodesignError("accuracy predictor: call fit (or load) before predict")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.schema_):
            raise CodesignError(
                f"accuracy predictor: rows have {X.shape[-1]} features, schema {self.schema_.describe()} expects {len(self.schema_)}"
            )
        Xs = (X - self.x_mean_) / self.x_scale_
        with threadpool_limits(1):
            if self.model == "gp":
                mean, std = self.members_[0].predict(Xs, return_std=True)
            else:
                preds = np.stack([m.predict(Xs) for m in self.members_])
                mean, std = preds.mean(axis=0), preds.std(axis=0)
        return mean * self.y_scale_ + self.y_mean_, std * self.y_scale_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_with_std(X)[0]

    def save(self, folder: str | Path) -> Path:
        if not hasattr(self, "members_"):
            raise CodesignError("accuracy predictor: nothing to save before fit")
        params = self.get_params() | {"hidden_layer_sizes": list(self.hidden_layer_sizes)}
        payload = {
            "params": params, "x_mean": self.x_mean_.tolist(), "x_scale": self.x_scale_.tolist(),
            "y_mean": self.y_mean_, "y_scale": self.y_scale_, "n_fitted": len(self.members_),
        }  # fmt: skip
        path = write_meta(folder, "accuracy", self.schema_, payload)
        if self.model == "xgboost":
            for i, member in enumerate(self.members_):
                member.save_model(path / f"member{i}.json")
        else:
            with open(path / "members.pkl", "wb") as fh:
                pickle.dump(self.members_, fh)
        return path

    @classmethod
    def load(cls, folder: str | Path, *, schema: FeatureSchema | None = None) -> AccuracyPredictor:
        """Read a saved predictor; with ``schema``, raise :class:`CodesignError` naming both schemas unless the
        saved one equals it."""
        meta, saved = read_meta(folder, "accuracy")
        if schema is not None:
            saved.check(schema)
        params = dict(meta["params"])
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        predictor = cls(**params)
        predictor.schema_ = saved
        predictor.x_mean_, predictor.x_scale_ = np.asarray(meta["x_mean"]), np.asarray(meta["x_scale"])
        predictor.y_mean_, predictor.y_scale_ = float(meta["y_mean"]), float(meta["y_scale"])
        path = Path(folder)
        if predictor.model == "xgboost":
            members = []
            for i in range(int(meta["n_fitted"])):
                member = xgb.XGBRegressor()
                member.load_model(path / f"member{i}.json")
                members.append(member)
            predictor.members_ = members
        else:
            with open(path / "members.pkl", "rb") as fh:
                predictor.members_ = pickle.load(fh)
        return predictor
