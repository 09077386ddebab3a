"""Publishing a notebook's result in one call: results file, target verdicts, MLflow, README table, provenance.

A lesson's last code cell is plumbing, so it is one call::

    publish.publish(EXPERIMENT, NB, DATASET, PROTOCOL, results, BEST, clock, targets=TARGETS,
                    selection=selection, best_kind="the seed's architecture")

It writes ``assets/results/<case>.json`` (with each target's verdict under the package's one rule), logs the
published model's test metrics to a ``published`` child run of the notebook's MLflow execution and every saved
figure to the execution, refreshes the README's results table (full mode, committed assets only), and prints
one short summary with the provenance line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from . import config
from .report import readme_table, results_file, timing
from .report.targets import Target, judge
from .tracking import run_logging


def publish(
    case: str,
    notebook: str,
    dataset: str,
    protocol: str,
    results: Mapping[str, Mapping],
    best: str,
    clock: timing.Stopwatch,
    targets: Iterable[Target] = (),
    *,
    judged_model: str | None = None,
    selection: Mapping | None = None,
    best_kind: str = "",
    extra: Mapping | None = None,
    tolerances: Mapping | None = None,
) -> Path:
    """Publish ``results`` (``{model: {metric: {"value", "ci95"}}}``, test metrics with CIs) with ``best``
    as the model the protocol chose, and print what was written. ``targets`` are judged on ``judged_model``
    (default: ``best``). Returns the results file's path."""
    judged = [{**t, "model": judged_model or best} for t in judge(targets, results[judged_model or best])]
    # a notebook that republishes another's models (02 beside 01's) keeps that notebook's entry: its runtime,
    # provenance and targets
    previous = results_file.read_results(case) or {}
    owners = previous.get("models_by_notebook", {})
    kept = {
        nb: seconds
        for nb, seconds in previous.get("runtimes", {}).items()
        if nb != notebook and set(owners.get(nb, ())) & set(results)
    }
    path = results_file.write_results(
        case,
        dataset,
        protocol,
        {**kept, notebook: clock.elapsed},
        results,
        best,
        extra=extra,
        selection=selection,
        best_kind=best_kind,
        tolerances=tolerances,
        targets=judged,
    )
    with run_logging.run(case, f"{best} (published)", tags={"notebook": notebook, "stage": "published"}):
        run_logging.log_metrics(results[best], prefix="test_")
    n_figures = run_logging.log_figures(case, notebook)
    if not config.is_smoke() and config.results_dir() == config.REPO_ROOT / "assets" / "results":
        readme_table.update_readme()
    verdicts = ", ".join(f"{t['target']}: {t['verdict']}" for t in judged)
    on = f" ({judged_model})" if judged_model and judged_model != best else ""
    print(f"published {best}: {config.display_path(path)}" + (f"; targets{on} {verdicts}" if verdicts else ""))
    print(f"MLflow: {config.describe_tracking_store()}, experiment {case!r}, figures logged: {n_figures}")
    print(f"wall time {clock.elapsed / 60:.1f} min; peak memory {timing.peak_memory_gb():.1f} GB")
    print(results_file.provenance_line(case))
    return path
