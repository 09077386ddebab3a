"""Outputs of the tools: writable folders, staged (all-or-nothing) output, atomic CSV files."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .runtime import CLIError


def check_writable_dir(folder: Path) -> None:
    """Fail early, before any work, if ``folder`` cannot be created or written: probe the nearest existing
    parent by creating (and removing) a temporary folder there. Permission bits are not enough (root
    ignores them, and /proc says yes to ``access()`` but refuses ``mkdir``)."""
    folder = Path(folder)
    p = folder.resolve()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise CLIError(f"output path {folder} is inside a file ({p})")
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"output directory {folder} is an existing file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".casebook-probe.", dir=p))
    except OSError as e:
        raise CLIError(f"output directory {folder} cannot be created or written ({e.strerror})") from None


def check_output_file(path: Path) -> None:
    """``path`` must be creatable as a file: not a directory, inside a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise CLIError(f"output {path} is a directory; give a file name such as {path / 'predictions.csv'}")
    check_writable_dir(path.parent)


def _missing_parents(folder: Path) -> list[Path]:
    missing = []
    p = folder.resolve()
    while not p.exists():
        missing.append(p)
        p = p.parent
    return missing


@contextmanager
def staged_output(folder: Path):
    """Yield a staging folder inside ``folder`` (created); on success move its files into ``folder``, on
    failure (an error, Ctrl-C, SIGTERM) delete it, and any folder it had to create: the output directory
    never holds a half-written result. Staging inside the target keeps every rename on one filesystem, also
    when ``folder`` is a mount point (a Docker volume, a tmpfs)."""
    check_writable_dir(folder)
    created = _missing_parents(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging.", dir=folder))
    ok = False
    try:
        yield stage
        for f in stage.iterdir():
            os.replace(f, folder / f.name)
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok and created:
            shutil.rmtree(created[-1], ignore_errors=True)


def atomic_write_csv(df, path: Path) -> None:
    from casebook.config import atomic_path

    check_output_file(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def fmt_mean_std(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std():.4f}" if not math.isnan(v.mean()) else "nan"
