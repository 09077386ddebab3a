"""make changelog: CHANGELOG.md, the history of every case's published test numbers, rebuilt from git.

Every committed version of each results file (assets/results/<case>.json) is read from git. A version whose
headline numbers differ from the version before (the model each notebook publishes, and its headline test metrics
with their 95% CIs at the README table's 3 decimals) becomes one entry: date, commit, what changed (old -> new),
and the reason the commit's message gives (its clauses that name the case's notebooks, else its first clause).
Only committed history is read: run it after committing new results.

    python scripts/changelog.py [--output CHANGELOG.md] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from casebook import config
from casebook.report.readme_table import HEADLINE, published_models

RESULTS = "assets/results"
REASON_CHARS = 240


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def versions(repo: Path, path: str) -> list[dict]:
    """Every committed version of ``path``, oldest first: commit, date, subject and the parsed file."""
    log = _git(repo, "log", "--follow", "--name-only", "--format=@@%H%x09%ad%x09%s", "--date=short", "--", path)
    found = []
    for block in log.split("@@")[1:]:
        header, *names = [line for line in block.splitlines() if line.strip()]
        commit, date, subject = header.split("\t", 2)
        try:
            data = json.loads(_git(repo, "show", f"{commit}:{names[-1] if names else path}"))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue  # deleted in that commit, or not JSON
        found.append({"commit": commit, "date": date, "subject": subject, "data": data})
    return found[::-1]


def _label(notebook: str) -> str:
    return notebook[:2] if notebook[:2].isdigit() else notebook


def _shown(d: dict, model: str) -> dict[str, str]:
    """``model``'s headline test metrics as the README table shows them: ``{metric: "value [lo, hi]"}``."""
    metrics = d["models"][model]
    heads = [m for m in HEADLINE if m in metrics] or list(metrics)[:2]
    return {m: f"{metrics[m]['value']:.3f} [{metrics[m]['ci95'][0]:.3f}, {metrics[m]['ci95'][1]:.3f}]" for m in heads}


def headline(d: dict) -> dict[str, tuple[str, dict[str, str]]]:
    """``{notebook number: (published model, its headline metrics)}``; a file from before per-notebook runtimes
    has one row, labelled ``""``."""
    if not d.get("runtimes"):
        return {"": (d["best"], _shown(d, d["best"]))}
    return {_label(notebook): (model, _shown(d, model)) for notebook, model in published_models(d).items()}


def _attributed(d: dict) -> bool:
    """Whether a results file says which notebook publishes which model (else every row shows ``best``)."""
    return bool(d.get("runtimes") and (d.get("models_by_notebook") or d.get("targets")))


def _was(old: dict, new: dict, label: str) -> tuple[str, dict[str, str]] | None:
    """What ``label``'s row showed in the previous version. When that version did not say which notebook
    published which model, the row of the notebook that publishes the best continues the old best, and any
    other row continues its own model's old numbers (None: the model is new)."""
    if label in old["rows"] and _attributed(old["data"]):
        return old["rows"][label]
    model = new["rows"][label][0]
    if model == new["data"]["best"]:
        model = old["data"]["best"]
    return (model, _shown(old["data"], model)) if model in old["data"]["models"] else None


def changes(old: dict | None, new: dict) -> list[str]:
    """What changed in the published test numbers from ``old`` to ``new`` (versions with ``rows``), one line
    per notebook; empty when no number moved (a model renamed with the same numbers is no change)."""
    lines = []
    for label, (model, shown) in sorted(new["rows"].items()):
        before = _was(old, new, label) if old else None
        prefix = f"{label} {model}" if label else model
        if before is None:
            lines.append(f"{prefix}: first published, " + ", ".join(f"{m} {v}" for m, v in shown.items()))
            continue
        old_model, old_shown = before
        moved = [m for m in shown if old_shown.get(m) != shown[m]]
        if not moved:
            continue
        if old_model != model:
            prefix = f"{label} {old_model} → {model}" if label else f"{old_model} → {model}"
        diffs = []
        for m in moved:
            a, b = old_shown.get(m, "—"), shown[m]
            same_value = a.split(" ")[0] == b.split(" ")[0]
            diffs.append(f"{m} {a} → {b}" if same_value else f"{m} {a.split(' ')[0]} → {b.split(' ')[0]}")
        lines.append(f"{prefix}: " + ", ".join(diffs))
    return lines


def _clauses(subject: str) -> list[str]:
    """The message's clauses: split at "; " outside parentheses."""
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(subject):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth <= 0 and subject.startswith("; ", i):
            clauses.append(subject[start:i])
            start = i + 2
    return [c.strip() for c in [*clauses, subject[start:]] if c.strip()]


def reason(subject: str, case: str, labels: list[str]) -> str:
    """The commit message's clauses about this case: those that name it (its first word: ``MNIST``,
    ``pneumonia``) or its notebooks (``06 with ...``, ``Notebook 08 ...``) and no other notebook; else those that
    name it beside others; else the first clause. Shortened to :data:`REASON_CHARS`."""
    clauses = _clauses(subject)
    word = re.compile(rf"(?<![\w-]){re.escape(case.split('-')[0])}(?![\w])", re.I)
    numbers = [set(re.findall(r"(?<![\d.])0[1-9](?![\d.])", c)) for c in clauses]
    named = [bool(word.search(c)) or bool(n & set(labels)) for c, n in zip(clauses, numbers, strict=True)]
    own = [c for c, hit, n in zip(clauses, named, numbers, strict=True) if hit and n <= set(labels)]
    text = "; ".join(own or [c for c, hit in zip(clauses, named, strict=True) if hit][:1] or clauses[:1])
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1].rstrip() + "…"


def case_history(repo: Path, path: str) -> tuple[list[str], list[dict]]:
    """The case's notebook numbers and its entries, newest first."""
    history = versions(repo, path)
    for version in history:
        version["rows"] = headline(version["data"])
    labels = sorted({label for v in history for label in v["rows"] if label.isdigit()})
    case = history[-1]["data"]["case"] if history else Path(path).stem
    entries, previous = [], None
    for version in history:
        lines = changes(previous, version)
        if lines:
            entries.append({**version, "lines": lines, "reason": reason(version["subject"], case, labels)})
        previous = version
    return labels, entries[::-1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(repo: Path) -> str:
    """CHANGELOG.md's text: one section per case, in notebook order."""
    sections = []
    for path in sorted((repo / RESULTS).glob("*.json")):
        labels, entries = case_history(repo, f"{RESULTS}/{path.name}")
        if entries:
            sections.append((labels, path.stem, entries))
    text = [
        "# Changelog of published numbers",
        "",
        "Every change of a case's published test numbers (the model each notebook publishes and its headline test",
        "metrics with 95% CIs, as the README's results table shows them), newest first, with the commit that made it",
        "and the reason its message gives. Generated from the git history of `assets/results/*.json` by",
        "`make changelog` (`scripts/changelog.py`); do not edit by hand.",
    ]
    for labels, case, entries in sorted(sections, key=lambda s: (s[0] or ["99"], s[1])):
        changed = len(entries) - 1
        times = {0: "have not changed", 1: "changed once"}.get(changed, f"changed {changed} times")
        text += ["", f"## {', '.join(labels) or '—'} · {case}", ""]
        text += [f"First published {entries[-1]['date']}; the published test numbers {times} since.", ""]
        text += ["| date | commit | what changed | why (from the commit message) |", "|---|---|---|---|"]
        text += [
            f"| {e['date']} | `{e['commit'][:7]}` | {_cell('<br>'.join(e['lines']))} | {_cell(e['reason'])} |"
            for e in entries
        ]
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=config.REPO_ROOT, help="the git checkout (default: this one)")
    ap.add_argument("--output", type=Path, help="default: CHANGELOG.md in the checkout")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    args = ap.parse_args(argv)
    output = args.output or args.repo / "CHANGELOG.md"
    text = render(args.repo)
    if args.check:
        current = output.read_text() if output.is_file() else ""
        print(f"{output.name} is up to date" if current == text else f"{output.name} is out of date: make changelog")
        return 0 if current == text else 1
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
