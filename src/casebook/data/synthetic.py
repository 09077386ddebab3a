"""scikit-learn's make_classification with the seed's defaults (notebook 03)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config

SYNTHETIC_DEFAULTS = dict(
    n_samples=10_000,
    n_features=10,
    n_informative=5,
    n_redundant=0,
    n_classes=4,
    n_clusters_per_class=1,
    class_sep=3.0,
    seed=config.DEFAULT_SEED,
)  # the seed project's configuration


def make_synthetic(
    n_samples: int = 10_000,
    n_features: int = 10,
    n_informative: int = 5,
    n_redundant: int = 0,
    n_classes: int = 4,
    n_clusters_per_class: int = 1,
    class_sep: float = 3.0,
    seed: int = config.DEFAULT_SEED,
    target: str = "target",
) -> pd.DataFrame:
    """scikit-learn's ``make_classification`` as a DataFrame: float64 columns ``x0 … x{n-1}`` and an int64
    ``target`` column. Raises ValueError (with scikit-learn's reason) for impossible combinations."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=n_redundant,
        n_classes=n_classes,
        n_clusters_per_class=n_clusters_per_class,
        class_sep=class_sep,
        random_state=seed,
    )
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    df[target] = y.astype(np.int64)
    return df
