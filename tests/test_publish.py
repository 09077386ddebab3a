"""One call publishes a lesson: results file with target verdicts, a published run, figures, a summary."""

import json

import pytest

from casebook import config, publish
from casebook.report import figures, results_file, timing
from casebook.report.targets import Target
from casebook.tracking import executions


@pytest.mark.slow
def test_publish_writes_results_with_verdicts_logs_the_run_and_prints_one_summary(monkeypatch, tmp_path, capsys):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(executions, "_EXECUTIONS", {})
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    readme_before = (config.REPO_ROOT / "README.md").read_text()
    executions.start_execution("publish-exp", "00_publish")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    figures.save_fig(fig, "00_publish", "line")
    results = {
        "cnn": {"accuracy": {"value": 0.93, "ci95": [0.91, 0.95]}, "macro_f1": {"value": 0.9, "ci95": [0.88, 0.92]}}
    }
    TARGETS = [Target("accuracy", 0.90, "the seed's claim"), Target("macro_f1", 0.95, "a benchmark")]
    selection = results_file.selection_record("validation accuracy", {"cnn": 0.94})
    path = publish.publish(
        "publish-exp",
        "00_publish",
        "toy",
        "toy protocol",
        results,
        "cnn",
        timing.Stopwatch(),
        TARGETS,
        selection=selection,
    )
    written = json.loads(path.read_text())
    verdicts = {t["target"]: t["verdict"] for t in written["targets"]["00_publish"]}
    assert verdicts == {"accuracy ≥ 0.9": "met", "macro_f1 ≥ 0.95": "missed"}
    assert written["best"] == "cnn" and written["mode"] == "smoke"
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("published cnn: ") and "accuracy ≥ 0.9: met, macro_f1 ≥ 0.95: missed" in out[0]
    assert "figures logged: 1" in out[1] and out[2].startswith("wall time") and out[3].startswith("provenance")
    runs = executions.search("publish-exp", "tags.stage = 'published'")
    assert list(runs["tags.mlflow.runName"]) == ["cnn (published)"] and runs["metrics.test_accuracy"].iloc[0] == 0.93
    assert (config.REPO_ROOT / "README.md").read_text() == readme_before  # smoke runs never touch the README


def test_a_notebook_that_republishes_another_ones_models_keeps_its_entry(monkeypatch, tmp_path, capsys):
    """02 republishes 01's models beside its own: 01's runtime, provenance and targets stay in the file."""
    monkeypatch.setattr(executions, "_EXECUTIONS", {})
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    first = {"rf": {"accuracy": {"value": 0.88, "ci95": [0.87, 0.89]}}}
    for notebook, results, judged in (("01_a", first, None), ("02_b", {**first, "mlp": first["rf"]}, "mlp")):
        monkeypatch.setenv("CASEBOOK_NOTEBOOK", notebook)
        executions.start_execution("two-notebooks", notebook)
        target = [Target("accuracy", 0.85, "a brief")]
        publish.publish(
            "two-notebooks", notebook, "toy", "toy", results, "rf", timing.Stopwatch(), target, judged_model=judged
        )
    written = json.loads(
        results_file.read_results("two-notebooks") and (config.results_dir() / "two-notebooks.json").read_text()
    )
    assert set(written["runtimes"]) == set(written["provenance"]) == set(written["targets"]) == {"01_a", "02_b"}
    assert written["models_by_notebook"] == {"01_a": ["rf"], "02_b": ["mlp"]}
    assert written["targets"]["02_b"][0]["model"] == "mlp"
