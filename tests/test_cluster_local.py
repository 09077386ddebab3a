"""casebook.cluster with CASEBOOK_RAY_ADDRESS unset: today's single-machine path, Ray never imported, and the
records a sweep returns are plain data either way (the cluster itself: tests/test_cluster.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from casebook import cluster

UNSET_PATH = """
import sys
from sklearn.ensemble import RandomForestClassifier
from sklearn.datasets import make_classification
from sklearn.pipeline import Pipeline
from casebook import cluster
from casebook.training import search

X, y = make_classification(200, random_state=0)
pipe = Pipeline([("model", RandomForestClassifier(n_estimators=5, random_state=0))])
ours = search.run_search(pipe, {"max_depth": [2, 4]}, X, y, kind="grid", n_jobs=2)
records = cluster.sweep(lambda c, k: {"twice": 2 * c["x"] + k}, [{"x": 1}, {"x": 2}], shared={"k": 1})
assert records == [{"twice": 3}, {"twice": 5}], records
assert "ray" not in sys.modules, "Ray was imported with CASEBOOK_RAY_ADDRESS unset"
print(list(ours.cv_results_["mean_test_score"]))
"""


def test_unset_address_is_todays_path_and_never_imports_ray(monkeypatch):
    monkeypatch.delenv(cluster.ADDRESS, raising=False)
    done = subprocess.run([sys.executable, "-c", UNSET_PATH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


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
