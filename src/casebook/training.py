"""Training loops and model selection helpers shared by the notebooks.

The torch loop works on tensors already in memory (index batches, no per-sample Python work), which is what
makes it several times faster than a textbook ``DataLoader`` with per-sample transforms on a CPU.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

# the torch loop lives with the models (TorchMLPClassifier trains with it); re-exported here, where notebooks use it
from .models import compile_binary, model_device, summary_text, torch_evaluate, torch_fit, torch_predict_proba  # noqa: F401


def search_summary(search) -> pd.DataFrame:
    """A fitted ``*SearchCV`` → its candidates sorted by rank (params, mean and std of the CV score)."""
    res = pd.DataFrame(search.cv_results_)
    cols = ["rank_test_score", "mean_test_score", "std_test_score", "mean_fit_time", "params"]
    return res[cols].sort_values("rank_test_score").reset_index(drop=True)


def run_search(pipeline, space: Mapping, X, y, kind: str = "random", n_iter: int = 10, cv=None,
               scoring: str = "accuracy", seed: int = 42, n_jobs: int = -1):
    """Fit a GridSearchCV (``kind='grid'``) or RandomizedSearchCV on the training data only.

    ``space`` keys are the model's parameter names; they are prefixed with ``model__`` for the pipeline.
    """
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

    cv = cv or StratifiedKFold(3, shuffle=True, random_state=seed)
    grid = {f"model__{k}": v for k, v in space.items()}
    if kind == "grid":
        search = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, n_jobs=n_jobs)
    else:
        search = RandomizedSearchCV(pipeline, grid, n_iter=n_iter, cv=cv, scoring=scoring, n_jobs=n_jobs,
                                    random_state=seed)
    return search.fit(X, y)


def train_tabular(X, y, model: str, cv_folds: int = 5, seed: int = 42) -> dict:
    """The synthetic-classification recipe (shared by ``train-classifier`` and notebook 03): seeded
    train / test / validation split, ``cv_folds``-fold CV on the training part, fit on it, then test and
    validation predictions. Returns a dict with the fitted ``pipeline``, the splits, ``cv_scores`` and
    ``test_pred`` / ``val_pred``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from .models import tabular_classifier
    from .preprocessing import split_three

    X_train, X_test, X_val, y_train, y_test, y_val = split_three(X, y, seed=seed)
    pipe = tabular_classifier(model, seed=seed)
    cv = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(pipe, X_train, y_train, cv=cv, scoring="accuracy")
    pipe.fit(X_train, y_train)
    return {"pipeline": pipe, "cv_scores": scores, "X_train": X_train, "y_train": y_train, "X_test": X_test,
            "y_test": y_test, "X_val": X_val, "y_val": y_val, "test_pred": pipe.predict(X_test),
            "val_pred": pipe.predict(X_val)}


def channels_last(model, *tensors, device=None):
    """Model and image tensors on the run's device (``device``, default :func:`casebook.config.device`), in
    NHWC memory layout (oneDNN's preferred layout on CPUs: ~1.7x faster convolutions here; cuDNN's too).
    Values and results are unchanged."""
    import torch

    from .config import device as default_device

    dev = device or default_device()
    return (model.to(dev, memory_format=torch.channels_last),
            *[t.to(dev).contiguous(memory_format=torch.channels_last) for t in tensors])


def benchmark_loops(make_model, x, y, dataset, n_batches: int = 200, batch_size: int = 64, lr: float = 1e-3,
                    x_val=None, y_val=None, seed: int = 42, device=None) -> pd.DataFrame:
    """Side-by-side timing of the same training on the same number of batches, from the same initial weights:
    (a) this package's loop: :func:`torch_fit` on pre-normalised in-memory tensors in channels-last layout;
    (b) the textbook ``DataLoader`` over a dataset whose per-sample transform converts and normalises every
    image on the fly, default layout. Both run on ``device`` (default :func:`casebook.config.device`). Returns
    seconds, ms per batch and validation accuracy for each, and the speed-up (``.attrs['speedup']``). A few warm-up batches are run (untimed) on throw-away copies first."""
    import torch
    from torch.utils.data import DataLoader

    from .config import device as default_device

    dev = device or default_device()
    torch.manual_seed(seed)
    ref = make_model().to(dev)
    loss_fn = torch.nn.CrossEntropyLoss()

    def tensor_loop(m, batches):
        m, xc = channels_last(m, x, device=dev)
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        torch_fit(m, xc, y, optimizer=opt, epochs=1, batch_size=batch_size, max_batches=batches, seed=seed)
        return m

    def textbook_loop(m, batches):
        dev = model_device(m)
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                            pin_memory=dev.type == "cuda")
        m.train()
        for b, (xb, yb) in enumerate(loader):
            if b >= batches:
                break
            opt.zero_grad(set_to_none=True)
            loss_fn(m(xb.to(dev, non_blocking=True)), yb.to(dev, non_blocking=True)).backward()
            opt.step()
        return m

    rows = {}
    for name, loop in (("tensor loop, channels-last (this notebook)", tensor_loop),
                       ("textbook DataLoader + ToTensor/Normalize", textbook_loop)):
        loop(copy.deepcopy(ref), 5)  # warm-up
        _synchronize()
        t0 = time.perf_counter()
        m = loop(copy.deepcopy(ref), n_batches)
        _synchronize()
        secs = time.perf_counter() - t0
        acc = torch_evaluate(m, x_val, y_val)[1] if x_val is not None else np.nan
        rows[name] = {"seconds": secs, "ms per batch": 1000 * secs / n_batches, "validation accuracy": acc}
    out = pd.DataFrame(rows).T
    out.attrs["speedup"] = out["seconds"].iloc[1] / out["seconds"].iloc[0]
    return out


def _synchronize() -> None:
    """Wait for queued GPU work, so that wall-clock timings include it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class KerasRegressor:
    """A fitted feature transformer and the Keras network trained on its output (see :func:`fit_keras_regressor`)."""
    features: object
    net: object
    history: object
    val_rmse: float

    def predict(self, X) -> np.ndarray:
        return self.net.predict(self.features.transform(X), verbose=0).ravel()


def fit_keras_regressor(make_net, features, X, y, *, epochs: int, batch_size: int, validation_split: float = 0.2,
                        callbacks=(), seed: int = 42) -> KerasRegressor:
    """Fit ``features`` (a scikit-learn transformer) on the training rows ``X``, then a fresh network
    ``make_net(n_features)`` with Keras' own ``validation_split`` (the last rows, unshuffled, as Keras slices them).

    ``val_rmse`` is the RMSE of the network *as returned* (last epoch, or the restored best one) on those validation
    rows, so variants can be compared without touching the test set."""
    from . import config

    config.seed_everything(seed)
    y = np.asarray(y, dtype="float32")
    Xf = features.fit(X, y).transform(X)
    net = make_net(Xf.shape[1])
    history = net.fit(Xf, y, validation_split=validation_split, epochs=epochs, batch_size=batch_size,
                      callbacks=list(callbacks), verbose=0)
    split_at = int(np.floor(len(Xf) * (1.0 - validation_split)))  # where keras.fit cuts off its validation rows
    residual = net.predict(Xf[split_at:], verbose=0).ravel() - y[split_at:]
    return KerasRegressor(features, net, history, float(np.sqrt(np.mean(residual ** 2))))


def fit_baseline_regressor(estimator, X, y, validation_split: float = 0.2):
    """A reference regressor on the same footing as :func:`fit_keras_regressor`'s networks: fitted on the first
    ``1 - validation_split`` of the training rows and scored (RMSE) on the last ones, the rows Keras holds out, so
    that baselines and networks are chosen among on one validation set. Returns ``(fitted, val_rmse)``."""
    y = np.asarray(y, dtype="float64")
    split_at = int(np.floor(len(y) * (1.0 - validation_split)))
    rows = np.arange(len(y))
    fit_rows, val_rows = rows[:split_at], rows[split_at:]
    take = (lambda a, r: a.iloc[r]) if hasattr(X, "iloc") else (lambda a, r: a[r])
    fitted = estimator.fit(take(X, fit_rows), y[fit_rows])
    residual = fitted.predict(take(X, val_rows)) - y[val_rows]
    return fitted, float(np.sqrt(np.mean(residual ** 2)))


def keras_inputs(model, X, z=None):
    """What ``model`` expects: the PDF array, or ``{"pdf": X, "z": z}`` for a two-input model (``z``: one or
    several numbers per object)."""
    return {"pdf": X, "z": np.asarray(z).reshape(len(X), -1)} if len(model.inputs) == 2 else X


def history_to_frame(history) -> pd.DataFrame:
    """A Keras ``History``, its ``.history`` dict, or a dict of per-epoch lists → DataFrame (one row per epoch)."""
    h = getattr(history, "history", history)
    df = pd.DataFrame({k: list(v) for k, v in h.items() if isinstance(v, (list, tuple, np.ndarray))})
    df.index = np.arange(1, len(df) + 1)
    df.index.name = "epoch"
    return df


def history_summary(history, seconds: float | None = None, monitor: str = "val_loss") -> dict:
    """One line per training run instead of a per-epoch log: epochs run, the best epoch by ``monitor`` (the one
    whose weights early stopping restores) and the validation accuracy and loss there, plus wall seconds."""
    df = history_to_frame(history)
    best = int(df[monitor].idxmin())
    acc = "val_accuracy" if "val_accuracy" in df else "val_acc"
    out = {"epochs run": len(df), "best epoch": best, "best val accuracy": round(float(df.loc[best, acc]), 4),
           "best val loss": round(float(df.loc[best, monitor]), 4)}
    if seconds is not None:
        out["seconds"] = round(float(seconds))
    return out


def training_record(model, history: Mapping, y_train, pred_train, y_test, pred_test, class_names: list[str]) -> dict:
    """The seed's ``save_in_dict``, as JSON-able data (no pickle): confusion matrices (train, test), class
    names, per-epoch acc / loss / val_acc / val_loss / learning rate, classification report, model summary."""
    from sklearn.metrics import classification_report, confusion_matrix

    h = {k: [float(v) for v in vals] for k, vals in history.items()}
    n = len(class_names)
    return {
        "class_names": list(class_names),
        "cm_train": confusion_matrix(y_train, pred_train, labels=range(n)).tolist(),
        "cm_test": confusion_matrix(y_test, pred_test, labels=range(n)).tolist(),
        "acc": h.get("accuracy", []), "loss": h.get("loss", []),
        "val_acc": h.get("val_accuracy", []), "val_loss": h.get("val_loss", []),
        "lr": h.get("learning_rate", h.get("lr", [])),
        "best_epoch": int(np.argmin(h["val_loss"])) + 1 if h.get("val_loss") else len(h.get("loss", [])),
        "report": classification_report(y_test, pred_test, labels=range(n), target_names=class_names,
                                            output_dict=True, zero_division=0),
        "summary": summary_text(model),
        "y_test": [int(v) for v in y_test],
        "pred_test": [int(v) for v in pred_test],
    }


def records_table(records: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per trained network (records of :func:`train_keras_classifier`): epochs run against the cap,
    whether early stopping (not the cap) ended it, the best epoch, the cost per epoch, and the validation accuracy
    of the restored (best-epoch) weights."""
    rows = {name: {"epochs run": r["epochs_run"], "epoch cap": r["epoch_cap"], "stopped early": r["stopped_early"],
                   "best epoch": r["best_epoch"], "s per epoch": r["seconds_per_epoch"],
                   "s per epoch per 10k PDFs": round(r["seconds_per_epoch"] * 10_000 / r["n_train"], 1),
                   "val accuracy at best epoch": round(r["val_acc_at_best"], 4)} for name, r in records.items()}
    return pd.DataFrame(rows).T


def adapt_pdf_scaler(model, X_train) -> None:
    """Adapt a redshift model's ``pdf_scaler`` (one mean and variance) on a sample of training rows only."""
    names = [layer.name for layer in model.layers]
    if "pdf_scaler" not in names:
        return
    rows = np.random.default_rng(0).choice(len(X_train), min(500, len(X_train)), replace=False)
    sample = X_train[np.sort(rows)]
    if "downsample" in names:
        sample = np.asarray(model.get_layer("downsample")(sample))
    model.get_layer("pdf_scaler").adapt(sample)


def epoch_seconds_per_10k(model, X, Y, batch_size: int = 64, n_rows: int = 2000) -> float:
    """Wall seconds one training epoch would take on 10,000 PDFs: times one epoch over ``n_rows`` rows (after a
    short untimed warm-up that compiles the graph) and scales. A benchmark printed in the notebook, not a test."""
    adapt_pdf_scaler(model, X)
    n = min(n_rows, len(X))
    model.fit(X[: 2 * batch_size], Y[: 2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(X[:n], Y[:n], batch_size=batch_size, epochs=1, verbose=0)
    return (time.perf_counter() - t0) * 10_000 / n


def train_keras_classifier(model, ds, epochs: int = 20, batch_size: int = 64, output_dir=None, patience: int = 5,
                           verbose: int = 2) -> dict:
    """Train a Keras classifier on a :class:`casebook.redshift.Dataset`: Adam (compiled in) with a learning-rate
    schedule (halved when validation loss stalls), EarlyStopping and ModelCheckpoint (``best.keras``) on
    validation loss — never on the test set. A two-input model gets the estimated redshift as ``z`` (its
    Normalization layer is adapted on the training rows only). Returns a JSON-able record (see
    :func:`training_record`) with ``history`` and ``best_epoch``."""
    import keras
    from pathlib import Path

    two = len(model.inputs) == 2
    if two:
        model.get_layer("z_scaler").adapt(np.asarray(ds.z_train).reshape(len(ds.z_train), -1))
    adapt_pdf_scaler(model, ds.X_train)
    callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5, verbose=0),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)]
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(str(Path(output_dir) / "best.keras"), monitor="val_loss",
                                                         save_best_only=True))
    t0 = time.perf_counter()
    hist = model.fit(keras_inputs(model, ds.X_train, ds.z_train), ds.Y_train,
                     validation_data=(keras_inputs(model, ds.X_valid, ds.z_valid), ds.Y_valid),
                     epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - t0
    pred_train = model.predict(keras_inputs(model, ds.X_train, ds.z_train), batch_size=256, verbose=0)
    pred_test = model.predict(keras_inputs(model, ds.X_test, ds.z_test), batch_size=256, verbose=0)
    rec = training_record(model, hist.history, ds.y_train, pred_train.argmax(1), ds.y_test, pred_test.argmax(1),
                          ds.class_names)
    rec["train_seconds"] = round(seconds, 1)
    rec["seconds_per_epoch"] = round(seconds / len(hist.history["loss"]), 2)
    rec["epochs_run"], rec["epoch_cap"], rec["n_train"] = len(hist.history["loss"]), int(epochs), len(ds.y_train)
    rec["stopped_early"] = rec["epochs_run"] < rec["epoch_cap"]  # by early stopping, not by the cap
    best = rec["best_epoch"] - 1
    rec["val_acc_at_best"] = float(rec["val_acc"][best]) if rec["val_acc"] else None  # the restored weights
    rec["test_proba"] = pred_test.tolist()
    return rec


class FeatureCache:
    """Backbone features computed once per (backbone, alpha, size, weights, pooling, split) and reused by every
    model whose backbone is frozen with the same pretrained weights (the head then trains in seconds)."""

    def __init__(self):
        self.store: dict = {}

    def get(self, model, ds, split: str):
        p = model.casebook_params
        weights = p["weights"] if p["weights"] is not None else f"random-{id(model)}"
        key = (p["backbone"], p["alpha"], p["img_size"], str(weights), p["pooling"], p["input_shape"],
               p["include_preprocessing"], split)
        if key not in self.store:
            import tensorflow as tf

            f = model.get_layer("features")
            # one traced graph: about twice the throughput of eager calls on a CPU (EfficientNet-Lite0, 224 px)
            extract = tf.function(lambda x: f(x, training=False), reduce_retracing=True)
            feats, ys = [], []
            for x, y in ds:
                feats.append(np.asarray(extract(x)))
                ys.append(np.asarray(y))
            self.store[key] = (np.concatenate(feats), np.concatenate(ys))
        return self.store[key]


def train_xray(model, datasets: dict, cache: FeatureCache, epochs: int = 5, class_weight=None, patience: int = 3,
               verbose: int = 0) -> tuple[dict, dict]:
    """Train a :func:`casebook.models.build_model` model; monitor and early-stop on the validation split only.

    ``datasets``: ``{"train": ds, "val": ds}`` (tf.data, labels included). Frozen backbone → the head is trained
    on cached features (same weights as the full model); otherwise the whole model trains end to end.
    Returns ``(history, {"val": (proba, y)})``.
    """
    import keras

    p = model.casebook_params
    two = p["loss"] == "categorical_crossentropy"  # 2 softmax units: one-hot labels
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    if p["strategy"] == "feature_extraction":
        head = model.get_layer("head")
        # a separate trainer over the head's own layers (same weights): the nested head itself is never compiled,
        # so the saved model carries no second optimizer that a reload would try to restore
        head = keras.Model(head.inputs, head.outputs, name="head_trainer")
        compile_binary(head, p)
        f_tr, y_tr = cache.get(model, datasets["train"], "train")
        f_va, y_va = cache.get(model, datasets["val"], "val")
        hist = head.fit(f_tr, _targets(y_tr, two), validation_data=(f_va, _targets(y_va, two)), epochs=epochs,
                        batch_size=p["batch_size"] or 64, class_weight=class_weight, callbacks=[stop], verbose=verbose)
        p_va = positive_proba(head.predict(f_va, batch_size=256, verbose=0))
    else:
        train, val = (_rebatched(datasets[s], p["batch_size"], two) for s in ("train", "val"))
        hist = model.fit(train, validation_data=val, epochs=epochs, class_weight=class_weight,
                         callbacks=[stop], verbose=verbose, shuffle=False)  # the dataset shuffles itself
        p_va, y_va = predict_dataset(model, datasets["val"])
    return hist.history, {"val": (p_va, y_va)}


def _targets(y, one_hot: bool):
    """Labels as the loss expects them: 0/1, or one-hot for 2 softmax units."""
    y = np.asarray(y)
    return np.eye(2, dtype=np.float32)[y.astype(int)] if one_hot else y


def _rebatched(ds, batch_size: int | None, one_hot: bool):
    """A tf.data split with ``params['batch_size']`` (when given) and one-hot labels (when the loss needs them)."""
    import tensorflow as tf

    if batch_size:
        ds = ds.unbatch().batch(batch_size)
    return ds.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), 2))) if one_hot else ds


def positive_proba(out) -> np.ndarray:
    """P(pneumonia) from a model's output: the sigmoid unit, or the second of 2 softmax units."""
    out = np.asarray(out)
    return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.ravel()


def predict_dataset(model, ds) -> tuple[np.ndarray, np.ndarray]:
    """(P(class 1), labels) over a labelled tf.data dataset, in its order."""
    ps, ys = [], []
    for x, y in ds:
        ps.append(positive_proba(model(x, training=False)))
        ys.append(np.asarray(y))
    return np.concatenate(ps), np.concatenate(ys)
