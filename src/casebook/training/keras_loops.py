"""Keras training loops: one generic fit returning a :class:`~casebook.training.result.TrainingResult`, the
California Housing regressor (features fitted on training rows, Keras' validation split) with its baselines on
the same rows, and the redshift classifiers (LR schedule, early stopping and checkpoint on validation loss)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import root_mean_squared_error

from .. import config
from .holdout_search import holdout_rows, take_rows
from .result import TrainingResult, best_epoch, history_to_frame


def fit_keras(
    model,
    x,
    y=None,
    *,
    epochs: int,
    batch_size: int | None = None,
    validation_data=None,
    validation_split: float = 0.0,
    callbacks=(),
    class_weight=None,
    shuffle: bool = True,
    verbose: int = 0,
) -> TrainingResult:
    """``model.fit`` with its arguments, timed, as a :class:`TrainingResult` (``model`` is the Keras model)."""
    t0 = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        callbacks=list(callbacks),
        class_weight=class_weight,
        shuffle=shuffle,
        verbose=verbose,
    )
    seconds = time.perf_counter() - t0
    frame = history_to_frame(history)
    return TrainingResult(frame, best_epoch(frame), seconds, int(epochs), model, n_train=_rows(x))


def _rows(x) -> int | None:
    """Rows of an array input (the first of a dict of inputs); None for a dataset."""
    first = next(iter(x.values())) if isinstance(x, dict) else x
    return len(first) if isinstance(first, np.ndarray) else None


@dataclass
class KerasRegressor:
    """A fitted feature transformer and the Keras network trained on its output (see :func:`fit_keras_regressor`)."""

    features: object
    net: object

    def predict(self, X) -> np.ndarray:
        return self.net.predict(self.features.transform(X), verbose=0).ravel()


def fit_keras_regressor(
    make_net,
    features,
    X,
    y,
    *,
    epochs: int,
    batch_size: int,
    validation_split: float = 0.2,
    callbacks=(),
    seed: int = config.DEFAULT_SEED,
) -> TrainingResult:
    """Fit ``features`` (a scikit-learn transformer) on the training rows ``X``, then a fresh network
    ``make_net(n_features)`` with Keras' own ``validation_split`` (the last rows, unshuffled, as Keras slices them).

    Returns a :class:`TrainingResult` whose ``model`` is a :class:`KerasRegressor` (``predict(X)``) and whose
    ``validation["rmse"]`` is the RMSE of the network *as returned* (last epoch, or the restored best one) on
    those validation rows, so variants can be compared without touching the test set."""
    config.seed_everything(seed)
    y = np.asarray(y, dtype="float32")
    Xf = features.fit(X, y).transform(X)
    net = make_net(Xf.shape[1])
    result = fit_keras(
        net, Xf, y, validation_split=validation_split, epochs=epochs, batch_size=batch_size, callbacks=callbacks
    )
    split_at = int(np.floor(len(Xf) * (1.0 - validation_split)))  # where keras.fit cuts off its validation rows
    predicted = net.predict(Xf[split_at:], verbose=0).ravel()
    result.model = KerasRegressor(features, net)
    result.validation["rmse"] = float(root_mean_squared_error(y[split_at:], predicted))
    return result


def fit_baseline_regressor(estimator, X, y, validation_split: float = 0.2):
    """A reference regressor on the same footing as :func:`fit_keras_regressor`'s networks: fitted on the first
    ``1 - validation_split`` of the training rows and scored (RMSE) on the last ones, the rows Keras holds out, so
    that baselines and networks are chosen among on one validation set. Returns ``(fitted, val_rmse)``."""
    y = np.asarray(y, dtype="float64")
    fit_rows, val_rows = holdout_rows(len(y), validation_split)
    fitted = estimator.fit(take_rows(X, fit_rows), y[fit_rows])
    return fitted, root_mean_squared_error(y[val_rows], fitted.predict(take_rows(X, val_rows)))


def keras_inputs(model, X, z=None):
    """What ``model`` expects: the PDF array, or ``{"pdf": X, "z": z}`` for a two-input model (``z``: one or
    several numbers per object)."""
    return {"pdf": X, "z": np.asarray(z).reshape(len(X), -1)} if len(model.inputs) == 2 else X


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


def train_keras_classifier(
    model, ds, epochs: int = 20, batch_size: int = 64, output_dir=None, patience: int = 5, verbose: int = 2
) -> TrainingResult:
    """Train a Keras classifier on a :class:`casebook.redshift.dataset.Dataset`: Adam (compiled in) with a learning-rate
    schedule (halved when validation loss stalls), EarlyStopping and ModelCheckpoint (``best.keras``) on
    validation loss — never on the test set. A two-input model gets the estimated redshift as ``z`` (its
    Normalization layer is adapted on the training rows only). ``validation["accuracy_at_best"]`` is the
    validation accuracy of the restored (best-epoch) weights."""
    import keras

    if len(model.inputs) == 2:
        model.get_layer("z_scaler").adapt(np.asarray(ds.z_train).reshape(len(ds.z_train), -1))
    adapt_pdf_scaler(model, ds.X_train)
    schedule = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    callbacks = [schedule, stop]
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        best_file = str(Path(output_dir) / "best.keras")
        callbacks.append(keras.callbacks.ModelCheckpoint(best_file, monitor="val_loss", save_best_only=True))
    validation = (keras_inputs(model, ds.X_valid, ds.z_valid), ds.Y_valid)
    result = fit_keras(
        model,
        keras_inputs(model, ds.X_train, ds.z_train),
        ds.Y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        callbacks=callbacks,
        verbose=verbose,
    )
    result.n_train = len(ds.y_train)
    result.validation["accuracy_at_best"] = result.at_best("val_accuracy")
    return result


def records_table(results) -> pd.DataFrame:
    """One row per trained network (name → :class:`TrainingResult` of :func:`train_keras_classifier`): epochs
    run against the cap, whether early stopping (not the cap) ended it, the best epoch, the cost per epoch, and
    the validation accuracy of the restored (best-epoch) weights."""

    rows = {
        name: {
            "epochs run": r.epochs_run,
            "epoch cap": r.epoch_cap,
            "stopped early": r.stopped_early,
            "best epoch": r.best_epoch,
            "s per epoch": round(r.seconds_per_epoch, 2),
            "s per epoch per 10k PDFs": round(r.seconds_per_epoch * 10_000 / r.n_train, 1),
            "val accuracy at best epoch": round(r.validation["accuracy_at_best"], 4),
        }
        for name, r in results.items()
    }
    return pd.DataFrame(rows).T
