"""Accuracy at given bit-widths as the architecture's full-precision accuracy minus its quantization drop.

Every measurement of a quantized candidate also yields the full-precision accuracy of its architecture on
the same images (:class:`codesign.nn.training.Measurement` holds both). :class:`QuantizedAccuracyPredictor`
learns the two parts apart, on the logit scale ``logit(p) = log(p / (1 - p))``:

- ``f``: the full-precision accuracy from the architecture columns alone (the encoding);
- ``g``: the drop ``logit(fp32) - logit(quant)`` from every column (architecture, bits, perturbation),

and predicts ``sigmoid(f - g)``. The drop is a difference of two scores on the same images, so much of
their sampling noise cancels, and the logit scale turns the drop of a model at 96 % and one at 40 % into
comparable numbers (a fixed error ratio is a fixed step in logit), where a regression on raw accuracy
spends its fit on the few collapsed candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codesign.core.errors import CodesignError
from codesign.predictors.accuracy import ACCURACY_FEATURES_VERSION, AccuracyPredictor
from codesign.predictors.features import FeatureSchema
from codesign.predictors.persist import read_meta, write_meta

EPS = 1e-4
"""Accuracies are clipped to ``[EPS, 1 - EPS]`` before the logit (a score of 0 or 1 has no finite logit)."""


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1.0 - EPS)
    return np.asarray(np.log(q / (1.0 - q)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _fractions(values: Sequence[float] | np.ndarray, label: str) -> np.ndarray:
    out = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(out)) or np.any((out < 0) | (out > 1)):
        bad = float(out[~np.isfinite(out) | (out < 0) | (out > 1)][0])
        raise CodesignError(f"quantized accuracy predictor: {label} must be fractions in [0, 1], got {bad!r}")
    return out


class QuantizedAccuracyPredictor:
    """Predicts the accuracy of a quantized candidate (a fraction) and its uncertainty.

    ``arch_columns``: how many leading columns of a feature row describe the architecture alone (for
    :class:`codesign.predictors.accuracy.AccuracyFeaturizer` rows, its ``encoding_dim``). ``float_model``
    and ``drop_model`` are unfitted :class:`AccuracyPredictor` instances for ``f`` and ``g`` (defaults:
    XGBoost ensembles, depth 2 for ``f``, which sees a few one-hot columns, and 3 for ``g``). Learned
    attributes: ``float_`` and ``drop_`` (the fitted parts), ``schema_``.
    """

    def __init__(
        self,
        *,
        arch_columns: int,
        float_model: AccuracyPredictor | None = None,
        drop_model: AccuracyPredictor | None = None,
        seed: int = 0,
    ) -> None:
        self.arch_columns = arch_columns
        self.float_model = float_model or AccuracyPredictor(max_depth=2, learning_rate=0.05, seed=seed)
        self.drop_model = drop_model or AccuracyPredictor(max_depth=3, learning_rate=0.05, seed=seed)
        self.seed = seed

    def fit(
        self,
        X: np.ndarray,
        accuracy: Sequence[float] | np.ndarray,
        float_accuracy: Sequence[float] | np.ndarray,
        *,
        schema: FeatureSchema | None = None,
    ) -> QuantizedAccuracyPredictor:
        """Learn from feature rows ``X`` (laid out by ``schema``), the measured accuracies at the rows' bits
        and the measured full-precision accuracies of the same architectures on the same images."""
        X = np.asarray(X, dtype=float)
        quant = _fractions(accuracy, "accuracies")
        fp32 = _fractions(float_accuracy, "full-precision accuracies")
        if X.ndim != 2 or not X.shape[0] == quant.size == fp32.size:
            raise CodesignError(
                f"quantized accuracy predictor: X has shape {X.shape}, {quant.size} accuracies and "
                f"{fp32.size} full-precision accuracies; expected one of each per row"
            )
        if not 1 <= self.arch_columns <= X.shape[1]:
            raise CodesignError(
                f"quantized accuracy predictor: arch_columns must be in [1, {X.shape[1]}], got {self.arch_columns}"
            )
        self.schema_ = schema or FeatureSchema("accuracy", ACCURACY_FEATURES_VERSION, tuple(f"x{i}" for i in range(X.shape[1])))
        if len(self.schema_) != X.shape[1]:
            raise CodesignError(
                f"quantized accuracy predictor: X has {X.shape[1]} columns, schema {self.schema_.describe()} has {len(self.schema_)}"
            )
        arch_schema = FeatureSchema(
            f"{self.schema_.name}:arch", self.schema_.version, self.schema_.names[: self.arch_columns]
        )
        # fresh copies: the constructor's arguments stay unfitted settings
        self.float_ = AccuracyPredictor(**self.float_model.get_params())
        self.float_.fit(X[:, : self.arch_columns], logit(fp32), schema=arch_schema)
        self.drop_ = AccuracyPredictor(**self.drop_model.get_params())
        self.drop_.fit(X, logit(fp32) - logit(quant), schema=self.schema_)
        return self

    def predict_logit(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``f - g`` and its standard deviation (the parts' spreads added as independent), in logits."""
        if not hasattr(self, "drop_"):
            raise CodesignError("quantized accuracy predictor: call fit (or load) before predict")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.schema_):
            raise CodesignError(
                f"quantized accuracy predictor: rows have {X.shape[-1]} features, schema {self.schema_.describe()} expects {len(self.schema_)}"
            )
        f, f_std = self.float_.predict_with_std(X[:, : self.arch_columns])
        g, g_std = self.drop_.predict_with_std(X)
        return f - g, np.sqrt(f_std**2 + g_std**2)

    def predict_with_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted accuracy (a fraction) per row and its standard deviation (the logit's, scaled by the
        sigmoid's slope ``p (1 - p)`` there)."""
        z, z_std = self.predict_logit(X)
        p = sigmoid(z)
        return p, p * (1.0 - p) * z_std

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_with_std(X)[0]

    def save(self, folder: str | Path) -> Path:
        """Write the two parts into ``folder/float`` and ``folder/drop`` beside the metadata."""
        if not hasattr(self, "drop_"):
            raise CodesignError("quantized accuracy predictor: nothing to save before fit")
        path = write_meta(
            folder, "quantized-accuracy", self.schema_, {"arch_columns": self.arch_columns, "seed": self.seed}
        )
        self.float_.save(path / "float")
        self.drop_.save(path / "drop")
        return path

    @classmethod
    def load(cls, folder: str | Path, *, schema: FeatureSchema | None = None) -> QuantizedAccuracyPredictor:
        """Read a saved predictor; with ``schema``, raise :class:`CodesignError` naming both schemas unless
        the saved one equals it."""
        meta, saved = read_meta(folder, "quantized-accuracy")
        if schema is not None:
            saved.check(schema)
        predictor = cls(arch_columns=int(meta["arch_columns"]), seed=int(meta["seed"]))
        predictor.schema_ = saved
        predictor.float_ = AccuracyPredictor.load(Path(folder) / "float")
        predictor.drop_ = AccuracyPredictor.load(Path(folder) / "drop")
        predictor.float_model = AccuracyPredictor(**predictor.float_.get_params())
        predictor.drop_model = AccuracyPredictor(**predictor.drop_.get_params())
        return predictor
