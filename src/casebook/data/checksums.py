"""sha256 checks of data files, and the record of every file this process verified (provenance)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import config
from . import ChecksumError

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated loads cost nothing."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


_VERIFIED: dict[str, str] = {}  # data file → sha256, for every file this process checked


def record_verified(path: Path, digest: str) -> None:
    """Remember a checked file under its name relative to the data root (or its folder and name)."""
    path = Path(path).resolve()
    root = config.data_root()
    name = str(path.relative_to(root)) if path.is_relative_to(root) else f"{path.parent.name}/{path.name}"
    _VERIFIED[name] = digest


def verified_files() -> dict[str, str]:
    """``{file: sha256}`` of every registry file this process verified (the chest X-rays' manifest.csv stands
    for the images it lists, each of which was checked against it). Recorded in results' provenance."""
    return dict(sorted(_VERIFIED.items()))


def verify_file(path: Path, expected: str) -> Path:
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")
    record_verified(path, actual)
    return path
