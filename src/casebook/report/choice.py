"""The declared tie rule: a candidate replaces the reference only when it beats it by more than validation noise.

Every notebook that chooses between candidates on a validation set names its reference up front (the seed's
specification, or the simpler model) and calls :func:`choose`. The best candidate on validation replaces the
reference only when the **paired bootstrap 95% interval** of their difference (the same resampled validation
rows scored for both) lies entirely on the better side of zero; otherwise the two are tied on validation, and
the reference is kept. On another CPU a tied pair may swap places; a choice made by this rule does not flip
unless the margin itself moves past the noise. The choice and its margin go into the results file
(:func:`casebook.report.results_file.selection_record`, ``tie=choice.record()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import config
from .metrics import BATCH_METRICS

LOWER_IS_BETTER = {"mse", "rmse", "mae"}
RULE = (
    "a candidate replaces the reference only when the paired bootstrap 95% interval of its validation advantage "
    "excludes zero; otherwise they are tied and the reference is kept"
)


@dataclass
class Choice:
    """What :func:`choose` decided and why: every candidate's validation score, and the best one's advantage
    over the reference (positive = better, in the metric's own units) with its paired-bootstrap 95% CI."""

    reference: str
    best: str
    chosen: str
    metric: str
    scores: dict[str, float]
    advantage: float
    ci95: list[float]
    ties_with_best: list[str] = field(default_factory=list)

    @property
    def tied(self) -> bool:
        """True when the best candidate is not better than the reference beyond validation noise."""
        return self.chosen == self.reference and self.best != self.reference

    def sentence(self) -> str:
        """The choice in one sentence a reader can check against the table."""
        margin = f"{self.advantage:+.4f}, 95% CI [{self.ci95[0]:+.4f}, {self.ci95[1]:+.4f}]"
        if self.best == self.reference:
            return f"{self.reference} (the reference) is the best on validation {self.metric}: it is kept."
        if self.tied:
            return (
                f"{self.best} and {self.reference} are tied on validation {self.metric} ({self.best} ahead by "
                f"{margin}): the reference, {self.reference}, is kept."
            )
        others = f"; within noise of it: {', '.join(self.ties_with_best)}" if self.ties_with_best else ""
        return f"{self.best} beats the reference {self.reference} on validation {self.metric} by {margin}{others}."

    def record(self) -> dict:
        """The choice as the results file keeps it (``selection["tie"]``)."""
        return {
            "rule": RULE,
            "reference": self.reference,
            "best": self.best,
            "chosen": self.chosen,
            "metric": self.metric,
            "advantage": round(self.advantage, 6),
            "ci95": [round(v, 6) for v in self.ci95],
            "ties_with_best": list(self.ties_with_best),
        }


def _bootstrap_scores(metric, y, predictions, scores, idx) -> dict[str, np.ndarray]:
    batch = BATCH_METRICS[metric]
    Y = y[idx]
    return {
        name: batch(Y, np.asarray(pred)[idx], None if scores is None else np.asarray(scores[name])[idx])
        for name, pred in predictions.items()
    }


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def choose(
    y_val,
    predictions: Mapping[str, np.ndarray],
    reference: str,
    metric: str = "accuracy",
    scores: Mapping[str, np.ndarray] | None = None,
    n_boot: int = 2000,
    seed: int = config.DEFAULT_SEED,
) -> Choice:
    """Apply the tie rule to ``predictions`` on the validation rows ``y_val`` (``{name: predicted labels or
    values}``; ``scores``: ``{name: positive-class scores}`` for ``roc_auc``). ``reference`` must be among the
    candidates. The best candidate replaces the reference only when its paired-bootstrap advantage (``n_boot``
    resamples of the validation rows, the same for every candidate) has a 95% interval above zero."""
    if reference not in predictions:
        raise ValueError(f"the reference {reference!r} is not among the candidates {list(predictions)}")
    if metric not in BATCH_METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(BATCH_METRICS)}")
    y = np.asarray(y_val)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    point = _bootstrap_scores(metric, y, predictions, scores, np.arange(len(y))[None, :])
    point = {name: float(v[0]) for name, v in point.items()}
    best = max(point, key=lambda name: (sign * point[name], name == reference))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    boots = _bootstrap_scores(metric, y, predictions, scores, idx)
    advantage = sign * (point[best] - point[reference])
    ci95 = _interval(sign * (boots[best] - boots[reference]))
    chosen = best if ci95[0] > 0 else reference
    ties = [n for n in point if n != best and _interval(sign * (boots[best] - boots[n]))[0] <= 0]
    return Choice(reference, best, chosen, metric, point, advantage, ci95, ties if chosen == best else [])


def table(choice: Choice, y_val, predictions, scores=None, n_boot: int = 2000, seed: int = config.DEFAULT_SEED):
    """Every candidate's validation score and its paired-bootstrap advantage over the reference, with the
    verdict of the rule (``reference``, ``tied``, ``better``, ``worse``)."""
    y = np.asarray(y_val)
    sign = -1.0 if choice.metric in LOWER_IS_BETTER else 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    boots = _bootstrap_scores(choice.metric, y, predictions, scores, idx)
    rows = []
    for name, score in choice.scores.items():
        lo, hi = _interval(sign * (boots[name] - boots[choice.reference]))
        verdict = "reference" if name == choice.reference else "better" if lo > 0 else "worse" if hi < 0 else "tied"
        advantage = sign * (score - choice.scores[choice.reference])
        margin = "—" if name == choice.reference else f"{advantage:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        rows.append(
            {
                "candidate": name,
                f"validation {choice.metric}": round(score, 4),
                "advantage over the reference [95% CI]": margin,
                "verdict": verdict + (" (chosen)" if name == choice.chosen else ""),
            }
        )
    return pd.DataFrame(rows).set_index("candidate")
