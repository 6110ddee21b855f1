import math

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.predictors.metrics import kendall, mape, regression_metrics, rmse, spearman, within


def test_hand_computed_errors():
    actual = [1.0, 2.0, 4.0, 10.0]
    predicted = [1.1, 1.8, 4.0, 13.0]
    # relative errors 0.1, 0.1, 0.0, 0.3
    assert mape(actual, predicted) == pytest.approx(0.125)
    assert rmse(actual, predicted) == pytest.approx(math.sqrt((0.01 + 0.04 + 0 + 9) / 4))
    assert within(actual, predicted, 0.05) == pytest.approx(0.25)
    assert within(actual, predicted, 0.10) == pytest.approx(0.75)
    m = regression_metrics(actual, predicted)
    assert (m.n, m.within_5, m.within_10, m.within_15) == (4, 0.25, 0.75, 0.75)
    assert m.mape == pytest.approx(0.125)


def test_rank_correlations_hand_computed():
    actual = [1, 2, 3, 4]
    # one swapped pair out of six: tau = (5 - 1) / 6; rho = 1 - 6 * 2 / (4 * 15)
    predicted = [1, 3, 2, 4]
    assert kendall(actual, predicted) == pytest.approx(4 / 6)
    assert spearman(actual, predicted) == pytest.approx(0.8)
    assert kendall(actual, actual[::-1]) == pytest.approx(-1.0)
    # a monotone but non-linear prediction ranks perfectly
    assert spearman(actual, np.exp(actual)) == pytest.approx(1.0)


def test_constant_prediction_has_zero_rank_correlation():
    assert kendall([1, 2, 3], [5, 5, 5]) == 0.0


def test_to_dict_has_every_metric():
    d = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).to_dict()
    assert set(d) == {"n", "mape", "rmse", "within_5", "within_10", "within_15", "spearman", "kendall"}
    assert d["mape"] == 0.0 and d["kendall"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("actual", "predicted", "message"),
    [([1.0, 2.0], [1.0], "equal lengths"), ([1.0], [1.0], "at least 2"), ([0.0, 1.0], [1.0, 1.0], "non-zero"), ([1.0, float("nan")], [1.0, 1.0], "finite")],
)
def test_bad_inputs_raise(actual, predicted, message):
    with pytest.raises(CodesignError, match=message):
        regression_metrics(actual, predicted)
