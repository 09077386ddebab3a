"""CHANGELOG.md: the history of published numbers, generated from the results files' git history
(scripts/changelog.py, `make changelog`)."""

import importlib.util
import json
import os
import subprocess

import pytest

from casebook import config

ROOT = config.REPO_ROOT
_spec = importlib.util.spec_from_file_location("changelog", ROOT / "scripts" / "changelog.py")
changelog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(changelog)


def _results(accuracy: float, best: str = "cnn", **extra) -> dict:
    models = {
        "cnn": {"accuracy": {"value": accuracy, "ci95": [accuracy - 0.01, accuracy + 0.01]}},
        "mlp": {"accuracy": {"value": 0.7, "ci95": [0.69, 0.71]}},
    }
    if best not in models:
        models[best] = models.pop("cnn")
    return {
        "case": "demo-case",
        "dataset": "toy",
        "protocol": "p",
        "runtime_s": 1.0,
        "runtimes": {"05_demo": 1.0},
        "models": models,
        "best": best,
        **extra,
    }


def _commit(repo, day: int, message: str, results: dict) -> None:
    path = repo / "assets" / "results" / "demo-case.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    date = f"2030-01-{day:02d}T12:00:00"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True, env=env)


@pytest.fixture
def history(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.email", "t@example.org"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.name", "t"], cwd=repo, check=True)
    _commit(repo, 1, "Notebook 05 in full mode", _results(0.9))
    _commit(repo, 2, "Provenance in results files; figures wrapped", _results(0.9, extra={"x": 1}))
    _commit(repo, 3, "Notebook 05 renamed its model", _results(0.9, best="CNN (seed)"))
    _commit(repo, 4, "Notebooks 04 and 05 re-executed; 04 faster; 05 with augmentation: 0.95 (was 0.9)", _results(0.95))
    return repo


def test_the_changelog_lists_each_change_of_the_published_numbers(history):
    text = changelog.render(history)
    rows = [line for line in text.splitlines() if line.startswith("| 2030")]
    assert len(rows) == 2, text  # the unchanged and the renamed versions are no change of the numbers
    newest, first = rows
    commits = subprocess.run(["git", "log", "--format=%h"], cwd=history, capture_output=True, text=True).stdout
    assert newest.startswith(f"| 2030-01-04 | `{commits.split()[0][:7]}` |")
    assert "05 CNN (seed) → cnn: accuracy 0.900 → 0.950" in newest
    assert newest.endswith("| 05 with augmentation: 0.95 (was 0.9) |")  # the clause about this case's notebook
    assert first.startswith("| 2030-01-01 |") and "first published, accuracy 0.900 [0.890, 0.910]" in first
    assert "## 05 · demo-case" in text and "the published test numbers changed once since" in text


def test_the_committed_changelog_is_current():
    """Run `make changelog` after committing new results (only committed history is read)."""
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if shallow != "false":
        pytest.skip("a shallow clone has no history to rebuild the changelog from")
    assert (ROOT / "CHANGELOG.md").read_text() == changelog.render(ROOT), "CHANGELOG.md is out of date: make changelog"
