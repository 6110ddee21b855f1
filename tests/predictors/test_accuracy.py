import numpy as np
import pytest
from scipy.stats import kendalltau

from codesign.core.errors import CodesignError
from codesign.predictors.accuracy import AccuracyFeaturizer, AccuracyPredictor
from codesign.predictors.cells import CELL_SCHEMA, Cell, cell_features


@pytest.fixture(scope="module")
def nb201_split(nb201_table):
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(nb201_table))[:800]
    X = cell_features(list(nb201_table.arch_str.iloc[rows]))
    y = nb201_table.cifar10_test_acc.to_numpy()[rows]
    return X[:160], y[:160], X[160:], y[160:]


@pytest.mark.parametrize("model", ["xgboost", "gp", "mlp"])
def test_each_model_ranks_held_out_cells_and_reports_uncertainty(nb201_split, model):
    X_tr, y_tr, X_te, y_te = nb201_split
    kwargs = {"n_members": 3, "max_iter": 200} if model == "mlp" else {"n_members": 3}
    predictor = AccuracyPredictor(model=model, seed=0, **kwargs).fit(X_tr, y_tr, schema=CELL_SCHEMA)
    mean, std = predictor.predict_with_std(X_te)
    assert kendalltau(mean, y_te).statistic > 0.5
    assert std.shape == mean.shape and np.all(std >= 0) and std.mean() > 0


def test_seeded_fits_repeat_and_seeds_differ(nb201_split):
    X_tr, y_tr, X_te, _ = nb201_split
    a = AccuracyPredictor(n_members=2, seed=1).fit(X_tr, y_tr).predict(X_te)
    b = AccuracyPredictor(n_members=2, seed=1).fit(X_tr, y_tr).predict(X_te)
    c = AccuracyPredictor(n_members=2, seed=2).fit(X_tr, y_tr).predict(X_te)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", ["xgboost", "mlp"])
def test_save_load_round_trip(nb201_split, tmp_path, model):
    X_tr, y_tr, X_te, _ = nb201_split
    predictor = AccuracyPredictor(model=model, n_members=2, max_iter=50, seed=0).fit(
        X_tr, y_tr, schema=CELL_SCHEMA
    )
    predictor.save(tmp_path / model)
    loaded = AccuracyPredictor.load(tmp_path / model, schema=CELL_SCHEMA)
    for got, want in zip(loaded.predict_with_std(X_te), predictor.predict_with_std(X_te), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(CodesignError, match="nb201_cell v1 .*accuracy v1"):
        AccuracyPredictor.load(tmp_path / model, schema=AccuracyFeaturizer(encoding_dim=3).schema)


def test_featurizer_lays_out_bits_and_perturbation():
    featurizer = AccuracyFeaturizer(encoding_dim=2, max_layers=3, use_perturbation=True, space="toy")
    X = featurizer.transform([[1, 0], [0, 1]], [[4, 8], [8, 8, 2]], [[8, 8], [8, 8, 8]], [1.0, 100.0])
    assert X.shape == (2, len(featurizer.schema))
    names = featurizer.schema.names
    assert X[0, names.index("w_mean")] == 6 and X[0, names.index("w2")] == 0 and X[1, names.index("w2")] == 2
    np.testing.assert_allclose(X[:, names.index("log_perturbation")], [0.0, 2.0], atol=1e-9)
    with pytest.raises(CodesignError, match="row 1 has 4 weight"):
        featurizer.transform([[1, 0], [0, 1]], [[4], [8, 8, 8, 8]], [[8], [8, 8, 8, 8]], [1.0, 1.0])
    with pytest.raises(CodesignError, match="uses the perturbation"):
        featurizer.transform([[1, 0]], [[4]], [[8]])


def test_unknown_model_is_an_error():
    with pytest.raises(CodesignError, match="'forest' unknown"):
        AccuracyPredictor(model="forest").fit(np.zeros((4, 2)), [1, 2, 3, 4])


def test_cell_liveness_and_paths():
    # node 3 reads only node 2, which reads only node 1 through a none edge: nothing reaches the output
    dead = Cell.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert dead.paths() == [] and not any(dead.live_edges())
    text = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    cell = Cell.parse(text)
    assert sorted(cell.paths()) == [("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"), ("skip_connect",)]
    row = dict(zip(CELL_SCHEMA.names, cell_features([text])[0], strict=True))
    assert (
        row["connected"] == 1
        and row["n_paths"] == 2
        and row["max_convs_on_path"] == 2
        and row["live=none"] == 0
    )
    with pytest.raises(CodesignError, match="expected"):
        Cell.parse("|conv~0|")


def test_featurizer_lays_out_bits_by_slot():
    featurizer = AccuracyFeaturizer(encoding_dim=1, slots=("stem", "b0", "b1", "fc"), use_perturbation=True)
    names = featurizer.schema.names
    assert names[:7] == ("enc0", "w_mean", "w_min", "w_max", "a_mean", "a_min", "a_max")
    assert names[7:] == (
        "w@stem",
        "w@b0",
        "w@b1",
        "w@fc",
        "a@stem",
        "a@b0",
        "a@b1",
        "a@fc",
        "log_perturbation",
    )
    # the second row lacks b0: its b1 layer still lands in the b1 column, and b0 holds zeros
    X = featurizer.transform(
        [[0], [1]], [[8, 4, 2, 8], [8, 2, 4]], [[8, 8, 4, 8], [4, 8, 8]], [1.0, 10.0],
        layer_slots=[["stem", "b0", "b1", "fc"], ["stem", "b1", "fc"]],
    )  # fmt: skip
    row = dict(zip(names, X[1], strict=True))
    assert (row["w@stem"], row["w@b0"], row["w@b1"], row["w@fc"]) == (8, 0, 2, 4)
    assert (row["a@stem"], row["a@b0"], row["a@b1"], row["a@fc"]) == (4, 0, 8, 8)
    assert (
        row["w_min"] == 2
        and row["a_mean"] == pytest.approx(20 / 3)
        and row["log_perturbation"] == pytest.approx(1)
    )
    assert X[0, names.index("w@b1")] == 2 and X[0, names.index("a@b1")] == 4
    with pytest.raises(CodesignError, match="expected layer slots for each of the 1 rows"):
        featurizer.transform([[0]], [[8]], [[8]], [1.0])
    with pytest.raises(CodesignError, match=r"row 0 names slots \['stem', 'head'\] for its 2 layers"):
        featurizer.transform([[0]], [[8, 8]], [[8, 8]], [1.0], layer_slots=[["stem", "head"]])
    with pytest.raises(CodesignError, match="by position .* or by slot, not both"):
        AccuracyFeaturizer(encoding_dim=1, max_layers=4, slots=("stem",))
    with pytest.raises(CodesignError, match="slot names repeat"):
        AccuracyFeaturizer(encoding_dim=1, slots=("stem", "stem"))
