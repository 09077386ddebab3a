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
    pytest.mark.cluster,
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
def local_process(tmp_path_factory):
    """The local reference of every test below: the same client outside the cluster (CASEBOOK_RAY_ADDRESS unset,
    today's single-process code path), one process started before the cluster, so that its work overlaps the
    cluster's start. Its output goes to a file (a pipe nobody reads until the end could fill and stall it)."""
    folder = tmp_path_factory.mktemp("local")
    env = {k: v for k, v in os.environ.items() if k != cluster.ADDRESS}
    env |= {**QUIET, "CASEBOOK_MLFLOW": str(folder), "CASEBOOK_ASSETS": str(folder), "CASEBOOK_OUTPUTS": str(folder)}
    (folder / "results").mkdir()
    log = open(folder / "client.log", "w")  # noqa: SIM115 (the process's lifetime)
    argv = [sys.executable, str(CLIENT), "all", str(folder / "results")]
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield process, folder
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def local(local_process):
    """The local reference's result of one scenario ("search", "zoo" or "sweep"), once it is written."""
    process, folder = local_process

    def result(scenario: str) -> dict:
        path = folder / "results" / f"{scenario}.json"
        deadline = time.monotonic() + 240
        while not path.exists():
            if process.poll() is not None and not path.exists():
                log = (folder / "client.log").read_text()[-3000:]
                pytest.fail(f"the local reference ended with {process.returncode}: {log}")
            assert time.monotonic() < deadline, f"no local {scenario} result in 240 s"
            time.sleep(0.2)
        return json.loads(path.read_text())

    return result


@pytest.fixture(scope="module")
def ray_cluster(namespace, mlflow_process, local_process):
    """A head (1 CPU) and one worker (1 CPU), token authentication on; the MLflow server and the local
    reference start meanwhile."""
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
    """The module's cluster with its worker (started again if a test run before this one killed it)."""
    return _with_worker(ray_cluster)


def _with_worker(c: LocalCluster) -> LocalCluster:
    if not c.workers:
        c.add_worker()
    return c


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


@pytest.mark.usefixtures("refused_client")  # started now, read by the last test
def test_a_search_on_the_cluster_gives_the_local_cv_results(two_nodes, mlflow_server, local):
    on_cluster = _client(two_nodes, "search", env={"CASEBOOK_MLFLOW_URI": mlflow_server})
    local = local("search")
    assert on_cluster["ray"] and on_cluster["nodes"] == 2
    assert not local["ray"]
    assert on_cluster["scores"] == local["scores"]
    assert len(local["scores"]["params"]) == 2


def test_a_zoo_sweep_on_the_cluster_gives_the_local_networks(two_nodes, mlflow_server, local, tmp_path):
    """07's model zoo: the records and figures of trials run on other nodes reach the driver's folders."""
    env = {"CASEBOOK_MLFLOW_URI": mlflow_server, "CASEBOOK_ASSETS": str(tmp_path / "cluster")}
    on_cluster = _client(two_nodes, "zoo", env={**env, "CASEBOOK_OUTPUTS": str(tmp_path / "cluster")})
    local = local("zoo")
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


@pytest.fixture(scope="module")
def killed_sweep(ray_cluster, mlflow_server, namespace, local):
    """08's 4-trial candidate sweep and its ensemble on the cluster, its worker killed while two trials log (one
    sweep proves both the landed runs and the retry), and the same sweep in the local reference."""
    env = {**QUIET, "CASEBOOK_MLFLOW_URI": mlflow_server}
    argv = [sys.executable, str(CLIENT), "sweep", "4", "ensemble"]
    two_nodes = _with_worker(ray_cluster)
    client = two_nodes.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while _running(namespace, mlflow_server) < 2:  # two trials logging: one on the head, one on the worker
        assert client.poll() is None and time.monotonic() < deadline, client.communicate()[1][-3000:]
        time.sleep(0.5)
    two_nodes.kill_worker(0)
    out, err = client.communicate(timeout=300)
    assert client.returncode == 0, err[-3000:]
    return _result(out), local("sweep")


NAMES = ["mobilenet#1", "mobilenet#2", "mobilenet#3", "mobilenet#4"]


def test_a_sweep_lands_finished_child_runs_and_the_local_champion(killed_sweep):
    on_cluster, local = killed_sweep
    assert on_cluster["ray"] and not local["ray"]
    assert on_cluster["names"] == local["names"] == NAMES
    runs = on_cluster["runs"]
    assert sorted(r["name"] for r in runs) == sorted([*NAMES, "ensemble#1"])  # members read back from MLflow
    assert all(r["status"] == "FINISHED" and r["parent"] == on_cluster["execution"] for r in runs)
    assert all(r["models"] == 1 and r["val_roc_auc"] is not None for r in runs)
    assert on_cluster["champion"] == local["champion"]
    for name in NAMES:  # the killed trial's retry included: same seed, same numbers
        for metric, value in local["val"][name].items():
            assert on_cluster["val"][name][metric] == pytest.approx(value, abs=1e-6), (name, metric)
    assert on_cluster["ensemble_val"] == pytest.approx(local["ensemble_val"], abs=1e-6)


def test_a_worker_killed_mid_sweep_loses_and_duplicates_no_run(killed_sweep):
    on_cluster, _ = killed_sweep
    trials = [r for r in on_cluster["runs"] if r["name"] != "ensemble#1"]
    assert sorted(r["name"] for r in trials) == NAMES  # no run lost, none twice
    assert all(r["status"] == "FINISHED" and r["models"] == 1 for r in trials)
    assert on_cluster["deleted_attempts"] >= 1  # the killed attempt's run, deleted by its retry


def test_a_client_without_the_token_is_refused_with_one_line(refused_client):
    client, folder = refused_client
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "refused this client (its token)" in lines[0] and "RAY_AUTH_TOKEN" in lines[0]
    assert not (folder / "out").exists()
