"""Provenance in results files, and `make verify` re-checking them against a real re-execution."""

import json
import subprocess

import numpy as np
import pytest

from casebook import config, provenance, verify
from casebook.data import checksums, fetch
from casebook.notebooks import execute, list_notebooks
from casebook.report import readme_table, results_file


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _models(value: float = 0.9):
    return {"a": {"accuracy": {"value": value, "ci95": [value - 0.02, value + 0.02]}}}


def test_results_record_provenance_tolerances_and_who_produced_each_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv(provenance.NOTEBOOK_ENV, "01_first")
    config.seed_everything(7)
    results_file.write_results(
        "demo", "toy", "p", {"01_first": 3.0}, _models(), "a", tolerances=results_file.tolerance("exact")
    )
    monkeypatch.setenv(provenance.NOTEBOOK_ENV, "02_second")  # a second notebook adds a model to the file
    previous = results_file.read_results("demo")
    models = {**previous["models"], "b": _models(0.8)["a"]}
    tolerances = {**previous["tolerances"], "b": results_file.tolerance("ci_half_width")}
    selection = results_file.selection_record("cv", {"a": 0.9, "b": 0.8})
    results_file.write_results(
        "demo", "toy", "p", {"01_first": 3.0, "02_second": 4.0}, models, "a", selection=selection, tolerances=tolerances
    )
    d = results_file.read_results("demo")
    assert d["models_by_notebook"] == {"01_first": ["a"], "02_second": ["b"]}
    assert set(d["provenance"]) == {"01_first", "02_second"}
    assert d["tolerances"]["a"]["rule"] == "exact" and d["tolerances"]["b"]["rule"] == "ci_half_width"
    record = d["provenance"]["02_second"]
    assert record["commit"] == _head() and isinstance(record["dirty"], bool)
    assert record["versions"]["numpy"] == np.__version__ and 7 in record["seeds"]
    assert record["mode"] == "full" and record["wall_s"] == 4.0 and record["notebook"] == "02_second"
    with pytest.raises(ValueError, match="unknown tolerance rule"):
        results_file.tolerance("roughly")


def test_the_readme_table_refuses_smoke_results(tmp_path, monkeypatch, smoke):
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    path = results_file.write_results("demo", "toy", "p", {"01_x": 1.0}, _models(), "a")
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_table.README_START}\n{readme_table.README_END}\n")
    with pytest.raises(ValueError, match="smoke-mode results"):
        readme_table.update_readme(readme, path.parent)


def test_compare_applies_the_declared_tolerance():
    prov = {"versions": {"numpy": "2"}, "devices": {"cpu": "x"}}
    committed = {
        "case": "demo",
        "models": _models(0.9),
        "best": "a",
        "provenance": {"01_x": prov},
        "tolerances": {"a": results_file.tolerance("exact")},
    }
    rerun = {"case": "demo", "models": _models(0.9001), "best": "a", "provenance": {"01_x": prov}}
    rows, diffs = verify.compare("01_x", committed, rerun)
    assert [r["verdict"] for r in rows] == ["FAIL", "ok"] and diffs == []  # 1e-4 is not exact
    committed["tolerances"]["a"] = results_file.tolerance("ci_half_width")  # ± 0.02
    rows, _ = verify.compare("01_x", committed, rerun)
    assert [r["verdict"] for r in rows] == ["ok", "ok"]
    other = {**rerun, "provenance": {"01_x": {**prov, "versions": {"numpy": "3"}}}}
    committed["tolerances"]["a"] = results_file.tolerance("exact")  # other versions: the CI half-width
    rows, diffs = verify.compare("01_x", committed, other)
    assert rows[0]["verdict"] == "ok" and diffs == ["numpy 2 → 3"]
    rows, _ = verify.compare("01_x", committed, {**rerun, "best": "b", "models": {}})
    assert [r["verdict"] for r in rows] == ["missing", "FAIL"]


def test_bad_arguments_and_missing_data_are_one_line_and_exit_2(tmp_path, capsys, empty_root):
    results = tmp_path / "results"
    results.mkdir()
    record = {"data_files": {"mnist/train-images-idx3-ubyte.gz": "0" * 64}}  # what the committed run read
    (results / "mnist.json").write_text(
        json.dumps(
            {
                "case": "mnist",
                "runtimes": {"05_mnist_cnn": 1.0},
                "models": _models(),
                "best": "a",
                "provenance": {"05_mnist_cnn": record},
            }
        )
    )
    for argv, expected in (
        (["99"], "no notebook matches '99'"),
        (["05", "--no-execute"], "--no-execute compares an earlier rerun"),
        (["05", "--bogus"], "unrecognized arguments"),
        (["03", "--committed", str(results)], "no committed results of 03"),
        (["05", "--committed", str(results)], "needs dataset 'mnist'"),
    ):
        assert verify.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("verify: error: ") and expected in err and err.count("\n") == 1, err


@pytest.mark.notebook
def test_verify_holds_on_a_smoke_rerun_and_names_an_altered_number(tmp_path, capsys):
    """A real smoke execution of notebook 05 is the "committed" state; verify re-executes it and every number
    holds; one committed number altered, verify exits 1 naming it. The provenance written is true."""
    path = next(p for p in list_notebooks() if p.name.startswith("05_"))
    assets = tmp_path / "committed"
    env = {
        "CASEBOOK_ASSETS": str(assets),
        "CASEBOOK_MLFLOW": str(tmp_path / "mlflow"),
        "CASEBOOK_OUTPUTS": str(tmp_path / "outputs"),
    }
    execute(path, tmp_path / path.name, smoke=True, timeout=240, extra_env=env)
    results_path = assets / "results" / "mnist.json"
    d = json.loads(results_path.read_text())
    record = d["provenance"][path.stem]
    assert record["commit"] == _head() and record["mode"] == "smoke" and record["seeds"][0] == 42
    assert record["versions"]["numpy"] == np.__version__ and record["devices"]["torch_device"]
    for name, digest in record["data_files"].items():  # each recorded sha256 is the file's
        assert checksums.sha256_of(config.data_root() / name) == digest, name
    if fetch.available("mnist"):
        assert "mnist/train-images-idx3-ubyte.gz" in record["data_files"]

    argv = ["05", "--smoke", "--committed", str(assets / "results"), "--scratch", str(tmp_path / "scratch")]
    assert verify.main(argv) == 0
    out = capsys.readouterr().out
    assert "mnist: CNN accuracy" in out and "every number holds" in out and "FAIL" not in out

    d["models"]["CNN"]["accuracy"]["value"] += 0.05
    results_file.write_text(json.dumps(d))
    assert verify.main([*argv, "--no-execute"]) == 1
    out = capsys.readouterr().out
    assert "does not hold: mnist: CNN accuracy" in out
