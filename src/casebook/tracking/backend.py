"""The MLflow store: configured once from casebook.config, one experiment per case study."""

from __future__ import annotations

import os

from .. import config
from .team_server import check_server, translate_errors

EXPERIMENTS = ("gamma-telescope", "synthetic", "california-housing", "mnist", "fashion-mnist", "redshift", "pneumonia")


# Explicit pip requirements for logged models: inferring them costs 6-8 s per model.
PIP_REQUIREMENTS = {
    "sklearn": ["scikit-learn==1.9.1", "imbalanced-learn==0.14.2", "xgboost-cpu==3.2.0", "numpy==2.4.6"],
    "pytorch": ["torch==2.14.1", "numpy==2.4.6"],
    "keras": ["tensorflow-cpu==2.21.0", "keras==3.15.1", "numpy==2.4.6"],
}


def mlflow_module():
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs and notebooks

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


# MLflow 3's UI opens an experiment on its runs (not on the GenAI traces view) when it is of this kind.
EXPERIMENT_KIND = "mlflow.experimentKind"


EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development"}


def setup(experiment: str):
    """Point MLflow at the project's store (``CASEBOOK_MLFLOW_URI``'s server, else local sqlite) and select
    (creating if needed) ``experiment``. Raises :class:`TrackingServerError` if a server is unreachable or
    refuses. Returns the ``mlflow`` module, ready to use.
    """
    uri = config.mlflow_tracking_uri()
    check_server(uri)
    mlflow = mlflow_module()
    if not config.mlflow_is_remote():
        config.mlflow_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    with translate_errors(f"use experiment {experiment!r}"):
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            found = _create_experiment(mlflow, experiment)
        if found.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:
            mlflow.MlflowClient().set_experiment_tag(
                found.experiment_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND]
            )
        mlflow.set_experiment(experiment)
    return mlflow


def already_exists(error) -> bool:
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
        if not already_exists(e):
            raise
    return mlflow.get_experiment_by_name(experiment)


def run_mode() -> str:
    return "smoke" if config.is_smoke() else "full"
