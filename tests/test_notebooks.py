"""Every notebook runs top to bottom in smoke mode, on a copy; the committed notebooks follow the template."""
import ast
import hashlib
import json

import pytest

from casebook import config
from casebook.notebooks import execute, list_notebooks

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
        assert c["execution_count"] is None, "strip execution counts (python -m casebook.notebooks does)"
        assert not any(o.get("output_type") == "error" for o in c.get("outputs", []))
        tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= MAX_FUNCTION_LINES, f"{node.name} is {n} lines: move it into src/casebook/"
    assert any(c.get("outputs") for c in code), "commit notebooks with their outputs"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / path.name
    secs = execute(path, out, smoke=True, timeout=240)
    assert out.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "the committed notebook must not change"
    print(f"{path.name}: {secs:.0f} s in smoke mode")
