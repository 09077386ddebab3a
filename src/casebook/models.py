"""Model definitions: the classical model zoo with its search spaces, a PyTorch MLP usable as a scikit-learn
estimator, and safe (non-pickle) persistence.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from . import config

# --------------------------------------------------------------------------------------- classical zoo


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
        "Decision Tree": (DecisionTreeClassifier(random_state=seed), "grid",
                          {"max_depth": [4, 6, 8, 10, 14], "min_samples_leaf": [1, 5, 20]}),
        "Random Forest": (RandomForestClassifier(random_state=seed, n_jobs=n_jobs), "random",
                          {"n_estimators": [200, 300], "max_features": [2, 3, 4], "min_samples_leaf": [1, 2, 4]}),
        "Gradient Boosting": (HistGradientBoostingClassifier(random_state=seed), "random",
                              {"learning_rate": [0.03, 0.05, 0.1], "max_iter": [200, 400],
                               "max_leaf_nodes": [15, 31, 63], "l2_regularization": [0.0, 1.0]}),
        "AdaBoost": (AdaBoostClassifier(random_state=seed), "grid",
                     {"n_estimators": [100, 300], "learning_rate": [0.5, 1.0]}),
        "XGBoost": (XGBClassifier(random_state=seed, n_jobs=n_jobs, tree_method="hist", eval_metric="logloss"),
                    "random", {"n_estimators": [300, 600], "max_depth": [4, 6, 8], "learning_rate": [0.03, 0.05, 0.1],
                               "subsample": [0.8, 1.0], "colsample_bytree": [0.8, 1.0]}),
        "SVM (RBF)": (SVC(kernel="rbf", random_state=seed), "random",
                      {"C": [1, 3, 10, 30], "gamma": ["scale", 0.05, 0.1, 0.2]}),
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

    makers = {"random-forest": lambda: RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=-1),
              "svm": lambda: SVC(kernel="rbf", random_state=seed),
              "logistic-regression": lambda: LogisticRegression(max_iter=2000)}
    if name not in makers:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(TABULAR_MODELS)}")
    return Pipeline([("scale", StandardScaler()), ("model", makers[name]())])


def positive_scores(estimator, X) -> np.ndarray:
    """Score of class 1: ``predict_proba[:, 1]`` where available, else ``decision_function`` (e.g. an SVC
    without Platt scaling, whose probability fit would cost 5 extra fits)."""
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)[:, 1]
    return estimator.decision_function(X)


# --------------------------------------------------------------------------------------- torch MLP


def make_mlp(n_in: int, hidden: tuple[int, ...], n_out: int):
    """n_in → h1 → h2 → … → n_out with ReLU between layers (logits out: use cross-entropy)."""
    import torch.nn as nn

    layers, prev = [], n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A PyTorch MLP as a scikit-learn estimator (works in pipelines, ``GridSearchCV``, ``clone``).

    ``fit`` carves a stratified validation split (``validation_fraction``) out of the data it is given and
    early-stops on its loss (``patience`` epochs), keeping the best weights. Per-epoch curves are in
    ``history_``. ``optimizer``: ``adam`` or ``sgd`` (with ``momentum``).
    """

    def __init__(self, hidden=(64, 32), lr=1e-3, epochs=60, batch_size=128, optimizer="adam", momentum=0.9,
                 weight_decay=0.0, validation_fraction=0.1, patience=8, seed=config.DEFAULT_SEED):
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.seed = seed

    def _tensor(self, X):
        import torch

        return torch.as_tensor(np.asarray(X, dtype=np.float32))

    def fit(self, X, y):
        import torch
        from sklearn.model_selection import train_test_split

        from .training import torch_fit

        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        xtr, xva, ytr, yva = train_test_split(X, y_idx, test_size=self.validation_fraction, stratify=y_idx,
                                              random_state=self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and searches run folds in parallel
        try:
            torch.manual_seed(self.seed)
            self.model_ = make_mlp(X.shape[1], tuple(self.hidden), len(self.classes_))
            params = self.model_.parameters()
            opt = (torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay) if self.optimizer == "adam"
                   else torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay))
            self.history_ = torch_fit(self.model_, self._tensor(xtr), torch.as_tensor(ytr), self._tensor(xva),
                                      torch.as_tensor(yva), optimizer=opt, epochs=self.epochs,
                                      batch_size=self.batch_size, patience=self.patience, seed=self.seed)
        finally:
            torch.set_num_threads(threads)
        return self

    def predict_proba(self, X):
        from .training import torch_predict_proba

        return torch_predict_proba(self.model_, self._tensor(X))

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]

    # -- safe persistence: state_dict + JSON config (no pickle)
    def save(self, folder: str | Path) -> Path:
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model_.state_dict(), folder / "mlp_state_dict.pt")
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        cfg.update(classes=self.classes_.tolist(), n_features_in=int(self.n_features_in_))
        (folder / "mlp_config.json").write_text(json.dumps(cfg, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TorchMLPClassifier":
        import torch

        folder = Path(folder)
        cfg = json.loads((folder / "mlp_config.json").read_text())
        classes, n_in = np.array(cfg.pop("classes")), cfg.pop("n_features_in")
        cfg["hidden"] = tuple(cfg["hidden"])
        est = cls(**cfg)
        est.classes_, est.n_features_in_ = classes, n_in
        est.model_ = make_mlp(n_in, est.hidden, len(classes))
        est.model_.load_state_dict(torch.load(folder / "mlp_state_dict.pt", weights_only=True))
        est.model_.eval()
        return est


# --------------------------------------------------------------------------------------- safe persistence
TRUSTED_PREFIXES = ("sklearn.", "imblearn.", "casebook.", "numpy.", "xgboost.", "builtins.", "collections.")


def save_skops(obj, path: str | Path) -> Path:
    """Persist a scikit-learn object with skops (a safe format: loading runs no arbitrary code)."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(obj, path)
    return path


def save_pipeline_with_mlp(pipeline, folder: str | Path) -> Path:
    """A fitted pipeline ending in :class:`TorchMLPClassifier`: preprocessing steps → ``preprocessing.skops``,
    the network → ``mlp_state_dict.pt`` + ``mlp_config.json``. No pickle anywhere."""
    folder = Path(folder)
    save_skops(pipeline[:-1], folder / "preprocessing.skops")
    pipeline[-1].save(folder)
    return folder


def load_pipeline_with_mlp(folder: str | Path):
    """Inverse of :func:`save_pipeline_with_mlp`: a pipeline that predicts exactly like the saved one."""
    from imblearn.pipeline import Pipeline

    folder = Path(folder)
    prep = load_skops(folder / "preprocessing.skops")
    return Pipeline(list(prep.steps) + [("model", TorchMLPClassifier.load(folder))])


def load_skops(path: str | Path):
    """Load a skops file, trusting only types from scikit-learn, imblearn, NumPy, XGBoost and casebook.

    Raises ``ValueError`` naming any other type the file asks for.
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ValueError(f"{path}: refusing to load untrusted types {foreign}")
    return sio.load(path, trusted=untrusted)
