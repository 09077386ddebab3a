"""Execute notebooks: in place in full mode (``make notebooks``) or on a copy in smoke mode (the tests).

``python -m casebook.notebooks [--smoke] [--out DIR] [--timeout S] [NOTEBOOK ...]``
``python -m casebook.notebooks --sync-setup``: badges and Colab/Kaggle set-up cells from the repository URL

Outputs and execution counts (1..N from a top-to-bottom run: deterministic, so they stay) are kept, and so is the
language information the kernel reports (JupyterLab would otherwise mark each notebook changed the moment its
kernel starts); other metadata and per-cell execution timestamps are stripped, so that a re-run only changes what
really changed.
Executed headless (``CASEBOOK_HEADLESS=1``), progress bars draw nothing: a committed output holds no bar.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from . import config

KERNEL_SPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# What the kernel reports about its language on start-up. JupyterLab writes this into a notebook as soon as a
# kernel starts, so a committed notebook that keeps all of it opens unmodified (one with less is marked changed).
LANGUAGE_INFO_KEYS = (
    "name",
    "version",
    "mimetype",
    "file_extension",
    "pygments_lexer",
    "codemirror_mode",
    "nbconvert_exporter",
)


def strip_noise(nb) -> None:
    """Remove execution timestamps and every notebook-level metadata key but the kernel spec and the language
    information the kernel reported (in place); execution counts stay."""
    reported = nb.metadata.get("language_info", {})
    language_info = {key: reported[key] for key in LANGUAGE_INFO_KEYS if key in reported}
    nb.metadata = {"kernelspec": dict(KERNEL_SPEC), "language_info": language_info or {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).pop("execution", None)


# stderr a committed output may hold: the CLI's one-line answers to bad input, shown on purpose in notebook 03
STDERR_ALLOWED = (re.compile(r"^(train-classifier|predict-classification|train-redshift): .+$"),)
PROGRESS_TEXT = re.compile(r"Epoch \d+/\d+|\d+%\|.*\||\d+/\d+ \[\d\d:\d\d|it/s\]|s/it\]")
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:work|home|root|tmp|Users|content|kaggle|usr|opt|var|mnt)/")


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "\n".join(str(data.get(k, "")) for k in ("text/plain", "text/html", "text/markdown") if k in data)


def _is_empty_display(output) -> bool:
    """A display output that shows nothing: no image, and text or HTML that is blank once tags are removed."""
    if output.get("output_type") != "display_data":
        return False
    data = output.get("data", {})
    if any(k.startswith("image/") or k.startswith("application/") for k in data):
        return False
    return not re.sub(r"<[^>]*>", "", "".join(str(v) for v in data.values())).strip()


def audit(nb, executed: bool = True, paths: bool = True) -> list[str]:
    """What a reader would object to in an executed notebook's outputs (a list of problems; empty is clean):
    execution counts other than 1..N, absolute machine paths, stderr beyond :data:`STDERR_ALLOWED`,
    progress-bar or per-epoch log text, and error outputs. ``paths=False`` skips the path check (test runs
    write into temp folders on purpose). The code's style (100-column lines, one statement per line) is
    ruff's job: ``make lint`` checks the notebooks with ``notebooks/ruff.toml``."""
    problems = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for k, cell in enumerate(code, 1):
        where = f"code cell {k}"
        if not executed:
            continue
        if cell.get("execution_count") != k:
            problems.append(f"{where}: execution count {cell.get('execution_count')}, expected {k}")
        for out in cell.get("outputs", []):
            text = _text(out)
            if out.get("output_type") == "error":
                problems.append(f"{where}: error output {out.get('ename')}")
            if _is_empty_display(out):
                problems.append(f"{where}: an empty output box (e.g. a rich console captured by a library)")
            found = ABSOLUTE_PATH.search(text)
            if paths and (found or str(config.REPO_ROOT) in text):
                at = found.start() if found else text.index(str(config.REPO_ROOT))
                problems.append(f"{where}: absolute path in output: {text[at : at + 60]!r}")
            if PROGRESS_TEXT.search(text):
                problems.append(f"{where}: progress or epoch-log text: {PROGRESS_TEXT.search(text).group(0)!r}")
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                bad = [
                    line
                    for line in text.splitlines()
                    if line.strip() and not any(p.match(line) for p in STDERR_ALLOWED)
                ]
                problems += [f"{where}: stderr {line[:120]!r}" for line in bad]
    return problems


SETUP_MARKER = "# Set-up on Colab or Kaggle"
BADGE_MARKER = "colab-badge.svg"


def badges(notebook: str, url: str | None = None) -> str:
    """'Open in Colab' and 'Open in Kaggle' badges for ``notebooks/<notebook>.ipynb`` on the main branch."""
    url = url or config.repository_url()
    path = url.removeprefix("https://github.com/") + f"/blob/main/notebooks/{notebook}.ipynb"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/{BADGE_MARKER})]"
        f"(https://colab.research.google.com/github/{path}) "
        f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]"
        f"(https://kaggle.com/kernels/welcome?src=https://github.com/{path})"
    )


def setup_cell(url: str | None = None) -> str:
    """The second code cell of every notebook: on Colab or Kaggle, clone the repository (failing loudly),
    install the package with the ``colab`` extra, and print the devices and how to get the data; elsewhere
    it does nothing."""
    url = url or config.repository_url()
    return f"""{SETUP_MARKER} (generated by `python -m casebook.notebooks --sync-setup`)
import os
import subprocess
import sys

REPOSITORY = "{url}"
ON_COLAB = "google.colab" in sys.modules
if ON_COLAB or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:  # clone, install what is missing
    checkout = "/content/casebook" if ON_COLAB else "/kaggle/working/casebook"
    clone = ["git", "clone", "--depth", "1", f"{{REPOSITORY}}.git", checkout]
    if not os.path.isdir(checkout):
        subprocess.run(clone, check=True)
    pip_install = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{{checkout}}[colab]"]
    subprocess.run(pip_install, check=True)
    sys.path.insert(0, f"{{checkout}}/src")
    os.chdir(f"{{checkout}}/notebooks")
    from casebook import config

    print(config.hosted_setup_report())"""


def _is_setup(cell) -> bool:
    return cell.cell_type == "code" and "google.colab" in cell.source


def sync_setup(path: Path, url: str | None = None) -> bool:
    """Rewrite the title cell's badges and the set-up cell of ``path`` from the repository URL; True if the
    file changed. Outputs are left alone (the set-up cell prints nothing outside Colab and Kaggle)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    title = nb.cells[0]
    lines = [line for line in title.source.splitlines() if BADGE_MARKER not in line]
    while len(lines) > 1 and not lines[1].strip():
        lines.pop(1)
    title.source = "\n".join([lines[0], "", badges(path.stem, url), "", *lines[1:]])
    setup = next(c for c in nb.cells if _is_setup(c))
    setup.source = setup_cell(url)
    changed = nbformat.writes(nb) != before
    if changed:
        nbformat.write(nb, path)
    return changed


def ci_badge(url: str | None = None) -> str:
    """The GitHub Actions badge of ``.github/workflows/ci.yml``."""
    actions = f"{url or config.repository_url()}/actions/workflows/ci.yml"
    return f"[![CI]({actions}/badge.svg)]({actions})"


def sync_readme(readme: Path | None = None, url: str | None = None) -> bool:
    """Rewrite the README's CI badge (the line after the title) and the badge column of its case-study table
    (rows ``| [NN_name](notebooks/NN_name.ipynb) |``)."""
    import re

    readme = readme or config.REPO_ROOT / "README.md"
    text = readme.read_text()
    lines = text.split("\n")
    if "actions/workflows/ci.yml/badge.svg" in lines[2]:
        lines[2] = ci_badge(url)
    else:
        lines[1:1] = ["", ci_badge(url)]
    row = re.compile(r"^\| \[(\d\d_\w+)\]\(notebooks/\1\.ipynb\) \|[^|]*\|", re.M)
    new = row.sub(
        lambda m: f"| [{m.group(1)}](notebooks/{m.group(1)}.ipynb) | {badges(m.group(1), url)} |", "\n".join(lines)
    )
    if new != text:
        readme.write_text(new)
    return new != text


def list_notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or config.REPO_ROOT / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if not p.name.endswith((".failed.ipynb", ".part.ipynb")))


def execute(
    path: Path, out: Path | None = None, smoke: bool = False, timeout: int = 1800, extra_env: dict | None = None
) -> float:
    """Execute ``path`` with the notebook's folder as working directory; write the result to ``out``
    (default: in place). Returns wall seconds. Raises ``nbclient`` errors if a cell fails (the partial
    notebook is then written beside ``out`` as ``*.failed.ipynb`` for inspection, never over it)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["CASEBOOK_SMOKE"] = "1" if smoke else "0"
    os.environ["CASEBOOK_HEADLESS"] = "1"  # no progress bars in committed outputs
    os.environ["CASEBOOK_NOTEBOOK"] = path.stem  # the name results files record their provenance under
    os.environ.setdefault("PYTHONHASHSEED", "0")  # read by the kernel at start-up: str hashes, set order fixed
    os.environ.update(extra_env or {})
    out = Path(out or path)
    t0 = time.perf_counter()
    try:
        # C-level writes to the kernel's stderr (TensorFlow's oneDNN notice, printed before its logging is set
        # up on CPUs with AVX-512) stay on the runner's terminal instead of landing in committed outputs
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent.resolve())}},
            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
        )
        try:
            client.execute()
        except Exception:
            strip_noise(nb)
            nbformat.write(nb, out.with_suffix(".failed.ipynb"))
            raise
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    strip_noise(nb)
    tmp = out.with_suffix(".ipynb.part")
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb, in order")
    ap.add_argument("--smoke", action="store_true", help="smoke mode (tiny data); requires --out")
    ap.add_argument("--out", type=Path, help="write executed copies here instead of in place")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument(
        "--sync-setup",
        action="store_true",
        help="only rewrite the badges and Colab/Kaggle set-up cells (and the README's badges) from "
        "[project.urls] Repository in pyproject.toml; executes nothing",
    )
    args = ap.parse_args(argv)
    if args.sync_setup:
        changed = [p.name for p in (args.notebooks or list_notebooks()) if sync_setup(p)]
        changed += ["README.md"] if sync_readme() else []
        print("rewritten:", ", ".join(changed) or "nothing (already in sync)")
        return 0
    if args.smoke and not args.out:
        ap.error("--smoke needs --out: smoke outputs must never overwrite the committed notebooks")
    paths = args.notebooks or list_notebooks()
    total = 0.0
    for p in paths:
        dest = (args.out / p.name) if args.out else p
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        print(f"▶ {p.name} ...", flush=True)
        secs = execute(p, dest, smoke=args.smoke, timeout=args.timeout)
        total += secs
        print(f"  {p.name}: {secs:.0f} s wall", flush=True)
        import nbformat

        for problem in audit(nbformat.read(dest, as_version=4)):
            print(f"  ! {problem}", flush=True)
    print(f"all {len(paths)} notebooks: {total:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
