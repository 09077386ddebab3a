"""The tools' --track option: the tracking server and cluster checks, and the tracked run."""

from __future__ import annotations

import argparse
from contextlib import contextmanager

from .runtime import CLIError


def add_track_option(parser: argparse.ArgumentParser, experiment: str) -> None:
    """The tools' shared ``--track`` flag."""
    parser.add_argument(
        "--track",
        action="store_true",
        help=f"log the run to MLflow (experiment {experiment!r}): the local store, or the server "
        f"in CASEBOOK_MLFLOW_URI (login from MLFLOW_TRACKING_USERNAME / _PASSWORD)",
    )


def check_tracking_server() -> None:
    """With ``--track``: the tracking store (``CASEBOOK_MLFLOW_URI``'s server) answers and accepts the login."""
    from casebook.tracking import team_server

    team_server.bound_retries()  # a server that goes away later fails the tool in about 30 s, not minutes
    try:
        team_server.check_server()
    except team_server.TrackingServerError as e:
        raise CLIError(str(e)) from None


def check_cluster(tracked: bool) -> None:
    """The Ray cluster ``CASEBOOK_RAY_ADDRESS`` names (if any) is usable, before any work (a search runs there)."""
    from casebook import cluster

    try:
        cluster.check(tracked=tracked)
    except cluster.ClusterError as e:
        raise CLIError(str(e)) from None


@contextmanager
def tracked(enabled: bool, experiment: str, run_name: str, params: dict):
    """An MLflow run around a tool's work (yields None when not ``enabled``). It is opened before training,
    so a server that refuses the run (403) stops the tool before any work or output; a refusal while
    logging, or a server that stops answering (after :func:`casebook.tracking.team_server.bound_retries`' retries),
    becomes a :class:`CLIError` too: one line, exit code 2, nothing written."""
    if not enabled:
        yield None
        return
    from casebook.tracking import run_logging, team_server

    team_server.bound_retries()
    try:
        with run_logging.run(experiment, run_name, params=params, tags={"source": "cli"}) as active:
            yield active
    except team_server.TrackingServerError as e:  # refused, or gone mid-run: the run is marked FAILED if it can be
        raise CLIError(str(e)) from None
