"""The classical models: the gamma case's zoo of eight scikit-learn / XGBoost classifiers with their search
spaces, and the pipelines of the synthetic-classification tools."""

from __future__ import annotations

import numpy as np

from .. import config


def classical_models(seed: int = config.DEFAULT_SEED, n_jobs: int = 1) -> dict:
    """name → (estimator, search kind, search space). Names are the models' real names (the seed project
    called AdaBoost "Gradient Boosting"). Spaces are sized for a 2-core machine."""
    from sklearn.ensemble import AdaBoostClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    return {
        "Logistic Regression": (LogisticRegression(max_iter=2000), "grid", {"C": [0.01, 0.1, 1, 10]}),
        "Decision Tree": (
            DecisionTreeClassifier(random_state=seed),
            "grid",
            {"max_depth": [4, 6, 8, 10, 14], "min_samples_leaf": [1, 5, 20]},
        ),
        "Random Forest": (
            RandomForestClassifier(random_state=seed, n_jobs=n_jobs),
            "random",
            {"n_estimators": [200, 300], "max_features": [2, 3, 4], "min_samples_leaf": [1, 2, 4]},
        ),
        "Gradient Boosting": (
            HistGradientBoostingClassifier(random_state=seed),
            "random",
            {
                "learning_rate": [0.03, 0.05, 0.1],
                "max_iter": [200, 400],
                "max_leaf_nodes": [15, 31, 63],
                "l2_regularization": [0.0, 1.0],
            },
        ),
        "AdaBoost": (
            AdaBoostClassifier(random_state=seed),
            "grid",
            {"n_estimators": [100, 300], "learning_rate": [0.5, 1.0]},
        ),
        "XGBoost": (
            XGBClassifier(random_state=seed, n_jobs=n_jobs, tree_method="hist", eval_metric="logloss"),
            "random",
            {
                "n_estimators": [300, 600],
                "max_depth": [4, 6, 8],
                "learning_rate": [0.03, 0.05, 0.1],
                "subsample": [0.8, 1.0],
                "colsample_bytree": [0.8, 1.0],
            },
        ),
        "SVM (RBF)": (
            SVC(kernel="rbf", random_state=seed),
            "random",
            {"C": [1, 3, 10, 30], "gamma": ["scale", 0.05, 0.1, 0.2]},
        ),
        "Gaussian NB": (GaussianNB(), "grid", {"var_smoothing": [1e-9, 1e-6, 1e-3]}),
    }


TABULAR_MODELS = ("random-forest", "svm", "logistic-regression")


def tabular_classifier(name: str, seed: int = config.DEFAULT_SEED):
    """``StandardScaler → model`` for the synthetic-classification tools: random-forest, svm (RBF) or
    logistic-regression. Unknown names raise ValueError listing the valid ones."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    makers = {
        "random-forest": lambda: RandomForestClassifier(n_estimators=80, random_state=seed, n_jobs=-1),
        "svm": lambda: SVC(kernel="rbf", random_state=seed),
        "logistic-regression": lambda: LogisticRegression(max_iter=2000),
    }
    if name not in makers:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(TABULAR_MODELS)}")
    return Pipeline([("scale", StandardScaler()), ("model", makers[name]())])


def positive_scores(estimator, X) -> np.ndarray:
    """Score of class 1: ``predict_proba[:, 1]`` where available, else ``decision_function`` (e.g. an SVC
    without Platt scaling, whose probability fit would cost 5 extra fits)."""
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)[:, 1]
    return estimator.decision_function(X)
