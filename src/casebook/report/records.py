"""The seed's training record (save_in_dict as JSON) and its 2x2 report figure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..models.summary import summary_text
from ..training.result import TrainingResult
from .figures import _plt, integer_epoch_ticks, plot_confusion_counts
from .results_file import _atomic_write_text


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
        "acc": h.get("accuracy", []),
        "loss": h.get("loss", []),
        "val_acc": h.get("val_accuracy", []),
        "val_loss": h.get("val_loss", []),
        "lr": h.get("learning_rate", h.get("lr", [])),
        "best_epoch": int(np.argmin(h["val_loss"])) + 1 if h.get("val_loss") else len(h.get("loss", [])),
        "report": classification_report(
            y_test, pred_test, labels=range(n), target_names=class_names, output_dict=True, zero_division=0
        ),
        "summary": summary_text(model),
        "y_test": [int(v) for v in y_test],
        "pred_test": [int(v) for v in pred_test],
    }


def classifier_record(result: TrainingResult, ds) -> dict:
    """The JSON-able record of a redshift classifier trained by
    :func:`casebook.training.keras_loops.train_keras_classifier` on ``ds`` (see :func:`training_record`), with
    the run's facts (epochs run against the cap, seconds per epoch, validation accuracy at the best epoch) and
    the test probabilities. The test split is predicted here, after training and choice of epoch."""
    from ..training.keras_loops import keras_inputs

    model = result.model
    pred_train = model.predict(keras_inputs(model, ds.X_train, ds.z_train), batch_size=256, verbose=0)
    pred_test = model.predict(keras_inputs(model, ds.X_test, ds.z_test), batch_size=256, verbose=0)
    history = result.history.to_dict("list")
    rec = training_record(
        model, history, ds.y_train, pred_train.argmax(1), ds.y_test, pred_test.argmax(1), ds.class_names
    )
    rec.update(
        train_seconds=round(result.seconds, 1),
        seconds_per_epoch=round(result.seconds_per_epoch, 2),
        epochs_run=result.epochs_run,
        epoch_cap=result.epoch_cap,
        n_train=result.n_train,
        stopped_early=result.stopped_early,
        val_acc_at_best=result.validation["accuracy_at_best"],
        test_proba=pred_test.tolist(),
    )
    return rec


def save_record(record: Mapping, path: Path) -> Path:
    _atomic_write_text(Path(path), json.dumps(record, indent=1, default=float))
    return Path(path)


def _padded(lo: float, hi: float) -> tuple[float, float]:
    """Axis limits 5 % beyond the data on both sides."""
    margin = 0.05 * (hi - lo + 1e-9)
    return lo - margin, hi + margin


def record_figure(record: Mapping, title: str = ""):
    """The seed's 2×2 report: (a) train and (b) test confusion matrices in row % with counts, (c) learning
    curves with the best epoch marked and y-limits fitted to the data, (d) per-class precision / recall / F1 /
    support table."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5))
    names = record["class_names"]
    plot_confusion_counts(record["cm_train"], names, ax=axes[0, 0], title="(a) train confusion matrix")
    plot_confusion_counts(record["cm_test"], names, ax=axes[0, 1], title="(b) test confusion matrix")
    ax = axes[1, 0]
    epochs = np.arange(1, len(record["loss"]) + 1)
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if record.get(key):
            ax.plot(epochs, record[key], style, color="tab:red", label=key)
    ax2 = ax.twinx()
    for key, style in (("acc", "-"), ("val_acc", "--")):
        if record.get(key):
            ax2.plot(epochs, record[key], style, color="tab:blue", label=key)
    ax.axvline(record["best_epoch"], color="grey", ls=":", label=f"best epoch {record['best_epoch']}")
    losses = np.concatenate([record["loss"], record.get("val_loss") or []])
    accs = np.concatenate([record["acc"], record.get("val_acc") or []])
    ax.set_ylim(*_padded(losses.min(), losses.max()))
    ax2.set_ylim(*_padded(accs.min(), accs.max()))
    ax.set(xlabel="epoch", ylabel="loss (red)", title="(c) learning curves")
    ax2.set_ylabel("accuracy (blue)")
    integer_epoch_ticks(ax, len(epochs))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # below the axes, never over the curves
    ax.legend(h1 + h2, l1 + l2, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    ax = axes[1, 1]
    ax.axis("off")
    rep = record["report"]
    rows = [
        [n, *(f"{rep[n][k]:.3f}" for k in ("precision", "recall", "f1-score")), f"{int(rep[n]['support'])}"]
        for n in names
    ]
    rows.append(["accuracy", "", "", f"{rep['accuracy']:.3f}", f"{int(rep['macro avg']['support'])}"])
    # drawn inside its own axes (bbox), the class column wide enough for its longest name: nothing spills over
    # panel (c)'s accuracy label
    widths = [0.36, 0.16, 0.16, 0.16, 0.16]
    header = ["class", "precision", "recall", "F1", "support"]
    table = ax.table(cellText=rows, colLabels=header, colWidths=widths, bbox=[0.04, 0.2, 0.96, 0.6], cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(10 if max(len(n) for n in names) > 12 else 11)
    ax.set_title("(d) test set, per class")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
