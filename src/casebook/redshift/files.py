"""The survey's files: reading, validating, writing, and the `convert` command for pickled attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import config
from ..data import DataFormatError, DataNotFoundError
from .catalogue import FLAG_VALUES, RedshiftData
from .simulator import SimulationConfig, simulate

ATTRIBUTE_FILES = ("attributes32.npz", "attributes32.npy")


CONVERT_HINT = (
    "convert it once with `python -m casebook.redshift convert {folder} --trust-pickle` (only for a "
    "file you produced yourself: converting unpickles it), which writes attributes32.npz of typed "
    "columns that load without pickle; or pass allow_pickle=True / --trust-pickle"
)


def attributes_to_columns(attributes: np.ndarray) -> dict[str, np.ndarray]:
    """An object attribute table → typed columns (``col0``, ``col1``, …: float64 where every value is a
    number, else unicode strings), storable with ``np.savez`` and loadable without pickle."""
    columns = {}
    for j in range(attributes.shape[1]):
        col = attributes[:, j]
        try:
            columns[f"col{j}"] = col.astype(np.float64)
        except (TypeError, ValueError):
            columns[f"col{j}"] = col.astype(str)
    return columns


def columns_to_attributes(columns) -> np.ndarray:
    """Inverse of :func:`attributes_to_columns`: the object table the rest of this module reads."""
    names = sorted(columns, key=lambda k: int(k[3:]))
    if not names or any(not (k.startswith("col") and k[3:].isdigit()) for k in names):
        raise DataFormatError(f"attributes32.npz must hold columns col0, col1, …; found {sorted(columns)}")
    arrays = [np.asarray(columns[k]) for k in names]
    if any(a.ndim != 1 or a.dtype.kind not in "fiuUS" or len(a) != len(arrays[0]) for a in arrays):
        raise DataFormatError(
            "attributes32.npz: every column must be a 1-D array of numbers or strings, all of one length"
        )
    out = np.empty((len(arrays[0]), len(arrays)), dtype=object)
    for j, a in enumerate(arrays):
        out[:, j] = a.astype(str) if a.dtype.kind in "US" else a
    return out


def save_files(d: RedshiftData, folder: Path) -> Path:
    """Write the real-data layout: ``pdfs32.npy``, ``zgrid32.npy`` and the attributes as typed columns in
    ``attributes32.npz`` (no pickle; the simulator can stand in for the survey)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "pdfs32.npy", d.log_pdf.astype(np.float32))
    np.save(folder / "zgrid32.npy", d.zgrid.astype(np.float32))
    with config.atomic_path(folder / "attributes32.npz", suffix=".npz") as tmp:
        np.savez(tmp, **attributes_to_columns(d.attributes))
    return folder


def _load_array(path: Path, **kw) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, **kw)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"{path}: not a plain numeric .npy array ({str(e).splitlines()[0]})") from None


def read_attributes(folder: Path, allow_pickle: bool = False) -> np.ndarray:
    """The attribute table: ``attributes32.npz`` (typed columns) if present, else ``attributes32.npy``.

    An object ``.npy`` (the survey's export) can only be read by unpickling, which can run code from the file:
    that needs ``allow_pickle=True``, for files you produced yourself; otherwise a :class:`DataFormatError`
    says how to convert it once."""
    npz = folder / "attributes32.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as columns:
                return columns_to_attributes({k: columns[k] for k in columns.files})
        except (ValueError, OSError, EOFError) as e:
            raise DataFormatError(f"{npz}: unreadable ({str(e).splitlines()[0]})") from None
    npy = folder / "attributes32.npy"
    try:
        return np.load(npy, allow_pickle=allow_pickle)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataFormatError(
                f"{npy} is a pickled object array, and loading it could run code hidden in the "
                f"file; {CONVERT_HINT.format(folder=folder)}"
            ) from None
        raise DataFormatError(f"{npy}: unreadable ({str(e).splitlines()[0]})") from None
    except Exception as e:  # a broken pickle stream (only reached with allow_pickle=True)
        raise DataFormatError(f"{npy}: unreadable ({type(e).__name__})") from None


def convert_attributes(folder: Path, trust_pickle: bool = False) -> Path:
    """One-off conversion of a pickled ``attributes32.npy`` (object array) into ``attributes32.npz`` of typed
    columns. Unpickling runs whatever the file says: ``trust_pickle=True`` states that you produced it."""
    folder = Path(folder)
    if not trust_pickle:
        raise DataFormatError(
            f"converting {folder / 'attributes32.npy'} unpickles it, which can run code hidden "
            f"in the file: pass trust_pickle=True (--trust-pickle) only for a file you produced"
        )
    attributes = read_attributes_npy(folder)
    with config.atomic_path(folder / "attributes32.npz", suffix=".npz") as tmp:
        np.savez(tmp, **attributes_to_columns(attributes))
    return folder / "attributes32.npz"


def read_attributes_npy(folder: Path) -> np.ndarray:
    npy = folder / "attributes32.npy"
    if not npy.is_file():
        raise DataNotFoundError(f"{npy} not found")
    attributes = np.load(npy, allow_pickle=True)
    if attributes.ndim != 2:
        raise DataFormatError(f"{npy}: expected a 2-D table, got shape {attributes.shape}")
    return attributes


def read_files(folder: Path | None = None, on_bad_flag: str = "error", allow_pickle: bool = False) -> RedshiftData:
    """Read ``pdfs32.npy``, ``zgrid32.npy`` and the attributes (``attributes32.npz``, or ``attributes32.npy``:
    see :func:`read_attributes`) from ``folder`` (default ``<data root>/redshift``) and validate them.

    Nothing is unpickled unless ``allow_pickle=True``. Shapes must agree and every PDF value must be finite;
    flags whose floor is not 1/2/3/4/9 raise, or with ``on_bad_flag='exclude'`` are dropped and counted in
    ``.excluded`` (never relabelled silently).
    """
    folder = Path(folder or config.data_root() / "redshift")
    missing = [n for n in ("pdfs32.npy", "zgrid32.npy") if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in ATTRIBUTE_FILES):
        missing.append("attributes32.npz (or the survey's attributes32.npy)")
    if missing:
        raise DataNotFoundError(
            f"redshift data not found: put {', '.join(missing)} in {folder}/ (the survey's "
            f"PDF export; or use casebook.redshift.simulator.simulate())"
        )
    pdfs = _load_array(folder / "pdfs32.npy", mmap_mode="r")
    zgrid = _load_array(folder / "zgrid32.npy")
    attrs = read_attributes(folder, allow_pickle)
    if pdfs.dtype.kind != "f" or zgrid.dtype.kind != "f":
        raise DataFormatError(
            f"{folder}: pdfs32.npy and zgrid32.npy must hold floats (got {pdfs.dtype} and {zgrid.dtype})"
        )
    return validate(RedshiftData(np.asarray(pdfs), zgrid, attrs, simulated=False), on_bad_flag)


def validate(d: RedshiftData, on_bad_flag: str = "error") -> RedshiftData:
    """Check shapes, finiteness and flags (see :func:`read_files`)."""
    if d.log_pdf.ndim != 2 or d.zgrid.ndim != 1 or d.log_pdf.shape[1] != d.zgrid.shape[0]:
        raise DataFormatError(f"PDF grid mismatch: pdfs {d.log_pdf.shape} vs zgrid {d.zgrid.shape}")
    if d.attributes.ndim != 2 or d.attributes.shape[0] != d.log_pdf.shape[0] or d.attributes.shape[1] < 7:
        raise DataFormatError(
            f"attributes {d.attributes.shape} do not match pdfs {d.log_pdf.shape} "
            f"(need one row per PDF and at least 7 columns)"
        )
    bad_rows = ~np.isfinite(d.log_pdf).all(axis=1)
    if bad_rows.any():
        raise DataFormatError(
            f"{int(bad_rows.sum())} PDFs contain NaN or inf (first at row {int(np.argmax(bad_rows))})"
        )
    try:
        flags = np.floor(d.attributes[:, -1].astype(float)).astype(int)
    except (TypeError, ValueError):
        raise DataFormatError("the last attribute column (quality flag) is not numeric") from None
    unknown = ~np.isin(flags, FLAG_VALUES)
    if unknown.any():
        values = sorted(set(flags[unknown].tolist()))
        if on_bad_flag != "exclude":
            raise DataFormatError(
                f"{int(unknown.sum())} objects have unknown flag values {values[:10]} "
                f"(allowed floors: {FLAG_VALUES}); pass on_bad_flag='exclude' to drop them"
            )
        keep = ~unknown
        d = RedshiftData(
            d.log_pdf[keep],
            d.zgrid,
            d.attributes[keep],
            d.simulated,
            {**d.excluded, f"unknown flag {values}": int(unknown.sum())},
        )
    return d


def load(
    n: int | None = None, seed: int = config.DEFAULT_SEED, folder: Path | None = None, allow_pickle: bool = False
) -> RedshiftData:
    """Real files when present in the data root, else the simulator (say which: ``.simulated``).
    Smoke mode simulates 300 objects. ``allow_pickle``: see :func:`read_attributes`."""
    folder = Path(folder or config.data_root() / "redshift")
    if (folder / "pdfs32.npy").is_file():
        d = read_files(folder, allow_pickle=allow_pickle)
        if n and n < len(d.log_pdf):
            keep = np.sort(np.random.default_rng(seed).choice(len(d.log_pdf), n, replace=False))
            d = RedshiftData(d.log_pdf[keep], d.zgrid, d.attributes[keep], False, d.excluded)
        return d
    return simulate(SimulationConfig(n=n or config.pick(8000, 300), seed=seed))


def main(argv: list[str] | None = None) -> int:
    """``python -m casebook.redshift convert FOLDER --trust-pickle``: attributes32.npy → attributes32.npz."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m casebook.redshift",
        description="Convert the survey's pickled attributes32.npy into "
        "attributes32.npz of typed columns (loads without pickle).",
    )
    parser.add_argument("command", choices=["convert"])
    parser.add_argument("folder", type=Path, help="the folder holding attributes32.npy")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: the file is unpickled, so use it only for files you produced",
    )
    args = parser.parse_args(argv)
    try:
        out = convert_attributes(args.folder, trust_pickle=args.trust_pickle)
    except (DataFormatError, DataNotFoundError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
