"""Command-line tools. Shared rules: non-interactive; bad input → one line on stderr and exit code 2, with
nothing half-written; heavy libraries are imported only after the arguments are parsed (``--help`` is fast)."""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """A user error: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: …``) and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def run(main_fn, prog: str, argv=None) -> int:
    """Call ``main_fn(argv)``; turn :class:`CLIError` into one stderr line and exit code 2."""
    try:
        return main_fn(argv) or 0
    except CLIError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def read_table(path: str | Path, target: str | None = None, require_target: bool = False):
    """Read a numeric CSV, refusing (with :class:`CLIError`) everything a model cannot use: a missing or empty
    file, a header without rows, a missing target column, non-numeric cells, NaN or infinite values.
    The target column may hold any labels; every other column must be numeric."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise CLIError(f"{path} is empty")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CLIError(f"cannot parse {path} as CSV: {str(e).splitlines()[0]}") from None
    if df.empty:
        raise CLIError(f"{path} has a header but no data rows")
    if df.columns.duplicated().any():
        raise CLIError(f"{path}: duplicate column names {sorted(set(df.columns[df.columns.duplicated()]))}")
    if require_target and target not in df.columns:
        raise CLIError(f"target column {target!r} not in {path} (columns: {', '.join(map(str, df.columns))})")
    if target in df.columns and df[target].isna().any():
        raise CLIError(f"{path}: missing value in target column {target!r}, row {int(df[target].isna().argmax()) + 2}")
    for col in df.columns:
        if col == target:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            i = int(bad.argmax())
            raise CLIError(f"{path}: non-numeric value {df[col].iloc[i]!r} in column {col!r}, line {i + 2}")
        finite = np.isfinite(values.to_numpy(dtype=float))
        if not finite.all():
            i = int((~finite).argmax())
            raise CLIError(f"{path}: missing or infinite value in column {col!r}, line {i + 2}")
        df[col] = values.astype(float)
    return df


def check_writable_dir(folder: Path) -> None:
    """Fail early if ``folder`` (or the nearest existing parent it would be created in) is not writable."""
    p = folder.resolve()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise CLIError(f"output path {folder} is inside a file ({p})")
    if not os.access(p, os.W_OK | os.X_OK):
        raise CLIError(f"output directory {folder} is not writable")


@contextmanager
def staged_output(folder: Path):
    """Yield a staging folder next to ``folder``; on success move its files into ``folder`` (created),
    on failure delete it: the output directory never holds a half-written result."""
    check_writable_dir(folder)
    parent = folder.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    try:
        yield stage
        folder.mkdir(parents=True, exist_ok=True)
        for f in stage.iterdir():
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def atomic_write_csv(df, path: Path) -> None:
    check_writable_dir(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fmt_mean_std(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std():.4f}" if not math.isnan(v.mean()) else "nan"
