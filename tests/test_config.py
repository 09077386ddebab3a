import numpy as np

from casebook import config


def test_paths_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CASEBOOK_DATA", str(tmp_path))
    assert config.data_root() == tmp_path.resolve()
    monkeypatch.delenv("CASEBOOK_DATA")
    assert config.data_root() == config.REPO_ROOT / "data"
    assert (config.REPO_ROOT / "pyproject.toml").is_file()


def test_smoke_flag_and_pick(monkeypatch):
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    assert config.is_smoke() and config.pick(100, 3) == 3
    monkeypatch.setenv("CASEBOOK_SMOKE", "0")
    assert not config.is_smoke() and config.pick(100, 3) == 100


def test_mlflow_uri_is_absolute_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("CASEBOOK_MLFLOW", str(tmp_path))
    uri = config.mlflow_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert config.mlflow_artifact_root().startswith("file:///")


def test_seed_everything_is_reproducible():
    import torch

    config.seed_everything(7)
    a = (np.random.rand(3), torch.rand(3))
    config.seed_everything(7)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    config.seed_everything(8)
    assert not np.array_equal(a[0], np.random.rand(3))


def test_smoke_runs_never_write_into_the_committed_assets(monkeypatch, tmp_path):
    monkeypatch.delenv("CASEBOOK_ASSETS", raising=False)
    monkeypatch.setenv("CASEBOOK_OUTPUTS", str(tmp_path / "out"))
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    assert config.assets_root() == (tmp_path / "out" / "smoke-assets").resolve()
    assert config.REPO_ROOT / "assets" not in config.results_dir().parents
    monkeypatch.setenv("CASEBOOK_SMOKE", "0")
    assert config.assets_root() == (config.REPO_ROOT / "assets").resolve()
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "mine"))  # an explicit choice still wins
    assert config.assets_root() == (tmp_path / "mine").resolve()


def test_progress_bars_draw_nothing_when_executed_headless(monkeypatch, capsys):
    monkeypatch.setenv("CASEBOOK_HEADLESS", "1")
    assert list(config.progress(range(3), desc="x")) == [0, 1, 2]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    monkeypatch.delenv("CASEBOOK_HEADLESS")
    list(config.progress(range(3), desc="visible", file=__import__("sys").stderr))
    assert "visible" in capsys.readouterr().err


def test_paths_are_printed_without_the_machines_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("CASEBOOK_DATA", str(tmp_path / "root"))
    assert config.display_path(config.REPO_ROOT / "assets" / "x.png") == "assets/x.png"
    assert config.display_path(tmp_path / "root" / "mnist" / "a.gz") == "$CASEBOOK_DATA/mnist/a.gz"
    assert config.display_path(tmp_path / "root") == "$CASEBOOK_DATA"
    monkeypatch.delenv("CASEBOOK_DATA")
    assert config.display_path(config.REPO_ROOT / "data" / "mnist") == "data/mnist"
    assert str(config.REPO_ROOT) not in config.describe_tracking_store()
