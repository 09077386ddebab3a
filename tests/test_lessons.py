"""Every committed notebook reads as a lesson (shared/LESSONS.md): the question, the data, the protocol and the
targets up front; small code cells; no changelog; findings whose numbers its own outputs show and whose
target verdicts are the package's rule's; exercises at the end."""

import json
import re
import statistics

import nbformat
import pytest

from casebook import config
from casebook.notebooks import list_notebooks

NOTEBOOKS = list_notebooks()
SECTIONS = ("question", "data", "protocol", "targets", "findings", "going further")
MAX_CELL_LINES, MAX_MEDIAN_LINES, MAX_CLOSING_LINES = 25, 10, 10
CHANGELOG = {
    "a commit id": re.compile(r"(?<![\w/.-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/.-])"),
    "'previous execution'": re.compile(r"\b(previous|earlier|last) (execution|run|version)s?\b", re.I),
    "'now'": re.compile(r"\bnow\b", re.I),
    "'was <number>'": re.compile(r"\bwas\s+[-−]?\d"),
}
NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|(?<![\w.])[-−]?\d+(?:\.\d+)?%?")


def _headings(nb) -> list[tuple[int, str]]:
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found += [(i, m.group(1).strip()) for m in re.finditer(r"^##\s+(.+)$", cell.source, re.M)]
    return found


def _section_index(title: str, name: str) -> bool:
    words = re.sub(r"^[\d\s·.:-]+", "", title).lower()
    return words.startswith(("the " + name, name))


def _section(nb, name: str) -> str:
    """The markdown of section ``name``: from its ``##`` heading to the next ``##`` heading."""
    heads = _headings(nb)
    starts = [i for i, title in heads if _section_index(title, name)]
    if not starts:
        return ""
    start = starts[0]
    later = [i for i, _ in heads if i > start]
    end = later[0] if later else len(nb.cells)
    return "\n".join(c.source for c in nb.cells[start:end] if c.cell_type == "markdown")


def _code_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _output_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            for kind in ("text/plain", "text/html"):
                if kind in out.get("data", {}):
                    parts.append(out["data"][kind])
    return "\n".join(parts)


def _value(token: str) -> tuple[float, int, bool]:
    """A number as written: its value, its decimals, and whether it is a percentage."""
    percent = token.endswith("%")
    text = token.rstrip("%").replace(",", "").replace("−", "-")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), decimals, percent


def _shown(token: str, outputs: list[float]) -> bool:
    value, decimals, percent = _value(token)
    for y in outputs:
        candidates = (y, 100 * y) if percent else (y, abs(y))
        if any(
            abs(round(c, decimals) - value) < 1e-9 or abs(round(abs(c), decimals) - abs(value)) < 1e-9
            for c in candidates
        ):
            return True
    return False


def _checked_numbers(text: str) -> list[str]:
    """The numbers a finding asserts: decimals and percentages, and integers of 100 or more that are not years;
    not the ones inside `code` (parameter values)."""
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", " ", text)  # link targets
    tokens = []
    for token in NUMBER.findall(text):
        value, decimals, percent = _value(token)
        if decimals or percent or (abs(value) >= 100 and not 1900 <= value <= 2100):
            tokens.append(token)
    return tokens


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_lesson_opens_with_question_data_protocol_targets_and_ends_with_findings_and_exercises(path):
    nb = nbformat.read(path, as_version=4)
    heads = _headings(nb)
    where = {}
    for name in SECTIONS:
        hits = [i for i, (_, title) in enumerate(heads) if _section_index(title, name)]
        assert hits, f"no '## {name.title()}' section (headings: {[t for _, t in heads]})"
        where[name] = hits[0]
    assert list(where.values()) == sorted(where.values()), f"sections out of order: {where}"
    targets = _section(nb, "targets")
    assert all(word in targets for word in ("met", "reached", "missed")), "the targets section states the rule"
    exercises = _section(nb, "going further")
    assert len(re.findall(r"^\s*(?:\d+\.|[-*])\s", exercises, re.M)) >= 2, "two or three exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_small_and_the_closing_cell_is_one_publish_call(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "# Set-up on Colab or Kaggle" not in c.source]
    lengths = [_code_lines(c.source) for c in code]
    long = {i: n for i, n in enumerate(lengths, 1) if n > MAX_CELL_LINES}
    assert not long, f"code cells over {MAX_CELL_LINES} lines: {long}"
    assert statistics.median(lengths) <= MAX_MEDIAN_LINES, f"median code cell {statistics.median(lengths)} lines"
    closing = code[-1].source
    assert "publish.publish(" in closing and _code_lines(closing) <= MAX_CLOSING_LINES, closing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_changelog_in_the_lesson(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets may hold hashes
    found = {what: rx.findall(text)[:3] for what, rx in CHANGELOG.items() if rx.search(text)}
    assert not found, f"history belongs in CHANGELOG.md, not in the lesson: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_findings_is_shown_by_the_notebooks_outputs(path):
    nb = nbformat.read(path, as_version=4)
    findings = _section(nb, "findings")
    outputs = [_value(t)[0] / (100 if t.endswith("%") else 1) for t in NUMBER.findall(_output_text(nb))]
    missing = [t for t in _checked_numbers(findings) if not _shown(t, outputs)]
    assert not missing, f"numbers in the findings that no output shows (as printed or rounded): {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_findings_state_each_targets_verdict_as_the_rule_gives_it(path):
    nb = nbformat.read(path, as_version=4)
    findings = _section(nb, "findings")
    judged = []
    for results in sorted((config.REPO_ROOT / "assets" / "results").glob("*.json")):
        judged += json.loads(results.read_text()).get("targets", {}).get(path.stem, [])
    assert judged, "no judged targets in the results files for this notebook (publish.publish(..., TARGETS))"
    for t in judged:
        stated = f"{t['target']}: **{t['verdict']}**"
        assert stated in findings, f"the findings should say {stated!r}"
        wrong = [v for v in ("met", "reached", "missed") if v != t["verdict"] and f"{t['target']}: **{v}**" in findings]
        assert not wrong, f"{t['target']} is {t['verdict']}, not {wrong}"


def test_the_number_check_can_fail():
    outputs = [0.8249, 0.556, 19020.0, 0.9648]
    assert _shown("0.825", outputs) and _shown("55.6%", outputs) and _shown("19,020", outputs)
    assert not _shown("0.873", outputs) and not _shown("0.96", [0.9549])
    assert _checked_numbers("In 2018, 3 seeds gave 0.825 and `k=100` on 1,341 images (55.6%)") == [
        "0.825",
        "1,341",
        "55.6%",
    ]
    assert CHANGELOG["a commit id"].search("at commit be788b2") and not CHANGELOG["a commit id"].search("1e-3 or 0.125")
