"""The README's results table, rebuilt from the results files (python -m casebook.report)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import config
from .results_file import _atomic_write_text, validate_results

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
