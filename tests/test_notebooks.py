"""Every notebook runs top to bottom in smoke mode, on a copy; the committed notebooks follow the template."""

import ast
import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from casebook import config
from casebook.notebooks import audit, execute, list_notebooks
from casebook.report import results_file

NOTEBOOKS = list_notebooks()
MAX_FUNCTION_LINES = 6  # anything longer belongs in src/casebook/


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == sorted({p.name[:2] for p in NOTEBOOKS}), "numbers must be unique"
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_template(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    code = _code_cells(nb)
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell must be tagged `parameters`"
    assert "google.colab" in "".join(code[1]["source"]), "second code cell is the Colab set-up"
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    assert "what we found" in text
    for c in code:
        src = "".join(c["source"])
        assert not any(o.get("output_type") == "error" for o in c.get("outputs", []))
        tree = ast.parse("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= MAX_FUNCTION_LINES, f"{node.name} is {n} lines: move it into src/casebook/"
    assert any(c.get("outputs") for c in code), "commit notebooks with their outputs"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}
    assert not any("execution" in c.get("metadata", {}) for c in cells), "strip execution timestamps"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_reads_as_a_clean_record(path):
    """What a reader sees on GitHub: execution counts 1..N from one top-to-bottom run, no absolute machine
    path, no stderr beyond the allow-list, no
    progress-bar or per-epoch log text, no error."""
    problems = audit(nbformat.read(path, as_version=4))
    assert not problems, "\n".join(problems)


def test_the_record_check_can_fail():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.execution_count = 3
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="W0000 oneDNN custom operations\n"),
        nbformat.v4.new_output("stream", name="stdout", text="Epoch 3/20\n"),
        nbformat.v4.new_output("stream", name="stdout", text="saved to /home/me/casebook/x.png\n"),
        nbformat.v4.new_output("stream", name="stderr", text=" 40%|████      | 2/5 [00:02<00:03]"),
        nbformat.v4.new_output("display_data", data={"text/html": "<pre style='x'></pre>", "text/plain": ""}),
    ]
    nb.cells = [cell]
    problems = "\n".join(audit(nb))
    for expected in (
        "execution count 3, expected 1",
        "stderr 'W0000",
        "'Epoch 3/20'",
        "absolute path",
        "40%|",
        "empty output box",
    ):
        assert expected in problems, expected
    allowed = nbformat.v4.new_output("stream", name="stderr", text="predict-classification: error: no such file\n")
    cell.source, cell.execution_count, cell.outputs = "x = 1", 1, [allowed]
    assert audit(nb) == []


def test_ruff_checks_the_notebooks_code_style(tmp_path):
    """Line length (100 columns, GitHub's notebook view) and one statement per line are left to ruff, which
    ``make lint`` runs over the notebooks with notebooks/ruff.toml: it catches both."""
    import subprocess
    import sys

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1; y = 2\nz = '" + "a" * 100 + "'\n")]
    path = tmp_path / "style.ipynb"
    nbformat.write(nb, path)
    ruff = Path(sys.executable).with_name("ruff")
    config_file = config.REPO_ROOT / "notebooks" / "ruff.toml"
    r = subprocess.run([ruff, "check", "--config", config_file, path], capture_output=True, text=True)
    assert r.returncode == 1 and "E702" in r.stdout and "E501" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("path", sorted((config.REPO_ROOT / "assets" / "results").glob("*.json")), ids=lambda p: p.stem)
def test_published_best_is_the_validation_choice(path):
    """Each results file records how its model was chosen, and ``best`` is that choice (baselines included)."""
    d = json.loads(path.read_text())
    results_file.validate_results(d)
    if "selection" in d:
        assert results_file.chosen_by(d["selection"]) == d["best"]
    else:  # nothing to choose from
        assert len(d["models"]) == 1, f"{path.name} has several models but no record of how the best was chosen"
    assert d["mode"] == "full" and set(d["runtimes"]) and all(k[:2].isdigit() for k in d["runtimes"])


TWICE = next(p for p in NOTEBOOKS if p.name.startswith("08_"))  # executed twice against one store (below)


SMOKE_ONCE = [p for p in NOTEBOOKS if p != TWICE]  # 08's smoke execution is the first of its two below


@pytest.mark.notebook
@pytest.mark.parametrize("path", SMOKE_ONCE, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / path.name
    secs = execute(path, out, smoke=True, timeout=240)
    print(f"{path.name}: {secs:.0f} s in smoke mode")
    _assert_clean_smoke_run(path, before, out)


@pytest.mark.notebook
def test_08_runs_in_smoke_mode_twice_against_one_store_with_the_same_tables(tmp_path):
    """Notebook 08 executed twice in smoke mode against one MLflow store: each execution passes the smoke checks
    above, and run names, candidate and challenger tables, champion and test metrics are the same both times
    (each execution reads only its own runs). One test, so that the two executions are made once."""
    before = hashlib.sha256(TWICE.read_bytes()).hexdigest()
    env = {"CASEBOOK_MLFLOW": str(tmp_path / "store")}
    runs = [tmp_path / f"run{k}.ipynb" for k in (1, 2)]
    for out in runs:
        secs = execute(TWICE, out, smoke=True, timeout=240, extra_env=env)
        print(f"{TWICE.name}: {secs:.0f} s in smoke mode")
        _assert_clean_smoke_run(TWICE, before, out)
    outputs = [_tables_and_names(nbformat.read(run, as_version=4)) for run in runs]
    assert outputs[0] == outputs[1]
    assert "mobilenet#1 " in outputs[0] and "mobilenet#8" not in outputs[0]


def _assert_clean_smoke_run(path, before, out):
    assert out.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "the committed notebook must not change"
    problems = audit(nbformat.read(out, as_version=4), paths=False)  # test runs write into temp folders
    assert not problems, "\n".join(problems)


def _tables_and_names(nb) -> str:
    """The text of every output, with wall times masked (they differ between executions)."""
    import re

    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            texts.append(re.sub(r"\(\d+ s\)|wall time [\d.]+ (s|min)|[\d.]+ GB|\d+ s\b", "<t>", str(text)))
    return "\n".join(texts)
