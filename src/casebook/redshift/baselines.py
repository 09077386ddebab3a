"""The honest baseline: gradient boosting on hand-made PDF summaries."""

from __future__ import annotations

import numpy as np

from .. import config
from .dataset import Dataset


def fit_feature_classifier(features: np.ndarray, ds: Dataset, seed: int = config.DEFAULT_SEED):
    """Gradient boosting on per-object ``features`` (PDF summaries, or the ceilings' noise-free quantities) with
    ``ds``'s split: fitted on the training rows only. Returns ``(model, validation accuracy, test
    probabilities)``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed).fit(features[ds.idx_train], ds.y_train)
    return model, float(model.score(features[ds.idx_valid], ds.y_valid)), model.predict_proba(features[ds.idx_test])


def test_metrics(ds: Dataset, proba) -> dict:
    """Bootstrap test metrics of class probabilities ``proba`` on ``ds``'s test rows: the binary set (with ROC and
    PR AUC of class 1) for two classes, the multiclass set (accuracy, macro-F1 …) otherwise."""
    from ..report import metrics

    proba = np.asarray(proba)
    pred = proba.argmax(1)
    if ds.n_classes == 2:
        return metrics.bootstrap_metrics(ds.y_test, pred, proba[:, 1])
    return metrics.bootstrap_metrics(ds.y_test, pred, metrics=metrics.MULTICLASS_METRICS)


def pdf_summaries(
    log_pdf: np.ndarray, zgrid: np.ndarray, log_evidence: np.ndarray | None = None, window: int = 200, chunk: int = 256
) -> np.ndarray:
    """Hand-made features per PDF for the honest baseline: peak probability, second-peak ratio (highest
    value farther than ``window`` grid points from the maximum, over the maximum), entropy (nats), width
    (grid points above half the maximum), estimated z, and log-evidence if given. Computed ``chunk`` rows at a
    time, so memory stays small whatever N is."""
    x_all = log_pdf[..., 0] if log_pdf.ndim == 3 else log_pdf
    out = []
    cols = np.arange(x_all.shape[1])[None, :]
    for start in range(0, len(x_all), chunk):
        x = np.asarray(x_all[start : start + chunk], dtype=np.float64)
        p = np.exp(x - x.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        k = p.argmax(1)
        peak = p[np.arange(len(p)), k]
        second = np.where(np.abs(cols - k[:, None]) > window, p, 0).max(1)
        entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(1)
        width = (p > peak[:, None] / 2).sum(1)
        out.append(np.column_stack([np.log(peak), second / peak, entropy, np.log(width), zgrid[k]]))
    feats = np.concatenate(out)
    if log_evidence is not None:
        feats = np.column_stack([feats, log_evidence])
    return feats.astype(np.float64)


SUMMARY_NAMES = ["log peak probability", "second-peak ratio", "entropy", "log width", "z_est", "log-evidence"]
