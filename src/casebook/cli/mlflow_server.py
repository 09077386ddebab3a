"""casebook-mlflow-server: the team's MLflow tracking server, with logins, on a database of your choice.

Examples:
  MLFLOW_AUTH_ADMIN_PASSWORD=... casebook-mlflow-server \
      --backend-store-uri postgresql+psycopg://mlflow:PASSWORD@db:5432/mlflow --host 0.0.0.0
  casebook-mlflow-server --backend-store-uri sqlite:////srv/mlflow/mlflow.db \
      --artifacts-destination /srv/mlflow/artifacts

It runs `mlflow server --serve-artifacts` (artifacts are proxied through the server, so clients need no shared
disk) with MLflow's basic-auth app behind a guard that keeps every artifact under the server's artifact root
(casebook.cli.mlflow_app: experiments may not choose their own artifact location; unsafe artifact paths are
answered 400). MLflow's basic-auth app reads its user database from a configuration file: this tool writes
that file (mode 0600, in a private folder removed on exit; stale ones from killed servers are removed at
start) from the options below. A PostgreSQL password is never written to that file nor put on the server's
command line: it is taken out of the URIs and handed to the driver as PGPASSWORD in the server's environment.

Logins are checked with PBKDF2, which costs about 0.3 s of CPU a request: --auth-cache-ttl keeps a verified
login for that many seconds in each worker (default 60; 0 = check every request). A password changed or a user
deleted through one worker is seen by the other workers within that time.

The first start creates the admin user from MLFLOW_AUTH_ADMIN_USERNAME (default admin) and
MLFLOW_AUTH_ADMIN_PASSWORD (required). Users then log in with MLFLOW_TRACKING_USERNAME / _PASSWORD.
MLFLOW_FLASK_SERVER_SECRET_KEY (the login forms' CSRF key) is generated per start unless you set it.

Host headers (MLflow's guard against DNS rebinding): the server answers only requests addressed to loopback
(localhost, 127.0.0.1, [::1], any port), to the --host it binds (the machine's host name when it binds all
interfaces) and to the docker-compose service name `mlflow`, on --port. Add the names your team uses with
--allowed-hosts mlflow.example.com (or MLFLOW_SERVER_ALLOWED_HOSTS); `*` needs --allow-any-host. The UI's
pages under those names are MLflow's allowed CORS origins (MLflow refuses the UI's POSTs from other origins).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .runtime import CLIError, Parser, run

PROG = "casebook-mlflow-server"
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
APP_NAME = "casebook-auth"  # entry point (pyproject): casebook.cli.mlflow_app:create_app
PRIVATE_PREFIX = "casebook-mlflow-auth."
DEFAULT_AUTH_CACHE_TTL = 60
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")  # accepted on any port (SSH tunnels, remapped ports)
COMPOSE_SERVICE = "mlflow"  # docker-compose.yml: lab, training and Ray trials reach the server as http://mlflow:5000
WILDCARD_BINDS = ("0.0.0.0", "::", "")
NAME = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*"  # letters, digits, _ and -, in dot-separated labels
# `*` only as leading labels (*.example.com) or as the port: 192.168.* or mlflow-* would also match
# 192.168.attacker.example or mlflow-x.attacker.example, names an attacker can point at this server
HOST_PATTERN = re.compile(rf"(?P<host>\[[0-9a-f:.]+\]|(?P<wildcard>\*\.)?{NAME})(?::(?P<port>[0-9]+|\*))?")


def default_workers() -> int:
    """One uvicorn worker per CPU this process may use, at least 2."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(2, usable)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="runs, experiments and the model registry (default $MLFLOW_BACKEND_STORE_URI), e.g. "
        "postgresql+psycopg://user:password@host:5432/mlflow",
    )
    p.add_argument(
        "--auth-database-uri",
        default=os.environ.get("MLFLOW_AUTH_DATABASE_URI"),
        help="users and permissions (default: the backend store; MLflow keeps them in tables of their own)",
    )
    p.add_argument(
        "--artifacts-destination",
        default=os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "mlartifacts"),
        help="where the server stores artifacts (default $MLFLOW_ARTIFACTS_DESTINATION or ./mlartifacts)",
    )
    p.add_argument(
        "--default-permission",
        choices=PERMISSIONS,
        default="READ",
        help="what a user may do in experiments others created (default READ)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="uvicorn worker processes (default: one per CPU, at least 2)",
    )
    p.add_argument(
        "--allowed-hosts",
        action="append",
        metavar="NAMES",
        help="host names clients use to reach the server, comma-separated, besides the defaults (loopback, "
        "--host, the compose service name mlflow), e.g. mlflow.example.com,10.0.0.5; a name without a port is "
        "accepted without one and with --port; `*` is a wildcard (*.example.com); default "
        "$MLFLOW_SERVER_ALLOWED_HOSTS",
    )
    p.add_argument(
        "--allow-any-host",
        action="store_true",
        help="accept every Host header: switches off MLflow's guard against DNS rebinding (not recommended)",
    )
    p.add_argument(
        "--auth-cache-ttl",
        type=int,
        default=DEFAULT_AUTH_CACHE_TTL,
        help="seconds a verified login is cached in each worker (default 60; 0 = off)",
    )
    return p


def auth_config(database_uri: str, default_permission: str, cache_ttl: int = DEFAULT_AUTH_CACHE_TTL) -> str:
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {int(cache_ttl)}\n"
    )


def split_password(uri: str) -> tuple[str, str | None]:
    """A PostgreSQL URI without its password, and the password (None if it had none). Other databases'
    URIs are returned unchanged: only libpq reads a password from the environment (PGPASSWORD)."""
    if not uri or not uri.startswith(("postgresql", "postgres")):
        return uri, None
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.password is None:
        return uri, None
    from sqlalchemy.engine import URL

    bare = URL.create(
        url.drivername, username=url.username, host=url.host, port=url.port, database=url.database, query=url.query
    )  # URL.set(password=None) keeps the password
    return bare.render_as_string(hide_password=False), url.password


def database_settings(backend_uri: str, auth_uri: str | None) -> tuple[str, str, dict]:
    """(backend URI, auth URI, extra environment): passwords moved out of both URIs into PGPASSWORD."""
    backend, backend_password = split_password(backend_uri)
    auth, auth_password = split_password(auth_uri or backend_uri)
    passwords = {p for p in (backend_password, auth_password) if p is not None}
    if len(passwords) > 1:
        raise CLIError(
            "the backend store and the auth database must use the same PostgreSQL password "
            "(it is passed to the driver as PGPASSWORD)"
        )
    return backend, auth, ({"PGPASSWORD": passwords.pop()} if passwords else {})


def remove_stale_folders(tmp: Path | None = None) -> list[Path]:
    """Remove private folders left by launchers that were killed (the PID in the name is gone)."""
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*"):
        pid = folder.name[len(PRIVATE_PREFIX) :].split(".")[0]
        if not pid.isdigit() or folder.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass
    return removed


def _host_patterns(value: str, port: int, source: str = "--allowed-hosts") -> list[str]:
    """MLflow's ``--allowed-hosts`` patterns for one name clients use (see :func:`allowed_hosts`)."""
    name = value.lower()
    if "://" in name or "/" in name:
        raise CLIError(f"{source} takes host names, not URLs: {value!r}")
    if name.count(":") > 1 and not name.startswith("["):
        raise CLIError(f"{source}: write an IPv6 address in brackets, as in a URL: [{value}]")
    match = HOST_PATTERN.fullmatch(name)
    if not match and "*" in name:
        raise CLIError(
            f"{source}: {value!r}: `*` may stand only for leading labels (*.example.com) or for the port "
            "(name:*); anywhere else it would also match names an attacker owns"
        )
    if not match:
        raise CLIError(
            f"{source}: {value!r} is not a host name (name[:port], an IPv4 address, an IPv6 address in brackets)"
        )
    host, host_port = match.group("host"), match.group("port")
    if match.group("wildcard") and "." not in host[2:]:
        raise CLIError(f"{source}: {value!r} would accept every name under a top-level domain")
    if host_port not in (None, "*") and not 0 < int(host_port) < 65536:
        raise CLIError(f"{source}: the port in {value!r} must be between 1 and 65535")
    if host.startswith("[") and "*" in name:  # MLflow uses fnmatch when `*` is in the pattern, where [...]
        name = "[[]" + name[1:]  # would be a set of characters
    return [name] if host_port else [name, f"{name}:{port}"]


def allowed_hosts(args) -> list[str]:
    """The ``--allowed-hosts`` patterns MLflow gets: loopback names on any port, the host bound (the machine's
    host name when it binds all interfaces) and the compose service name, then the team's names. MLflow compares the
    whole Host header, port included, exactly, or with fnmatch when the pattern holds ``*``. A name without a
    port is accepted without one (behind a proxy on port 80 / 443) and with --port. Bad values, and ``*``
    without --allow-any-host, raise :class:`CLIError`."""
    given, source = args.allowed_hosts, "--allowed-hosts"
    if given is None:
        given, source = [os.environ.get("MLFLOW_SERVER_ALLOWED_HOSTS", "")], "MLFLOW_SERVER_ALLOWED_HOSTS"
    values = [v.strip() for item in given if item.strip() for v in item.split(",")]
    if "" in values:
        raise CLIError(f"{source}: an empty name in {','.join(given)!r}")
    any_host = [v for v in values if v.split(":")[0] == "*"]
    if any_host and not args.allow_any_host:
        raise CLIError(
            f"{source} '*' accepts every Host header (no guard against DNS rebinding): name the hosts, "
            "or pass --allow-any-host if you mean it"
        )
    patterns = []
    for name in LOOPBACK_NAMES:
        patterns += [name, ("[[]" + name[1:] if name.startswith("[") else name) + ":*"]
    bound = args.host.strip().lower()
    if bound in WILDCARD_BINDS:
        bound = socket.gethostname().lower()
    elif ":" in bound and not bound.startswith("["):
        bound = f"[{bound}]"  # an IPv6 address: bracketed in a Host header
    names = [bound] if bound not in LOOPBACK_NAMES and HOST_PATTERN.fullmatch(bound) and "*" not in bound else []
    for value in (*names, COMPOSE_SERVICE, *(v for v in values if v not in any_host)):
        patterns += [p for p in _host_patterns(value, args.port, source) if p not in patterns]
    return patterns


def allowed_origins(hosts: list[str]) -> list[str]:
    """MLflow's ``--cors-allowed-origins`` for the server's own pages under the names in ``hosts``: a browser
    sends their origin with every POST the UI makes, and MLflow refuses origins other than loopback ones unless
    they are listed (then MLFLOW_SERVER_CORS_ALLOWED_ORIGINS, which the option would replace)."""
    loopback = tuple(f"{name}:" for name in ("localhost", "127.0.0.1", "[::1]", "[[]::1]"))
    ours = [
        f"{scheme}://{host}" for host in hosts if not f"{host}:".startswith(loopback) for scheme in ("http", "https")
    ]
    theirs = os.environ.get("MLFLOW_SERVER_CORS_ALLOWED_ORIGINS", "")
    return ours + [o.strip() for o in theirs.split(",") if o.strip() and o.strip() not in ours]


def server_command(args, backend_uri: str | None = None, hosts: list[str] | None = None) -> list[str]:
    """``mlflow server``'s command line; ``hosts``: :func:`allowed_hosts` (computed when not given)."""
    hosts = allowed_hosts(args) if hosts is None else hosts
    artifacts = args.artifacts_destination
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).resolve())
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        APP_NAME,
        "--backend-store-uri",
        backend_uri or args.backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--allowed-hosts",
        "*" if args.allow_any_host else ",".join(hosts),
        "--cors-allowed-origins",
        ",".join(allowed_origins(hosts)),
    ]


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.backend_store_uri:
        raise CLIError("give --backend-store-uri (or set MLFLOW_BACKEND_STORE_URI)")
    if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise CLIError("set MLFLOW_AUTH_ADMIN_PASSWORD: the first start creates the admin user with it")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be between 1 and 65535, got {args.port}")
    if args.workers < 1 or args.auth_cache_ttl < 0:
        raise CLIError("--workers must be at least 1 and --auth-cache-ttl at least 0")
    if os.environ.get("MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE", "").strip().lower() not in ("", "0", "false", "no"):
        raise CLIError(
            "unset MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE: it switches off MLflow's Host, CORS and clickjacking "
            "guards (to accept every Host header, pass --allow-any-host)"
        )
    hosts = allowed_hosts(args)
    backend, auth, db_env = database_settings(args.backend_store_uri, args.auth_database_uri)
    if args.allow_any_host:
        print(
            f"{PROG}: warning: --allow-any-host: every Host header is accepted, so MLflow's guard against DNS "
            "rebinding is off (a web page a team member opens could reach this server through its own name)",
            file=sys.stderr,
        )
    else:
        print(f"{PROG}: accepting the Host headers {', '.join(hosts)}", file=sys.stderr, flush=True)
    remove_stale_folders()
    private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}."))
    try:
        ini = private / "basic_auth.ini"
        fd = os.open(ini, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(auth_config(auth, args.default_permission, args.auth_cache_ttl))
        given_as_options = ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_DATABASE_URI", "MLFLOW_SERVER_ALLOWED_HOSTS")
        env = {k: v for k, v in os.environ.items() if k not in given_as_options}
        env.update({**db_env, "MLFLOW_AUTH_CONFIG_PATH": str(ini)})  # the URIs, without password, go as options
        # the basic-auth app's CSRF key: the same for all this server's workers; set it yourself to share it
        # between several servers behind one address
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        env.setdefault("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # GenAI job runners: casebook has none
        server = subprocess.Popen(server_command(args, backend, hosts), env=env)
        for sig in (signal.SIGTERM, signal.SIGINT):  # stop the server, then remove the private folder
            signal.signal(sig, lambda signum, frame: server.send_signal(signum))
        return server.wait()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
