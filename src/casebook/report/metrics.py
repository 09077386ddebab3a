"""Test metrics with percentile-bootstrap 95% CIs (vectorised), metric sets and decision thresholds."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .. import config


def format_ci(metric: Mapping, digits: int = 4) -> str:
    """``{"value": v, "ci95": [lo, hi]}`` → ``"v [lo, hi]"``."""
    lo, hi = metric["ci95"]
    return f"{metric['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def ci_table(results: Mapping[str, Mapping[str, dict]], prefix: str = "", digits: int = 3) -> pd.DataFrame:
    """:func:`metrics_table` restricted to the metrics whose names start with ``prefix``."""
    table = metrics_table(results, digits)
    return table[[c for c in table.columns if c.startswith(prefix)]]


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
    "rmse": lambda y, p, s: skm.root_mean_squared_error(y, p),
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
BATCH_METRICS = {
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
        if std in BATCH_METRICS:
            boots = BATCH_METRICS[std](Y, P, S)
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
    from ..models.tabular import positive_scores

    score_fn = score_fn or positive_scores
    results, scores, preds = {}, {}, {}
    for name, est in fitted.items():
        scores[name] = np.asarray(score_fn(est, X_test))
        preds[name] = np.asarray(est.predict(X_test))
        results[name] = bootstrap_metrics(y_test, preds[name], scores[name], metrics, n_boot=n_boot)
    return results, scores, preds


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
