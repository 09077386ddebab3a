"""The results files (assets/results/<case>.json): schema, selection, tolerances, writing, reading."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .. import config

RESULT_KEYS = ("case", "dataset", "protocol", "runtime_s", "models", "best")


def chosen_by(selection: Mapping) -> str:
    """The model a ``selection`` record picks: the one its declared ``rule`` names, else the one the tie rule
    chose (``tie``, :mod:`casebook.report.choice`), else the best of its ``scores`` (highest, or lowest when
    ``higher_is_better`` is false)."""
    if "rule" in selection:
        return selection["rule"]["chosen"]
    if "tie" in selection:
        return selection["tie"]["chosen"]
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
    tie: Mapping | None = None,
) -> dict:
    """How the published model was chosen: ``metric`` (e.g. "validation accuracy") and every candidate's score,
    baselines included. ``rule`` and ``chosen``: a rule declared before the test set was touched that picks
    ``chosen`` instead of the best score (e.g. a deep ensemble under dataset shift); the scores stay on record.
    ``tie``: the tie rule's record (:meth:`casebook.report.choice.Choice.record`): reference, best, chosen and
    the margin with its 95% CI."""
    record = {"metric": metric, "scores": {k: float(v) for k, v in scores.items()}}
    record["higher_is_better"] = higher_is_better
    if tie is not None:
        if tie["chosen"] not in record["scores"]:
            raise ValueError(f"the tie rule's choice {tie['chosen']!r} is not among the scored models")
        record["tie"] = dict(tie)
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
    targets: list | None = None,
) -> Path:
    """Write ``assets/results/<case>.json`` (schema: see README). ``runtimes``: wall seconds per notebook
    that contributed (``runtime_s`` is their sum); ``selection`` (:func:`selection_record`) says how ``best`` was
    chosen and is checked against it; ``best_kind`` says what kind of model won (e.g. "baseline");
    ``tolerances``: one :func:`tolerance` for every model, or ``{model: tolerance}`` (default ``ci_half_width``).
    ``targets``: this notebook's judged targets (:func:`casebook.report.targets.judge`), kept under
    ``targets[<notebook>]`` beside those of the case's other contributing notebooks.
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
    from .. import provenance

    previous = read_results(case)
    d["provenance"], d["models_by_notebook"] = provenance.per_notebook(previous, runtimes, d["models"])
    current = provenance.current_notebook(runtimes)
    kept = {nb: t for nb, t in (previous or {}).get("targets", {}).items() if nb in runtimes and nb != current}
    if kept or targets:
        d["targets"] = {**kept, **({current: list(targets)} if targets else {})}
    validate_results(d)
    path = config.results_dir() / f"{case}.json"
    _atomic_write_text(path, json.dumps(d, indent=2, default=float) + "\n")
    return path


def provenance_line(case: str) -> str:
    """The brief provenance a notebook's last cell prints: this notebook's entry of ``<case>.json``."""
    from .. import provenance

    entries = (read_results(case) or {}).get("provenance", {})
    record = entries.get(provenance.current_notebook(entries))
    return provenance.summary_line(record) if record else "provenance: no results file written yet"


def read_results(case: str) -> dict | None:
    """The published ``assets/results/<case>.json``, or None if that notebook has not run yet."""
    path = config.results_dir() / f"{case}.json"
    return json.loads(path.read_text()) if path.is_file() else None
