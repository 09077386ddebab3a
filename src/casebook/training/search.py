"""Hyperparameter searches on training data only (scikit-learn ``*SearchCV``) and the synthetic-classification
recipe shared by ``train-classifier`` and notebook 03."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .. import config


def search_summary(search) -> pd.DataFrame:
    """A fitted ``*SearchCV`` → its candidates sorted by rank (params, mean and std of the CV score)."""
    res = pd.DataFrame(search.cv_results_)
    cols = ["rank_test_score", "mean_test_score", "std_test_score", "mean_fit_time", "params"]
    return res[cols].sort_values("rank_test_score").reset_index(drop=True)


def run_search(
    pipeline,
    space: Mapping,
    X,
    y,
    kind: str = "random",
    n_iter: int = 10,
    cv=None,
    scoring: str = "accuracy",
    seed: int = config.DEFAULT_SEED,
    n_jobs: int = -1,
):
    """Fit a GridSearchCV (``kind='grid'``) or RandomizedSearchCV on the training data only.

    ``space`` keys are the model's parameter names; they are prefixed with ``model__`` for the pipeline.
    """
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

    cv = cv or StratifiedKFold(3, shuffle=True, random_state=seed)
    grid = {f"model__{k}": v for k, v in space.items()}
    if kind == "grid":
        search = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, n_jobs=n_jobs)
    else:
        search = RandomizedSearchCV(
            pipeline, grid, n_iter=n_iter, cv=cv, scoring=scoring, n_jobs=n_jobs, random_state=seed
        )
    return search.fit(X, y)


def train_tabular(X, y, model: str, cv_folds: int = 5, seed: int = config.DEFAULT_SEED) -> dict:
    """The synthetic-classification recipe (shared by ``train-classifier`` and notebook 03): seeded
    train / test / validation split, ``cv_folds``-fold CV on the training part, fit on it, then test and
    validation predictions. Returns a dict with the fitted ``pipeline``, the splits, ``cv_scores`` and
    ``test_pred`` / ``val_pred``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from ..models.tabular import tabular_classifier
    from ..preprocessing import split_three

    X_train, X_test, X_val, y_train, y_test, y_val = split_three(X, y, seed=seed)
    pipe = tabular_classifier(model, seed=seed)
    cv = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(pipe, X_train, y_train, cv=cv, scoring="accuracy")
    pipe.fit(X_train, y_train)
    return {
        "pipeline": pipe,
        "cv_scores": scores,
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "X_val": X_val,
        "y_val": y_val,
        "test_pred": pipe.predict(X_test),
        "val_pred": pipe.predict(X_val),
    }
