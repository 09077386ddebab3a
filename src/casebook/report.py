"""Figures, metrics with confidence intervals, and the results files every notebook publishes.

Figures go to ``assets/<notebook>/<name>.png`` (:func:`save_fig`); results to ``assets/results/<case>.json``
(:func:`write_results`), from which :func:`update_readme` rebuilds the README's results table.
"""

from __future__ import annotations

import json
import re
import resource
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from . import config
from .models.summary import summary_text
from .training.result import TrainingResult, history_to_frame

# ------------------------------------------------------------------------------------------- figures


def save_fig(fig, notebook: str, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``assets/<notebook>/<name>.png`` and return the path (the notebook still shows it)."""
    out = config.assets_root() / notebook / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out


def _plt():
    import matplotlib.pyplot as plt

    return plt


def show_fig(fig, notebook: str, name: str) -> None:
    """What a notebook does with a finished figure: tight layout, save as ``assets/<notebook>/<name>.png``,
    show it inline. Returns nothing, so that a cell ending with it prints no path."""
    fig.tight_layout()
    save_fig(fig, notebook, name)
    _plt().show()


def integer_epoch_ticks(ax, n_epochs: int) -> None:
    """Epoch axes show whole epochs only (1, 2, 3 …, never 1.5), from 1 to ``n_epochs``."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, n_epochs + 0.5)
    if n_epochs <= 12:
        ax.set_xticks(range(1, n_epochs + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


def plot_confusion_matrix(
    y_true, y_pred, labels: list[str] | None = None, ax=None, title: str = "", normalize: bool = True
):
    """Confusion matrix with row-normalised colours; each cell shows the row percentage and the count."""
    plt = _plt()
    n = len(labels) if labels is not None else int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = skm.confusion_matrix(y_true, y_pred, labels=np.arange(n))
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0) * 100
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n) if n > 3 else (4, 3.4))
    ax.imshow(pct if normalize else cm, cmap="Blues", vmin=0, vmax=100 if normalize else None)
    labels = labels if labels is not None else [str(i) for i in range(n)]
    ax.set_xticks(range(n), labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    small = n > 6
    for i in range(n):
        for j in range(n):
            txt = f"{pct[i, j]:.0f}%\n{cm[i, j]}" if not small else f"{pct[i, j]:.0f}"
            ax.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize=7 if small else 9,
                color="white" if pct[i, j] > 60 else "black",
            )
    ax.set_title(title or ("confusion matrix (row %, count)" if not small else "confusion matrix (row %)"))
    return ax


def plot_learning_curves(
    history, metrics: tuple[str, ...] = ("loss", "accuracy"), axes=None, title: str = "", best_epoch: int | None = None
):
    """Train vs validation curves per epoch for each metric present (``x`` and ``val_x`` keys)."""
    plt = _plt()
    df = history_to_frame(history)
    metrics = [m for m in metrics if m in df]
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.3), squeeze=False)
        axes = axes[0]
    for ax, m in zip(np.atleast_1d(axes), metrics, strict=False):
        ax.plot(df.index, df[m], "o-", ms=3, label="train")
        if f"val_{m}" in df:
            ax.plot(df.index, df[f"val_{m}"], "o-", ms=3, label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.set_title(f"{title} {m}".strip())
        integer_epoch_ticks(ax, int(df.index.max()) if len(df) else 1)
        ax.legend()
    return axes


def plot_runs_curves(runs, title: str = ""):
    """The pneumonia seed's ``*_graphs`` figure: one column per run, loss (top) and accuracy (bottom) per epoch,
    train vs validation, integer epoch ticks. ``runs``: dicts with ``name``, ``history`` and ``params``."""
    plt = _plt()
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6.6), squeeze=False)
    for k, r in enumerate(runs):
        label = f"{r['name']} {r['params']['strategy']}"
        plot_learning_curves(r["history"], metrics=("loss", "accuracy"), axes=axes[:, k], title=label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_runs_confusion(runs, labels: list[str], title: str = ""):
    """The pneumonia seed's ``*_confusion`` figure: each run's validation confusion matrix (row %)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.8), squeeze=False)
    for ax, r in zip(axes[0], runs, strict=False):
        plot_confusion_matrix(r["val_true"], r["val_pred"], labels, ax=ax, title=f"{r['name']} (validation)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_projection(xy, labels, ax=None, title: str = "", xlabel: str = "PC 1", ylabel: str = "PC 2"):
    """A 2-D projection coloured by class, with labelled axes and a class legend."""
    plt = _plt()
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    labels = np.asarray(labels)
    for k, c in enumerate(np.unique(labels)):
        mine = labels == c
        ax.scatter(xy[mine, 0], xy[mine, 1], s=4, alpha=0.6, color=plt.cm.tab10(k % 10), label=f"class {c}")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=7, markerscale=3, loc="best")
    return ax


def plot_heatmap(
    grid: pd.DataFrame,
    ax=None,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    fmt: str = ".2f",
    cmap: str = "viridis",
):
    """A table of numbers as a heatmap with the values written in the cells; axis labels from the index and
    column names. Returns the image (for a colour bar)."""
    plt = _plt()
    ax = ax or plt.subplots()[1]
    image = ax.imshow(grid.to_numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    mid = (np.nanmin(grid.to_numpy()) + np.nanmax(grid.to_numpy())) / 2 if vmin is None else (vmin + vmax) / 2
    for (i, j), v in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, f"{v:{fmt}}", ha="center", va="center", color="white" if v < mid else "black")
    ax.set(
        xticks=range(grid.shape[1]),
        xticklabels=list(grid.columns),
        yticks=range(grid.shape[0]),
        yticklabels=list(grid.index),
        xlabel=grid.columns.name or "",
        ylabel=grid.index.name or "",
        title=title,
    )
    return image


def format_ci(metric: Mapping, digits: int = 4) -> str:
    """``{"value": v, "ci95": [lo, hi]}`` → ``"v [lo, hi]"``."""
    lo, hi = metric["ci95"]
    return f"{metric['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def ci_table(results: Mapping[str, Mapping[str, dict]], prefix: str = "", digits: int = 3) -> pd.DataFrame:
    """:func:`metrics_table` restricted to the metrics whose names start with ``prefix``."""
    table = metrics_table(results, digits)
    return table[[c for c in table.columns if c.startswith(prefix)]]


def torchviz_graph(model, example, path: Path) -> tuple[Path | None, str]:
    """Render ``model``'s autograd graph for ``example`` with torchviz to ``<path>.png``. Returns the PNG (None
    if it could not be drawn) and one line saying what happened (saved where, or what is missing)."""
    import shutil

    try:
        from torchviz import make_dot
    except ImportError:
        return None, "torchviz is not installed: skipping the model graph"
    if not shutil.which("dot"):
        return None, "Graphviz `dot` is not installed (apt-get install graphviz): the graph is not rendered"
    graph = make_dot(model(example), params=dict(model.named_parameters()), show_attrs=False)
    png = Path(graph.render(str(path), format="png", cleanup=True))
    return png, f"model graph → {config.display_path(png)}"


def prediction_title(
    true_label: str, predicted: int, p_positive: float, names=("NORMAL", "PNEUMONIA"), positive: str = "pneumonia"
) -> str:
    """An image title saying the truth, the prediction and the score it came from:
    ``NORMAL → PNEUMONIA`` over ``p(pneumonia)=0.73``."""
    return f"{true_label} → {names[int(predicted)]}\np({positive})={float(p_positive):.2f}"


def plot_regression_diagnostics(y_true, y_pred, axes=None, title: str = "", cap: float | None = None):
    """Predicted vs actual (with the identity line and, if given, the target's ``cap``) and residuals
    (predicted − actual) vs predicted. Returns the two axes."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    y_true, y_pred = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    axes[0].scatter(y_true, y_pred, s=3, alpha=0.3)
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = actual")
    if cap is not None:
        axes[0].axvline(cap, color="tab:red", lw=1, ls=":", label=f"target cap {cap:g}")
    axes[0].legend()
    axes[0].set(xlabel="actual", ylabel="predicted", title=f"{title}: predicted vs actual".lstrip(": "))
    axes[1].scatter(y_pred, y_pred - y_true, s=3, alpha=0.3)
    axes[1].axhline(0, color="k", lw=1)
    axes[1].set(xlabel="predicted", ylabel="residual (predicted − actual)", title="residuals")
    return axes


def plot_map(
    lon, lat, values, ax=None, centres=None, label: str = "", title: str = "", s: float = 2, alpha: float = 1.0
):
    """Points at (longitude, latitude) coloured by ``values``; optional ``centres`` as (latitude, longitude) rows."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.6))
    sc = ax.scatter(lon, lat, c=values, s=s, cmap="viridis", alpha=alpha)
    ax.figure.colorbar(sc, ax=ax, label=label)
    if centres is not None:
        centres = np.asarray(centres)
        ax.scatter(centres[:, 1], centres[:, 0], marker="x", c="tab:red", s=25, label=f"{len(centres)} k-means centres")
        ax.legend(loc="upper right")
    ax.set(xlabel="longitude", ylabel="latitude", title=title)
    return ax


def plot_roc_pr(y_true, scores: Mapping[str, np.ndarray], axes=None, pos_label: str = "positive"):
    """Overlaid ROC and precision-recall curves for several models' positive-class scores."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for name, s in scores.items():
        fpr, tpr, _ = skm.roc_curve(y_true, s)
        axes[0].plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y_true, s):.3f})")
        p, r, _ = skm.precision_recall_curve(y_true, s)
        axes[1].plot(r, p, label=f"{name} (AP {skm.average_precision_score(y_true, s):.3f})")
    axes[0].plot([0, 1], [0, 1], "k:", lw=1)
    axes[0].set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC ({pos_label} = positive)")
    base = float(np.mean(y_true))
    axes[1].axhline(base, color="k", ls=":", lw=1)
    axes[1].set(xlabel="recall", ylabel="precision", title=f"precision-recall ({pos_label} = positive)")
    for ax in axes:
        ax.legend(fontsize=8)
    return axes


def plot_group_histograms(frame: pd.DataFrame, column: str, by: list[str], ax=None, bins: int = 30):
    """Density histograms of ``frame[column]``, one outline per group of the ``by`` columns (e.g. class × split)."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    edges = np.histogram_bin_edges(frame[column].dropna(), bins=bins)
    for key, part in frame.groupby(by):
        label = " · ".join(map(str, key if isinstance(key, tuple) else (key,)))
        ax.hist(part[column], bins=edges, density=True, histtype="step", lw=1.5, label=f"{label} ({len(part)})")
    ax.set(xlabel=column.replace("_", " "), ylabel="density", title=f"{column.replace('_', ' ')} by {' × '.join(by)}")
    ax.legend(fontsize=7)
    return ax


def plot_score_shift(groups: Mapping[str, tuple], threshold: float, names=("NORMAL", "PNEUMONIA"), axes=None):
    """Where two samples disagree: for each true class, the distribution of P(positive) in every group (e.g.
    validation vs test), with the decision threshold; a last panel with their reliability (calibration) curves.
    ``groups``: name → (labels, scores)."""
    from sklearn.calibration import calibration_curve

    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    bins = np.linspace(0, 1, 26)
    for k, label in enumerate(names):
        for name, (y, s) in groups.items():
            y, s = np.asarray(y), np.asarray(s)
            axes[k].hist(
                s[y == k], bins=bins, density=True, histtype="step", lw=1.6, label=f"{name} (n={int(np.sum(y == k))})"
            )
        axes[k].axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
        axes[k].set(xlabel=f"predicted P({names[1].lower()})", ylabel="density", title=f"true {label} images")
        axes[k].legend(fontsize=8)
    for name, (y, s) in groups.items():
        observed, predicted = calibration_curve(y, s, n_bins=10, strategy="quantile")
        axes[2].plot(predicted, observed, "o-", ms=4, label=name)
    axes[2].plot([0, 1], [0, 1], "k:", lw=1)
    axes[2].set(
        xlabel=f"mean predicted P({names[1].lower()})",
        ylabel=f"observed fraction {names[1]}",
        title="calibration (quantile bins)",
    )
    axes[2].legend(fontsize=8)
    return axes


def shift_table(groups: Mapping[str, tuple], threshold: float, names=("normal", "pneumonia")) -> pd.DataFrame:
    """One row per group: size, prevalence of the positive class, mean score of each true class, each class's
    recall at ``threshold``, ROC-AUC, and the expected calibration error (10 quantile bins)."""
    metrics = per_class_metrics(names)
    shown = {
        f"recall_{names[0]}": f"recall {names[0]}",
        f"recall_{names[1]}": f"recall {names[1]}",
        f"roc_auc_{names[1]}": "ROC-AUC",
    }
    rows = {}
    for name, (y, s) in groups.items():
        y, s = np.asarray(y).astype(int), np.asarray(s, dtype=float)
        pred = (s >= threshold).astype(int)
        edges = np.quantile(s, np.linspace(0, 1, 11))
        bin_of = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, 9)
        ece = sum(
            abs(y[bin_of == b].mean() - s[bin_of == b].mean()) * np.mean(bin_of == b)
            for b in range(10)
            if np.any(bin_of == b)
        )
        rows[name] = {
            "images": len(y),
            f"prevalence {names[1]}": y.mean(),
            f"mean score | {names[0]}": s[y == 0].mean(),
            f"mean score | {names[1]}": s[y == 1].mean(),
            **{label: float(metrics[key](y, pred, s)) for key, label in shown.items()},
            "calibration error": ece,
        }
    return pd.DataFrame(rows).T


def plot_image_grid(images, titles=None, ncols: int = 8, cmap="gray", figsize_per: float = 1.4):
    """A grid of images with optional titles (e.g. misclassified digits)."""
    plt = _plt()
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(figsize_per * ncols, figsize_per * 1.15 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(np.squeeze(images[k]), cmap=cmap)
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- metrics


def classification_report_frame(y_true, y_pred, target_names: list[str] | None = None) -> pd.DataFrame:
    """scikit-learn's classification report as a DataFrame (rows: classes, macro avg, weighted avg)."""
    rep = skm.classification_report(y_true, y_pred, target_names=target_names, output_dict=True, zero_division=0)
    acc = rep.pop("accuracy", None)
    df = pd.DataFrame(rep).T
    df["support"] = df["support"].astype(int)
    if acc is not None:
        df.attrs["accuracy"] = acc
    return df.round(4)


def tpr_at_fpr(y_true, score, fpr_target: float) -> float:
    """True-positive rate at a false-positive rate ≤ ``fpr_target`` (interpolated on the ROC curve)."""
    fpr, tpr, _ = skm.roc_curve(y_true, score)
    return float(np.interp(fpr_target, fpr, tpr))


def _safe(fn: Callable, *args) -> float:
    try:
        return float(fn(*args))
    except ValueError:  # e.g. a bootstrap sample holding one class
        return float("nan")


CLASSIFICATION_METRICS: dict[str, Callable] = {
    "accuracy": lambda y, p, s: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, p, s: skm.balanced_accuracy_score(y, p),
    "precision": lambda y, p, s: skm.precision_score(y, p, zero_division=0),
    "recall": lambda y, p, s: skm.recall_score(y, p, zero_division=0),
    "f1": lambda y, p, s: skm.f1_score(y, p, zero_division=0),
    "roc_auc": lambda y, p, s: skm.roc_auc_score(y, s),
    "pr_auc": lambda y, p, s: skm.average_precision_score(y, s),
}

MULTICLASS_METRICS: dict[str, Callable] = {
    "accuracy": lambda y, p, s: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, p, s: skm.balanced_accuracy_score(y, p),
    "macro_f1": lambda y, p, s: skm.f1_score(y, p, average="macro", zero_division=0),
}

REGRESSION_METRICS: dict[str, Callable] = {
    "mse": lambda y, p, s: skm.mean_squared_error(y, p),
    "rmse": lambda y, p, s: np.sqrt(skm.mean_squared_error(y, p)),
    "mae": lambda y, p, s: skm.mean_absolute_error(y, p),
    "r2": lambda y, p, s: skm.r2_score(y, p),
}


def _binary_counts(Y, P):
    tp = ((Y == 1) & (P == 1)).sum(1)
    fp = ((Y == 0) & (P == 1)).sum(1)
    fn = ((Y == 1) & (P == 0)).sum(1)
    tn = ((Y == 0) & (P == 0)).sum(1)
    return tp, fp, fn, tn


def _div(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def _batch_auc(Y, S):
    """ROC-AUC of each row (Mann-Whitney U with average ranks: exact, ties included)."""
    from scipy.stats import rankdata

    r = rankdata(S, axis=1)
    npos = Y.sum(1)
    nneg = Y.shape[1] - npos
    u = (r * Y).sum(1) - npos * (npos + 1) / 2
    return np.where((npos > 0) & (nneg > 0), _div(u, npos * nneg), np.nan)


# Vectorised versions over a (n_boot, n) matrix of resamples: identical values, ~100x faster than a loop.
_BATCH = {
    "accuracy": lambda Y, P, S: (Y == P).mean(1),
    "balanced_accuracy": lambda Y, P, S: _balanced(Y, P),
    "precision": lambda Y, P, S: (lambda c: _div(c[0], c[0] + c[1]))(_binary_counts(Y, P)),
    "recall": lambda Y, P, S: (lambda c: _div(c[0], c[0] + c[2]))(_binary_counts(Y, P)),
    "f1": lambda Y, P, S: (lambda c: _div(2 * c[0], 2 * c[0] + c[1] + c[2]))(_binary_counts(Y, P)),
    "roc_auc": lambda Y, P, S: _batch_auc(Y, S),
    "mse": lambda Y, P, S: ((Y - P) ** 2).mean(1),
    "rmse": lambda Y, P, S: np.sqrt(((Y - P) ** 2).mean(1)),
    "mae": lambda Y, P, S: np.abs(Y - P).mean(1),
    "r2": lambda Y, P, S: 1 - ((Y - P) ** 2).sum(1) / ((Y - Y.mean(1, keepdims=True)) ** 2).sum(1),
}


def _balanced(Y, P):
    classes = np.unique(Y)
    recalls = [_div(((c == Y) & (c == P)).sum(1), (c == Y).sum(1)) for c in classes]
    present = [(c == Y).sum(1) > 0 for c in classes]
    return np.sum(recalls, axis=0) / np.maximum(np.sum(present, axis=0), 1)


_STANDARD = {
    id(f): name for d in (CLASSIFICATION_METRICS, MULTICLASS_METRICS, REGRESSION_METRICS) for name, f in d.items()
}


def bootstrap_metrics(
    y_true,
    y_pred,
    y_score=None,
    metrics: Mapping[str, Callable] | None = None,
    n_boot: int = 1000,
    seed: int = config.DEFAULT_SEED,
    alpha: float = 0.05,
) -> dict:
    """Point estimate and percentile bootstrap 95% CI for each metric.

    ``metrics`` maps names to ``f(y_true, y_pred, y_score)``; default: binary classification metrics
    (positive class = 1; ``y_score`` = score of class 1). The test set is resampled with replacement
    ``n_boot`` times (200 in smoke mode). Returns ``{name: {"value": v, "ci95": [lo, hi]}}``.
    """
    metrics = metrics or CLASSIFICATION_METRICS
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    y_score = None if y_score is None else np.asarray(y_score)
    n_boot = config.pick(n_boot, min(n_boot, 200))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    Y, P = y_true[idx], y_pred[idx]
    S = None if y_score is None else y_score[idx]
    out = {}
    for name, fn in metrics.items():
        if y_score is None and name in ("roc_auc", "pr_auc"):
            continue
        value = _safe(fn, y_true, y_pred, y_score)
        std = _STANDARD.get(id(fn))
        if std in _BATCH:
            boots = _BATCH[std](Y, P, S)
        else:
            boots = np.array([_safe(fn, y_true[i], y_pred[i], None if y_score is None else y_score[i]) for i in idx])
        lo, hi = np.nanpercentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[name] = {"value": round(value, 6), "ci95": [round(float(lo), 6), round(float(hi), 6)]}
    return out


def metrics_table(results: Mapping[str, Mapping[str, dict]], digits: int = 3) -> pd.DataFrame:
    """``{model: {metric: {"value", "ci95"}}}`` → a DataFrame of ``value [lo, hi]`` strings."""
    rows = {model: {m: format_ci(d, digits) for m, d in ms.items()} for model, ms in results.items()}
    return pd.DataFrame(rows).T


def signal_efficiency_metrics(levels=(0.01, 0.05), signal: int = 0, name: str = "signal_eff") -> dict:
    """Metrics ``{name}_at_{level%}pct``: the fraction of signal events (class ``signal``) kept when a fraction
    ``level`` of background events passes the cut (physics' figure of merit; MAGIC: gamma acceptance at a
    given hadron contamination). The score is for class 1, so signal=0 flips labels and scores."""

    def fn(level):
        if signal == 0:
            return lambda y, p, s: tpr_at_fpr(1 - np.asarray(y), -np.asarray(s), level)
        return lambda y, p, s: tpr_at_fpr(y, s, level)

    return {f"{name}_at_{level * 100:g}pct": fn(level) for level in levels}


def gamma_metrics(levels=(0.01, 0.05)) -> dict:
    """The gamma-telescope case's test metrics (notebooks 01 and 02): the standard binary set plus gamma
    acceptance ``gamma_acc_at_{level%}pct`` at fixed hadron contamination (gamma is class 0)."""
    return {**CLASSIFICATION_METRICS, **signal_efficiency_metrics(levels, signal=0, name="gamma_acc")}


def evaluate_models(
    fitted: Mapping,
    X_test,
    y_test,
    metrics: Mapping[str, Callable] | None = None,
    n_boot: int = 1000,
    score_fn: Callable | None = None,
) -> tuple[dict, dict, dict]:
    """Evaluate already-chosen, already-fitted binary models on the test set (once).

    Returns ``(results, scores, predictions)``: results in the results-file schema, plus each model's
    positive-class scores and predicted labels for plots.
    """
    from .models.tabular import positive_scores

    score_fn = score_fn or positive_scores
    results, scores, preds = {}, {}, {}
    for name, est in fitted.items():
        scores[name] = np.asarray(score_fn(est, X_test))
        preds[name] = np.asarray(est.predict(X_test))
        results[name] = bootstrap_metrics(y_test, preds[name], scores[name], metrics, n_boot=n_boot)
    return results, scores, preds


def plot_confusion_grid(y_true, predictions: Mapping[str, np.ndarray], labels: list[str], ncols: int = 4):
    """One confusion matrix (row %, counts) per model, in a grid."""
    plt = _plt()
    n = len(predictions)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax, (name, pred) in zip(axes.flat, predictions.items(), strict=False):
        plot_confusion_matrix(y_true, pred, labels, ax=ax, title=name)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def choose_threshold(y_true, score) -> float:
    """Decision threshold maximising Youden's J = TPR − FPR = 2 × balanced accuracy − 1, i.e. the threshold of
    highest balanced accuracy — a rule fixed in advance, applied to validation data only."""
    fpr, tpr, thr = skm.roc_curve(y_true, score)
    return float(np.clip(thr[np.argmax(tpr - fpr)], 0, 1))


def per_class_metrics(names=("normal", "pneumonia")) -> dict:
    """Accuracy, recall and precision of each class, and ROC-AUC / PR-AUC of class 1 (``names[1]``)."""
    n0, n1 = names
    return {
        "accuracy": CLASSIFICATION_METRICS["accuracy"],
        f"recall_{n1}": CLASSIFICATION_METRICS["recall"],
        f"precision_{n1}": CLASSIFICATION_METRICS["precision"],
        f"recall_{n0}": lambda y, p, s: skm.recall_score(y, p, pos_label=0, zero_division=0),
        f"precision_{n0}": lambda y, p, s: skm.precision_score(y, p, pos_label=0, zero_division=0),
        f"roc_auc_{n1}": CLASSIFICATION_METRICS["roc_auc"],
        f"pr_auc_{n1}": CLASSIFICATION_METRICS["pr_auc"],
    }


# ------------------------------------------------------------------------------------------- results files

RESULT_KEYS = ("case", "dataset", "protocol", "runtime_s", "models", "best")


def chosen_by(selection: Mapping) -> str:
    """The model a ``selection`` record picks: the one its declared ``rule`` names, else the best of its
    ``scores`` (highest, or lowest when ``higher_is_better`` is false)."""
    if "rule" in selection:
        return selection["rule"]["chosen"]
    scores = selection["scores"]
    pick = max if selection.get("higher_is_better", True) else min
    return pick(scores, key=scores.get)


def validate_results(d: Mapping) -> None:
    """Raise ValueError unless ``d`` follows the results schema; when it records how the model was selected
    (``selection``), ``best`` must be the model that selection picks."""
    missing = [k for k in RESULT_KEYS if k not in d]
    if missing:
        raise ValueError(f"results missing keys {missing}")
    if d["best"] not in d["models"]:
        raise ValueError(f"best model {d['best']!r} is not among the models {list(d['models'])}")
    for model, ms in d["models"].items():
        for metric, v in ms.items():
            if not (isinstance(v, Mapping) and "value" in v and len(v.get("ci95", ())) == 2):
                raise ValueError(f"{model}.{metric}: expected {{'value': float, 'ci95': [lo, hi]}}")
    for model, rule in d.get("tolerances", {}).items():
        if not isinstance(rule, Mapping) or rule.get("rule") not in TOLERANCE_RULES:
            raise ValueError(f"tolerance of {model!r} must be one of {', '.join(TOLERANCE_RULES)}")
    if "selection" in d and chosen_by(d["selection"]) != d["best"]:
        raise ValueError(
            f"best is {d['best']!r} but the selection ({d['selection']['metric']}) picks {chosen_by(d['selection'])!r}"
        )


def _atomic_write_text(path: Path, text: str) -> None:
    with config.atomic_path(path) as tmp:
        tmp.write_text(text)


def selection_record(
    metric: str,
    scores: Mapping[str, float],
    higher_is_better: bool = True,
    rule: str | None = None,
    chosen: str | None = None,
) -> dict:
    """How the published model was chosen: ``metric`` (e.g. "validation accuracy") and every candidate's score,
    baselines included. ``rule`` and ``chosen``: a rule declared before the test set was touched that picks
    ``chosen`` instead of the best score (e.g. a deep ensemble under dataset shift); the scores stay on record."""
    record = {"metric": metric, "scores": {k: float(v) for k, v in scores.items()}}
    record["higher_is_better"] = higher_is_better
    if rule is not None:
        if chosen not in record["scores"]:
            raise ValueError(f"the rule's choice {chosen!r} is not among the scored models {list(record['scores'])}")
        record["rule"] = {"text": rule, "chosen": chosen}
    return record


# How far a rerun's number may move before verification fails, declared by each results file per model (see
# :func:`tolerance` and ``python -m casebook.verify``).
TOLERANCE_RULES = {
    "exact": "deterministic given the seed: the same value on the same library versions (within 1e-6, the "
    "rounding of results files); with other versions, within the committed CI half-width",
    "ci_half_width": "networks and threaded training are not bit-reproducible across CPUs and library builds: "
    "within half the width of the committed 95% CI",
}


def tolerance(rule: str, reason: str | None = None) -> dict:
    """A results file's tolerance for a model's metrics: ``exact`` or ``ci_half_width`` (see
    :data:`TOLERANCE_RULES`), with the reason it applies."""
    if rule not in TOLERANCE_RULES:
        raise ValueError(f"unknown tolerance rule {rule!r}; valid: {', '.join(TOLERANCE_RULES)}")
    return {"rule": rule, "reason": reason or TOLERANCE_RULES[rule]}


def write_results(
    case: str,
    dataset: str,
    protocol: str,
    runtimes: Mapping[str, float],
    models: Mapping,
    best: str,
    extra: Mapping | None = None,
    selection: Mapping | None = None,
    best_kind: str = "",
    tolerances: Mapping | None = None,
) -> Path:
    """Write ``assets/results/<case>.json`` (schema: see README). ``runtimes``: wall seconds per notebook
    that contributed (``runtime_s`` is their sum); ``selection`` (:func:`selection_record`) says how ``best`` was
    chosen and is checked against it; ``best_kind`` says what kind of model won (e.g. "baseline");
    ``tolerances``: one :func:`tolerance` for every model, or ``{model: tolerance}`` (default ``ci_half_width``).
    The file also records its ``provenance`` per notebook (:func:`casebook.provenance.collect`). Smoke runs
    write nothing into the committed assets unless ``CASEBOOK_ASSETS`` points elsewhere (tests use a temp
    folder)."""
    runtimes = {k: round(float(v), 1) for k, v in runtimes.items()}
    d = {
        "case": case,
        "dataset": dataset,
        "protocol": protocol,
        "runtime_s": round(sum(runtimes.values()), 1),
        "runtimes": runtimes,
        "models": {m: dict(v) for m, v in models.items()},
        "best": best,
        "mode": "smoke" if config.is_smoke() else "full",
    }
    if best_kind:
        d["best_kind"] = best_kind
    if selection is not None:
        d["selection"] = dict(selection)
    if extra:
        d["extra"] = dict(extra)
    tolerances = tolerances or tolerance("ci_half_width")
    if "rule" in tolerances:
        tolerances = dict.fromkeys(d["models"], dict(tolerances))
    d["tolerances"] = {m: dict(tolerances.get(m) or tolerance("ci_half_width")) for m in d["models"]}
    from . import provenance

    d["provenance"], d["models_by_notebook"] = provenance.per_notebook(read_results(case), runtimes, d["models"])
    validate_results(d)
    path = config.results_dir() / f"{case}.json"
    _atomic_write_text(path, json.dumps(d, indent=2, default=float) + "\n")
    return path


def provenance_line(case: str) -> str:
    """The brief provenance a notebook's last cell prints: this notebook's entry of ``<case>.json``."""
    from . import provenance

    entries = (read_results(case) or {}).get("provenance", {})
    record = entries.get(provenance.current_notebook(entries))
    return provenance.summary_line(record) if record else "provenance: no results file written yet"


def read_results(case: str) -> dict | None:
    """The published ``assets/results/<case>.json``, or None if that notebook has not run yet."""
    path = config.results_dir() / f"{case}.json"
    return json.loads(path.read_text()) if path.is_file() else None


README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
HEADLINE = ("accuracy", "roc_auc", "rmse", "macro_f1", "recall_pneumonia", "recall_normal")
# What the source projects claimed (on leaky protocols; see each notebook's comparison), beside our numbers.
SEED_CLAIMS = {
    "gamma-telescope": "Random Forest accuracy 0.897",
    "synthetic": "SVM accuracy 0.99",
    "fashion-mnist": "CNN accuracy 0.89",
    "pneumonia": "MobileNetV2 accuracy 0.888",
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def results_markdown(results_dir: Path | None = None) -> str:
    """The README results table: one row per case study: the model chosen on validation (baselines included)
    and its kind, its test metrics with 95 % CIs, the source project's claim, each notebook's wall time, and
    the protocol."""
    results_dir = results_dir or config.results_dir()
    lines = [
        "| case | chosen on validation | test metrics (95% CI) | source project claimed | wall time | "
        "dataset and protocol |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(results_dir.glob("*.json")):
        d = json.loads(path.read_text())
        validate_results(d)
        if d.get("mode", "full") != "full":
            raise ValueError(
                f"{path.name} holds {d['mode']}-mode results: the README table is built from full "
                f"runs only (make notebooks)"
            )
        best = d["models"][d["best"]]
        heads = [m for m in HEADLINE if m in best] or list(best)[:2]
        cells = "; ".join(
            f"{m} {best[m]['value']:.3f} [{best[m]['ci95'][0]:.3f}, {best[m]['ci95'][1]:.3f}]" for m in heads
        )
        dirty = any(p.get("dirty") for p in d.get("provenance", {}).values())
        mode = " (dirty tree)" if dirty else ""
        kind = d.get("best_kind", "")
        chosen = kind if kind.startswith(d["best"]) else d["best"] + (f" ({kind})" if kind else "")
        if "rule" in d.get("selection", {}):
            chosen += f", by a rule declared on validation: {d['selection']['rule']['text']}"
        elif "selection" in d:
            chosen += f", by {d['selection']['metric']}"
        runtimes = d.get("runtimes") or {"": d["runtime_s"]}
        wall = "<br>".join(f"{name[:2]} {_minutes(s)}".strip() for name, s in runtimes.items())
        lines.append(
            f"| {d['case']}{mode} | {chosen} | {cells} | {SEED_CLAIMS.get(d['case'], '—')} | {wall} | "
            f"{d['dataset']}: {d['protocol']} |"
        )
    return "\n".join(lines)


def update_readme(readme: Path | None = None, results_dir: Path | None = None) -> bool:
    """Rewrite the block between the results markers in README.md; return True if it changed."""
    readme = readme or config.REPO_ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block")
    new = pattern.sub(lambda _: f"{README_START}\n{results_markdown(results_dir)}\n{README_END}", text)
    if new != text:
        _atomic_write_text(readme, new)
    return new != text


# ------------------------------------------------------------------------------------------- training records


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
    from .training.keras_loops import keras_inputs

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


def _cm_panel(ax, cm, names, title):
    cm = np.asarray(cm)
    rows = cm.sum(1, keepdims=True)
    pct = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0) * 100
    ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for (i, j), v in np.ndenumerate(pct):
        ax.text(
            j, i, f"{v:.1f}%\n({cm[i, j]})", ha="center", va="center", fontsize=9, color="white" if v > 60 else "black"
        )
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)


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
    _cm_panel(axes[0, 0], record["cm_train"], names, "(a) train confusion matrix")
    _cm_panel(axes[0, 1], record["cm_test"], names, "(b) test confusion matrix")
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
        [
            n,
            f"{rep[n]['precision']:.3f}",
            f"{rep[n]['recall']:.3f}",
            f"{rep[n]['f1-score']:.3f}",
            f"{int(rep[n]['support'])}",
        ]
        for n in names
    ]
    rows.append(["accuracy", "", "", f"{rep['accuracy']:.3f}", f"{int(rep['macro avg']['support'])}"])
    table = ax.table(cellText=rows, colLabels=["class", "precision", "recall", "F1", "support"], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(12)
    table.scale(1, 2.2)
    ax.set_title("(d) test set, per class")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- run facts


class Stopwatch:
    """Wall time since creation: ``sw = Stopwatch(); ...; sw.elapsed``; ``sw.lap('name')`` records laps."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.laps: dict[str, float] = {}
        self._last = self.t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
        return self.laps[name]


def peak_memory_gb() -> float:
    """Peak resident memory (max RSS) of this process, in GB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


if __name__ == "__main__":  # python -m casebook.report: refresh the README results table
    changed = update_readme()
    print("README results table", "updated" if changed else "unchanged")
