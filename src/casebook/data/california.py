"""California Housing (notebook 04), read from the StatLib file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from . import DataFormatError
from .fetch import real_dir_or_none

CALIFORNIA_FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]


def california_from_raw(raw: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """scikit-learn's transformation of the 9 raw StatLib columns into its 8 features + MedHouseVal ($100k)."""
    d = raw[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]].astype(np.float64)
    y, x = d[:, 0] / 1e5, d[:, 1:].copy()
    x[:, 2] /= x[:, 5]  # AveRooms = totalRooms / households
    x[:, 3] /= x[:, 5]  # AveBedrms = totalBedrooms / households
    x[:, 5] = x[:, 4] / x[:, 5]  # AveOccup = population / households
    return pd.DataFrame(x, columns=CALIFORNIA_FEATURES), pd.Series(y, name="MedHouseVal")


def load_california_housing(n: int | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """California Housing: X (20,640 x 8 float64, scikit-learn's features), y MedHouseVal in $100,000
    (capped at 5.00001). Smoke mode: 2,000 rows, or a synthetic stand-in."""
    n = n or config.pick(None, 2000)
    folder = real_dir_or_none("california-housing")
    if folder is None:
        r = np.random.default_rng(0)
        m = n or 2000
        households = r.integers(100, 1000, m)
        raw = np.column_stack(
            [
                r.uniform(-124, -114, m),
                r.uniform(32, 42, m),
                r.integers(1, 52, m),
                households * r.uniform(3, 8, m),
                households * r.uniform(0.9, 1.2, m),
                households * r.uniform(2, 4, m),
                households,
                r.gamma(3, 1.3, m),
                np.zeros(m),
            ]
        )
        raw[:, 8] = np.clip(0.4 * raw[:, 7] + r.normal(0, 0.5, m), 0.15, 5.00001) * 1e5
        x, y = california_from_raw(raw)
        x.attrs["synthetic"] = True
        return x, y
    path = folder / "cal_housing.data"
    raw = np.loadtxt(path, delimiter=",")
    if raw.ndim != 2 or raw.shape[1] != 9:
        raise DataFormatError(f"{path}: expected 9 comma-separated columns, got shape {raw.shape}")
    x, y = california_from_raw(raw)
    if n:
        idx = np.sort(np.random.default_rng(0).choice(len(x), size=min(n, len(x)), replace=False))
        x, y = x.iloc[idx].reset_index(drop=True), y.iloc[idx].reset_index(drop=True)
    x.attrs["synthetic"] = False
    return x, y
