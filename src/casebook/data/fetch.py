"""Where a dataset comes from: the data root, else a verified download, else a clear error."""

from __future__ import annotations

import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from . import DataError, DataNotFoundError, DataRootError
from .checksums import verify_file
from .images import verify_chest_images
from .registry import REGISTRY, DatasetInfo, RemoteFile


def _checked_root() -> Path:
    root = config.data_root()
    if not root.is_dir():
        raise DataRootError(
            f"data root {root} does not exist (set CASEBOOK_DATA to an existing folder, "
            f"or unset it to use {config.REPO_ROOT / 'data'})"
        )
    return root


def _atomic_download(remote: RemoteFile, dest: Path, timeout: float = 60) -> None:
    """Download ``remote`` into ``dest`` through a temporary file; verify before renaming into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in remote.urls:
        try:
            with config.atomic_path(dest) as tmp_path:
                with open(tmp_path, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                    shutil.copyfileobj(resp, out)
                if remote.archive_member:
                    verify_file(tmp_path, remote.archive_sha256)
                    with tarfile.open(tmp_path) as tar:
                        data = tar.extractfile(remote.archive_member).read()
                    tmp_path.write_bytes(data)
                verify_file(tmp_path, remote.sha256)
            return
        except Exception as e:  # try the next mirror
            errors.append(f"{url}: {e}")
    raise DataNotFoundError("; ".join(errors) or "no download source")


def _not_found_message(info: DatasetInfo, missing: list[RemoteFile], folder: Path, why: str) -> str:
    names = ", ".join(m.name for m in missing)
    sources = "; ".join(u for m in missing for u in m.urls[:1]) or info.homepage
    return (
        f"dataset '{info.key}' not found: put {names} in {folder}/ "
        f"(get them from {sources}; or set CASEBOOK_DATA to a data root laid out as in the README's "
        f"Data section) [{why}]"
    )


def dataset_dir(key: str, download: bool | None = None) -> Path:
    """Folder holding the verified files of dataset ``key`` (see the module docstring for the order)."""
    info = REGISTRY[key]
    folder = _checked_root() / info.folder
    if key == "chest-xray":
        return _chest_dir(info, folder, download)
    missing = []
    for remote in info.files:
        path = folder / remote.name
        if path.is_file():
            verify_file(path, remote.sha256)
        else:
            missing.append(remote)
    if not missing:
        return folder
    if download is None:
        download = not (config.is_offline() or config.is_smoke())
    why = "downloads disabled (smoke mode or CASEBOOK_OFFLINE=1)"
    if download:
        try:
            for remote in missing:
                _atomic_download(remote, folder / remote.name)
            return folder
        except (DataNotFoundError, OSError) as e:
            why = f"download failed: {str(e)[:300]}"
    raise DataNotFoundError(_not_found_message(info, missing, folder, why))


KAGGLE_INPUT = Path("/kaggle/input")  # where a Kaggle notebook mounts the datasets attached to it


def kaggle_chest_dir() -> Path | None:
    """The Kermany dataset attached to a Kaggle notebook (``/kaggle/input/<dataset>/chest_xray`` or one level
    up or down), i.e. the folder holding ``train/NORMAL`` and ``test/``; None elsewhere."""
    if not KAGGLE_INPUT.is_dir():
        return None
    for pattern in ("*/train/NORMAL", "*/*/train/NORMAL", "*/*/*/train/NORMAL"):
        for hit in sorted(KAGGLE_INPUT.glob(pattern)):
            root = hit.parent.parent
            if (root / "test").is_dir() and "__MACOSX" not in root.parts:
                return root
    return None


def _chest_dir(info: DatasetInfo, folder: Path, download: bool | None) -> Path:
    if not (folder / "train").is_dir() and kaggle_chest_dir() is not None:
        folder = kaggle_chest_dir()  # attached on Kaggle: read in place, no download
    if (folder / "train").is_dir():
        manifest = folder / "manifest.csv"
        if manifest.is_file():
            verify_file(manifest, info.files[0].sha256)
        verify_chest_images(folder, manifest if manifest.is_file() else None)
        return folder
    if download is None:
        download = not (config.is_offline() or config.is_smoke())
    why = "downloads disabled (smoke mode or CASEBOOK_OFFLINE=1)"
    if download:
        try:
            import kagglehub  # optional: present on Colab; `pip install kagglehub` elsewhere

            path = Path(kagglehub.dataset_download(info.extra["kaggle"]))
            hits = [p.parent for p in path.rglob("train") if (p / "NORMAL").is_dir()]
            if hits:
                return hits[0]
            why = f"kagglehub returned {path} without a train/NORMAL folder"
        except ImportError:
            why = "kagglehub is not installed (pip install kagglehub)"
        except Exception as e:  # credentials missing, network down ...
            why = f"kagglehub failed: {str(e)[:200]} (set KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json)"
    raise DataNotFoundError(
        f"dataset 'chest-xray' not found: put the Kaggle folders train/ and test/ (each with NORMAL/ and "
        f"PNEUMONIA/ inside) in {folder}/ (get them from {info.homepage}) [{why}]"
    )


def verify_all() -> dict[str, str]:
    """Resolve every registry entry without downloading; return {key: 'ok' | error message}."""
    status = {}
    for key in REGISTRY:
        try:
            dataset_dir(key, download=False)
            status[key] = "ok"
        except DataError as e:
            status[key] = str(e)
    return status


def available(key: str) -> bool:
    """True when dataset ``key`` is in the data root and verifies (never downloads)."""
    try:
        dataset_dir(key, download=False)
        return True
    except DataError:
        return False


def real_dir_or_none(key: str) -> Path | None:
    """Smoke mode: the real folder if present (verified), else None (caller builds a stand-in)."""
    try:
        return dataset_dir(key)
    except DataNotFoundError:
        if config.is_smoke():
            return None
        raise


def stratified_subset(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A deterministic, stratified subset of ``n`` indices (sorted)."""
    if n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


def describe() -> pd.DataFrame:
    """The registry as a table (dataset, files, licence, citation, status in the current data root)."""
    status = verify_all()
    return pd.DataFrame(
        [
            {
                "dataset": k,
                "files": ", ".join(f.name for f in i.files),
                "licence": i.licence,
                "citation": i.citation,
                "status": status[k] if status[k] == "ok" else "missing",
            }
            for k, i in REGISTRY.items()
        ]
    )
