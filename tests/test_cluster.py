"""casebook.cluster against a real Ray cluster: a head and a worker started with ``ray start`` as separate
processes (stopped by PID), a real MLflow server, and the clients, all inside a network namespace that has only
loopback (Ray binds to the machine's external interface even when told 127.0.0.1). Nothing is mocked."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from casebook import cluster
from casebook.cli.local_cluster import LocalCluster, LoopbackNamespace, namespaces_available

CLIENT = Path(__file__).with_name("cluster_client.py")
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true", "CASEBOOK_SMOKE": "1"}

pytestmark = [
    pytest.mark.xdist_group("ray-cluster"),
    pytest.mark.skipif(not namespaces_available(), reason="needs root and unshare/nsenter for a loopback-only netns"),
]


# Module-scoped: the xdist group sends this module's tests to one worker as one block, so the cluster and the
# server stop (and their idle processes stop taking CPU) as soon as the module is done.
@pytest.fixture(scope="module")
def namespace():
    ns = LoopbackNamespace()
    yield ns
    ns.close()


@pytest.fixture(scope="module")
def mlflow_process(namespace, tmp_path_factory):
    """A real MLflow server (sqlite, artifacts served) on 127.0.0.1 inside the namespace, started (it answers
    once :func:`mlflow_server` has waited for it); stopped by PID."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = random.randint(40001, 50000)
    argv = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--workers", "1"]
    argv += ["--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (the server's lifetime)
    server = subprocess.Popen(namespace.wrap(argv), stdout=log, stderr=log, start_new_session=True)
    yield server, f"http://127.0.0.1:{port}", folder
    os.killpg(server.pid, 15)
    server.wait(20)
    log.close()


@pytest.fixture(scope="module")
def ray_cluster(namespace, mlflow_process):
    """A head (1 CPU) and one worker (1 CPU), token authentication on; the MLflow server starts meanwhile."""
    c = LocalCluster(workers=1, cpus=1, namespace=namespace)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def mlflow_server(namespace, mlflow_process):
    """The MLflow server's URL, once it answers."""
    server, url, folder = mlflow_process
    probe = [sys.executable, "-c", f"import urllib.request as u; u.urlopen('{url}/health', timeout=2)"]
    deadline = time.monotonic() + 60
    while subprocess.run(namespace.wrap(probe), capture_output=True).returncode != 0:
        assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-2000:]
        time.sleep(0.5)
    return url


@pytest.fixture
def two_nodes(ray_cluster):
    """The session's cluster with its worker, started again if an earlier test killed it."""
    if not ray_cluster.workers:
        ray_cluster.add_worker()
    return ray_cluster


@pytest.fixture(scope="module")
def refused_client(ray_cluster, tmp_path_factory):
    """``train-classifier`` with a wrong token, started as soon as the cluster is up (the search test asks for it
    first): Ray's client spends about 20 s on retries before it gives up, which then overlap other tests."""
    folder = tmp_path_factory.mktemp("refused")
    env = {**QUIET, "RAY_AUTH_TOKEN": "0" * 32, "CASEBOOK_MLFLOW": str(folder)}
    argv = [str(Path(sys.executable).with_name("train-classifier")), "--output-dir", str(folder / "out")]
    client = ray_cluster.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield client, folder
    if client.poll() is None:
        client.kill()
        client.wait()


def _client(c: LocalCluster, *args, env: dict | None = None, timeout: float = 240) -> dict:
    done = c.client(
        [sys.executable, str(CLIENT), *args],
        env={**QUIET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _result(done.stdout)


def _result(stdout: str) -> dict:
    """The client's JSON line (Ray may print notices about nodes to stdout after it)."""
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("{")))


def _local(*args, env: dict) -> subprocess.Popen:
    """The same client outside the cluster, started (read it with :func:`_finished`): CASEBOOK_RAY_ADDRESS
    unset, today's single-process code path."""
    clean = {k: v for k, v in os.environ.items() if k != cluster.ADDRESS}
    return subprocess.Popen(
        [sys.executable, str(CLIENT), *args],
        env={**clean, **QUIET, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(client: subprocess.Popen) -> dict:
    out, err = client.communicate(timeout=240)
    assert client.returncode == 0, err[-3000:]
    return _result(out)


@pytest.mark.usefixtures("refused_client")  # started now, read by the last test
def test_a_search_on_the_cluster_gives_the_local_cv_results(two_nodes, mlflow_server, tmp_path):
    local = _local("search", env={"CASEBOOK_MLFLOW": str(tmp_path)})  # runs while the cluster works
    on_cluster = _client(two_nodes, "search", env={"CASEBOOK_MLFLOW_URI": mlflow_server})
    local = _finished(local)
    assert on_cluster["ray"] and on_cluster["nodes"] == 2
    assert not local["ray"]
    assert on_cluster["scores"] == local["scores"]
    assert len(local["scores"]["params"]) == 2


def test_a_sweep_lands_finished_child_runs_and_the_local_champion(two_nodes, mlflow_server, tmp_path):
    local = _local("sweep", "4", "ensemble", env={"CASEBOOK_MLFLOW": str(tmp_path)})  # beside the cluster's
    on_cluster = _client(two_nodes, "sweep", "4", "ensemble", env={"CASEBOOK_MLFLOW_URI": mlflow_server})
    local = _finished(local)
    assert on_cluster["ray"] and not local["ray"]
    names = ["mobilenet#1", "mobilenet#2", "mobilenet#3", "mobilenet#4"]
    assert on_cluster["names"] == local["names"] == names
    runs = on_cluster["runs"]
    assert sorted(r["name"] for r in runs) == sorted([*names, "ensemble#1"])  # members read back from MLflow
    assert all(r["status"] == "FINISHED" and r["parent"] == on_cluster["execution"] for r in runs)
    assert all(r["models"] == 1 and r["val_roc_auc"] is not None for r in runs)
    assert on_cluster["champion"] == local["champion"]
    for name in names:
        for metric, value in local["val"][name].items():
            assert on_cluster["val"][name][metric] == pytest.approx(value, abs=1e-6), (name, metric)
    assert on_cluster["ensemble_val"] == pytest.approx(local["ensemble_val"], abs=1e-6)


def test_a_zoo_sweep_on_the_cluster_gives_the_local_networks(two_nodes, mlflow_server, tmp_path):
    """07's model zoo: the records and figures of trials run on other nodes reach the driver's folders."""
    local_env = {"CASEBOOK_MLFLOW": str(tmp_path / "mlflow"), "CASEBOOK_ASSETS": str(tmp_path / "local")}
    local = _local("zoo", env={**local_env, "CASEBOOK_OUTPUTS": str(tmp_path / "local")})
    env = {"CASEBOOK_MLFLOW_URI": mlflow_server, "CASEBOOK_ASSETS": str(tmp_path / "cluster")}
    on_cluster = _client(two_nodes, "zoo", env={**env, "CASEBOOK_OUTPUTS": str(tmp_path / "cluster")})
    local = _finished(local)
    assert on_cluster["ray"] and not local["ray"]
    assert on_cluster["val"] == pytest.approx(local["val"], abs=1e-6)
    for name, proba in local["test_proba"].items():
        np.testing.assert_allclose(on_cluster["test_proba"][name], proba, atol=1e-5, err_msg=name)
    for path in on_cluster["files"]:
        assert Path(path).is_relative_to(tmp_path / "cluster") and Path(path).is_file(), path
    runs = on_cluster["runs"]
    assert sorted(r["name"] for r in runs) == ["CNN [DeltaZ]", "CNN_2inputs [DeltaZ]"]
    assert all(r["status"] == "FINISHED" and r["parent"] == on_cluster["execution"] for r in runs)


# How many runs of the experiment are RUNNING on the server (plain REST: no MLflow import, so polling is cheap).
RUNNING = """
import json, sys, urllib.request as u
url, name = sys.argv[1], sys.argv[2]
exp = json.load(u.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}", timeout=5))
body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "filter": "attributes.status = 'RUNNING'"}
req = u.Request(f"{url}/api/2.0/mlflow/runs/search", json.dumps(body).encode(), {"Content-Type": "application/json"})
print(len(json.load(u.urlopen(req, timeout=5)).get("runs", [])))
"""


def _running(namespace: LoopbackNamespace, url: str) -> int:
    done = subprocess.run(namespace.wrap([sys.executable, "-c", RUNNING, url, "pneumonia"]), capture_output=True)
    return int(done.stdout or 0) if done.returncode == 0 else 0


def test_a_worker_killed_mid_sweep_loses_and_duplicates_no_run(two_nodes, mlflow_server, namespace):
    env = {**os.environ, **two_nodes.env, **QUIET, "CASEBOOK_MLFLOW_URI": mlflow_server}
    client = two_nodes.popen(
        [sys.executable, str(CLIENT), "sweep", "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 180
    while _running(namespace, mlflow_server) < 2:  # two trials logging: one on the head, one on the worker
        assert client.poll() is None and time.monotonic() < deadline, client.communicate()[1][-3000:]
        time.sleep(0.5)
    two_nodes.kill_worker(0)
    out, err = client.communicate(timeout=300)
    assert client.returncode == 0, err[-3000:]
    result = _result(out)
    names = sorted(r["name"] for r in result["runs"])
    assert names == ["mobilenet#1", "mobilenet#2", "mobilenet#3"], names
    assert all(r["status"] == "FINISHED" and r["models"] == 1 for r in result["runs"])
    assert result["deleted_attempts"] >= 1  # the killed attempt's run, deleted by its retry


def test_a_client_without_the_token_is_refused_with_one_line(refused_client):
    client, folder = refused_client
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "refused this client (its token)" in lines[0] and "RAY_AUTH_TOKEN" in lines[0]
    assert not (folder / "out").exists()
