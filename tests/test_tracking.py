import numpy as np
from sklearn.linear_model import LogisticRegression

from casebook import config
from casebook.tracking import backend, executions, run_logging


def test_flatten():
    flat = run_logging.flatten({"a": 1, "b": {"c": 2}, "layers": [{"type": "dense", "units": 8}]})
    assert flat == {"a": 1, "b.c": 2, "layers.0.type": "dense", "layers.0.units": 8}


def test_runs_land_in_the_configured_sqlite_store_and_models_round_trip():
    x = np.random.default_rng(0).normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    with run_logging.run(
        "test-exp",
        executions.next_run_name("test-exp", "lr"),
        params={"C": 1.0, "opt": {"tol": 1e-4}},
        tags={"stage": "candidate"},
    ) as r:
        run_logging.log_metrics({"accuracy": {"value": 0.9, "ci95": [0.8, 0.95]}, "loss": 0.3})
        run_logging.log_history({"loss": [0.9, 0.5], "val_loss": [1.0, 0.6]})
        info = run_logging.log_model(model, "sklearn", input_example=x[:5])
    assert (config.mlflow_dir() / "mlflow.db").is_file()
    runs = executions.search("test-exp")
    row = runs.iloc[0]
    assert row["tags.mlflow.runName"] == "lr#1" and row["params.opt.tol"] == "0.0001"
    assert row["metrics.accuracy_ci_lo"] == 0.8 and row["metrics.val_loss"] == 0.6
    assert executions.next_run_name("test-exp", "lr") == "lr#2"
    import mlflow

    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert r.info.artifact_uri.startswith(config.mlflow_artifact_root())
    table = executions.compare("test-exp", metrics=["accuracy"], params=["C"], sort_by="accuracy")
    assert list(table.columns) == ["run", "C", "accuracy"]


def test_experiments_are_marked_as_model_training_so_the_ui_opens_on_runs():
    import mlflow

    backend.setup("kind-exp")
    assert mlflow.get_experiment_by_name("kind-exp").tags[backend.EXPERIMENT_KIND] == "custom_model_development"
    exp_id = mlflow.create_experiment("old-exp")  # made before casebook tagged experiments
    backend.setup("old-exp")
    assert mlflow.get_experiment(exp_id).tags[backend.EXPERIMENT_KIND] == "custom_model_development"


def test_each_execution_reads_only_its_own_runs(monkeypatch, tmp_path):
    """Two executions against one store: run names restart at #1, searches and comparisons see only the
    current execution's runs, and every run is a child of its execution's parent run."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(executions, "_EXECUTIONS", {})
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    from casebook.report import figures

    figures.save_fig(fig, "00_scope", "curve")
    plt.close(fig)
    seen = []
    for execution in (1, 2):
        parent = executions.start_execution("scope-exp", "00_scope")
        for _ in range(2):
            with run_logging.run("scope-exp", executions.next_run_name("scope-exp", "m"), tags={"stage": "candidate"}):
                run_logging.log_metrics({"score": execution})
        runs = executions.search("scope-exp")
        seen.append(sorted(runs["tags.mlflow.runName"]))
        assert set(runs["tags.mlflow.parentRunId"]) == {parent}
        assert set(runs["metrics.score"]) == {execution}
        table = executions.compare("scope-exp", ["score"], filter_string="tags.stage = 'candidate'")
        assert len(table) == 2
        assert run_logging.log_figures("scope-exp", "00_scope") == 1
    assert seen == [["m#1", "m#2"], ["m#1", "m#2"]]
    import mlflow

    everything = mlflow.search_runs(experiment_names=["scope-exp"])
    assert len(everything) == 6  # 2 parents + 4 children: nothing was lost, only scoped
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(parent, "figures")] == ["figures/curve.png"]


def test_figures_need_an_open_execution(monkeypatch):
    import pytest

    monkeypatch.setattr(executions, "_EXECUTIONS", {})
    with pytest.raises(RuntimeError, match="start_execution"):
        run_logging.log_figures("scope-exp", "00_scope")
