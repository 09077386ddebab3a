"""README.md and docs/*.md stay true: every `make` target they name exists, every `python -m casebook...`,
script and console command they show answers --help, and every relative link (and its #anchor) resolves."""

import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

from casebook import config

ROOT = config.REPO_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _code(text: str) -> str:
    """Everything a page shows as code: fenced blocks and inline spans."""
    return "\n".join([*FENCE.findall(text), *INLINE.findall(FENCE.sub("", text))])


def _prose(text: str) -> str:
    return INLINE.sub("", FENCE.sub("", text))


def _mentions(pattern: str) -> dict[str, list[str]]:
    """``{match: [pages that show it]}`` for a pattern's first group, searched in the pages' code."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for hit in re.findall(pattern, _code(page.read_text())):
            found.setdefault(hit, []).append(page.relative_to(ROOT).as_posix())
    return found


MAKE_TARGETS = _mentions(r"(?<![\w-])make[ \t]+(?:-\S+[ \t]+)*([a-z][\w-]*)")
MODULES = _mentions(r"python -m (casebook(?:\.\w+)*)")
SCRIPTS = _mentions(r"python (scripts/[\w-]+\.py)")
CONSOLE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
COMMANDS = _mentions(r"(?<![\w./-])(" + "|".join(map(re.escape, CONSOLE)) + r")(?![\w-])")


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


def test_the_pages_show_commands():
    """The patterns below find what the pages show (a check that cannot pass on an empty page list)."""
    assert {"lab", "notebooks", "test", "test-quick"} <= set(MAKE_TARGETS)
    assert "casebook.verify" in MODULES and "train-classifier" in COMMANDS and len(PAGES) > 5


@pytest.mark.parametrize("target", sorted(MAKE_TARGETS))
def test_every_make_target_named_exists(target):
    assert target in _makefile_targets(), f"`make {target}` (in {MAKE_TARGETS[target]}) is not in the Makefile"


def _help_command(name: str) -> list[str]:
    if name in CONSOLE:
        return [str(Path(sys.executable).parent / name), "--help"]
    if name.startswith("scripts/"):
        return [sys.executable, str(ROOT / name), "--help"]
    return [sys.executable, "-m", name, "--help"]


@cache
def _help_runs() -> dict[str, subprocess.CompletedProcess]:
    """Every documented command's --help, run side by side (each starts its own interpreter)."""
    names = [*MODULES, *SCRIPTS, *COMMANDS]

    def run(name):
        return subprocess.run(_help_command(name), cwd=ROOT, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(run, names), strict=True))


@pytest.mark.parametrize("name", sorted([*MODULES, *SCRIPTS, *COMMANDS]))
def test_every_command_shown_answers_help(name):
    done = _help_runs()[name]
    shown = {**MODULES, **SCRIPTS, **COMMANDS}[name]
    assert done.returncode == 0, f"{name} --help (shown in {shown}) exited {done.returncode}: {done.stderr[-500:]}"
    assert "usage:" in done.stdout, f"{name} --help printed no usage: {done.stdout[:300]!r}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{page.name}: {broken}"


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [gone](missing.md) [no](page.md#nowhere)\n")
    found = [t for t in LINK.findall(_prose(page.read_text()))]
    assert found == ["page.md#title", "missing.md", "page.md#nowhere"]
    assert not (tmp_path / "missing.md").exists() and "nowhere" not in _anchors(page) and "title" in _anchors(page)


def test_the_docs_pages_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in readme]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_readme_is_a_front_door():
    """At most 150 lines; `make lab`, the two commands and the quick loop up front, the results between markers."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first_results = readme.index("<!-- results:start -->")
    for command in ("make lab", "make notebooks", "make test", "make test-quick", "git restore notebooks"):
        assert readme.index(command) < first_results, command
    assert "<!-- results:end -->" in readme
