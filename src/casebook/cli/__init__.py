"""Command-line tools. Shared rules: non-interactive; bad input → one line on stderr and exit code 2, with
nothing half-written; heavy libraries are imported only after the arguments are parsed (``--help`` is fast)."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """A user error: reported as one line, exit code 2."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks remove staged and temporary files."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (some libraries start theirs with a newline)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: …``) and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def run(main_fn, prog: str, argv=None) -> int:
    """Call ``main_fn(argv)``; turn :class:`CLIError` into one stderr line and exit code 2. SIGTERM and
    Ctrl-C unwind normally (so nothing staged is left behind) and exit with 128 + the signal number."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library notices are not the tool's output
            return main_fn(argv) or 0
    except CLIError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def positive_finite(name: str, value: float) -> float:
    """Refuse NaN, inf, zero and negative values of a numeric option."""
    if not math.isfinite(value) or value <= 0:
        raise CLIError(f"{name} must be a positive finite number, got {value}")
    return value


def _raw_header(path: Path) -> list[str]:
    """The header's names exactly as written (pandas renames duplicates to ``a.1``)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        for row in csv.reader(f):
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row]
    return []


def read_table(path: str | Path, target: str | None = None, require_target: bool = False):
    """Read a numeric CSV, refusing (with :class:`CLIError`) everything a model cannot use: a missing or empty
    file, a header without rows, duplicate or empty column names, a missing target column, non-numeric cells,
    NaN or infinite values. The target column may hold any labels; every other column must be numeric."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise CLIError(f"{path} is empty")
    header = _raw_header(path)
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise CLIError(f"{path}: duplicate column names {duplicated}")
    try:
        df = pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CLIError(f"cannot parse {path} as CSV: {first_line(e)}") from None
    if df.empty:
        raise CLIError(f"{path} has a header but no data rows")
    unnamed = [str(c) for c in df.columns if str(c).startswith("Unnamed: ") or not str(c).strip()]
    if unnamed:
        raise CLIError(f"{path}: column without a name in the header (position {df.columns.get_loc(unnamed[0]) + 1})")
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


def check_trainable(y, source: str, need_per_class: int, smallest_split: float) -> None:
    """Refuse a target a classifier cannot honestly learn: one class only, a class with fewer than
    ``need_per_class`` rows, or too few rows for the smallest stratified split (``smallest_split`` of the rows)
    to hold every class."""
    import numpy as np

    labels, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    if len(labels) < 2:
        raise CLIError(f"{source}: the target has a single class ({str(labels[0])!r}); a classifier needs at least two")
    small = {str(lab): int(c) for lab, c in zip(labels, counts, strict=False) if c < need_per_class}
    if small:
        raise CLIError(
            f"{source}: too few rows per class for honest train/validation/test splits (need "
            f"{need_per_class} per class; have {small})"
        )
    if len(y) * smallest_split < len(labels):
        raise CLIError(
            f"{source}: {len(y)} rows are too few for a {smallest_split:.0%} split holding all "
            f"{len(labels)} classes (need {int(math.ceil(len(labels) / smallest_split))})"
        )


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


def add_track_option(parser: argparse.ArgumentParser, experiment: str) -> None:
    """The tools' shared ``--track`` flag."""
    parser.add_argument(
        "--track",
        action="store_true",
        help=f"log the run to MLflow (experiment {experiment!r}): the local store, or the server "
        f"in CASEBOOK_MLFLOW_URI (login from MLFLOW_TRACKING_USERNAME / _PASSWORD)",
    )


def check_tracking_server() -> None:
    """With ``--track``: the tracking store (``CASEBOOK_MLFLOW_URI``'s server) answers and accepts the login."""
    from casebook import tracking

    tracking.bound_retries()  # a server that goes away later fails the tool in about 30 s, not minutes
    try:
        tracking.check_server()
    except tracking.TrackingServerError as e:
        raise CLIError(str(e)) from None


def check_cluster(tracked: bool) -> None:
    """The Ray cluster ``CASEBOOK_RAY_ADDRESS`` names (if any) is usable, before any work (a search runs there)."""
    from casebook import cluster

    try:
        cluster.check(tracked=tracked)
    except cluster.ClusterError as e:
        raise CLIError(str(e)) from None


@contextmanager
def tracked(enabled: bool, experiment: str, run_name: str, params: dict):
    """An MLflow run around a tool's work (yields None when not ``enabled``). It is opened before training,
    so a server that refuses the run (403) stops the tool before any work or output; a refusal while
    logging, or a server that stops answering (after :func:`casebook.tracking.bound_retries`' retries),
    becomes a :class:`CLIError` too: one line, exit code 2, nothing written."""
    if not enabled:
        yield None
        return
    from casebook import tracking

    tracking.bound_retries()
    try:
        with tracking.run(experiment, run_name, params=params, tags={"source": "cli"}) as active:
            yield active
    except tracking.TrackingServerError as e:  # refused, or gone mid-run: the run is marked FAILED if it can be
        raise CLIError(str(e)) from None


def atomic_write_csv(df, path: Path) -> None:
    from casebook.config import atomic_path

    check_output_file(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def fmt_mean_std(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std():.4f}" if not math.isnan(v.mean()) else "nan"
