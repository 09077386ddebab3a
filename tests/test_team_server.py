"""The team set-up, against the real thing: a throw-away PostgreSQL cluster and `casebook-mlflow-server`
(MLflow's basic-auth server with --serve-artifacts) on it, both on loopback and free ports, stopped by PID in
teardown even when a test fails."""
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.xdist_group("team-server")  # one PostgreSQL + one server for the module
PY = sys.executable
ADMIN_PASSWORD = "Adm1n-pass-for-tests"
USERS = {"alice": "Alice-pass-for-tests", "bob": "Bob-pass-for-tests"}


def pg_binary(name: str) -> str | None:
    """A PostgreSQL program: on PATH, or where Debian's postgresql package puts it."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(pid: int, sig: int, alive, seconds: float = 20) -> None:
    """Send ``sig`` to ``pid`` (a process or, negative, a process group), then SIGKILL if still ``alive()``."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def postgres():
    initdb, pg_ctl, createdb = pg_binary("initdb"), pg_binary("pg_ctl"), pg_binary("createdb")
    if not (initdb and pg_ctl and createdb):
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="casebook-pg."))
    as_root = os.getuid() == 0  # initdb and postgres refuse to run as root: run them as the postgres user then
    user = pwd.getpwnam("postgres") if as_root else None
    if as_root:
        os.chown(base, user.pw_uid, user.pw_gid)

    def demote():
        if as_root:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    port, pgdata = free_port(), base / "data"
    run = dict(preexec_fn=demote, capture_output=True, text=True, timeout=60)
    try:
        r = subprocess.run([initdb, "-D", pgdata, "-A", "trust", "-U", "mlflow", "--no-sync", "-E", "UTF8"], **run)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([pg_ctl, "-D", pgdata, "-w", "-l", base / "log", "-o",
                            f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off", "start"], **run)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"], **run)
        assert r.returncode == 0, r.stderr
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        pid_file = pgdata / "postmaster.pid"
        if pid_file.is_file():  # SIGINT = PostgreSQL's fast shutdown; it removes the pid file when done
            stop(int(pid_file.read_text().split()[0]), signal.SIGINT, pid_file.exists)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """casebook-mlflow-server on PostgreSQL; yields its URL. Users alice and bob are created by the admin."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(log, "w") as out:
        proc = subprocess.Popen([PY, "-m", "casebook.cli.mlflow_server", "--backend-store-uri", postgres,
                                 "--artifacts-destination", str(log.parent / "artifacts"), "--port", str(port),
                                 "--workers", "1"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not answer within 60 s\n" + log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        for name, password in USERS.items():
            r = requests.post(f"{url}/api/2.0/mlflow/users/create", json={"username": name, "password": password},
                              auth=("admin", ADMIN_PASSWORD), timeout=10)
            assert r.ok, r.text
        yield url
    finally:  # the launcher, the server and its workers share one process group
        stop(-proc.pid, signal.SIGTERM, lambda: proc.poll() is None)
        proc.wait(timeout=30)


def tool(module, *args, user=None, password=None, url=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "CASEBOOK_MLFLOW"))}
    env["CASEBOOK_MLFLOW_URI"] = url
    if user:
        env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    return subprocess.run([PY, "-m", module, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=180)


def train(url, out, **login):
    return tool("casebook.cli.train_classifier", "--model", "logistic-regression", "--n-samples", 400, "--cv", 2,
                "--output-dir", out, "--track", url=url, **login)


def assert_exit_2(r, out: Path, *words):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(lines) == 1 and lines[0].startswith("train-classifier: error: MLflow server"), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not out.exists(), "output written although tracking failed"


def test_anonymous_rest_calls_are_refused(server):
    r = requests.get(f"{server}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{server}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                     auth=("alice", USERS["alice"]), timeout=10)
    assert r.status_code == 200


def test_a_tracked_run_lands_on_the_server_and_its_model_reloads_by_alias(server, tmp_path, monkeypatch):
    out = tmp_path / "alice"
    r = train(server, out, user="alice", password=USERS["alice"])
    assert r.returncode == 0, r.stderr
    assert f"to 'synthetic' at {server}" in r.stdout

    from casebook import tracking

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    run_id = re.search(r"logged run (\w+) to", r.stdout).group(1)
    runs = tracking.search("synthetic", f"attributes.run_id = '{run_id}'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.model"] == "logistic-regression" and run["params.cv"] == "2"
    assert run["tags.mlflow.user"] == "alice"
    metrics = pd.read_json(out / "metrics.json", typ="series")
    assert run["metrics.test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert run["metrics.validation_accuracy"] == pytest.approx(metrics["validation_accuracy"])
    from mlflow import MlflowClient

    files = {a.path for a in MlflowClient().list_artifacts(run["run_id"], "output")}
    assert files == {"output/model.skops", "output/validation.csv", "output/metrics.json"}

    version = tracking.register_alias(run["run_id"], "synthetic-classifier", "champion")
    assert version == 1
    champion = tracking.load_by_alias("synthetic-classifier", "champion", flavor="sklearn")
    validation = pd.read_csv(out / "validation.csv")
    local = tool("casebook.cli.predict_classification", "--model", out / "model.skops",
                 "--output", tmp_path / "local.csv", url="")
    assert local.returncode == 0, local.stderr
    expected = pd.read_csv(tmp_path / "local.csv")["prediction"].to_numpy()
    assert (champion.predict(validation.drop(columns="target")) == expected).all()


def test_wrong_or_missing_credentials_exit_2_before_any_work(server, tmp_path, monkeypatch):
    r = train(server, tmp_path / "wrong", user="alice", password="not-her-password")
    assert_exit_2(r, tmp_path / "wrong", "401", "wrong password for user 'alice'", "MLFLOW_TRACKING_PASSWORD")
    assert "CV accuracy" not in r.stdout
    r = train(server, tmp_path / "anonymous")
    assert_exit_2(r, tmp_path / "anonymous", "401", "no credentials", "MLFLOW_TRACKING_USERNAME")

    from casebook import tracking  # a notebook's first tracking call fails with the same line

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", server)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    with pytest.raises(tracking.TrackingServerError, match="401: no credentials given"):
        tracking.setup("synthetic")


def test_no_permission_and_no_server_exit_2(server, tmp_path):
    r = requests.post(f"{server}/api/2.0/mlflow/experiments/create", json={"name": "synthetic"},
                      auth=("alice", USERS["alice"]), timeout=10)  # alice's experiment, unless it exists already
    assert r.ok or "RESOURCE_ALREADY_EXISTS" in r.text, r.text
    r = train(server, tmp_path / "bob", user="bob", password=USERS["bob"])  # bob may only read alice's experiment
    assert_exit_2(r, tmp_path / "bob", "403", "user 'bob'", "experiment 'synthetic'")
    assert "CV accuracy" not in r.stdout, "refused only after training"
    r = train(f"http://127.0.0.1:{free_port()}", tmp_path / "nowhere", user="alice", password=USERS["alice"])
    assert_exit_2(r, tmp_path / "nowhere", "unreachable", "CASEBOOK_MLFLOW_URI")
