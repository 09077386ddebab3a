"""Provenance in results files, and `make verify` re-checking them against a real re-execution."""

import json
import re
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


LONG = "Blend: 0.1 × best MLP + 0.9 × XGBoost + geo features (k=100, γ=4), refitted on train + validation"


def _flip(committed_tie=None, rerun_tie=None):
    """A committed run that chose LONG over "CNN" and a rerun that chose "CNN" (test metrics of its own)."""
    committed = {
        "case": "demo",
        "models": {LONG: _models(0.9942)["a"]},
        "best": LONG,
        "selection": {"metric": "final validation accuracy", "scores": {"CNN": 0.9922, LONG: 0.9942}},
        "models_by_notebook": {"05_x": [LONG]},
    }
    rerun = {
        "case": "demo",
        "models": {"CNN": _models(0.9924)["a"]},
        "best": "CNN",
        "selection": {"metric": "final validation accuracy", "scores": {"CNN": 0.9922, LONG: 0.9916}},
    }
    for d, tie in ((committed, committed_tie), (rerun, rerun_tie)):
        if tie is not None:
            d["selection"]["tie"] = tie
    return committed, rerun


def _tie(best, chosen, advantage, ci95, reference="CNN"):
    return {"reference": reference, "best": best, "chosen": chosen, "advantage": advantage, "ci95": ci95}


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_flipped_choice_is_explained_within_100_columns():
    committed, rerun = _flip()
    rows, _ = verify.compare("05_x", committed, rerun)
    assert [r["verdict"] for r in rows] == ["missing", "FAIL"]
    text = verify.table(rows) + "\n" + verify.explain_choice(committed, rerun)
    assert max(map(len, text.splitlines())) <= verify.WIDTH
    flat = _words(text)
    assert LONG in flat, "a long name is wrapped, never cut"
    for first_words, a, b in (("CNN", 0.9922, 0.9922), (LONG[:12], 0.9942, 0.9916)):  # both choices' scores
        assert re.search(rf"^{re.escape(first_words)}.* {a:.4f} +{b:.4f}$", text, re.MULTILINE), first_words
    # each run's own choice on test: the committed choice's, and the rerun's, which the table calls missing
    assert "accuracy 0.9942 [0.9742, 1.0142] 0.9924 [0.9724, 1.0124]" in flat
    assert "swap places on validation" in flat and "no tie rule" in flat

    committed, rerun = _flip(rerun_tie=_tie(LONG, "CNN", 0.0006, [-0.001, 0.0022]))
    flat = _words(verify.explain_choice(committed, rerun))
    assert f"{LONG} and CNN are tied on validation" in flat and "+0.0006 [-0.0010, +0.0022]" in flat

    beat = _tie(LONG, LONG, 0.002, [0.0002, 0.0038])
    committed, rerun = _flip(beat, _tie(LONG, "CNN", 0.0006, [-0.001, 0.0022]))
    flat = _words(verify.explain_choice(committed, rerun))
    assert f"{LONG} beats the reference CNN beyond validation noise only in the committed run" in flat
    assert "+0.0020 [+0.0002, +0.0038]" in flat and "CNN (reference) 0.9922 0.9922" in flat

    other = _tie("CNN", "CNN", 0.003, [0.001, 0.005], reference="MLP")
    committed, rerun = _flip({**beat, "reference": "MLP"}, other)
    assert "a real disagreement" in _words(verify.explain_choice(committed, rerun))


def test_the_table_wraps_only_what_does_not_fit():
    header = ("name", "value")
    assert verify.render(header, [("short", "1.0")]) == "name   value\nshort  1.0"
    name = "word " * 20
    lines = verify.render(header, [(name, "0.123456")], width=40).splitlines()
    assert max(map(len, lines)) <= 40 and len(lines) > 3 and lines[1].endswith("  0.123456")
    assert _words(" ".join(line.removesuffix("0.123456") for line in lines[1:])) == _words(name)


@pytest.mark.slow
def test_another_machine_reaches_the_notebooks_kernel_and_changes_torch(monkeypatch, tmp_path):
    """--threads and --cpu become the executed notebook's environment, and that environment really changes
    torch in a fresh process (its thread count, its kernel set)."""
    import os
    import sys

    env, said = verify.machine_setting(threads=1, cpu="default")
    assert "1 thread" in said and "ATEN_CPU_CAPABILITY=default" in said
    probe = "import torch; print(torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", probe], env=os.environ | env, capture_output=True, text=True)
    assert done.stdout.split() == ["1", "DEFAULT"]
    seen = {}
    monkeypatch.setattr(verify.notebooks, "execute", lambda *a, extra_env, **k: seen.update(extra_env))
    verify.execute_copy(tmp_path / "05_x.ipynb", tmp_path / "scratch", tmp_path, True, 10, env)
    assert seen["OMP_NUM_THREADS"] == "1" and seen["ATEN_CPU_CAPABILITY"] == "default"
    assert verify.machine_setting() == ({}, "this machine as it is")


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
        (["05", "--cpu", "sse"], "invalid choice: 'sse'"),
        (["05", "--threads", "0"], "--threads must be at least 1"),
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
    assert re.search(r"^CNN +accuracy +\d\.\d{6} +\d\.\d{6} ", out, re.MULTILINE), out
    assert "every number holds" in out and "FAIL" not in out and "this machine as it is" in out

    rerun_accuracy = d["models"]["CNN"]["accuracy"]
    d["models"]["CNN"]["accuracy"] = {**rerun_accuracy, "value": rerun_accuracy["value"] + 0.05}
    results_path.write_text(json.dumps(d))
    assert verify.main([*argv, "--no-execute"]) == 1
    out = capsys.readouterr().out
    assert "does not hold: mnist: CNN accuracy" in out and "The choice differs" not in out

    other = "CNN + augmentation"  # the committed run chose the other variant: verify explains the flip
    d["models_by_notebook"][path.stem] = [other]
    d["models"] = {other: d.pop("models")["CNN"]}
    d["best"], d["selection"]["scores"][other] = other, d["selection"]["scores"]["CNN"] + 0.01
    d["selection"].pop("tie", None)
    results_path.write_text(json.dumps(d))
    assert verify.main([*argv, "--no-execute"]) == 1
    out = capsys.readouterr().out
    assert f"The choice differs: the committed run chose {other}, the rerun CNN." in out
    value, (lo, hi) = rerun_accuracy["value"], rerun_accuracy["ci95"]
    assert re.search(rf"^accuracy +\S+ \[\S+, \S+\] +{value:.4f} \[{lo:.4f}, {hi:.4f}\]$", out, re.MULTILINE), out
