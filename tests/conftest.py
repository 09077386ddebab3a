"""Shared fixtures. Every test writes assets and MLflow runs into temp folders, never into the repository."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from casebook import config, data  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _session_outputs(tmp_path_factory):
    """Assets and the MLflow store of the whole session live in a temp folder."""
    base = tmp_path_factory.mktemp("casebook-out")
    old = {k: os.environ.get(k) for k in ("CASEBOOK_ASSETS", "CASEBOOK_MLFLOW", "CASEBOOK_OUTPUTS")}
    os.environ["CASEBOOK_ASSETS"] = str(base / "assets")
    os.environ["CASEBOOK_MLFLOW"] = str(base / "mlflow")
    os.environ["CASEBOOK_OUTPUTS"] = str(base / "outputs")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")


@pytest.fixture
def full(monkeypatch):
    monkeypatch.setenv("CASEBOOK_SMOKE", "0")


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """A data root with nothing in it, downloads off."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CASEBOOK_DATA", str(root))
    monkeypatch.setenv("CASEBOOK_OFFLINE", "1")
    return root


def _real_root() -> Path | None:
    root = config.data_root()
    return root if all(v == "ok" for v in data.verify_all().values()) else None


@pytest.fixture
def real_data(monkeypatch):
    """The real datasets (CASEBOOK_DATA, e.g. ../shared/datasets). Skipped only when they are absent."""
    root = _real_root() if config.data_root().is_dir() else None
    if root is None:
        pytest.skip("real datasets not present in CASEBOOK_DATA")
    monkeypatch.setenv("CASEBOOK_SMOKE", "0")
    return root
