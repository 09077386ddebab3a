"""The UCI MAGIC gamma-telescope events (notebooks 01, 02)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from . import DataFormatError
from .fetch import real_dir_or_none, stratified_subset

MAGIC_FEATURES = ["fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long", "fM3Trans", "fAlpha", "fDist"]


def load_magic(n: int | None = None) -> pd.DataFrame:
    """UCI MAGIC gamma telescope: 19,020 rows; 10 float64 features (:data:`MAGIC_FEATURES`) and ``class``
    ('g' gamma / 'h' hadron). Smoke mode: 1,000 stratified rows, or a synthetic stand-in."""
    n = n or config.pick(None, 1000)
    folder = real_dir_or_none("magic-gamma")
    if folder is None:
        r = np.random.default_rng(0)
        m = n or 1000
        cls = np.where(r.random(m) < 0.35, "h", "g")
        shift = (cls == "h")[:, None] * r.normal(0.8, 0.3, (1, 10))
        base = np.abs(r.normal(0, 1, (m, 10)) + shift) * np.array([50, 20, 3, 0.4, 0.2, 40, 30, 15, 30, 190])
        df = pd.DataFrame(base, columns=MAGIC_FEATURES)
        df["class"] = cls
        df.attrs["synthetic"] = True
        return df
    df = pd.read_csv(folder / "magic04.data", header=None, names=MAGIC_FEATURES + ["class"])
    if df.shape[1] != 11 or not set(df["class"]).issubset({"g", "h"}):
        raise DataFormatError(f"{folder / 'magic04.data'}: expected 11 columns and classes g/h")
    df["class"] = df["class"].astype(str)
    idx = stratified_subset(df["class"].to_numpy(), n or len(df))
    df = df.iloc[idx].reset_index(drop=True)
    df.attrs["synthetic"] = False
    return df
