"""Notebooks opened in JupyterLab the way readers open them (`make lab`): they open unmodified, and a run in the
lab saves its progress widgets' state, so reopening shows the bars instead of "model not found"."""

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from casebook import config, notebooks
from casebook.notebooks import KERNEL_SPEC, LANGUAGE_INFO_KEYS

ROOT = config.REPO_ROOT
WIDGETS_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"
STAMP = Path(sys.prefix) / ".casebook-installed"


def _reported_language_info() -> dict:
    """What an IPython kernel on this interpreter reports in its kernel_info reply (ipykernel's fields)."""
    return {
        "name": "python",
        "version": platform.python_version(),
        "mimetype": "text/x-python",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
        "file_extension": ".py",
    }


def test_strip_noise_keeps_the_language_info_the_kernel_reported():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {**_reported_language_info(), "extra_field": 1},
        "widgets": {"application/vnd.jupyter.widget-state+json": {}},
        "toc": {"number_sections": True},
    }
    notebooks.strip_noise(nb)
    assert nb.metadata == {"kernelspec": KERNEL_SPEC, "language_info": _reported_language_info()}
    bare = nbformat.v4.new_notebook()  # never executed: nothing reported, the language name only
    notebooks.strip_noise(bare)
    assert bare.metadata["language_info"] == {"name": "python"}


@pytest.mark.notebook
def test_an_executed_notebook_keeps_what_its_kernel_reported(tmp_path):
    source = tmp_path / "00_tiny.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata = {"kernelspec": dict(KERNEL_SPEC), "language_info": {"name": "python"}}
    nbformat.write(nb, source)
    notebooks.execute(source, tmp_path / "out.ipynb", smoke=True, timeout=120)
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.metadata == {"kernelspec": KERNEL_SPEC, "language_info": _reported_language_info()}


@pytest.mark.parametrize("path", notebooks.list_notebooks(), ids=lambda p: p.stem)
def test_committed_notebooks_open_unmodified(path):
    """JupyterLab writes the kernel's spec and language information into a notebook when its kernel starts; a
    committed notebook holding less is marked modified at once. `make notebooks` writes all of it."""
    metadata = json.loads(path.read_text())["metadata"]
    assert metadata["kernelspec"] == KERNEL_SPEC
    missing = [key for key in LANGUAGE_INFO_KEYS if key not in metadata["language_info"]]
    assert not missing, f"language_info lacks {missing}: re-execute it with `make notebooks`"
    assert metadata["language_info"]["codemirror_mode"] == {"name": "ipython", "version": 3}


def _lab_settings_destination() -> Path:
    """Where `make lab-settings` (run by `make venv` and `make lab`) puts the overrides, for this venv."""
    dry_run = subprocess.run(
        ["make", "-n", "-B", "-o", str(STAMP), f"VENV={sys.prefix}", "lab-settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    copy = re.search(r"^cp jupyterlab/overrides.json (\S+)$", dry_run, re.M)
    assert copy, dry_run
    return Path(copy.group(1))


def test_the_lab_settings_are_installed_where_jupyterlab_reads_them():
    from jupyterlab.commands import get_app_dir

    assert _lab_settings_destination() == Path(get_app_dir()) / "settings" / "overrides.json"
    overrides = json.loads((ROOT / "jupyterlab" / "overrides.json").read_text())
    assert overrides[WIDGETS_PLUGIN] == {"saveState": True}
    schema = Path(sys.prefix) / "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/schemas"
    plugin = json.loads((schema / "@jupyter-widgets/jupyterlab-manager/plugin.json").read_text())
    assert "saveState" in plugin["properties"], "the widget manager's setting is called saveState"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.index("COPY --chown=casebook jupyterlab ") < dockerfile.index("RUN make venv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.server
def test_jupyterlab_saves_widget_state_in_notebooks(tmp_path):
    """JupyterLab, started as `make lab` starts it, serves the widget manager's saveState as true by default."""
    subprocess.run(["make", "-s", "-o", str(STAMP), f"VENV={sys.prefix}", "lab-settings"], cwd=ROOT, check=True)
    port, token = _free_port(), "casebook-test-token"
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),  # the user's own settings stay out
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    command = [Path(sys.prefix) / "bin" / "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    command += [f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}"]
    command += ["--allow-root"] if os.getuid() == 0 else []
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/lab/api/settings/{WIDGETS_PLUGIN}?token={token}"
    try:
        deadline, reply = time.monotonic() + 90, None
        while reply is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    reply = json.load(response)
            except OSError:
                time.sleep(0.5)
        assert reply is not None, (tmp_path / "lab.log").read_text()[-2000:]
        assert reply["schema"]["properties"]["saveState"]["default"] is True
        assert reply["settings"] == {}  # the default itself, not a user's setting
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _closed_bars() -> list[str]:
    """Calls in the package and the notebooks' code cells that pass ``leave=False`` (a progress bar that closes
    when its loop ends)."""
    import ast

    sources = [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in sorted(config.PACKAGE_DIR.rglob("*.py"))]
    for path in notebooks.list_notebooks():
        cells = json.loads(path.read_text())["cells"]
        sources += [
            (f"{path.name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"
        ]
    found = []
    for name, source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a cell with shell escapes or magics
            continue
        for node in ast.walk(tree):
            for kw in getattr(node, "keywords", []) if isinstance(node, ast.Call) else []:
                if kw.arg == "leave" and isinstance(kw.value, ast.Constant) and kw.value.value is False:
                    found.append(f"{name}:{node.lineno}")
    return found


def test_no_progress_bar_closes_itself():
    """A bar closed when its loop ends (``leave=False``) drops its widget model, so the saved notebook keeps an
    output pointing at nothing: "Error displaying widget: model not found", whatever saveState says
    (jupyter-widgets/ipywidgets#3821). Bars stay, and JupyterLab saves them with the notebook."""
    assert not _closed_bars(), f"progress bars with leave=False: {_closed_bars()}"
