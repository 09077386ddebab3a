"""Input checks for the tools: tables, their target column, numbers, and trainable labels."""

from __future__ import annotations

import math
from pathlib import Path

from .runtime import CLIError, first_line


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
