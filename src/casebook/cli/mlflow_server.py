"""casebook-mlflow-server: the team's MLflow tracking server, with logins, on a database of your choice.

Examples:
  MLFLOW_AUTH_ADMIN_PASSWORD=... casebook-mlflow-server \
      --backend-store-uri postgresql+psycopg://mlflow:PASSWORD@db:5432/mlflow --host 0.0.0.0
  casebook-mlflow-server --backend-store-uri sqlite:////srv/mlflow/mlflow.db --artifacts-destination /srv/mlflow/artifacts

It runs the standard `mlflow server --app-name basic-auth --serve-artifacts` (artifacts are proxied through
the server, so clients need no shared disk). The only thing it adds: MLflow's basic-auth app reads its user
database from a configuration file, so this tool writes that file (mode 0600, in a private folder removed on
exit) from the options below, keeping database passwords out of files in the repository.

The first start creates the admin user from MLFLOW_AUTH_ADMIN_USERNAME (default admin) and
MLFLOW_AUTH_ADMIN_PASSWORD (required). Users then log in with MLFLOW_TRACKING_USERNAME / _PASSWORD.
MLFLOW_FLASK_SERVER_SECRET_KEY (the login forms' CSRF key) is generated per start unless you set it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from . import CLIError, Parser, run

PROG = "casebook-mlflow-server"
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
               formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--backend-store-uri", default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
                   help="runs, experiments and the model registry (default $MLFLOW_BACKEND_STORE_URI), e.g. "
                        "postgresql+psycopg://user:password@host:5432/mlflow")
    p.add_argument("--auth-database-uri", default=os.environ.get("MLFLOW_AUTH_DATABASE_URI"),
                   help="users and permissions (default: the backend store; MLflow keeps them in tables of "
                        "their own)")
    p.add_argument("--artifacts-destination", default=os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "mlartifacts"),
                   help="where the server stores artifacts (default $MLFLOW_ARTIFACTS_DESTINATION or ./mlartifacts)")
    p.add_argument("--default-permission", choices=PERMISSIONS, default="READ",
                   help="what a user may do in experiments others created (default READ)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    return p


def auth_config(database_uri: str, default_permission: str) -> str:
    return ("[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {database_uri}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")


def server_command(args) -> list[str]:
    artifacts = args.artifacts_destination
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).resolve())
    return [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", args.backend_store_uri, "--serve-artifacts", "--artifacts-destination", artifacts,
            "--host", args.host, "--port", str(args.port), "--workers", str(args.workers),
            "--allowed-hosts", "*"]


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.backend_store_uri:
        raise CLIError("give --backend-store-uri (or set MLFLOW_BACKEND_STORE_URI)")
    if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise CLIError("set MLFLOW_AUTH_ADMIN_PASSWORD: the first start creates the admin user with it")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be between 1 and 65535, got {args.port}")
    private = Path(tempfile.mkdtemp(prefix="casebook-mlflow-auth."))
    try:
        ini = private / "basic_auth.ini"
        fd = os.open(ini, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(auth_config(args.auth_database_uri or args.backend_store_uri, args.default_permission))
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini)}
        # the basic-auth app's CSRF key: the same for all this server's workers; set it yourself to share it
        # between several servers behind one address
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        env.setdefault("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # GenAI job runners: casebook has none
        server = subprocess.Popen(server_command(args), env=env)
        for sig in (signal.SIGTERM, signal.SIGINT):  # stop the server, then remove the private folder
            signal.signal(sig, lambda signum, frame: server.send_signal(signum))
        return server.wait()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
