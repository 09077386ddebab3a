"""The team set-up, against the real thing: a throw-away PostgreSQL cluster and `casebook-mlflow-server`
(MLflow's basic-auth server with --serve-artifacts) on it, both on loopback and free ports, stopped by PID in
teardown even when a test fails."""

import contextlib
import glob
import os
import pwd
import re
import shlex
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

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("team-server")]  # one PostgreSQL + one server
PY = sys.executable
ADMIN_PASSWORD = "Adm1n-pass-for-tests"
USERS = {"alice": "Alice-pass-for-tests", "bob": "Bob-pass-for-tests"}
TEAM_NAME = "mlflow.team.test"  # the public name the module's server is told about (--allowed-hosts)


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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
        r = subprocess.run(
            [
                pg_ctl,
                "-D",
                pgdata,
                "-w",
                "-l",
                base / "log",
                "-o",
                f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off",
                "start",
            ],
            **run,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"], **run)
        assert r.returncode == 0, r.stderr
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        pid_file = pgdata / "postmaster.pid"
        if pid_file.is_file():  # SIGINT = PostgreSQL's fast shutdown; it removes the pid file when done
            stop(int(pid_file.read_text().split()[0]), signal.SIGINT, pid_file.exists)
        shutil.rmtree(base, ignore_errors=True)


class Server:
    """One casebook-mlflow-server on a database of the test cluster and a fixed free port: started, stopped
    (or SIGKILLed) and restarted by its process group."""

    def __init__(
        self, database_uri: str, folder: Path, workers: int = 1, extra_env: dict | None = None, args: tuple = ()
    ):
        self.database_uri, self.folder, self.workers, self.args = database_uri, folder, workers, list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, **(extra_env or {})}
        self.proc = None

    def start(self, timeout: float = 90, uri_in_env: bool = False) -> "Server":
        """Start the launcher; ``uri_in_env``: the database URI (and so its password) in
        ``MLFLOW_BACKEND_STORE_URI`` rather than on the launcher's own command line."""
        log = self.folder / "server.log"
        store = [] if uri_in_env else ["--backend-store-uri", self.database_uri]
        env = {**self.env, "MLFLOW_BACKEND_STORE_URI": self.database_uri} if uri_in_env else self.env
        with open(log, "a") as out:
            self.proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "casebook.cli.mlflow_server",
                    *store,
                    "--artifacts-destination",
                    str(self.folder / "artifacts"),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    *self.args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"server did not answer within {timeout} s\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the launcher, the server and its workers (one process group)."""
        if self.proc is not None:
            stop(-self.proc.pid, sig, lambda: self.proc.poll() is None)
            self.proc.wait(timeout=30)
            deadline = time.monotonic() + 20  # workers gone: the port is free again
            while _listening(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)

    def create_users(self) -> None:
        for name, password in USERS.items():
            r = requests.post(
                f"{self.url}/api/2.0/mlflow/users/create",
                json={"username": name, "password": password},
                auth=("admin", ADMIN_PASSWORD),
                timeout=10,
            )
            assert r.ok, r.text


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """casebook-mlflow-server on PostgreSQL; yields its URL. Users alice and bob are created by the admin. The
    team's public name is TEAM_NAME."""
    handle = Server(postgres, tmp_path_factory.mktemp("mlflow-server"), args=("--allowed-hosts", TEAM_NAME))
    try:
        handle.start()
        handle.create_users()
        yield handle.url
    finally:
        handle.stop()


@pytest.fixture
def fresh(postgres, tmp_path):
    """A server of its own (2 workers) on a new, empty database of the test cluster: nothing exists yet."""
    name = f"fresh_{os.getpid()}_{int(time.monotonic() * 1000)}"
    base, _, _ = postgres.rpartition("/")
    host, port = re.search(r"@([\d.]+):(\d+)/", postgres).groups()
    run_as = dict(capture_output=True, text=True, timeout=60)
    r = subprocess.run([pg_binary("createdb"), "-h", host, "-p", port, "-U", "mlflow", name], **run_as)
    assert r.returncode == 0, r.stderr
    handle = Server(f"{base}/{name}", tmp_path, workers=2)
    try:
        yield handle
    finally:
        handle.stop()


def tool(module, *args, user=None, password=None, url=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "CASEBOOK_MLFLOW"))}
    env["CASEBOOK_MLFLOW_URI"] = url
    if user:
        env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    return subprocess.run(
        [PY, "-m", module, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=180
    )


def train(url, out, **login):
    return tool(
        "casebook.cli.train_classifier",
        "--model",
        "logistic-regression",
        "--n-samples",
        400,
        "--cv",
        2,
        "--output-dir",
        out,
        "--track",
        url=url,
        **login,
    )


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
    r = requests.get(
        f"{server}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=("alice", USERS["alice"]),
        timeout=10,
    )
    assert r.status_code == 200


def test_a_tracked_run_lands_on_the_server_and_its_model_reloads_by_alias(server, tmp_path, monkeypatch):
    out = tmp_path / "alice"
    r = train(server, out, user="alice", password=USERS["alice"])
    assert r.returncode == 0, r.stderr
    assert f"to 'synthetic' at {server}" in r.stdout

    from casebook.tracking import executions, model_registry

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    run_id = re.search(r"logged run (\w+) to", r.stdout).group(1)
    runs = executions.search("synthetic", f"attributes.run_id = '{run_id}'")
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

    version = model_registry.register_alias(run["run_id"], "synthetic-classifier", "champion")
    assert version == 1
    champion = model_registry.load_by_alias("synthetic-classifier", "champion", flavor="sklearn")
    validation = pd.read_csv(out / "validation.csv")
    local = tool(
        "casebook.cli.predict_classification",
        "--model",
        out / "model.skops",
        "--output",
        tmp_path / "local.csv",
        url="",
    )
    assert local.returncode == 0, local.stderr
    expected = pd.read_csv(tmp_path / "local.csv")["prediction"].to_numpy()
    assert (champion.predict(validation.drop(columns="target")) == expected).all()


def test_wrong_or_missing_credentials_exit_2_before_any_work(server, tmp_path, monkeypatch):
    r = train(server, tmp_path / "wrong", user="alice", password="not-her-password")
    assert_exit_2(r, tmp_path / "wrong", "401", "wrong password for user 'alice'", "MLFLOW_TRACKING_PASSWORD")
    assert "CV accuracy" not in r.stdout
    r = train(server, tmp_path / "anonymous")
    assert_exit_2(r, tmp_path / "anonymous", "401", "no credentials", "MLFLOW_TRACKING_USERNAME")

    from casebook.tracking import backend, team_server  # a notebook's first tracking call fails with the same line

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", server)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    with pytest.raises(team_server.TrackingServerError, match="401: no credentials given"):
        backend.setup("synthetic")


def test_no_permission_and_no_server_exit_2(server, tmp_path):
    r = requests.post(
        f"{server}/api/2.0/mlflow/experiments/create",
        json={"name": "synthetic"},
        auth=("alice", USERS["alice"]),
        timeout=10,
    )  # alice's experiment, unless it exists already
    assert r.ok or "RESOURCE_ALREADY_EXISTS" in r.text, r.text
    r = train(server, tmp_path / "bob", user="bob", password=USERS["bob"])  # bob may only read alice's experiment
    assert_exit_2(r, tmp_path / "bob", "403", "user 'bob'", "experiment 'synthetic'")
    assert "CV accuracy" not in r.stdout, "refused only after training"
    r = train(f"http://127.0.0.1:{free_port()}", tmp_path / "nowhere", user="alice", password=USERS["alice"])
    assert_exit_2(r, tmp_path / "nowhere", "unreachable", "CASEBOOK_MLFLOW_URI")


def _runs_on(url: str, experiment: str, user: str = "alice") -> list[dict]:
    auth = (user, USERS[user])
    r = requests.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment}, auth=auth, timeout=10
    )
    if r.status_code == 404:
        return []
    assert r.ok, r.text
    found = requests.post(
        f"{url}/api/2.0/mlflow/runs/search",
        auth=auth,
        timeout=10,
        json={"experiment_ids": [r.json()["experiment"]["experiment_id"]], "max_results": 100},
    )
    return found.json().get("runs", [])


def test_four_first_runs_started_together_all_land(fresh, tmp_path, monkeypatch):
    """Four tools against a fresh server: the experiment does not exist, all four create it at once; the
    losers of that race use the winner's experiment. Then four registrations of one model and alias at once."""
    fresh.start()
    fresh.create_users()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "CASEBOOK_MLFLOW"))}
    env.update(CASEBOOK_MLFLOW_URI=fresh.url, MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=USERS["alice"])
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "casebook.cli.train_classifier",
                "--model",
                "logistic-regression",
                "--n-samples",
                "400",
                "--cv",
                "2",
                "--output-dir",
                str(tmp_path / f"out{k}"),
                "--track",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], [err[-600:] for _, err in results]
    runs = _runs_on(fresh.url, "synthetic")
    assert len(runs) == 4 and {r["info"]["status"] for r in runs} == {"FINISHED"}

    from concurrent.futures import ThreadPoolExecutor

    from casebook.tracking import backend, model_registry

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", fresh.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    backend.setup("synthetic")
    run_ids = [r["info"]["run_id"] for r in runs]
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda rid: model_registry.register_alias(rid, "race-model", "champion"), run_ids))
    assert sorted(versions) == [1, 2, 3, 4]
    from mlflow import MlflowClient

    assert int(MlflowClient().get_model_version_by_alias("race-model", "champion").version) in versions


def _tool_in_background(url: str, out: Path) -> tuple[subprocess.Popen, float]:
    """train-classifier --track on enough data that its run stays open for several seconds of training;
    returns once its run is open on the server."""
    before = {r["info"]["run_id"] for r in _runs_on(url, "synthetic")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "CASEBOOK_MLFLOW"))}
    env.update(CASEBOOK_MLFLOW_URI=url, MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=USERS["alice"])
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "casebook.cli.train_classifier",
            "--model",
            "svm",
            "--n-samples",
            "6000",
            "--cv",
            "5",
            "--output-dir",
            str(out),
            "--track",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(
        r["info"]["status"] == "RUNNING" and r["info"]["run_id"] not in before for r in _runs_on(url, "synthetic")
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-800:]
        time.sleep(0.3)
    return proc, time.monotonic()


def test_a_server_gone_mid_run_stops_the_tool_with_one_line_and_a_restart_lets_it_finish(fresh, tmp_path):
    from casebook.tracking import team_server

    fresh.start()
    fresh.create_users()
    proc, opened = _tool_in_background(fresh.url, tmp_path / "gone")
    fresh.stop(signal.SIGKILL)  # gone for good while the tool trains
    out, err = proc.communicate(timeout=180)
    waited = time.monotonic() - opened
    lines = err.strip().splitlines()
    assert proc.returncode == 2, out + err
    assert len(lines) == 1 and lines[0].startswith(
        f"train-classifier: error: MLflow server {fresh.url} stopped answering"
    ), err
    assert not (tmp_path / "gone").exists(), "output written although the run could not be logged"
    retry_bound = 30 + 20  # TOOL_RETRIES' back-off, plus training time left when the server went
    assert waited < retry_bound + 40, f"{waited:.0f} s"
    assert team_server.TOOL_RETRIES["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"

    fresh.start()  # the same database: the run the tool could not finish
    assert {r["info"]["status"] for r in _runs_on(fresh.url, "synthetic")} <= {"RUNNING", "FAILED"}
    proc, _ = _tool_in_background(fresh.url, tmp_path / "restarted")
    fresh.stop(signal.SIGKILL)
    fresh.start()  # back within the bound
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-1500:]
    assert (tmp_path / "restarted" / "model.skops").is_file()
    statuses = [r["info"]["status"] for r in _runs_on(fresh.url, "synthetic")]
    assert statuses.count("FINISHED") == 1, statuses


def test_artifacts_can_only_be_written_under_the_servers_root(server, postgres, tmp_path):
    auth = ("alice", USERS["alice"])
    outside = tmp_path / "outside"
    r = requests.post(
        f"{server}/api/2.0/mlflow/experiments/create",
        auth=auth,
        timeout=10,
        json={"name": "escape", "artifact_location": outside.as_uri()},
    )
    assert r.status_code == 400 and "artifact_location" in r.json()["message"], r.text
    assert (
        requests.get(
            f"{server}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "escape"},
            auth=auth,
            timeout=10,
        ).status_code
        == 404
    )
    # an experiment with a foreign location made behind the server's back (before the guard, another tool)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(postgres, str(tmp_path / "unused"))
    foreign = store.create_experiment("foreign-location", artifact_location=outside.as_uri())
    r = requests.post(
        f"{server}/api/2.0/mlflow/runs/create",
        auth=("admin", ADMIN_PASSWORD),
        timeout=10,
        json={"experiment_id": foreign, "start_time": int(time.time() * 1000)},
    )
    run_id = r.json()["run"]["info"]["run_id"]
    r = requests.post(
        f"{server}/ajax-api/2.0/mlflow/upload-artifact",
        params={"run_uuid": run_id, "path": "up.txt"},
        data=b"hello",
        auth=("admin", ADMIN_PASSWORD),
        timeout=10,
    )
    assert r.status_code == 403, r.text
    for raw in (
        "%2Ftmp%2Fcasebook-escape.txt",
        "....//casebook-escape.txt",
        "0/../../casebook-escape.txt",
        "0/..%2F..%2Fcasebook-escape.txt",
        "0//x.txt",
        "0/%5C..%5Cx.txt",
    ):
        status, text = _raw_put(server, f"/api/2.0/mlflow-artifacts/artifacts/{raw}", auth)
        assert status == 400, (raw, status, text)
    written = [
        p for p in (outside, Path("/tmp/casebook-escape.txt"), tmp_path.parent / "casebook-escape.txt") if p.exists()
    ]
    assert not written, written


def _raw_put(url: str, path: str, auth) -> tuple[int, str]:
    """A PUT with the path exactly as given (HTTP clients would resolve '..' segments before sending)."""
    import base64
    import http.client

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection.request("PUT", path, body=b"x", headers={"Authorization": f"Basic {token}"})
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def test_no_database_password_is_left_on_disk_or_on_a_command_line(postgres, tmp_path):
    password = "db-Pa55word-never-on-disk"
    host_part = postgres.replace("mlflow@", f"mlflow:{password}@")  # trust authentication ignores it
    handle = Server(host_part, tmp_path)
    try:
        handle.start(uri_in_env=True)
        pids = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-g", str(handle.proc.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(pids) >= 3  # the launcher, mlflow server, uvicorn and its worker
        for pid in pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert password not in cmdline, cmdline
        folders = glob.glob(f"{tempfile.gettempdir()}/casebook-mlflow-auth.{handle.proc.pid}.*")
        assert len(folders) == 1
        os.kill(handle.proc.pid, signal.SIGKILL)  # the launcher only: its private folder stays behind
        handle.proc.wait(timeout=10)
        for path in Path(folders[0]).rglob("*"):
            assert password not in path.read_text(errors="replace"), path
        assert "auth_cache_ttl_seconds = 60" in (Path(folders[0]) / "basic_auth.ini").read_text()
    finally:
        handle.stop(signal.SIGKILL)
    again = Server(postgres, tmp_path)
    try:
        again.start()
        assert not Path(folders[0]).exists(), "a stale private folder survived the next start"
    finally:
        again.stop()


DOCS = Path(__file__).parents[1] / "docs" / "team-server.md"


def _documented(language: str, containing: str) -> str:
    """The one ```language block of docs/team-server.md that contains ``containing``, continuation lines joined."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    (block,) = [b for b in blocks if containing in b]
    return block.replace("\\\n", " ")


def test_the_documented_user_api_works(server):
    from mlflow.server import get_app_client

    env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        documented = _documented("python", "get_app_client")
        assert 'users.grant_user_permission(username="alice", resource_type="experiment"' in documented
        users = get_app_client("basic-auth", tracking_uri=server)
        users.create_user(username="carol", password="Carol-pass-for-tests")
        r = requests.post(
            f"{server}/api/2.0/mlflow/experiments/create",
            json={"name": "admins-experiment"},
            auth=("admin", ADMIN_PASSWORD),
            timeout=10,
        )
        experiment_id = r.json()["experiment_id"]
        users.grant_user_permission(
            username="carol", resource_type="experiment", resource_id=experiment_id, permission="EDIT"
        )
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    r = requests.post(
        f"{server}/api/2.0/mlflow/runs/create",
        auth=("carol", "Carol-pass-for-tests"),
        timeout=10,
        json={"experiment_id": experiment_id, "start_time": int(time.time() * 1000)},
    )
    assert r.ok, r.text


def test_long_params_and_non_finite_metrics_are_kept_not_changed(server, monkeypatch):
    import math

    from mlflow import MlflowClient

    from casebook.tracking import run_logging

    monkeypatch.setenv("CASEBOOK_MLFLOW_URI", server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    long_value = "x" * 7000 + "-end"
    with run_logging.run("values", "long-and-nan", params={"notes": long_value, "short": "ok"}) as active:
        run_logging.log_metrics({"loss": math.nan, "ratio": math.inf, "accuracy": 0.5})
        run_logging.log_history({"val_loss": [1.0, -math.inf]})
    run = MlflowClient().get_run(active.info.run_id)
    assert run.data.params["short"] == "ok"
    assert run.data.params["notes"] == "<7004 characters: artifact params/notes.txt>"
    local = MlflowClient().download_artifacts(active.info.run_id, "params/notes.txt")
    assert Path(local).read_text() == long_value
    assert run.data.metrics == {"accuracy": 0.5, "val_loss": 1.0}
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(run_logging.NONFINITE_TAG)}
    assert tags == {
        f"{run_logging.NONFINITE_TAG}loss": "nan",
        f"{run_logging.NONFINITE_TAG}ratio": "inf",
        f"{run_logging.NONFINITE_TAG}val_loss": "-inf at step 2",
    }


def test_the_load_benchmark_counts_what_landed(server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "CASEBOOK_MLFLOW"))}
    env.update(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=USERS["alice"])
    for mode in ("per-step", "batched"):
        r = subprocess.run(
            [
                PY,
                "-m",
                "casebook.cli.server_load",
                "--url",
                server,
                "--clients",
                "2",
                "--runs",
                "2",
                "--steps",
                "5",
                "--mode",
                mode,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert r.returncode == 0, r.stderr
        rows = {line.split()[0]: line.split()[1:6] for line in r.stdout.splitlines()[2:6]}
        assert "runs" in rows, r.stdout + r.stderr
        assert rows["runs"] == ["4", "4", "4", "0", "0"], r.stdout
        assert rows["metric"] == ["points", "20", "20", "20", "0"], r.stdout
        assert rows["artifacts"] == ["4", "4", "4", "0", "0"], r.stdout
    bad = subprocess.run(
        [PY, "-m", "casebook.cli.server_load", "--url", server, "--kill", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"  # MLflow's answer (403)


def _search_as(server: str, host: str) -> requests.Response:
    """alice's experiment search, sent to ``server`` with the Host header ``host``."""
    return requests.get(
        f"{server}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        headers={"Host": host},
        auth=("alice", USERS["alice"]),
        timeout=10,
    )


def test_only_the_hosts_the_server_is_served_on_are_answered(server):
    port = int(server.rsplit(":", 1)[1])
    for foreign in (
        "evil.example:5000",
        f"evil.example:{port}",
        "evil.example",
        f"localhost.evil.example:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"{TEAM_NAME}.evil.example:{port}",
        f"mlflow:{port + 1}",  # names other than loopback: on the server's port only
    ):
        r = _search_as(server, foreign)
        assert r.status_code == 403 and r.text == INVALID_HOST, (foreign, r.status_code, r.text[:200])
    for ours in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"[::1]:{port}",
        "localhost:8022",  # loopback on any port: an SSH tunnel, a remapped container port
        f"mlflow:{port}",  # docker-compose.yml's service name
        f"{TEAM_NAME}:{port}",
        TEAM_NAME,  # behind a reverse proxy on port 80
    ):
        r = _search_as(server, ours)
        assert r.status_code == 200, (ours, r.status_code, r.text[:200])
    for origin, status in ((f"http://{TEAM_NAME}:{port}", 200), (f"http://evil.example:{port}", 403)):
        r = requests.post(  # the UI's POSTs carry its page's origin: the server's own name, or a foreign one
            f"{server}/ajax-api/2.0/mlflow/experiments/search",
            json={"max_results": 1},
            headers={"Host": f"{TEAM_NAME}:{port}", "Origin": origin},
            auth=("alice", USERS["alice"]),
            timeout=10,
        )
        assert r.status_code == status, (origin, r.status_code, r.text[:200])
    r = requests.post(  # refused for its Host before the artifact guard reads the request (400 otherwise)
        f"{server}/api/2.0/mlflow/experiments/create",
        json={"name": "rebound", "artifact_location": "file:///tmp/elsewhere"},
        headers={"Host": f"evil.example:{port}"},
        auth=("alice", USERS["alice"]),
        timeout=10,
    )
    assert r.status_code == 403 and r.text == INVALID_HOST, r.text


def _launcher(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """casebook-mlflow-server with ``args``; a server it would start could not open its store."""
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    command = [PY, "-m", "casebook.cli.mlflow_server", "--backend-store-uri", "sqlite:////nonexistent/x.db", *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert not glob.glob(f"{tempfile.gettempdir()}/casebook-mlflow-auth.{proc.pid}.*"), "work was done"
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_any_host_is_refused_unless_asked_for_by_its_own_flag():
    for args, env, source in (
        (("--allowed-hosts", "*"), {}, "--allowed-hosts"),
        (("--allowed-hosts", f"{TEAM_NAME},*:5000"), {}, "--allowed-hosts"),
        ((), {"MLFLOW_SERVER_ALLOWED_HOSTS": "*"}, "MLFLOW_SERVER_ALLOWED_HOSTS"),
        ((), {"MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true"}, "unset MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE"),
    ):
        r = _launcher(*args, env=env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (args, r.returncode, r.stderr)
        assert lines[0].startswith(f"casebook-mlflow-server: error: {source}") and "--allow-any-host" in lines[0]


@pytest.mark.parametrize(
    "value, words",
    [
        ("http://mlflow.example.com:5000", "not URLs"),
        ("mlflow.example.com/", "not URLs"),
        ("192.168.*", "leading labels"),
        ("mlflow-*", "leading labels"),
        ("*.com", "top-level domain"),
        ("fd00::5", "[fd00::5]"),
        ("mlflow.example.com:70000", "between 1 and 65535"),
        ("a.example,,b.example", "empty name"),
        ("team server", "not a host name"),
    ],
)
def test_bad_allowed_hosts_exit_2_with_one_line_before_any_work(value, words, monkeypatch, capsys):
    from casebook.cli import mlflow_server

    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setattr(mlflow_server.tempfile, "mkdtemp", lambda **kw: pytest.fail("work was done"))
    code = mlflow_server.main(["--backend-store-uri", "sqlite:////nonexistent/x.db", "--allowed-hosts", value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("casebook-mlflow-server: error: --allowed-hosts")
    assert words in err, err


class _FakeServer:
    """Stands in for ``mlflow server``: records the command line and environment it was given."""

    started: list = []

    def __init__(self, command, env):
        self.started.append((command, env))

    def wait(self):
        return 0


def _launched(monkeypatch, capsys, *args: str, env: dict | None = None) -> tuple[dict, dict, str]:
    """Run the launcher in-process with ``mlflow server`` faked: (its --allowed-hosts and --cors-allowed-origins,
    its environment, stderr)."""
    from casebook.cli import mlflow_server

    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(mlflow_server.subprocess, "Popen", _FakeServer)
    monkeypatch.setattr(mlflow_server.signal, "signal", lambda *a: None)  # pytest keeps its own handlers
    _FakeServer.started.clear()
    assert mlflow_server.main(["--backend-store-uri", "sqlite:////nonexistent/x.db", *args]) == 0
    ((command, server_env),) = _FakeServer.started
    options = {k: command[command.index(k) + 1] for k in ("--allowed-hosts", "--cors-allowed-origins")}
    return options, server_env, capsys.readouterr().err


def test_allow_any_host_passes_star_with_a_warning(monkeypatch, capsys):
    options, _, err = _launched(monkeypatch, capsys, "--allow-any-host")
    assert options["--allowed-hosts"] == "*"
    assert err.startswith("casebook-mlflow-server: warning: --allow-any-host") and "DNS" in err, err


def test_the_default_hosts_and_the_teams_names_reach_mlflow(monkeypatch, capsys):
    from mlflow.server.security_utils import is_allowed_host_header

    options, server_env, err = _launched(
        monkeypatch, capsys, "--host", "0.0.0.0", "--port", "5000", env={"MLFLOW_SERVER_ALLOWED_HOSTS": TEAM_NAME}
    )
    hosts = options["--allowed-hosts"].split(",")
    assert "MLFLOW_SERVER_ALLOWED_HOSTS" not in server_env, "the list goes on the command line, whole"
    assert "warning" not in err and options["--allowed-hosts"] in err.replace(", ", ","), err
    machine = socket.gethostname().lower()
    accepted = ["localhost:5000", "127.0.0.1:6006", "[::1]:5000", "mlflow:5000", f"{machine}:5000", TEAM_NAME]
    refused = ["evil.example:5000", "mlflow:5001", f"{TEAM_NAME}:5001", "0.0.0.0:5000", "[::2]:5000"]
    assert [h for h in accepted if not is_allowed_host_header(hosts, h)] == []
    assert [h for h in refused if is_allowed_host_header(hosts, h)] == []
    origins = options["--cors-allowed-origins"].split(",")
    assert {f"http://{TEAM_NAME}", f"https://{TEAM_NAME}", f"http://{TEAM_NAME}:5000", "http://mlflow:5000"} <= set(
        origins
    )
    assert not [o for o in origins if "localhost" in o or "*" in o], origins  # MLflow allows loopback itself


def test_the_documented_host_check_answers_both_ways(server):
    """docs/team-server.md's curl command, pointed at the test server: JSON for a name the server was given,
    MLflow's refusal for another."""
    command = _documented("bash", "curl ").strip()
    port = server.rsplit(":", 1)[1]
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": USERS["alice"]}
    answers = {}
    for name in (TEAM_NAME, "evil.example"):
        ours = command.replace("127.0.0.1:5000", f"127.0.0.1:{port}").replace(
            "mlflow.example.com:5000", f"{name}:{port}"
        )
        assert ours != command and name in ours, command
        answers[name] = subprocess.run(["bash", "-c", ours], env=env, capture_output=True, text=True, timeout=30)
    assert answers[TEAM_NAME].returncode == 0 and answers[TEAM_NAME].stdout.startswith("{"), answers[TEAM_NAME]
    assert answers["evil.example"].stdout == INVALID_HOST, answers["evil.example"]


def test_the_documented_server_command_parses_and_names_its_host():
    from casebook.cli import mlflow_server

    command = shlex.split(_documented("bash", "casebook-mlflow-server --host"))
    options = command[command.index("casebook-mlflow-server") + 1 : command.index("#") if "#" in command else None]
    hosts = mlflow_server.allowed_hosts(mlflow_server.build_parser().parse_args(options))
    assert {"mlflow.example.com", "mlflow.example.com:5000", "localhost:*"} <= set(hosts) and "*" not in hosts
    helped = subprocess.run([PY, "-m", "casebook.cli.mlflow_server", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--allowed-hosts" in helped.stdout and "--allow-any-host" in helped.stdout
