import numpy as np
import pytest
from scipy.stats import kendalltau

from codesign.core.errors import CodesignError
from codesign.predictors.accuracy import AccuracyFeaturizer, AccuracyPredictor
from codesign.predictors.quantized import QuantizedAccuracyPredictor, logit, sigmoid


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, AccuracyFeaturizer]:
    """Four architecture choices (one-hot) with their own full-precision logits and five layers whose
    weight bits each cost a per-layer drop; the measurements carry the same binomial image noise in both
    scores, as two scores of one model on one validation set do."""
    rng = np.random.default_rng(seed)
    arch = rng.integers(0, 4, n)
    enc = np.eye(4)[arch]
    bits = rng.choice([2, 4, 8], size=(n, 5), p=[0.15, 0.45, 0.4])
    cost = {2: np.array([3.0, 0.5, 2.0, 0.2, 1.0]), 4: np.array([0.3, 0.05, 0.2, 0.02, 0.1]), 8: np.zeros(5)}
    drop = np.array([sum(cost[b][i] for i, b in enumerate(row)) for row in bits])
    fp32_logit = np.array([3.0, 3.3, 3.6, 3.9])[arch]
    noise = 0.05 * rng.standard_normal(n)
    fp32 = sigmoid(fp32_logit + noise)
    quant = sigmoid(fp32_logit - drop + noise)
    featurizer = AccuracyFeaturizer(encoding_dim=4, max_layers=5, space="toy")
    X = featurizer.transform(enc, bits.tolist(), np.full_like(bits, 8).tolist())
    return X, quant, fp32, featurizer


def test_ranks_held_out_candidates_and_reports_uncertainty():
    X, quant, fp32, featurizer = synthetic(240, seed=0)
    predictor = QuantizedAccuracyPredictor(arch_columns=4, seed=0).fit(
        X[:180], quant[:180], fp32[:180], schema=featurizer.schema
    )
    mean, std = predictor.predict_with_std(X[180:])
    assert kendalltau(mean, quant[180:]).statistic > 0.8
    assert np.all((mean > 0) & (mean < 1)) and np.all(std >= 0) and std.mean() > 0
    z, z_std = predictor.predict_logit(X[180:])
    np.testing.assert_allclose(sigmoid(z), mean)
    np.testing.assert_allclose(mean * (1 - mean) * z_std, std)


def test_the_parts_learn_the_full_precision_accuracy_and_the_drop():
    X, quant, fp32, featurizer = synthetic(240, seed=1)
    predictor = QuantizedAccuracyPredictor(arch_columns=4, seed=0).fit(
        X, quant, fp32, schema=featurizer.schema
    )
    assert predictor.float_.schema_.names == featurizer.schema.names[:4]
    float_pred = predictor.float_.predict(X[:, :4])
    assert kendalltau(float_pred, logit(fp32)).statistic > 0.6
    drop_pred = predictor.drop_.predict(X)
    assert kendalltau(drop_pred, logit(fp32) - logit(quant)).statistic > 0.8


def test_fit_leaves_the_given_settings_unfitted_and_seeds_repeat():
    X, quant, fp32, _ = synthetic(80, seed=2)
    drop_model = AccuracyPredictor(max_depth=2, n_members=2, seed=3)
    a = QuantizedAccuracyPredictor(arch_columns=4, drop_model=drop_model).fit(X, quant, fp32)
    b = QuantizedAccuracyPredictor(arch_columns=4, drop_model=drop_model).fit(X, quant, fp32)
    assert not hasattr(drop_model, "members_") and len(a.drop_.members_) == 2
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_save_load_round_trip(tmp_path):
    X, quant, fp32, featurizer = synthetic(80, seed=3)
    predictor = QuantizedAccuracyPredictor(arch_columns=4, seed=1).fit(
        X, quant, fp32, schema=featurizer.schema
    )
    predictor.save(tmp_path / "acc")
    loaded = QuantizedAccuracyPredictor.load(tmp_path / "acc", schema=featurizer.schema)
    for got, want in zip(loaded.predict_with_std(X), predictor.predict_with_std(X), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(CodesignError, match="feature schema mismatch"):
        QuantizedAccuracyPredictor.load(tmp_path / "acc", schema=AccuracyFeaturizer(encoding_dim=4).schema)
    with pytest.raises(CodesignError, match="holds a 'quantized-accuracy' predictor"):
        AccuracyPredictor.load(tmp_path / "acc")


def test_bad_inputs_name_the_value():
    X, quant, fp32, _ = synthetic(20, seed=4)
    with pytest.raises(CodesignError, match=r"accuracies must be fractions in \[0, 1\], got 97.0"):
        QuantizedAccuracyPredictor(arch_columns=4).fit(X, np.full(20, 97.0), fp32)
    with pytest.raises(CodesignError, match="19 full-precision accuracies"):
        QuantizedAccuracyPredictor(arch_columns=4).fit(X, quant, fp32[:19])
    with pytest.raises(CodesignError, match=r"arch_columns must be in \[1, 20\], got 0"):
        QuantizedAccuracyPredictor(arch_columns=0).fit(X, quant, fp32)
    with pytest.raises(CodesignError, match="before predict"):
        QuantizedAccuracyPredictor(arch_columns=4).predict(X)
    fitted = QuantizedAccuracyPredictor(arch_columns=4).fit(X, quant, fp32)
    with pytest.raises(CodesignError, match="rows have 3 features"):
        fitted.predict(X[:, :3])
