"""MLflow, configured once from :mod:`casebook.config`: one experiment per case study, logged to the local
sqlite store (absolute paths) or, when ``CASEBOOK_MLFLOW_URI`` is set, to a team's tracking server (logins
from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``; artifacts go through the server).

A server that cannot be reached, refuses the login (401) or the action (403) raises
:class:`TrackingServerError` with one line saying which server, what failed and which variable to set.
MLflow is imported lazily (it costs seconds), so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from . import cluster, config

EXPERIMENTS = ("gamma-telescope", "synthetic", "california-housing", "mnist", "fashion-mnist", "redshift", "pneumonia")

# Explicit pip requirements for logged models: inferring them costs 6-8 s per model.
PIP_REQUIREMENTS = {
    "sklearn": ["scikit-learn==1.9.1", "imbalanced-learn==0.14.2", "xgboost-cpu==3.2.0", "numpy==2.4.6"],
    "pytorch": ["torch==2.14.1", "numpy==2.4.6"],
    "keras": ["tensorflow-cpu==2.21.0", "keras==3.15.1", "numpy==2.4.6"],
}


def _mlflow():
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs and notebooks

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


# MLflow 3's UI opens an experiment on its runs (not on the GenAI traces view) when it is of this kind.
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development"}


class TrackingServerError(RuntimeError):
    """The tracking server is unreachable, or refused the credentials (401) or the action (403)."""


CREDENTIALS = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
_CHECKED: set[tuple] = set()


def _credentials() -> tuple[str, str] | None:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def _refusal(uri: str, status: int, action: str) -> TrackingServerError:
    creds = _credentials()
    if status == 401:
        who = f"wrong password for user {creds[0]!r}" if creds else "no credentials given"
        return TrackingServerError(f"MLflow server {uri} refused the login to {action} (401: {who}); {CREDENTIALS}")
    who = f"user {creds[0]!r}" if creds else "an anonymous user"
    return TrackingServerError(
        f"MLflow server {uri} does not allow {who} to {action} (403: ask an admin or the "
        f"experiment's owner for permission, or set MLFLOW_TRACKING_USERNAME to another user)"
    )


def check_server(uri: str | None = None, timeout: float = 10.0) -> None:
    """For a tracking server: it answers, and accepts the credentials, within ``timeout`` seconds (MLflow's
    own client would retry an unreachable server for minutes). Local stores pass. Checked once per
    (server, user, password) per process."""
    uri = uri or config.mlflow_tracking_uri()
    key = (uri, _credentials())
    if not uri.startswith(("http://", "https://")) or key in _CHECKED:
        return
    import requests

    try:
        response = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=_credentials(),
            timeout=timeout,
        )
    except requests.RequestException as e:
        text = str(e)
        reason = next(
            (
                why
                for marker, why in (
                    ("Connection refused", "connection refused"),
                    ("NameResolution", "host name not found"),
                    ("timed out", f"no answer within {timeout:g} s"),
                    ("SSL", "TLS handshake failed"),
                )
                if marker in text
            ),
            type(e).__name__,
        )
        raise TrackingServerError(
            f"MLflow server {uri} is unreachable ({reason}); start it, or fix or unset CASEBOOK_MLFLOW_URI"
        ) from None
    if response.status_code in (401, 403):
        raise _refusal(uri, response.status_code, "list experiments")
    if not response.ok:
        raise TrackingServerError(
            f"MLflow server {uri} answered HTTP {response.status_code} to an experiments "
            f"search; is CASEBOOK_MLFLOW_URI an MLflow tracking server?"
        )
    _CHECKED.add(key)


@contextlib.contextmanager
def _server_errors(action: str):
    """MLflow's 401/403 exceptions → :class:`TrackingServerError` naming the server and the variables."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        status = e.get_http_status_code()
        if status in (401, 403) or e.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise _refusal(
                config.mlflow_tracking_uri(), 401 if status == 401 or e.error_code == "UNAUTHENTICATED" else 403, action
            ) from None
        if config.mlflow_is_remote() and _server_gone(e):
            raise _gone(action, e) from None
        raise


def _server_gone(error) -> bool:
    """An MLflow client error that means the server stopped answering (after the client's retries)."""
    text = str(error)
    return (
        "failed with exception" in text
        or "Max retries exceeded" in text
        or "TEMPORARILY_UNAVAILABLE" in text
        or " 503 " in text
        or " 502 " in text
    )


def _gone(action: str, error) -> TrackingServerError:
    reason = next(
        (
            why
            for marker, why in (
                ("Connection refused", "connection refused"),
                ("timed out", "no answer in time"),
                ("Read timed out", "no answer in time"),
                ("503", "503 service unavailable"),
                ("502", "502 bad gateway"),
            )
            if marker in str(error)
        ),
        "no answer",
    )
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLflow's default")
    return TrackingServerError(
        f"MLflow server {config.mlflow_tracking_uri()} stopped answering while trying to "
        f"{action} ({reason}, {retries} retries); restart it, or fix or unset "
        f"CASEBOOK_MLFLOW_URI"
    )


# What casebook's tools allow a server that goes away: connection attempts with exponential back-off
# (0, 2, 4, 8, 16 s: about 30 s in all), and 20 s for an answer. MLflow's defaults retry for minutes.
TOOL_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def bound_retries() -> None:
    """Bound the MLflow client's retries (:data:`TOOL_RETRIES`) unless the variables are set already: a
    server that has gone away fails a tool within about half a minute, and one restarted within that
    time lets the run finish."""
    for key, value in TOOL_RETRIES.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def _no_retries():
    """One quick attempt (marking a run FAILED on a server that may be gone)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def setup(experiment: str):
    """Point MLflow at the project's store (``CASEBOOK_MLFLOW_URI``'s server, else local sqlite) and select
    (creating if needed) ``experiment``. Raises :class:`TrackingServerError` if a server is unreachable or
    refuses. Returns the ``mlflow`` module, ready to use.
    """
    uri = config.mlflow_tracking_uri()
    check_server(uri)
    mlflow = _mlflow()
    if not config.mlflow_is_remote():
        config.mlflow_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    with _server_errors(f"use experiment {experiment!r}"):
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            found = _create_experiment(mlflow, experiment)
        if found.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:
            mlflow.MlflowClient().set_experiment_tag(
                found.experiment_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND]
            )
        mlflow.set_experiment(experiment)
    return mlflow


def _already_exists(error) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(error)


def _create_experiment(mlflow, experiment: str):
    """Create ``experiment``; if another process created it first (two tools starting together), use that
    one: "already exists" is success."""
    from mlflow.exceptions import MlflowException

    # a server stores artifacts itself (--serve-artifacts); the local store keeps them beside mlflow.db
    location = None if config.mlflow_is_remote() else f"{config.mlflow_artifact_root()}/{experiment}"
    try:
        mlflow.create_experiment(experiment, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException as e:
        if not _already_exists(e):
            raise
    return mlflow.get_experiment_by_name(experiment)


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


# ------------------------------------------------------------------------------------------ executions
# One notebook execution (or tool invocation) = one parent run; the runs it creates are its children, tagged with
# its id, so comparisons, run names and champions only ever see the current execution, whatever the store holds.
EXECUTION_TAG = "casebook.execution"
_EXECUTIONS: dict[str, dict] = {}  # experiment → {"run_id", "name"}


def start_execution(experiment: str, name: str) -> str:
    """Open a new execution of ``experiment``: a parent run called ``name`` (e.g. the notebook), tagged with
    its own id and the mode. Every :func:`run` of that experiment in this process becomes its child; :func:`search`,
    :func:`compare` and :func:`next_run_name` then read only this execution's runs. Returns the execution id.
    A Ray cluster named by ``CASEBOOK_RAY_ADDRESS`` is checked first (:func:`casebook.cluster.check`)."""
    cluster.check()
    mlflow = setup(experiment)
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    with _server_errors(f"create a run in experiment {experiment!r}"):
        parent = client.create_run(experiment_id, run_name=name, tags={"mode": _mode(), "kind": "execution"})
        client.set_tag(parent.info.run_id, EXECUTION_TAG, parent.info.run_id)
        client.set_terminated(parent.info.run_id)
    _EXECUTIONS[experiment] = {"run_id": parent.info.run_id, "name": name}
    return parent.info.run_id


def execution_id(experiment: str) -> str | None:
    """The id of the current execution of ``experiment`` in this process (None before :func:`start_execution`)."""
    found = _EXECUTIONS.get(experiment)
    return found["run_id"] if found else None


def execution_context(experiment: str) -> dict:
    """What a process elsewhere (a Ray trial) needs to log into this process's current execution of
    ``experiment``: pass it to :func:`join_execution` there."""
    found = _EXECUTIONS.get(experiment)
    if found is None:
        raise RuntimeError(f"no execution of {experiment!r} is open: call start_execution first")
    return {"experiment": experiment, **found}


def join_execution(context: dict) -> None:
    """Make the runs of this process children of the execution described by ``context``
    (:func:`execution_context` of the process that opened it)."""
    _EXECUTIONS[context["experiment"]] = {"run_id": context["run_id"], "name": context["name"]}


def reserve_run_names(experiment: str, stems: Iterable[str]) -> list[str]:
    """Names for runs about to start elsewhere (a sweep's trials), numbered as :func:`next_run_name` would
    number them one after another: ``["mobilenet", "mobilenet", "lite"]`` → ``mobilenet#1``, ``mobilenet#2``,
    ``lite#1`` in a fresh execution."""
    taken: dict[str, int] = {}
    names = []
    for stem in stems:
        if stem not in taken:
            taken[stem] = int(next_run_name(experiment, stem).rsplit("#", 1)[1]) - 1
        taken[stem] += 1
        names.append(f"{stem}#{taken[stem]}")
    return names


def discard_unfinished(experiment: str, run_name: str) -> int:
    """Delete this execution's runs called ``run_name`` that did not finish: what a killed earlier attempt of a
    retried trial left behind, so that the retry's run is the only one of that name. Returns how many."""
    mlflow = setup(experiment)
    found = search(experiment, f"tags.mlflow.runName = '{run_name}' and attributes.status != 'FINISHED'")
    for run_id in found.get("run_id", []):
        mlflow.MlflowClient().delete_run(run_id)
    return len(found)


def end_unfinished(experiment: str, status: str = "FAILED") -> list[str]:
    """Mark this execution's runs still RUNNING as ``status`` (a trial that never came back): every run ends.
    Returns their names."""
    mlflow = setup(experiment)
    found = search(experiment, "attributes.status = 'RUNNING'")
    for run_id in found.get("run_id", []):
        mlflow.MlflowClient().set_terminated(run_id, status)
    return list(found.get("tags.mlflow.runName", []))


def load_run_model(run_id: str, flavor: str = "keras", artifact: str = "model"):
    """The model a run logged (``runs:/<run_id>/<artifact>``), loaded as :func:`load_by_alias` loads."""
    return _load_model(f"runs:/{run_id}/{artifact}", flavor)


def _mode() -> str:
    return "smoke" if config.is_smoke() else "full"


def _scoped(experiment: str, filter_string: str) -> str:
    """``filter_string`` restricted to the children of the current execution, if one is open."""
    eid = execution_id(experiment)
    if eid is None:
        return filter_string
    own = f"tags.`{EXECUTION_TAG}` = '{eid}' and tags.kind != 'execution'"
    return f"{own} and {filter_string}" if filter_string else own


@contextlib.contextmanager
def run(experiment: str, run_name: str | None = None, params: Mapping | None = None, tags: Mapping | None = None):
    """``with tracking.run("synthetic", "rf", params={...}) as r:`` — a run with flattened params and tags; a
    child of the current execution when :func:`start_execution` opened one."""
    mlflow = setup(experiment)
    tags = dict(tags or {})
    tags.setdefault("mode", _mode())
    tags.setdefault("kind", "run")
    eid = execution_id(experiment)
    if eid is not None:
        tags.update({EXECUTION_TAG: eid, "mlflow.parentRunId": eid})
    with _server_errors(f"create a run in experiment {experiment!r}"):
        active = mlflow.start_run(run_name=run_name, tags=tags)
    try:
        with _server_errors(f"log to experiment {experiment!r}"):
            if params:
                log_params(params)
            yield active
    except BaseException as e:
        status = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
        with _no_retries(), contextlib.suppress(Exception):  # one attempt: the server may be gone
            mlflow.end_run(status)
        raise
    with _server_errors(f"finish the run in experiment {experiment!r}"):
        mlflow.end_run()


MAX_PARAM_LENGTH = 6000  # MLflow cuts longer values (a server only says so in its own log)


def log_params(params: Mapping) -> None:
    """Log (flattened) params. A value longer than MLflow's 6,000 characters is not cut: it is logged whole as
    the artifact ``params/<key>.txt`` and the param says where it is."""
    mlflow = _mlflow()
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

    mlflow = _mlflow()
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
    with _server_errors(f"log figures to experiment {experiment!r}"):
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
    from .training.result import history_to_frame

    df = history_to_frame(history)
    for epoch, row in df.iterrows():
        values = {f"{prefix}{k}": float(v) for k, v in row.items() if v is not None}
        if values:
            _log_values(values, int(epoch))


def log_figure(fig, name: str, run_id: str | None = None) -> None:
    """``fig`` as ``figures/<name>.png`` of the active run, or of the (possibly finished) run ``run_id``."""
    mlflow = _mlflow()
    if run_id is None:
        mlflow.log_figure(fig, f"figures/{name}.png")
        return
    with _server_errors(f"log a figure to run {run_id}"):
        mlflow.MlflowClient().log_figure(run_id, fig, f"figures/{name}.png")


def log_dict(d: Mapping, name: str) -> None:
    _mlflow().log_dict(dict(d), name)


def log_model(
    model, flavor: str, name: str = "model", input_example=None, registered_name: str | None = None, **kwargs
):
    """Log a model with explicit pip requirements (no slow inference) and, given an input example, a
    signature. ``flavor``: ``sklearn``, ``pytorch`` or ``keras``."""
    _mlflow()  # quiet loggers and no progress bars before a flavor imports mlflow
    import importlib

    module = importlib.import_module(f"mlflow.{flavor}")
    if flavor == "sklearn":
        from .persistence import TRUSTED_SKOPS_TYPES

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


def search(experiment: str, filter_string: str = "", order_by: Iterable[str] | None = None) -> pd.DataFrame:
    """``mlflow.search_runs`` on one experiment (this project's store), newest first by default; only the current
    execution's runs once :func:`start_execution` opened one."""
    mlflow = setup(experiment)
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=_scoped(experiment, filter_string),
        order_by=list(order_by) if order_by else ["attributes.start_time DESC"],
    )


def compare(
    experiment: str,
    metrics: Iterable[str],
    params: Iterable[str] = (),
    filter_string: str = "",
    sort_by: str | None = None,
) -> pd.DataFrame:
    """A tidy comparison table of runs: run name, chosen params and metrics, sorted by ``sort_by`` (desc)."""
    runs = search(experiment, filter_string)
    if runs.empty:
        return runs
    cols = {"tags.mlflow.runName": "run"}
    cols.update({f"params.{p}": p for p in params})
    cols.update({f"metrics.{m}": m for m in metrics})
    table = runs[[c for c in cols if c in runs]].rename(columns=cols)
    if sort_by and sort_by in table:
        table = table.sort_values(sort_by, ascending=False)
    return table.reset_index(drop=True)


def next_run_name(experiment: str, stem: str) -> str:
    """Automatic run names like ``mobilenet#3``: one more than the runs already named ``stem#k`` (in the current
    execution, if one is open, so every execution numbers its runs from 1)."""
    runs = search(experiment, filter_string=f"tags.mlflow.runName LIKE '{stem}#%'")
    return f"{stem}#{len(runs) + 1}"


def log_json_artifact(obj, name: str) -> None:
    """Write ``obj`` as JSON into a temp file and log it as an artifact."""
    mlflow = _mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / name
        p.write_text(json.dumps(obj, indent=2, default=float))
        mlflow.log_artifact(str(p))


def register_alias(run_id: str, model_name: str, alias: str = "champion", artifact: str = "model") -> int:
    """Register ``runs:/<run_id>/<artifact>`` as a new version of ``model_name`` and point ``alias`` at it
    (aliases, not the deprecated stages). Returns the version number."""
    mlflow = _mlflow()
    from mlflow import MlflowClient

    with _server_errors(f"register {model_name!r}"):
        return _register_alias(mlflow, MlflowClient(), run_id, model_name, alias, artifact)


def _register_alias(mlflow, client, run_id: str, model_name: str, alias: str, artifact: str) -> int:
    run = client.get_run(run_id)
    logged = [
        m
        for m in (
            mlflow.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}'",
                output_format="list",
            )
            or []
        )
        if m.name == artifact
    ]
    source = logged[0].model_uri if logged else f"runs:/{run_id}/{artifact}"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        version = mlflow.register_model(source, model_name)  # its "already exists / created version" notes
    for attempt in range(3):  # two registrations at once can collide on the alias row: the later one wins
        try:
            client.set_registered_model_alias(model_name, alias, version.version)
            break
        except Exception as e:
            if not _already_exists(e) or attempt == 2:
                raise
    return int(version.version)


def load_by_alias(model_name: str, alias: str = "champion", flavor: str = "keras"):
    """``models:/<name>@<alias>`` loaded with its flavor (e.g. the registered champion). A scikit-learn model
    is read with :func:`casebook.persistence.load_skops` (casebook's exact type allow-list), not with the type list
    its MLmodel file declares; Keras loads in safe mode."""
    return _load_model(f"models:/{model_name}@{alias}", flavor)


def _load_model(uri: str, flavor: str):
    import importlib

    mlflow = _mlflow()
    with _server_errors(f"load {uri}"):
        if flavor == "sklearn":
            from .persistence import load_skops

            with tempfile.TemporaryDirectory() as tmp:
                local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
                files = sorted(local.rglob("*.skops"))
                if not files:
                    raise TrackingServerError(f"{uri} holds no .skops model")
                return load_skops(files[0])
        if flavor == "keras":  # for prediction: no optimizer state to restore (and no warning about it)
            return importlib.import_module("mlflow.keras").load_model(uri, load_model_kwargs={"compile": False})
        return importlib.import_module(f"mlflow.{flavor}").load_model(uri)
