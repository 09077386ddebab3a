"""Execute notebooks: in place in full mode (``make notebooks``) or on a copy in smoke mode (the tests).

``python -m casebook.notebooks [--smoke] [--out DIR] [--timeout S] [NOTEBOOK ...]``

Outputs are kept; execution counts, kernel metadata and per-cell execution timestamps are stripped so
that a re-run only changes what really changed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import config

KERNEL_SPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def strip_noise(nb) -> None:
    """Remove execution counts, execution timestamps and kernel/language-version metadata (in place)."""
    nb.metadata = {"kernelspec": dict(KERNEL_SPEC), "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.execution_count = None
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = None
                out.get("metadata", {}).pop("execution", None)


def list_notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or config.REPO_ROOT / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if not p.name.endswith((".failed.ipynb", ".part.ipynb")))


def execute(path: Path, out: Path | None = None, smoke: bool = False, timeout: int = 1800,
            extra_env: dict | None = None) -> float:
    """Execute ``path`` with the notebook's folder as working directory; write the result to ``out``
    (default: in place). Returns wall seconds. Raises ``nbclient`` errors if a cell fails (the partial
    notebook is then written beside ``out`` as ``*.failed.ipynb`` for inspection, never over it)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["CASEBOOK_SMOKE"] = "1" if smoke else "0"
    os.environ.update(extra_env or {})
    out = Path(out or path)
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent.resolve())}})
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
    args = ap.parse_args(argv)
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
    print(f"all {len(paths)} notebooks: {total:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
