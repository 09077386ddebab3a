"""What every training loop returns: :class:`TrainingResult` (per-epoch history as a frame, best and run
epochs, seconds, the trained model, validation figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class TrainingResult:
    """One training run.

    ``history``: one row per epoch run (index ``epoch`` from 1; columns such as ``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``); ``best_epoch``: the epoch with the lowest validation loss (the one early
    stopping restores; the last epoch when there is no validation data); ``seconds``: wall time of the fit;
    ``epoch_cap``: the epochs asked for; ``model``: what was trained (or the predictor built around it);
    ``validation``: figures on validation data only (e.g. ``rmse``, ``accuracy_at_best``, ``proba``/``y``);
    ``outputs``: anything else a caller keeps with the run (file names, figures); ``n_train``: training rows.
    """

    history: pd.DataFrame
    best_epoch: int
    seconds: float
    epoch_cap: int
    model: Any = None
    validation: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    n_train: int | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping, not the epoch cap, ended the run."""
        return self.epochs_run < self.epoch_cap

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)

    def at_best(self, column: str) -> float:
        """``column`` of the history at the best epoch."""
        return float(self.history.loc[self.best_epoch, column])

    def as_record(self) -> dict:
        """This result as plain data (what a sweep's trial returns): the history as per-epoch lists, the
        scalars, ``validation`` as it is; not the model, not ``outputs``. :meth:`from_record` reads it back."""
        fields = ("best_epoch", "seconds", "epoch_cap", "validation", "n_train")
        return {"history": self.history.to_dict("list"), **{k: getattr(self, k) for k in fields}}

    @classmethod
    def from_record(cls, record: dict) -> TrainingResult:
        """The result :meth:`as_record` described (without its model)."""
        return cls(**{**record, "history": history_to_frame(record["history"])})

    def summary(self) -> dict:
        """One line per run instead of a per-epoch log: epochs run, the best epoch and the validation accuracy
        and loss there, wall seconds."""
        acc = "val_accuracy" if "val_accuracy" in self.history else "val_acc"
        return {
            "epochs run": self.epochs_run,
            "best epoch": self.best_epoch,
            "best val accuracy": round(self.at_best(acc), 4),
            "best val loss": round(self.at_best("val_loss"), 4),
            "seconds": round(float(self.seconds)),
        }


def history_to_frame(history) -> pd.DataFrame:
    """A :class:`TrainingResult`, a DataFrame, a Keras ``History``, its ``.history`` dict, or a dict of
    per-epoch lists → DataFrame (one row per epoch, index ``epoch`` from 1)."""
    if isinstance(history, TrainingResult):
        return history.history
    if isinstance(history, pd.DataFrame):
        return history
    h = getattr(history, "history", history)
    per_epoch = (list, tuple, np.ndarray)
    df = pd.DataFrame({k: list(v) for k, v in h.items() if isinstance(v, per_epoch)})
    df.index = np.arange(1, len(df) + 1)
    df.index.name = "epoch"
    return df


def best_epoch(history: pd.DataFrame, monitor: str = "val_loss") -> int:
    """The epoch (from 1) with the lowest ``monitor``; the last epoch when it was not recorded."""
    if monitor in history and history[monitor].notna().any():
        return int(history[monitor].idxmin())
    return len(history)
