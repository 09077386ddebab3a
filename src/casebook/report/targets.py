"""Targets and the one rule that judges them: met (the whole 95% CI on the right side), reached, or missed.

Every notebook declares its targets up front, each with its source (a paper, a benchmark table, the seed's
claim), and judges them with :func:`verdict` only, so its prose and its numbers cannot disagree::

    TARGETS = [targets.Target("accuracy", 0.88, "Bock et al. 2004, Table 3 (random forest)")]
    ...
    targets.table(TARGETS, results["XGBoost"])   # target, source, value [CI], verdict
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import pandas as pd

VERDICTS = {
    "met": "the whole 95% CI is on the target's side",
    "reached": "the point estimate is on the target's side, its 95% CI is not",
    "missed": "the point estimate is on the wrong side",
}
RULE = "; ".join(f"**{name}** when {meaning}" for name, meaning in VERDICTS.items())


@dataclass(frozen=True)
class Target:
    """``metric`` ≥ ``threshold`` (or ≤ it when ``higher_is_better`` is false), and where the number comes
    from. ``label`` names the target in tables and findings (default: the metric and the threshold)."""

    metric: str
    threshold: float
    source: str
    higher_is_better: bool = True
    label: str = ""

    @property
    def name(self) -> str:
        sign = "≥" if self.higher_is_better else "≤"
        return self.label or f"{self.metric} {sign} {self.threshold:g}"


def verdict(value: float, ci95: Iterable[float], target: Target) -> str:
    """The package's one rule: ``met`` when the whole 95% CI is on the target's side, ``reached`` when only
    the point estimate is, ``missed`` otherwise (a value exactly at the threshold is on its side)."""
    lo, hi = sorted(float(v) for v in ci95)
    on_side = (lambda v: v >= target.threshold) if target.higher_is_better else (lambda v: v <= target.threshold)
    if on_side(lo) and on_side(hi):
        return "met"
    return "reached" if on_side(float(value)) else "missed"


def judge(targets: Iterable[Target], metrics: Mapping[str, Mapping]) -> list[dict]:
    """One record per target: the target, its source, the model's value and CI, and the verdict.
    ``metrics``: one model's ``{metric: {"value", "ci95"}}`` (as :func:`casebook.report.metrics.bootstrap_metrics`
    returns); a target whose metric is absent is an error, not a silent pass."""
    records = []
    for target in targets:
        if target.metric not in metrics:
            raise KeyError(f"no {target.metric!r} among the metrics {sorted(metrics)} for target {target.name!r}")
        m = metrics[target.metric]
        records.append(
            {
                **asdict(target),
                "target": target.name,
                "value": float(m["value"]),
                "ci95": [float(v) for v in m["ci95"]],
                "verdict": verdict(m["value"], m["ci95"], target),
            }
        )
    return records


def table(targets: Iterable[Target], metrics: Mapping[str, Mapping], digits: int = 3) -> pd.DataFrame:
    """The targets as a reader checks them: target, source, value with its 95% CI, verdict."""
    rows = [
        {
            "target": r["target"],
            "source": r["source"],
            "test value [95% CI]": f"{r['value']:.{digits}f} [{r['ci95'][0]:.{digits}f}, {r['ci95'][1]:.{digits}f}]",
            "verdict": r["verdict"],
        }
        for r in judge(targets, metrics)
    ]
    return pd.DataFrame(rows).set_index("target")
