"""Hyperparameter searches and cross-validation on training data only (scikit-learn ``*SearchCV``,
``cross_validate``) and the synthetic-classification recipe shared by ``train-classifier`` and notebook 03.
Every search and cross-validation runs under :func:`casebook.cluster.parallel`: on a Ray cluster when
``CASEBOOK_RAY_ADDRESS`` names one, on this machine's cores otherwise."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .. import cluster, config


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
    with cluster.parallel():
        return search.fit(X, y)


def _shown(value, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def params_text(params: Mapping, digits: int = 4) -> str:
    """Parameters as a reader reads them: ``{'model__max_depth': 6, 'model__lr': 0.0003333}`` →
    ``'max_depth=6, lr=0.0003333'`` (pipeline prefixes dropped, floats to ``digits`` significant digits)."""
    return ", ".join(f"{name.split('__')[-1]}={_shown(value, digits)}" for name, value in params.items())


def space_text(space: Mapping) -> str:
    """A search space as a reader reads it: ``{'C': [0.01, 1], 'gamma': ['scale', 1e-06]}`` →
    ``'C ∈ {0.01, 1}; gamma ∈ {scale, 1e-06}'``."""
    return "; ".join(f"{name} ∈ {{{', '.join(_shown(v) for v in values)}}}" for name, values in space.items())


def searches_table(searches: Mapping) -> pd.DataFrame:
    """Fitted ``*SearchCV`` objects by name → one row each, best CV score first: the kind of search, how many
    candidates it tried, the best candidate's mean and std CV score over the folds, its refit time and its
    parameters (as :func:`params_text`)."""
    rows = {}
    for name, fitted in searches.items():
        best = fitted.best_index_
        rows[name] = {
            "search": "grid" if "Grid" in type(fitted).__name__ else "random",
            "candidates": len(fitted.cv_results_["params"]),
            "CV score": fitted.best_score_,
            "CV std": fitted.cv_results_["std_test_score"][best],
            "refit s": fitted.refit_time_,
            "best parameters": params_text(fitted.best_params_),
        }
    return pd.DataFrame(rows).T.infer_objects().sort_values("CV score", ascending=False)


def out_of_fold(pipeline, X, y, cv, method: str = "predict", n_jobs: int = -1):
    """Each training row predicted by the pipeline fitted on the other folds (scikit-learn's
    ``cross_val_predict``, under :func:`casebook.cluster.parallel`): the validation predictions that the tie
    rule (:func:`casebook.report.choice.choose`) compares when a choice is made by cross-validation.
    ``method``: ``predict`` (labels) or ``predict_proba``."""
    from sklearn.model_selection import cross_val_predict

    with cluster.parallel():
        return cross_val_predict(pipeline, X, y, cv=cv, method=method, n_jobs=n_jobs)


def best_out_of_fold(fitted_search, X, y, method: str = "predict", n_jobs: int = -1):
    """:func:`out_of_fold` for a fitted search's best candidate, on the search's own folds (``X, y`` are the
    rows it was fitted on): the fold models that gave its best CV score, refitted (seeded estimators give
    the same ones)."""
    from sklearn.base import clone

    best = clone(fitted_search.estimator).set_params(**fitted_search.best_params_)
    return out_of_fold(best, X, y, fitted_search.cv, method, n_jobs)


def cross_validate(pipeline, X, y, cv, scoring="accuracy", n_jobs: int = -1) -> dict:
    """scikit-learn's ``cross_validate`` (the pipeline refitted on each training fold only), under
    :func:`casebook.cluster.parallel`. ``scoring`` a name gives ``test_score``; a dict gives ``test_<name>``."""
    from sklearn.model_selection import cross_validate as sk_cross_validate

    with cluster.parallel():
        return sk_cross_validate(pipeline, X, y, cv=cv, scoring=scoring, n_jobs=n_jobs)


def train_tabular(X, y, model: str, cv_folds: int = 5, seed: int = config.DEFAULT_SEED) -> dict:
    """The synthetic-classification recipe (shared by ``train-classifier`` and notebook 03): seeded
    train / test / validation split, ``cv_folds``-fold CV on the training part, fit on it, then test and
    validation predictions. Returns a dict with the fitted ``pipeline``, the splits, ``cv_scores`` and
    ``test_pred`` / ``val_pred``."""
    from sklearn.model_selection import StratifiedKFold

    from ..models.tabular import tabular_classifier
    from ..preprocessing import split_three

    X_train, X_test, X_val, y_train, y_test, y_val = split_three(X, y, seed=seed)
    pipe = tabular_classifier(model, seed=seed)
    cv = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    scores = cross_validate(pipe, X_train, y_train, cv=cv, scoring="accuracy", n_jobs=None)["test_score"]
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
