"""The Kermany chest X-rays (notebook 08): an index of files, labels and patients."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from . import DataFormatError
from .fetch import real_dir_or_none

CHEST_CLASSES = ["NORMAL", "PNEUMONIA"]


_PATIENT_RE = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)-")


def patient_id(file_name: str) -> str:
    """Patient id from a Kermany file name: ``person1372_bacteria_3501.jpeg`` → ``person1372``,
    ``IM-0011-0001-0002.jpeg`` → ``IM-0011``, ``NORMAL2-IM-0007-0001.jpeg`` → ``NORMAL2-IM-0007``."""
    m = _PATIENT_RE.match(Path(file_name).name)
    if not m:
        raise DataFormatError(f"cannot parse a patient id from file name {file_name!r}")
    return m.group(1) or m.group(2)


def _synthetic_chest(n_per_class: int = 24) -> Path:
    """Tiny grey JPEGs in the Kaggle layout (a temp folder): 'pneumonia' images carry a bright haze."""
    from PIL import Image

    root = Path(tempfile.gettempdir()) / "casebook-synthetic" / "chest-xray"
    done = root / ".complete"
    if done.is_file():
        return root
    r = np.random.default_rng(0)
    for split, n in (("train", n_per_class), ("test", n_per_class // 2)):
        for label, cls in enumerate(CHEST_CLASSES):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                img = r.normal(90, 25, (64, 64)) + label * 60 * np.exp(-((np.arange(64) - 32) ** 2) / 200)[None, :]
                name = f"person{k}_bacteria_{k}.jpeg" if label else f"IM-{k:04d}-0001.jpeg"
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGB").save(d / name)
    done.touch()
    return root


def chest_xray_index(n_per_class: int | None = None) -> pd.DataFrame:
    """One row per image: ``path, split, label (0 NORMAL / 1 PNEUMONIA), label_name, patient_id, subtype``.

    Images are not read here (read them lazily, e.g. with ``tf.data``). Smoke mode: ``n_per_class`` (default
    16) images per split and class, or a synthetic stand-in folder.
    """
    n_per_class = n_per_class or config.pick(None, 16)
    folder = real_dir_or_none("chest-xray")
    synthetic = folder is None
    if synthetic:
        folder = _synthetic_chest()
    rows = []
    for split in ("train", "val", "test"):
        for label, cls in enumerate(CHEST_CLASSES):
            files = sorted((folder / split / cls).glob("*.jp*g"))
            if n_per_class:
                files = files[:: max(1, len(files) // n_per_class)][:n_per_class]
            for p in files:
                subtype = "bacteria" if "_bacteria_" in p.name else "virus" if "_virus_" in p.name else "normal"
                rows.append((str(p), split, label, cls, patient_id(p.name), subtype))
    df = pd.DataFrame(rows, columns=["path", "split", "label", "label_name", "patient_id", "subtype"])
    if df.empty:
        raise DataFormatError(f"{folder}: no .jpeg files under train/ or test/")
    df.attrs["synthetic"] = synthetic
    return df
