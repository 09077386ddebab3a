"""Shared fixtures. Every test writes assets and MLflow runs into temp folders, never into the repository."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
# Several test workers share the cores: OpenMP threads that wait for work sleep instead of spinning, so a waiting
# worker does not burn the CPU time another one needs, and each test process (notebook kernels and tools
# included: they inherit this) computes with one thread, as many threads in all as workers rather than workers
# times cores fighting over the cores (TensorFlow's thread pools spin while they wait, whatever OpenMP is told).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _threads in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_threads, "1")


from casebook import config, data  # noqa: E402
from casebook.data import fetch, registry  # noqa: E402

# test_seed_api.py stays verbatim (it is the seed's documented API): its end-to-end training tests are marked here
SLOW_SEED_API_TESTS = {
    "test_categorical_loss_and_batch_size_are_used_by_training",
    "test_make_cnn_gru_lstm_save_in_dict_and_fig_verbatim",
    "test_the_seed_params_verbatim_build_the_documented_model",
}


def pytest_itemcollected(item):
    """Mark the seed API's training tests ``slow`` (left out of ``make test-quick``)."""
    if item.path.name == "test_seed_api.py" and getattr(item, "originalname", "") in SLOW_SEED_API_TESTS:
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` group again. pytest-xdist 3.8 sends a test marked ``xdist_group(name)`` to its
    group's worker by appending ``@name`` to the test's ``_nodeid``, an attribute pytest 9 no longer reads (a
    node's id is the structured ``_id``): the groups were silently ignored, and every worker ran a share of a
    group's tests and set up its own PostgreSQL, MLflow server or Ray cluster. The suffix is set here, as xdist
    would; remove this once xdist follows pytest 9."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        marks = item.iter_markers("xdist_group")
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


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


def real_data_status() -> tuple[bool, list[str]]:
    """(all datasets present?, problems with those present). Absent data may skip a test; data that is
    present but corrupt (wrong checksum, bad image, unreadable file) must fail it."""
    if not config.data_root().is_dir():
        return False, []
    absent, corrupt = False, []
    for key in registry.REGISTRY:
        try:
            fetch.dataset_dir(key, download=False)
        except (data.DataNotFoundError, data.DataRootError):
            absent = True
        except data.DataError as e:
            corrupt.append(f"{key}: {e}")
    return not absent, corrupt


@pytest.fixture
def real_data(monkeypatch):
    """The real datasets (CASEBOOK_DATA, e.g. ../shared/datasets). Skipped only when some are absent;
    a dataset that is present but corrupt fails the test."""
    complete, corrupt = real_data_status()
    if corrupt:
        pytest.fail("real data present but corrupt: " + " | ".join(corrupt))
    if not complete:
        pytest.skip("real datasets not present in CASEBOOK_DATA")
    monkeypatch.setenv("CASEBOOK_SMOKE", "0")
    return config.data_root()


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests record with ``record_property`` (e.g. how many fuzz cases ran)."""
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "fuzz_cases":
                terminalreporter.write_line(f"{report.nodeid}: {value}")
