"""casebook.cluster on one machine: CASEBOOK_RAY_ADDRESS unset (today's path, Ray never imported) and ``local``
(an in-process Ray); the records a sweep returns are plain data either way (a cluster of separate nodes:
tests/test_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from casebook import cluster
from casebook.cli.local_cluster import LoopbackNamespace, namespaces_available

# A search (unless "--no-search": on an in-process Ray its pool of actors is slow to start on a loaded machine, and
# the cluster tests cover Ray's joblib backend) and a sweep; prints whether Ray ran them and what they gave.
SEARCH_AND_SWEEP = """
import json, sys
from sklearn.ensemble import RandomForestClassifier
from sklearn.datasets import make_classification
from sklearn.pipeline import Pipeline
from casebook import cluster
from casebook.training import search

scores = None
if "--no-search" not in sys.argv:
    X, y = make_classification(200, random_state=0)
    pipe = Pipeline([("model", RandomForestClassifier(n_estimators=5, random_state=0))])
    ours = search.run_search(pipe, {"max_depth": [2, 4]}, X, y, kind="grid", n_jobs=2)
    scores = list(ours.cv_results_["mean_test_score"])
records = cluster.sweep(lambda c, k: {"twice": 2 * c["x"] + k}, [{"x": 1}, {"x": 2}], shared={"k": 1})
imported = "ray" in sys.modules
ray = imported and sys.modules["ray"].is_initialized()
print(json.dumps({"imported": imported, "ray": ray, "scores": scores, "records": records}))
"""


def _search_and_sweep(argv_prefix: list[str], env: dict, *args: str) -> dict:
    argv = [*argv_prefix, sys.executable, "-c", SEARCH_AND_SWEEP, *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"Ray or Tune printed to stdout (a notebook's output): {lines[:-1]}"
    return json.loads(lines[0])


def _unset_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != cluster.ADDRESS}


@pytest.mark.slow
def test_unset_address_is_todays_path_and_never_imports_ray():
    unset = _search_and_sweep([], _unset_env())
    assert unset["records"] == [{"twice": 3}, {"twice": 5}]
    assert not unset["imported"], "Ray was imported with CASEBOOK_RAY_ADDRESS unset"
    assert len(unset["scores"]) == 2


@pytest.mark.cluster
@pytest.mark.xdist_group("ray-cluster")  # after or before the Ray cluster's tests, not beside them
@pytest.mark.skipif(not namespaces_available(), reason="needs root and unshare/nsenter for a loopback-only netns")
def test_local_is_an_in_process_ray_that_sweeps_and_leaves_no_token_file(tmp_path):
    """``local`` in a loopback-only namespace (Ray listens on the machine's interfaces): the sweep's records are
    the unset path's; the in-process cluster has a token of its own and writes no ``~/.ray/auth_token``."""
    env = {**_unset_env(), cluster.ADDRESS: "local", "HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH_")}
    namespace = LoopbackNamespace()
    try:
        local = _search_and_sweep(namespace.wrap([]), env, "--no-search")
    finally:
        namespace.close()
    assert local["ray"] and local["records"] == [{"twice": 3}, {"twice": 5}]
    assert not (tmp_path / ".ray").exists(), "the in-process cluster left a token file"


def test_search_under_the_unset_cluster_equals_scikit_learns_own(monkeypatch):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from casebook.training import search

    monkeypatch.delenv(cluster.ADDRESS, raising=False)
    X, y = make_classification(300, random_state=1)
    pipe = Pipeline([("model", RandomForestClassifier(n_estimators=10, random_state=0))])
    ours = search.run_search(pipe, {"max_depth": [2, 3, 5]}, X, y, kind="grid", seed=7, n_jobs=1)
    cv = StratifiedKFold(3, shuffle=True, random_state=7)
    theirs = GridSearchCV(pipe, {"model__max_depth": [2, 3, 5]}, cv=cv, n_jobs=1).fit(X, y)
    for key, values in theirs.cv_results_.items():
        if not key.endswith("_time"):
            assert list(map(str, ours.cv_results_[key])) == list(map(str, values)), key


def test_a_sweep_record_is_plain_data():
    records = cluster.sweep(lambda c: {"a": np.float32(0.5) * c["n"], "v": np.arange(c["n"])}, [{"n": 2}])
    assert records == [{"a": 1.0, "v": [0, 1]}]
    assert type(records[0]["a"]) is float
    with pytest.raises(TypeError, match="not plain data"):
        cluster.sweep(lambda c: {"model": object()}, [{}])


def test_settings_are_checked(monkeypatch):
    monkeypatch.setenv(cluster.ADDRESS, "local")
    monkeypatch.setenv(cluster.GPUS_PER_TRIAL, "-1")
    with pytest.raises(cluster.ClusterError, match=cluster.GPUS_PER_TRIAL):
        cluster.check()
    monkeypatch.setenv(cluster.GPUS_PER_TRIAL, "0.5")
    monkeypatch.setenv(cluster.CPUS_PER_TRIAL, "2")
    assert cluster.resources() == {"cpu": 2.0, "gpu": 0.5}


def test_unreachable_head_and_a_local_store_are_named_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv(cluster.ADDRESS, "127.0.0.1:1")
    monkeypatch.setenv("CASEBOOK_MLFLOW", str(tmp_path))
    monkeypatch.delenv("CASEBOOK_MLFLOW_URI", raising=False)
    with pytest.raises(cluster.ClusterError, match="CASEBOOK_MLFLOW_URI"):
        cluster.check()
    with pytest.raises(cluster.ClusterError, match="cannot reach a Ray head at 127.0.0.1:1"):
        cluster.check(tracked=False)
    monkeypatch.setenv(cluster.CPUS_PER_TRIAL, "zero")
    with pytest.raises(cluster.ClusterError, match=cluster.CPUS_PER_TRIAL):
        cluster.resources()
