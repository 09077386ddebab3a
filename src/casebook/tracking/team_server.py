"""A team's tracking server: its checks, its errors as one line, and bounded retries."""

from __future__ import annotations

import contextlib
import os

from .. import config


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
def translate_errors(action: str):
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
def no_retries():
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
