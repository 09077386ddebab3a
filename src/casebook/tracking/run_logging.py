"""Logging into a run: params, metrics, histories, figures and models."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from .. import config
from .backend import PIP_REQUIREMENTS, mlflow_module, run_mode, setup
from .executions import EXECUTION_TAG, execution_id
from .team_server import no_retries, translate_errors


def flatten(d: Mapping, prefix: str = "") -> dict:
    """Nested dicts/lists → flat ``{"a.b": v, "layers.0.type": v}`` with values MLflow accepts."""
    out = {}
    items = d.items() if isinstance(d, Mapping) else enumerate(d)
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (Mapping, list, tuple)) and v and not isinstance(v, str):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


@contextlib.contextmanager
def run(experiment: str, run_name: str | None = None, params: Mapping | None = None, tags: Mapping | None = None):
    """``with tracking.run("synthetic", "rf", params={...}) as r:`` — a run with flattened params and tags; a
    child of the current execution when :func:`start_execution` opened one."""
    mlflow = setup(experiment)
    tags = dict(tags or {})
    tags.setdefault("mode", run_mode())
    tags.setdefault("kind", "run")
    eid = execution_id(experiment)
    if eid is not None:
        tags.update({EXECUTION_TAG: eid, "mlflow.parentRunId": eid})
    with translate_errors(f"create a run in experiment {experiment!r}"):
        active = mlflow.start_run(run_name=run_name, tags=tags)
    try:
        with translate_errors(f"log to experiment {experiment!r}"):
            if params:
                log_params(params)
            yield active
    except BaseException as e:
        status = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
        with no_retries(), contextlib.suppress(Exception):  # one attempt: the server may be gone
            mlflow.end_run(status)
        raise
    with translate_errors(f"finish the run in experiment {experiment!r}"):
        mlflow.end_run()


MAX_PARAM_LENGTH = 6000  # MLflow cuts longer values (a server only says so in its own log)


def log_params(params: Mapping) -> None:
    """Log (flattened) params. A value longer than MLflow's 6,000 characters is not cut: it is logged whole as
    the artifact ``params/<key>.txt`` and the param says where it is."""
    mlflow = mlflow_module()
    flat = flatten(params)
    for key, value in flat.items():
        if isinstance(value, str) and len(value) > MAX_PARAM_LENGTH:
            mlflow.log_text(value, f"params/{key}.txt")
            flat[key] = f"<{len(value)} characters: artifact params/{key}.txt>"
    mlflow.log_params(flat)


NONFINITE_TAG = "casebook.nonfinite."


def _log_values(flat: Mapping[str, float], step: int | None) -> None:
    """Finite values as metrics; NaN and ±inf, which MLflow servers store as 0 and ±1.8e308, as the tag
    ``casebook.nonfinite.<metric>`` (e.g. ``nan at step 3``) instead, so that no value changes silently."""
    import math

    mlflow = mlflow_module()
    finite = {k: v for k, v in flat.items() if math.isfinite(v)}
    for key, value in flat.items():
        if key not in finite:
            mlflow.set_tag(f"{NONFINITE_TAG}{key}", f"{value}" + (f" at step {step}" if step is not None else ""))
    if finite:
        mlflow.log_metrics(finite, step=step)


def log_figures(experiment: str, notebook: str) -> int:
    """Log every figure the notebook saved (``assets/<notebook>/*.png``) to the current execution's parent run
    (under ``figures/``). Returns how many were logged."""
    eid = execution_id(experiment)
    if eid is None:
        raise RuntimeError(f"no execution of {experiment!r} is open: call tracking.start_execution first")
    mlflow = setup(experiment)
    figures = sorted((config.assets_root() / notebook).glob("*.png"))
    with translate_errors(f"log figures to experiment {experiment!r}"):
        for path in figures:
            mlflow.MlflowClient().log_artifact(eid, str(path), "figures")
    return len(figures)


def log_metrics(metrics: Mapping, prefix: str = "", step: int | None = None) -> None:
    """Log scalars; accepts the results schema (``{"value": v, "ci95": [lo, hi]}``) as well as plain floats.
    Non-finite values become tags (see :func:`_log_values`)."""
    flat = {}
    for k, v in metrics.items():
        if isinstance(v, Mapping) and "value" in v:
            flat[f"{prefix}{k}"] = float(v["value"])
            flat[f"{prefix}{k}_ci_lo"], flat[f"{prefix}{k}_ci_hi"] = map(float, v["ci95"])
        elif v is not None:
            flat[f"{prefix}{k}"] = float(v)
    _log_values(flat, step)


def log_history(history, prefix: str = "") -> None:
    """Per-epoch metrics from a TrainingResult, a frame, a Keras History or a dict of lists, one MLflow step per
    epoch."""
    from ..training.result import history_to_frame

    df = history_to_frame(history)
    for epoch, row in df.iterrows():
        values = {f"{prefix}{k}": float(v) for k, v in row.items() if v is not None}
        if values:
            _log_values(values, int(epoch))


def log_figure(fig, name: str, run_id: str | None = None) -> None:
    """``fig`` as ``figures/<name>.png`` of the active run, or of the (possibly finished) run ``run_id``."""
    mlflow = mlflow_module()
    if run_id is None:
        mlflow.log_figure(fig, f"figures/{name}.png")
        return
    with translate_errors(f"log a figure to run {run_id}"):
        mlflow.MlflowClient().log_figure(run_id, fig, f"figures/{name}.png")


def log_model(
    model, flavor: str, name: str = "model", input_example=None, registered_name: str | None = None, **kwargs
):
    """Log a model with explicit pip requirements (no slow inference) and, given an input example, a
    signature. ``flavor``: ``sklearn``, ``pytorch`` or ``keras``."""
    mlflow_module()  # quiet loggers and no progress bars before a flavor imports mlflow
    import importlib

    module = importlib.import_module(f"mlflow.{flavor}")
    if flavor == "sklearn":
        from ..persistence import TRUSTED_SKOPS_TYPES

        kwargs.setdefault("serialization_format", "skops")
        kwargs.setdefault("skops_trusted_types", list(TRUSTED_SKOPS_TYPES))
    sig = None
    if input_example is not None:
        from mlflow.models import infer_signature

        sig = infer_signature(input_example, _predict_for_signature(model, flavor, input_example))
    return module.log_model(
        model,
        name=name,
        pip_requirements=PIP_REQUIREMENTS[flavor],
        signature=sig,
        registered_model_name=registered_name,
        **kwargs,
    )


def _predict_for_signature(model, flavor: str, x):
    if flavor == "sklearn":
        return model.predict(x)
    if flavor == "keras":
        return model.predict(x, verbose=0)
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()
