"""The suite's own machinery: a test module's ``xdist_group`` keeps its tests, and so its expensive session
fixtures (a PostgreSQL cluster, an MLflow server, a Ray cluster), on one pytest-xdist worker."""

import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

GROUPED = """
import os
import pytest

pytestmark = [pytest.mark.xdist_group("one-server"), pytest.mark.skipif(False, reason="kept as a list")]


@pytest.mark.parametrize("i", range(6))
def test_grouped(i, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent.parent / f"worker-{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
"""


@pytest.mark.slow
def test_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('casebook_conftest', {str(CONFTEST)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "pytest_collection_modifyitems = module.pytest_collection_modifyitems\n"
    )
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    base = tmp_path / "base" / "run"
    base.parent.mkdir()
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3", "--dist", "loadgroup"]
    done = subprocess.run(
        [*argv, f"--basetemp={base}", "-o", "addopts=", str(tmp_path / "test_grouped.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {(tmp_path / "base" / f"worker-{i}").read_text() for i in range(6)}
    assert len(workers) == 1, workers
