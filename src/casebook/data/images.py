"""Image checks: every image decodes, the chest X-rays match their manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import DataFormatError
from .checksums import sha256_of

_IMAGE_PROBLEMS: dict[tuple[str, int, int], str | None] = {}


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable image (empty, not an image, truncated), or None. A reduced-size decode
    (JPEG draft mode) reads every entropy-coded block, so a cut or corrupted file fails; cached per
    (path, size, mtime)."""
    from PIL import Image

    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _IMAGE_PROBLEMS:
        problem = None
        if st.st_size == 0:
            problem = "empty file"
        else:
            try:
                with Image.open(path) as im:
                    im.draft("L", (max(1, im.width // 8), max(1, im.height // 8)))
                    im.load()
            except Exception as e:  # PIL raises many types for broken files
                problem = f"not a readable image ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
        _IMAGE_PROBLEMS[key] = problem
    return _IMAGE_PROBLEMS[key]


def check_images(paths, root: Path | None = None) -> None:
    """Raise :class:`DataFormatError` naming every unreadable image among ``paths`` (at most 10 shown)."""
    bad = [(Path(p), image_problem(Path(p))) for p in paths]
    raise_bad_images([(p, why) for p, why in bad if why], root)


def raise_bad_images(bad: list[tuple[Path, str]], root: Path | None) -> None:
    if not bad:
        return

    def name(p: Path) -> str:
        return str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p)

    shown = "; ".join(f"{name(p)} ({why})" for p, why in bad[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    where = f" in {root}" if root else ""
    raise DataFormatError(f"{len(bad)} bad image(s){where}: {shown}{more}")


def verify_chest_images(folder: Path, manifest: Path | None) -> None:
    """Every image of the chest X-ray folder checked: with ``manifest.csv``, each listed image must exist and
    match its sha256, and any image the manifest does not list must decode; without one (a Kaggle download),
    every image must decode. Raises :class:`DataFormatError` naming each bad file."""
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    bad = []
    listed = set()
    if manifest is not None:
        rows = pd.read_csv(manifest, usecols=["split", "label", "file", "sha256"])
        for split, label, file, sha in rows.itertuples(index=False):
            path = folder / split / label / file
            listed.add(path)
            if not path.is_file():
                bad.append((path, "missing (listed in manifest.csv)"))
            elif path.stat().st_size == 0:
                bad.append((path, "empty file"))
            elif sha256_of(path) != sha:
                bad.append((path, "sha256 differs from manifest.csv"))
    for path in images:
        if path not in listed:
            problem = image_problem(path)
            if problem:
                bad.append((path, problem))
    raise_bad_images(bad, folder)
