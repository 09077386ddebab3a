"""The image's steps stay the Makefile's, the compose file keeps secrets out of containers that do not need
them, and `make docker-check` (opt-in: it needs a Docker daemon) drives exactly the compose file's services."""

import json
import re
import subprocess

import yaml

from casebook import config

ROOT = config.REPO_ROOT


def _recipe(target: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(target)}:.*?\n((?:\t.*\n)+)", text, re.M)
    assert m, f"no recipe for {target}"
    return [line.strip() for line in m.group(1).splitlines()]


def test_makefile_install_recipe_is_the_documented_one():
    steps = " ; ".join(_recipe("$(STAMP)"))
    for needed in (
        "-m venv",
        "pip install --quiet -r requirements.txt",
        "-e .",
        "pip uninstall --quiet -y triton",
        '"setuptools>=77"',
        "$(if $(TORCH_INDEX),",
    ):
        assert needed in steps, needed


def test_dockerfile_installs_through_make_and_starts_jupyter_directly():
    text = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"^RUN (.*)$", text, re.M)
    assert any(r.startswith("make venv") and "TORCH_INDEX=" in r for r in runs), "install with `make venv`"
    assert not any("pip install" in r for r in runs), "pip steps belong in the Makefile only"
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for package in ("graphviz", "git", "tini"):
        assert re.search(rf"apt-get install .*\b{package}\b", text), package
    user = text.index("\nUSER casebook")
    assert re.search(r"^ARG UID=1000$", text, re.M) and 'useradd --create-home --uid "${UID}" casebook' in text
    owned = text.index("chown -R casebook:casebook /home/casebook")
    assert owned < user and "mkdir -p /home/casebook/casebook " in text[:user], "the WORKDIR is made and owned first"
    assert re.search(r'^ENTRYPOINT \["tini", "--"\]$', text, re.M), "an init as PID 1"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    lab = next(line for line in _recipe("lab") if "jupyter lab" in line).split()
    expected = [
        a.replace("$(LAB_IP)", "0.0.0.0").replace("$(CURDIR)", "/home/casebook/casebook")
        for a in lab[lab.index("lab") - 1 :]
        if a != "$(ROOT_FLAG)"
    ]
    assert cmd == ["jupyter", *expected[1:]], (cmd, expected)  # `make lab`'s flags, without make at start


def test_make_targets_resolve():
    # -o: treat the install stamp as up to date (make -n would still remake it otherwise)
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.casebook-installed", "lab", "mlflow-ui"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "jupyter lab --ip=127.0.0.1 --port=8888" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out and "--port 5000" in out


def test_compose_services():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"db", "mlflow", "lab", "training", "prediction"} <= set(services)
    assert services["lab"]["ports"] == ["8888:8888"] and services["mlflow"]["ports"] == ["5000:5000"]

    def out_vol(service):
        return [v for v in services[service]["volumes"] if v.startswith("output:")]

    assert out_vol("training") == out_vol("prediction") == ["output:/home/casebook/casebook/outputs/classifier"]
    for tool, entry in (("training", "train-classifier"), ("prediction", "predict-classification")):
        assert services[tool]["entrypoint"] == [entry]
        assert "command" not in services[tool], "run arguments replace the command: the defaults must work alone"
    for name in ("mlflow", "lab", "training", "prediction"):
        assert services[name]["user"] == "${CASEBOOK_UID:-1000}"
        assert services[name]["build"]["args"]["UID"] == "${CASEBOOK_UID:-1000}"
    sources = [v.split(":")[0] for v in services["lab"]["volumes"]]
    assert sources == ["./notebooks", "./src", "./assets", "./data"], "lab mounts what it needs, never ./.env"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "mlflow.db", "mlruns", ".env"} <= set(ignored)


def test_only_mlflow_and_db_get_the_servers_secrets():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secrets = ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")
    for name, service in spec["services"].items():
        text = json.dumps({k: v for k, v in service.items() if k not in ("build",)})
        holds = [s for s in secrets if "${" + s in text]
        assert not holds or name in ("db", "mlflow"), (name, holds)
    assert "${POSTGRES_PASSWORD" not in json.dumps(spec["services"]["mlflow"]["command"]), "password on a command line"


def test_docker_check_runs_the_compose_services_as_written():
    import importlib.util

    spec_file = ROOT / "scripts" / "docker_check.py"
    loader = importlib.util.spec_from_file_location("docker_check", spec_file)
    check = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(check)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    runs = check.compose_equivalents()
    assert set(runs) == set(compose)
    for name, args in runs.items():
        service = compose[name]
        assert args[args.index("--network") + 1] == "host" and "--add-host" in args
        env_keys = {a.split("=")[0] for a, flag in zip(args[1:], args, strict=False) if flag == "-e"}
        assert env_keys == set(service.get("environment") or {}) | ({"PGPORT"} if name == "db" else set()), name
        mounts = [a.split(":", 1)[1] for a, flag in zip(args[1:], args, strict=False) if flag == "-v"]
        assert mounts == [v.split(":", 1)[1] for v in service.get("volumes") or []], name
        if "entrypoint" in service:
            assert args[args.index("--entrypoint") + 1] == service["entrypoint"][0]
        assert "0.0.0.0" not in " ".join(args)  # compose's ports stay; remap() moves them to free loopback ones
    assert check.substitute("${A:-x}/${B}", {"B": "b"}) == "x/b"
    assert (
        check.remap("http://mlflow:5000 --port 5000 --ip=0.0.0.0 a15000", {5000: 41234})
        == "http://mlflow:41234 --port 41234 --ip=127.0.0.1 a15000"
    )


def test_compose_team_server_is_postgresql_basic_auth_with_proxied_artifacts():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db, mlflow, lab = (spec["services"][s] for s in ("db", "mlflow", "lab"))
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in spec["volumes"]
    command = mlflow["command"]
    assert command[0] == "casebook-mlflow-server"  # = mlflow server --serve-artifacts, basic-auth behind a guard
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://mlflow:")
    assert mlflow["depends_on"]["db"]["condition"] == "service_healthy"
    assert "${MLFLOW_AUTH_ADMIN_PASSWORD" in mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert lab["environment"]["CASEBOOK_MLFLOW_URI"] == "http://mlflow:5000"
    example = (ROOT / ".env.example").read_text()
    for key in (
        "POSTGRES_PASSWORD",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ):
        assert f"\n{key}=" in f"\n{example}"
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.strip() == ".env", "the real .env must never be committed"


def test_the_server_launcher_runs_mlflows_basic_auth_server():
    from argparse import Namespace

    from casebook.cli import mlflow_server

    args = Namespace(
        backend_store_uri="postgresql+psycopg://u:p@db/mlflow",
        artifacts_destination="/srv/a",
        host="0.0.0.0",
        port=5000,
        workers=2,
        allowed_hosts=None,
        allow_any_host=False,
    )
    cmd = mlflow_server.server_command(args)
    assert cmd[1:5] == ["-m", "mlflow", "server", "--app-name"] and cmd[5] == "casebook-auth"
    hosts = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    assert "*" not in hosts and "mlflow:5000" in hosts and "localhost:*" in hosts
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == "/srv/a"
    ini = mlflow_server.auth_config("postgresql+psycopg://u@db/mlflow", "READ", 60)
    assert "database_uri = postgresql+psycopg://u@db/mlflow" in ini and "default_permission = READ" in ini
    assert "auth_cache_ttl_seconds = 60" in ini
    backend, auth, env = mlflow_server.database_settings("postgresql+psycopg://u:s3cret@db:5432/mlflow", None)
    assert backend == auth == "postgresql+psycopg://u@db:5432/mlflow" and env == {"PGPASSWORD": "s3cret"}
    from importlib.metadata import entry_points

    apps = {e.name: e.value for e in entry_points(group="mlflow.app")}
    assert apps["casebook-auth"] == "casebook.cli.mlflow_app:create_app"


def test_the_compose_services_address_the_server_by_names_it_accepts(monkeypatch):
    """lab and training reach the server as http://mlflow:5000, the health check as 127.0.0.1:5000, and
    `make docker-check` as both on its remapped port: all are in the server's default allowed hosts."""
    import importlib.util

    from mlflow.server.security_utils import is_allowed_host_header

    from casebook.cli import mlflow_server

    monkeypatch.delenv("MLFLOW_SERVER_ALLOWED_HOSTS", raising=False)
    loader = importlib.util.spec_from_file_location("docker_check", ROOT / "scripts" / "docker_check.py")
    check = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(check)
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (name,) = [n for n, s in spec["services"].items() if s.get("command", [None])[0] == "casebook-mlflow-server"]
    assert name == mlflow_server.COMPOSE_SERVICE
    env = {"POSTGRES_PASSWORD": "p", "MLFLOW_AUTH_ADMIN_PASSWORD": "a", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}
    assert spec["services"][name]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"] == "${MLFLOW_SERVER_ALLOWED_HOSTS:-}"
    assert "\nMLFLOW_SERVER_ALLOWED_HOSTS=" in (ROOT / ".env.example").read_text()
    for ports in ({p: p for p in check.COMPOSE_PORTS}, {5000: 41234, 5432: 41235, 8888: 41236}):  # compose, check
        server = check.run_args(spec, name, env, "casebook:latest", ports)
        options = server[server.index("casebook-mlflow-server") + 1 :]
        hosts = mlflow_server.allowed_hosts(mlflow_server.build_parser().parse_args(options))
        health = " ".join(spec["services"][name]["healthcheck"]["test"])
        addressed = {check.remap(re.search(r"http://([^/']+)", health).group(1), ports)}
        for service in spec["services"]:
            run = check.run_args(spec, service, env, "casebook:latest", ports)
            uris = [a.split("=", 1)[1] for a in run if a.startswith("CASEBOOK_MLFLOW_URI=")]
            addressed |= {uri.removeprefix("http://").split("/")[0] for uri in uris}
        assert addressed >= {f"mlflow:{ports[5000]}", f"127.0.0.1:{ports[5000]}"}, addressed
        assert [h for h in addressed if not is_allowed_host_header(hosts, h)] == [], (addressed, hosts)
        assert not is_allowed_host_header(hosts, f"evil.example:{ports[5000]}")


def test_github_actions_runs_the_same_make_test_as_ci():
    """Seed 001's "pipeline au niveau de GitHub": the workflow installs the README's prerequisites and runs
    `make test`, like .ci/run; the README shows its badge (generated from the repository URL)."""
    from casebook import notebooks

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    commands = " ; ".join(s.get("run", "") for s in steps)
    assert "graphviz" in commands and "postgresql" in commands
    assert re.search(r"\bmake test\b", commands) and re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)
    setup = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")][0]
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    assert notebooks.ci_badge() in (ROOT / "README.md").read_text()
