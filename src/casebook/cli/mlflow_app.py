"""The app `casebook-mlflow-server` serves: MLflow's basic-auth app, with every artifact kept under the server's
artifact root.

With proxied artifacts (``--serve-artifacts``) clients never need a location of their own, but MLflow still
lets any logged-in user create an experiment with ``artifact_location = file:///anywhere`` and then upload into
its runs, which makes the server write wherever it may write. This thin ASGI layer in front of the basic-auth
app answers, before anything is stored:

* 400 to an experiment creation that names an ``artifact_location`` (the server chooses it, under its root);
* 403 to an upload (``/ajax-api/2.0/mlflow/upload-artifact``) into a run whose artifacts are not under the
  root (experiments created elsewhere, before this guard, or by another tool);
* 400 to any artifact path that is absolute, has empty, ``.`` / ``..`` or dots-only segments, backslashes or
  NUL bytes (MLflow answers some of these with 500), in the proxied-artifact routes and ``path`` parameters.

A request whose ``Host`` header the server does not serve (MLflow's ``--allowed-hosts``, which
``casebook-mlflow-server`` sets) is answered 403 by MLflow's own host check, placed in front of this layer so
that nothing is read or looked up for it.

Registered as the ``casebook-auth`` MLflow app (``mlflow server --app-name casebook-auth``).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

ARTIFACT_ROUTES = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")
CREATE_EXPERIMENT = ("/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create")
UPLOAD = "/ajax-api/2.0/mlflow/upload-artifact"
PATH_PARAMETER_ROUTES = ("/upload-artifact", "/get-artifact", "/artifacts/list", "/mlflow-artifacts/artifacts")
PROXIED_SCHEME = "mlflow-artifacts:"
MAX_BODY = 1 << 20  # an experiment creation is a small JSON document


def unsafe_path(path: str) -> str | None:
    """Why an artifact path could leave the artifact root, or None when it cannot."""
    if "\x00" in path or "\\" in path:
        return "NUL bytes and backslashes are not allowed"
    if path.startswith("/"):
        return "absolute paths are not allowed"
    segments = path.split("/")
    if any(s == "" for s in segments[:-1]):
        return "empty path segments ('//') are not allowed"
    if any(s and set(s) == {"."} for s in segments):
        return "'.', '..' and other dots-only segments are not allowed"
    return None


def location_problem(body: bytes) -> str | None:
    """Why an experiment-creation request may not be honoured: it names an artifact location."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None  # not JSON: MLflow answers it itself
    if isinstance(request, dict) and request.get("artifact_location"):
        return (
            "artifact_location is chosen by this server (artifacts are stored under its artifact root); "
            "create the experiment without it"
        )
    return None


def _run_artifact_uri(run_id: str) -> str | None:
    from mlflow.server.handlers import _get_tracking_store

    try:
        return _get_tracking_store().get_run(run_id).info.artifact_uri
    except Exception:  # unknown run: MLflow answers it itself
        return None


async def _read_body(receive) -> tuple[bytes, list[dict]]:
    chunks, messages, size = [], [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body") or size > MAX_BODY:
            break
    return b"".join(chunks), messages


def _replay(messages: list[dict], receive):
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed


async def _reject(send, status: int, message: str) -> None:
    code = "INVALID_PARAMETER_VALUE" if status == 400 else "PERMISSION_DENIED"
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ArtifactRootGuard:
    """ASGI middleware: refuses what would store artifacts outside the server's root (see the module doc)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        problem = None
        for route in ARTIFACT_ROUTES:
            if path.startswith(route + "/"):
                problem = unsafe_path(path[len(route) + 1 :])
        if problem is None and path.endswith(PATH_PARAMETER_ROUTES):
            problem = next((unsafe_path(p) for p in query.get("path", []) if unsafe_path(p)), None)
        if problem is not None:
            return await _reject(send, 400, f"artifact path refused: {problem}")
        if method == "POST" and path in CREATE_EXPERIMENT:
            body, messages = await _read_body(receive)
            refused = location_problem(body)
            if refused:
                return await _reject(send, 400, refused)
            receive = _replay(messages, receive)
        if method == "POST" and path == UPLOAD and query.get("run_uuid"):
            uri = await asyncio.to_thread(_run_artifact_uri, query["run_uuid"][0])
            if uri is not None and not uri.startswith(PROXIED_SCHEME):
                return await _reject(
                    send,
                    403,
                    "this run's artifacts are not under the server's artifact root: uploads into it are refused",
                )
        return await self.app(scope, receive, send)


def create_app():
    """MLflow's basic-auth app (FastAPI under uvicorn, MLflow's default server) behind :class:`ArtifactRootGuard`,
    behind MLflow's Host-header check (under the same conditions as MLflow's own, which stays in place too)."""
    from mlflow.environment_variables import MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE
    from mlflow.server.auth import create_app as basic_auth_app
    from mlflow.server.fastapi_security import HostValidationMiddleware, get_allowed_hosts

    app = basic_auth_app()
    call = getattr(app, "__call__", None)  # noqa: B004 (the method itself is inspected, not callability)
    if not asyncio.iscoroutinefunction(call):
        raise RuntimeError(
            "casebook-mlflow-server runs MLflow under uvicorn (an ASGI app); do not pass "
            "--gunicorn-opts or --waitress-opts"
        )
    guarded = ArtifactRootGuard(app)
    hosts = get_allowed_hosts()
    if MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE.get() == "true" or "*" in hosts:
        return guarded
    return HostValidationMiddleware(guarded, allowed_hosts=hosts)
