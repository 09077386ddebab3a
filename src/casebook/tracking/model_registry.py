"""The model registry: aliases (the champion) and loading a model by alias."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from .backend import already_exists, mlflow_module
from .team_server import TrackingServerError, translate_errors


def register_alias(run_id: str, model_name: str, alias: str = "champion", artifact: str = "model") -> int:
    """Register ``runs:/<run_id>/<artifact>`` as a new version of ``model_name`` and point ``alias`` at it
    (aliases, not the deprecated stages). Returns the version number."""
    mlflow = mlflow_module()
    from mlflow import MlflowClient

    with translate_errors(f"register {model_name!r}"):
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
            if not already_exists(e) or attempt == 2:
                raise
    return int(version.version)


def load_by_alias(model_name: str, alias: str = "champion", flavor: str = "keras"):
    """``models:/<name>@<alias>`` loaded with its flavor (e.g. the registered champion). A scikit-learn model
    is read with :func:`casebook.persistence.load_skops` (casebook's exact type allow-list), not with the type list
    its MLmodel file declares; Keras loads in safe mode."""
    return _load_model(f"models:/{model_name}@{alias}", flavor)


def _load_model(uri: str, flavor: str):
    import importlib

    mlflow = mlflow_module()
    with translate_errors(f"load {uri}"):
        if flavor == "sklearn":
            from ..persistence import load_skops

            with tempfile.TemporaryDirectory() as tmp:
                local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
                files = sorted(local.rglob("*.skops"))
                if not files:
                    raise TrackingServerError(f"{uri} holds no .skops model")
                return load_skops(files[0])
        if flavor == "keras":  # for prediction: no optimizer state to restore (and no warning about it)
            return importlib.import_module("mlflow.keras").load_model(uri, load_model_kwargs={"compile": False})
        return importlib.import_module(f"mlflow.{flavor}").load_model(uri)


def load_run_model(run_id: str, flavor: str = "keras", artifact: str = "model"):
    """The model a run logged (``runs:/<run_id>/<artifact>``), loaded as :func:`load_by_alias` loads."""
    return _load_model(f"runs:/{run_id}/{artifact}", flavor)
