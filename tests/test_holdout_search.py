"""Searches and blends scored on the validation rows Keras holds out (California Housing's protocol)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import root_mean_squared_error
from sklearn.preprocessing import StandardScaler

from casebook.training import holdout_search


class _Constant:
    def __init__(self, value):
        self.value = value

    def predict(self, X):
        return np.full(len(X), self.value)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = np.sin(2 * X["a"].to_numpy()) + X["b"].to_numpy() ** 2 + 0.1 * rng.normal(size=n)
    return X, y


def test_holdout_rows_are_the_ones_keras_validation_split_takes():
    fit, val = holdout_search.holdout_rows(10, 0.2)
    assert list(fit) == list(range(8)) and list(val) == [8, 9]


def test_xgb_search_stops_early_on_validation_and_ranks_by_it():
    X, y = _data()
    space = {"max_depth": [2, 4], "learning_rate": [0.1, 0.3]}
    best, table = holdout_search.search_xgb_regressor(
        StandardScaler(), X, y, space, n_iter=4, max_rounds=500, early_stopping_rounds=20
    )
    assert len(table) == 4 and table["validation RMSE"].is_monotonic_increasing
    assert (table["trees"] < 500).all(), "early stopping on the validation rows ends every fit"
    _, val_rows = holdout_search.holdout_rows(len(y))
    val_rmse = root_mean_squared_error(y[val_rows], best.predict(X.iloc[val_rows]))
    assert val_rmse == pytest.approx(table["validation RMSE"].iloc[0])


def test_xgb_search_fits_its_features_on_the_fit_rows_only():
    X, y = _data()
    X.loc[X.index[-80:], "a"] += 100.0  # only the validation rows are shifted
    best, _ = holdout_search.search_xgb_regressor(StandardScaler(), X, y, {"max_depth": [2]}, n_iter=1, max_rounds=50)
    assert abs(best.features.mean_[0]) < 1.0, "the scaler saw the validation rows"


def test_the_blend_weight_is_chosen_on_validation_and_can_pick_either_model_alone():
    X, y = _data()
    truth = _Constant(float(np.mean(y)))
    far = _Constant(100.0)
    blend, score = holdout_search.choose_blend(truth, far, X, y)
    assert blend.weight == 1.0 and np.allclose(blend.predict(X[:3]), truth.predict(X[:3]))
    blend, _ = holdout_search.choose_blend(far, truth, X, y)
    assert blend.weight == 0.0
    half = holdout_search.Blend(_Constant(0.0), _Constant(2.0), 0.5)
    assert np.allclose(half.predict(X[:2]), 1.0)
    _, val_rows = holdout_search.holdout_rows(len(y))
    assert score == pytest.approx(root_mean_squared_error(y[val_rows], truth.predict(X.iloc[val_rows])))
