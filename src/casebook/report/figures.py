"""Figures: saving them under assets/, and every plot the notebooks draw."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .. import config
from ..training.result import history_to_frame


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
    n = len(labels) if labels is not None else int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = skm.confusion_matrix(y_true, y_pred, labels=np.arange(n))
    return plot_confusion_counts(cm, labels, ax=ax, title=title, normalize=normalize)


def plot_confusion_counts(cm, labels: list[str] | None = None, ax=None, title: str = "", normalize: bool = True):
    """The one confusion-matrix painter (seaborn's heatmap): counts ``cm`` (rows = true class) coloured by row
    percentage, each cell annotated with its percentage and count (percentage only beyond 6 classes)."""
    import seaborn as sns

    cm = np.asarray(cm)
    n = len(cm)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0) * 100
    small = n > 6
    cells = [f"{p:.0f}" if small else f"{p:.0f}%\n{c}" for p, c in zip(pct.ravel(), cm.ravel(), strict=True)]
    annot = np.array(cells).reshape(cm.shape)
    if ax is None:
        _, ax = _plt().subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n) if n > 3 else (4, 3.4))
    labels = labels if labels is not None else [str(i) for i in range(n)]
    sns.heatmap(
        pct if normalize else cm,
        annot=annot,
        fmt="",
        cmap="Blues",
        vmin=0,
        vmax=100 if normalize else None,
        cbar=False,
        square=True,
        annot_kws={"fontsize": 7 if small else 9},
        xticklabels=labels,
        yticklabels=labels,
        ax=ax,
    )
    ax.tick_params(axis="x", rotation=45 if n > 3 else 0)
    ax.tick_params(axis="y", rotation=0)
    ax.set(xlabel="predicted", ylabel="true")
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
    """A table of numbers as an annotated heatmap (seaborn); axis labels from the index and column names.
    Returns the colour mesh (for a shared colour bar)."""
    import seaborn as sns

    ax = ax or _plt().subplots()[1]
    sns.heatmap(grid, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=False, ax=ax)
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title)
    return ax.collections[0]


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
    """Density histograms of ``frame[column]`` (seaborn), one outline per group of the ``by`` columns (e.g.
    class × split), each density normalised within its group; the legend gives each group's size."""
    import seaborn as sns

    if ax is None:
        _, ax = _plt().subplots(figsize=(6, 4))
    groups = frame[by].astype(str).agg(" · ".join, axis=1)
    sizes = groups.map(groups.value_counts())
    hue = groups + " (" + sizes.astype(str) + ")"
    sns.histplot(
        x=frame[column],
        hue=hue,
        hue_order=sorted(hue.unique()),
        bins=bins,
        stat="density",
        common_norm=False,
        element="step",
        fill=False,
        linewidth=1.5,
        ax=ax,
    )
    ax.set(xlabel=column.replace("_", " "), ylabel="density", title=f"{column.replace('_', ' ')} by {' × '.join(by)}")
    ax.get_legend().set_title(None)
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
