"""MLflow tracking, one family per module (store, server, executions, run_logging, model_registry),
configured once from :mod:`casebook.config`: one experiment per case study, logged to the local
sqlite store (absolute paths) or, when ``CASEBOOK_MLFLOW_URI`` is set, to a team's tracking server (logins
from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``; artifacts go through the server).

A server that cannot be reached, refuses the login (401) or the action (403) raises
:class:`TrackingServerError` with one line saying which server, what failed and which variable to set.
MLflow is imported lazily (it costs seconds), so importing this module is cheap.
"""
