"""No Docker engine runs here: these tests keep the image's steps identical to the Makefile's."""
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
    for needed in ("-m venv", "pip install --quiet -r requirements.txt", "-e .", "pip uninstall --quiet -y triton"):
        assert needed in steps


def test_dockerfile_installs_and_runs_through_make():
    text = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"^RUN (.*)$", text, re.M)
    assert any(r.startswith("make venv") for r in runs), "image must install with `make venv`"
    assert not any("pip install" in r for r in runs), "pip steps belong in the Makefile only"
    assert text.startswith("#") and "FROM python:3.11-slim" in text and "graphviz" in text
    assert re.search(r"^USER casebook$", text, re.M), "non-root user"
    assert re.search(r'^CMD \["make", "lab".*"LAB_IP=0.0.0.0"\]', text, re.M)


def test_make_targets_resolve():
    # -o: treat the install stamp as up to date (make -n would still remake it otherwise)
    out = subprocess.run(["make", "-n", "-o", ".venv/.casebook-installed", "lab", "mlflow-ui"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "jupyter lab --ip=127.0.0.1 --port=8888" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out and "--port 5000" in out


def test_compose_services():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"db", "mlflow", "lab", "training", "prediction"} <= set(services)
    assert services["lab"]["ports"] == ["8888:8888"] and services["mlflow"]["ports"] == ["5000:5000"]
    out_vol = lambda s: [v for v in services[s]["volumes"] if v.startswith("output:")]
    assert out_vol("training") and out_vol("training") == out_vol("prediction")
    assert services["training"]["entrypoint"] == ["train-classifier"]
    assert services["prediction"]["entrypoint"] == ["predict-classification"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "mlflow.db", "mlruns", ".env"} <= set(ignored)


def test_compose_team_server_is_postgresql_basic_auth_with_proxied_artifacts():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db, mlflow, lab = (spec["services"][s] for s in ("db", "mlflow", "lab"))
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in spec["volumes"]
    command = mlflow["command"]
    assert command[0] == "casebook-mlflow-server"  # = mlflow server --app-name basic-auth --serve-artifacts
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg://mlflow:")
    assert mlflow["depends_on"]["db"]["condition"] == "service_healthy"
    assert "${MLFLOW_AUTH_ADMIN_PASSWORD" in mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert lab["environment"]["CASEBOOK_MLFLOW_URI"] == "http://mlflow:5000"
    example = (ROOT / ".env.example").read_text()
    for key in ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert f"\n{key}=" in f"\n{example}"
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.strip() == ".env", "the real .env must never be committed"


def test_the_server_launcher_runs_mlflows_basic_auth_server():
    from argparse import Namespace

    from casebook.cli import mlflow_server

    args = Namespace(backend_store_uri="postgresql+psycopg://u:p@db/mlflow", artifacts_destination="/srv/a",
                     host="0.0.0.0", port=5000, workers=2)
    cmd = mlflow_server.server_command(args)
    assert cmd[1:5] == ["-m", "mlflow", "server", "--app-name"] and cmd[5] == "basic-auth"
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == "/srv/a"
    ini = mlflow_server.auth_config("postgresql+psycopg://u:p@db/mlflow", "READ")
    assert "database_uri = postgresql+psycopg://u:p@db/mlflow" in ini and "default_permission = READ" in ini


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
