"""The torch MLP of the gamma case as a scikit-learn estimator (pipelines, searches, ``clone``), trained by the
in-memory torch loop, and its persistence without pickle (state dict + JSON config; preprocessing in skops)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import config
from ..models.mlp import make_mlp
from ..persistence import UntrustedFileError, load_skops, save_skops
from .torch_loop import torch_fit, torch_predict_proba


def make_optimizer(network, name: str = "adam", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0):
    """The optimiser that updates ``network``'s weights: Adam (``name='adam'``), or plain stochastic gradient
    descent with momentum (``'sgd'``); ``weight_decay`` is an L2 penalty on the weights."""
    import torch

    if name == "adam":
        return torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(network.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A PyTorch MLP as a scikit-learn estimator (works in pipelines, ``GridSearchCV``, ``clone``).

    ``fit`` carves a stratified validation split (``validation_fraction``) out of the data it is given and
    early-stops on its loss (``patience`` epochs), keeping the best weights. Data too small for that split (it
    needs two rows of every class, and a row of every class on each side) is trained on in full for ``epochs``
    epochs, without early stopping (``training_.history`` then has no ``val_`` columns). The run (per-epoch
    history, best epoch, seconds) is in ``training_``, a :class:`~casebook.training.result.TrainingResult`.
    Input is checked as scikit-learn's estimators check it (finite, 2-D numbers; class labels). ``optimizer``:
    ``adam`` or ``sgd`` (with ``momentum``). ``device``: where it trains and predicts (default
    :func:`casebook.config.device`); the fitted network is kept on that device.
    """

    def __init__(
        self,
        hidden=(64, 32),
        lr=1e-3,
        epochs=60,
        batch_size=128,
        optimizer="adam",
        momentum=0.9,
        weight_decay=0.0,
        validation_fraction=0.1,
        patience=8,
        seed=config.DEFAULT_SEED,
        device=None,
    ):
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
        self.device = device  # None: casebook.config.device() (CASEBOOK_DEVICE, else cuda, mps, cpu)

    def _validation_split(self, X, y_idx):
        """(train X, train y, validation X, validation y): a stratified split, or all rows and no validation
        rows (None, None) where the data is too small for one."""
        from sklearn.model_selection import train_test_split

        counts = np.bincount(y_idx)
        n_val = math.ceil(self.validation_fraction * len(y_idx))  # train_test_split's rounding
        if min(n_val, len(y_idx) - n_val) < len(counts) or counts.min() < 2:
            return X, y_idx, None, None
        xtr, xva, ytr, yva = train_test_split(
            X, y_idx, test_size=self.validation_fraction, stratify=y_idx, random_state=self.seed
        )
        return xtr, ytr, xva, yva

    def fit(self, X, y):
        import torch

        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be between 0 and 1, got {self.validation_fraction!r}")
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        xtr, ytr, xva, yva = self._validation_split(X, y_idx)
        validation = {} if xva is None else {"x_val": torch.as_tensor(xva), "y_val": torch.as_tensor(yva)}
        dev = config.device(self.device)
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and searches run folds in parallel
        try:
            torch.manual_seed(self.seed)
            self.model_ = make_mlp(X.shape[1], tuple(self.hidden), len(self.classes_)).to(dev)
            opt = make_optimizer(self.model_, self.optimizer, self.lr, self.momentum, self.weight_decay)
            self.training_ = torch_fit(
                self.model_,
                torch.as_tensor(xtr),
                torch.as_tensor(ytr),
                **validation,
                loss_fn=torch.nn.CrossEntropyLoss(),
                optimizer=opt,
                epochs=self.epochs,
                batch_size=self.batch_size,
                patience=self.patience,
                seed=self.seed,
            )
        finally:
            torch.set_num_threads(threads)
        return self

    def predict_proba(self, X):
        import torch

        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return torch_predict_proba(self.model_, torch.as_tensor(X))

    def predict(self, X):
        proba = self.predict_proba(X)  # checks that it is fitted, and X
        return self.classes_[proba.argmax(1)]

    # -- safe persistence: state_dict + JSON config (no pickle)
    def save(self, folder: str | Path) -> Path:
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, folder / "mlp_state_dict.pt")
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        cfg.update(classes=self.classes_.tolist(), n_features_in=int(self.n_features_in_))
        (folder / "mlp_config.json").write_text(json.dumps(cfg, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TorchMLPClassifier:
        import torch

        folder = Path(folder)
        cfg = json.loads((folder / "mlp_config.json").read_text())
        allowed = set(cls().get_params()) | {"classes", "n_features_in"}
        if not isinstance(cfg, dict) or set(cfg) - allowed or not {"classes", "n_features_in"} <= set(cfg):
            raise ValueError(
                f"{folder / 'mlp_config.json'}: not a TorchMLPClassifier config (expected keys {sorted(allowed)})"
            )
        classes, n_in = np.array(cfg.pop("classes")), int(cfg.pop("n_features_in"))
        cfg["hidden"] = tuple(int(h) for h in cfg.get("hidden", (64, 32)))
        est = cls(**cfg)
        est.classes_, est.n_features_in_ = classes, n_in
        est.model_ = make_mlp(n_in, est.hidden, len(classes))
        est.model_.load_state_dict(torch.load(folder / "mlp_state_dict.pt", weights_only=True, map_location="cpu"))
        est.model_.to(config.device(est.device)).eval()
        return est


def save_pipeline_with_mlp(pipeline, folder: str | Path) -> Path:
    """A fitted pipeline ending in :class:`TorchMLPClassifier`: preprocessing steps → ``preprocessing.skops``,
    the network → ``mlp_state_dict.pt`` + ``mlp_config.json``. No pickle anywhere."""
    folder = Path(folder)
    save_skops(pipeline[:-1], folder / "preprocessing.skops")
    pipeline[-1].save(folder)
    return folder


def load_pipeline_with_mlp(folder: str | Path):
    """Inverse of :func:`save_pipeline_with_mlp`: a pipeline that predicts exactly like the saved one.
    The skops part is checked against :data:`TRUSTED_SKOPS_TYPES`, the network's config against the
    estimator's parameters, and its weights are read with ``torch.load(weights_only=True)``."""
    from imblearn.pipeline import Pipeline

    folder = Path(folder)
    prep = load_skops(folder / "preprocessing.skops")
    if not isinstance(prep, Pipeline):
        raise UntrustedFileError(f"{folder / 'preprocessing.skops'} holds a {type(prep).__name__}, not a pipeline")
    return Pipeline(list(prep.steps) + [("model", TorchMLPClassifier.load(folder))])
