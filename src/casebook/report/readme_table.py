"""The README's results table, one row per notebook, rebuilt from the results files (python -m casebook.report)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import config
from .results_file import _atomic_write_text, validate_results

README_START = "<!-- results:start -->"


README_END = "<!-- results:end -->"


HEADLINE = ("accuracy", "roc_auc", "rmse", "macro_f1", "recall_pneumonia", "recall_normal")


@dataclass(frozen=True)
class SeedClaim:
    """What a seed project claimed (on its leaky protocol), and where our number measured the same way is:
    ``model``'s ``metric`` in the results file's ``models``, or the record under ``extra[extra_key]`` that the
    notebook wrote when it ran the seed's model at the seed's own settings (``{"model", "seed": {"test accuracy"},
    "ours": {"test": metrics}}``: the claim is then restated for that model). Neither: no like-for-like number
    exists here, and ``note`` says why."""

    text: str
    metric: str = "accuracy"
    model: str | None = None
    extra_key: str | None = None
    note: str = ""


# Keyed by notebook number: the seed's claim beside ours for the same model, measured the same way.
SEED_CLAIMS = {
    "01": SeedClaim("Random Forest accuracy 0.897", model="Random Forest"),
    "02": SeedClaim("MLP (grid search) accuracy 0.877", model="MLP GridSearchCV"),
    "03": SeedClaim("Logistic Regression accuracy 0.99 at the seed's settings", extra_key="seed_claim_like_for_like"),
    "06": SeedClaim("CNN accuracy 0.89", model="CNN"),
    "08": SeedClaim(
        "MobileNetV2 accuracy 0.888", note="chosen on the test set; no MobileNetV2 weights here, so no like for like"
    ),
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _ci(record: Mapping) -> str:
    return f"{record['value']:.3f} [{record['ci95'][0]:.3f}, {record['ci95'][1]:.3f}]"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _find_metric(found, metric: str, model_hint: str = ""):
    """A ``{"value", "ci95"}`` record (or a bare number) for ``metric`` somewhere inside ``found``, preferring
    a branch named like ``model_hint``; None when there is none."""
    if isinstance(found, Mapping):
        if "value" in found and metric not in found:
            return found
        if metric in found:
            return found[metric]
        keys = sorted(found, key=lambda k: model_hint.lower() not in str(k).lower())
        for key in keys:
            hit = _find_metric(found[key], metric, model_hint)
            if hit is not None:
                return hit
    return None


def _seed_cell(notebook: str, d: Mapping) -> str:
    claim = SEED_CLAIMS.get(notebook[:2])
    if claim is None:
        return "—"
    ours, text = None, claim.text
    if claim.model and claim.metric in d["models"].get(claim.model, {}):
        ours = d["models"][claim.model][claim.metric]
    elif claim.extra_key and isinstance((d.get("extra") or {}).get(claim.extra_key), Mapping):
        record = d["extra"][claim.extra_key]
        ours = _find_metric(record.get("ours", {}).get("test", record), claim.metric, claim.text.split()[0])
        seed = record.get("seed", {}).get(f"test {claim.metric}")
        if record.get("model") and isinstance(seed, int | float):
            text = f"{record['model']} {claim.metric} {seed:g} at the seed's settings"
    if isinstance(ours, Mapping):
        return f"{text}; ours {_ci(ours)}"
    if isinstance(ours, int | float):
        return f"{text}; ours {ours:.3f}"
    return f"{claim.text} ({claim.note})" if claim.note else claim.text


def published_models(d: Mapping) -> dict[str, str]:
    """``{notebook: the model it publishes}`` for one results file: the case's ``best`` when that notebook
    produced it; else the model its judged targets name (``targets``, written by :func:`casebook.publish.publish`:
    02 publishes its MLP beside 01's best); else, for a file without them, that notebook's best model by the
    recorded selection."""
    runtimes = d.get("runtimes") or {d["case"]: d["runtime_s"]}
    produced = d.get("models_by_notebook", {})
    scores = d.get("selection", {}).get("scores", {})
    pick = max if d.get("selection", {}).get("higher_is_better", True) else min
    models = {}
    for notebook in runtimes:
        judged = [t["model"] for t in d.get("targets", {}).get(notebook, []) if t.get("model") in d["models"]]
        own = produced.get(notebook, list(d["models"]))
        if d["best"] in own or not own:
            models[notebook] = d["best"]
        elif judged:
            models[notebook] = judged[0]
        else:
            scored = [m for m in own if m in scores]
            models[notebook] = pick(scored, key=scores.get) if scored else own[0]
    return models


def _chosen(d: Mapping, notebook: str, model: str) -> str:
    """The published model and how it was chosen."""
    selection = d.get("selection", {})
    if model != d["best"]:
        scores = selection.get("scores", {})
        own = [m for m in d.get("models_by_notebook", {}).get(notebook, []) if m in scores]
        pick = max if selection.get("higher_is_better", True) else min
        best_own = own and pick(own, key=scores.get) == model
        return model + (f", the best of this notebook's models by {selection['metric']}" if best_own else "")
    kind = d.get("best_kind", "")
    chosen = kind if kind.startswith(model) else model + (f" ({kind})" if kind else "")
    if "rule" in selection:
        return chosen + f", by a rule declared on validation: {selection['rule']['text']}"
    tie = selection.get("tie", {})
    if tie and tie.get("chosen") == model and tie.get("best") != model:
        return chosen + f", by {selection['metric']}: tied with {tie['best']}, so the reference is kept"
    return chosen + (f", by {selection['metric']}" if selection else "")


def _verdicts(judged: list[Mapping], model: str) -> str:
    """Each target and its verdict, naming the model it judged where that is not the row's model (03 judges the
    seed's claim on the seed's model at the seed's settings)."""
    lines = []
    for target in judged:
        other = target.get("model", model)
        lines.append(f"{target['target']}{f' ({other})' if other != model else ''}: **{target['verdict']}**")
    return "<br>".join(lines) or "—"


def _row(notebook: str, model: str, d: Mapping) -> str:
    metrics = d["models"][model]
    heads = [m for m in HEADLINE if m in metrics] or list(metrics)[:2]
    cells = "<br>".join(f"{m} {_ci(metrics[m])}" for m in heads)
    targets = _verdicts(d.get("targets", {}).get(notebook, []), model)
    dirty = " (dirty tree)" if d.get("provenance", {}).get(notebook, {}).get("dirty") else ""
    runtimes = d.get("runtimes") or {notebook: d["runtime_s"]}
    link = f"[{notebook[:2]} · {d['case']}](notebooks/{notebook}.ipynb)" if notebook[:2].isdigit() else d["case"]
    data = f"<details><summary>{_cell(d['dataset'])}</summary>{_cell(d['protocol'])}</details>"
    columns = [
        link + dirty,
        _cell(_chosen(d, notebook, model)),
        cells,
        targets,
        _cell(_seed_cell(notebook, d)),
        _minutes(runtimes[notebook]),
        data,
    ]
    return "| " + " | ".join(columns) + " |"


def results_markdown(results_dir: Path | None = None) -> str:
    """The README results table: one row per notebook, in notebook order: the model it publishes (chosen on
    validation, baselines included) and how, its test metrics with 95% CIs, its targets' verdicts, the seed's
    claim beside our number for the same model measured the same way, its wall time, and the protocol."""
    results_dir = results_dir or config.results_dir()
    rows = []
    for path in sorted(results_dir.glob("*.json")):
        d = json.loads(path.read_text())
        validate_results(d)
        if d.get("mode", "full") != "full":
            raise ValueError(
                f"{path.name} holds {d['mode']}-mode results: the README table is built from full "
                f"runs only (make notebooks)"
            )
        rows += [(notebook, model, d) for notebook, model in published_models(d).items()]
    lines = [
        "| notebook | published model, chosen on validation | test metrics (95% CI) | targets | the seed claimed; "
        "ours, like for like | wall time | data and protocol |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(notebook, model, d) for notebook, model, d in sorted(rows, key=lambda row: row[0])]
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
