"""Searches scored on one validation holdout: XGBoost regressors with early stopping on the holdout rows (the
rows Keras' ``validation_split`` holds out, so trees and networks are chosen among on the same rows), and a
two-model blend whose weight is chosen on those rows too. The test set is never seen here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import root_mean_squared_error

from .. import config


def holdout_rows(n: int, validation_split: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows): the first ``1 - validation_split`` and the last rows, as Keras cuts them."""
    split_at = int(np.floor(n * (1.0 - validation_split)))
    rows = np.arange(n)
    return rows[:split_at], rows[split_at:]


def take_rows(a, rows):
    """``rows`` of a DataFrame (by position) or an array."""
    return a.iloc[rows] if hasattr(a, "iloc") else a[rows]


@dataclass
class FeaturesAndModel:
    """A fitted feature transformer (or None) and the regressor trained on its output."""

    features: object
    model: object

    def predict(self, X) -> np.ndarray:
        Xf = self.features.transform(X) if self.features is not None else X
        return np.asarray(self.model.predict(Xf)).ravel()


def search_xgb_regressor(
    features,
    X,
    y,
    space: dict,
    n_iter: int = 8,
    validation_split: float = 0.2,
    max_rounds: int = 4000,
    early_stopping_rounds: int = 100,
    seed: int = config.DEFAULT_SEED,
    n_jobs: int = -1,
):
    """``n_iter`` XGBoost configurations drawn from ``space`` (``ParameterSampler``, seeded), each trained on
    the fit rows with early stopping on the validation rows (up to ``max_rounds`` trees). ``features`` (a
    scikit-learn transformer, or None) is fitted once, on the fit rows only. Returns ``(best, table)``: the
    :class:`FeaturesAndModel` with the lowest validation RMSE, and one row per configuration (params, trees
    kept, validation RMSE, seconds), best first."""
    from sklearn.base import clone
    from sklearn.model_selection import ParameterSampler
    from xgboost import XGBRegressor

    fit_rows, val_rows = holdout_rows(len(y), validation_split)
    y = np.asarray(y, dtype="float64")
    fitted_features = clone(features).fit(take_rows(X, fit_rows), y[fit_rows]) if features is not None else None
    transform = fitted_features.transform if fitted_features is not None else (lambda a: a)
    X_fit, X_val = transform(take_rows(X, fit_rows)), transform(take_rows(X, val_rows))
    rows, best, best_rmse = [], None, np.inf
    for params in ParameterSampler(space, n_iter=n_iter, random_state=seed):
        t0 = time.perf_counter()
        model = XGBRegressor(
            n_estimators=max_rounds,
            early_stopping_rounds=early_stopping_rounds,
            tree_method="hist",
            eval_metric="rmse",
            random_state=seed,
            n_jobs=n_jobs,
            **params,
        )
        model.fit(X_fit, y[fit_rows], eval_set=[(X_val, y[val_rows])], verbose=False)
        score = root_mean_squared_error(y[val_rows], model.predict(X_val))
        rows.append(
            {**params, "trees": model.best_iteration + 1, "validation RMSE": score, "seconds": time.perf_counter() - t0}
        )
        if score < best_rmse:
            best, best_rmse = FeaturesAndModel(fitted_features, model), score
    table = pd.DataFrame(rows).sort_values("validation RMSE").reset_index(drop=True)
    return best, table


@dataclass
class Blend:
    """``weight`` × the first model's prediction + (1 − ``weight``) × the second's."""

    first: object
    second: object
    weight: float

    def predict(self, X) -> np.ndarray:
        a = np.asarray(self.first.predict(X)).ravel()
        b = np.asarray(self.second.predict(X)).ravel()
        return self.weight * a + (1.0 - self.weight) * b


BLEND_WEIGHTS = tuple(np.round(np.linspace(0, 1, 11), 1))  # 0, 0.1, ..., 1


def choose_blend(first, second, X, y, validation_split: float = 0.2, weights=BLEND_WEIGHTS):
    """The :class:`Blend` of two fitted regressors whose weight (on a grid, 0 and 1 included: either model
    alone) has the lowest RMSE on the validation rows, with that RMSE: ``(blend, validation_rmse)``."""
    _, val_rows = holdout_rows(len(y), validation_split)
    X_val, y_val = take_rows(X, val_rows), np.asarray(y, dtype="float64")[val_rows]
    a, b = np.asarray(first.predict(X_val)).ravel(), np.asarray(second.predict(X_val)).ravel()
    scores = {float(w): root_mean_squared_error(y_val, w * a + (1 - w) * b) for w in weights}
    weight = min(scores, key=scores.get)
    return Blend(first, second, weight), scores[weight]
