"""Targets, inputs, train/validation/test splits, undersampling and pooling of the PDFs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import config
from .catalogue import STATUSES, RedshiftData

TARGETS = ("DeltaZ", "Success2", "Success3", "Flag3")


INPUTS = ("logPDF", "PDF", "logLikelihood")


def make_target(d: RedshiftData, target: str, threshold: float = 1e-3) -> tuple[np.ndarray, list[str]]:
    """Integer labels and class names for ``target``:

    * ``DeltaZ``: 1 if |ΔZ| < threshold (names built from the threshold used);
    * ``Success2``: success vs failure (spurious + mismatch); ``Success3``: success / spurious / mismatch;
    * ``Flag3``: flag 1 / flags 2 + 9 / flags 3 + 4.
    """
    if target == "DeltaZ":
        return (np.abs(d.delta_z) < threshold).astype(np.int64), [f"|ΔZ| ≥ {threshold:g}", f"|ΔZ| < {threshold:g}"]
    if target == "Success2":
        return (d.status == "success").astype(np.int64), ["failure", "success"]
    if target == "Success3":
        return np.array([STATUSES.index(s) for s in d.status], dtype=np.int64), list(STATUSES)
    if target == "Flag3":
        f = d.flag
        return np.select([f == 1, np.isin(f, [2, 9]), np.isin(f, [3, 4])], [0, 1, 2]).astype(np.int64), [
            "flag 1",
            "flags 2+9",
            "flags 3+4",
        ]
    raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def make_input(d: RedshiftData, input_data: str = "logPDF", idx=None) -> np.ndarray:
    """float32 (n, G, 1) network input: ``logPDF``, ``PDF`` (exp, rescaled by its max) or ``logLikelihood``
    (log-PDF + log-evidence)."""
    x = d.log_pdf if idx is None else d.log_pdf[idx]
    if input_data == "logPDF":
        out = x.astype(np.float32, copy=True)
    elif input_data == "PDF":
        out = np.exp(x - x.max(axis=1, keepdims=True)).astype(np.float32)
    elif input_data == "logLikelihood":
        ev = d.log_evidence if idx is None else d.log_evidence[idx]
        out = (x + ev[:, None]).astype(np.float32)
    else:
        raise ValueError(f"unknown input {input_data!r}; choose one of {', '.join(INPUTS)}")
    return out[..., None]


SEED_RETURN = (
    "X_train",
    "X_validation",
    "X_test",
    "target_train",
    "target_validation",
    "target_test",
    "Y_train",
    "Y_validation",
    "Y_test",
    "nb_class",
    "nom_classes",
)


@dataclass
class Dataset:
    """Train / validation / test arrays. Unpacks like the seed's 11 documented items, in their order
    (:data:`SEED_RETURN`)::

        (X_train, X_validation, X_test, target_train, target_validation, target_test,
         Y_train, Y_validation, Y_test, nb_class, nom_classes) = load_dataset("DeltaZ", False)

    and keeps casebook's attribute names too (``X_valid``, ``y_train``, ``n_classes``, ``idx_*``, ``z_*``)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: list[str]
    idx_train: np.ndarray
    idx_valid: np.ndarray
    idx_test: np.ndarray
    z_train: np.ndarray | None = None  # estimated redshift (second input of the 2-input model)
    z_valid: np.ndarray | None = None
    z_test: np.ndarray | None = None

    def onehot(self, y):
        return np.eye(self.n_classes, dtype=np.float32)[y]

    @property
    def Y_train(self):
        return self.onehot(self.y_train)

    @property
    def Y_valid(self):
        return self.onehot(self.y_valid)

    @property
    def Y_test(self):
        return self.onehot(self.y_test)

    X_validation = property(lambda self: self.X_valid)
    target_train = property(lambda self: self.y_train)
    target_validation = property(lambda self: self.y_valid)
    target_test = property(lambda self: self.y_test)
    Y_validation = property(lambda self: self.Y_valid)
    nb_class = property(lambda self: self.n_classes)
    nom_classes = property(lambda self: self.class_names)

    def __iter__(self):
        return iter(getattr(self, name) for name in SEED_RETURN)

    def __getitem__(self, index):
        """``r[0]`` is ``X_train``, ``r[-1]`` the class names, ``r[:3]`` the three inputs: the documented tuple."""
        return tuple(self)[index]

    def __len__(self):
        return len(SEED_RETURN)


def split_indices(y, seed: int = config.DEFAULT_SEED, valid: float = 0.15, test: float = 0.15):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    tr, va = train_test_split(tr, test_size=valid / (1 - test), stratify=y[tr], random_state=seed)
    return np.sort(tr), np.sort(va), np.sort(te)


def undersample_indices(idx: np.ndarray, y: np.ndarray, seed: int = config.DEFAULT_SEED) -> np.ndarray:
    """Balance classes among ``idx`` by dropping majority rows (use on the training indices only)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y[idx])
    m = counts[counts > 0].min()
    keep = [rng.choice(idx[y[idx] == c], m, replace=False) for c in np.unique(y[idx])]
    return np.sort(np.concatenate(keep))


def pool_pdfs(X: np.ndarray, factor: int) -> np.ndarray:
    """Max-pool log-PDFs ``(n, G[, 1])`` by ``factor`` along the grid (the tail is padded with each row's minimum):
    every peak keeps its height, the grid step grows ``factor`` times. Done once, before training, it makes an
    epoch about ``factor`` times cheaper than feeding the full 17,908 points."""
    x = X[..., 0] if X.ndim == 3 else X
    if factor <= 1:
        return X
    pad = (-x.shape[1]) % factor
    if pad:
        x = np.concatenate([x, np.repeat(x.min(axis=1, keepdims=True), pad, axis=1)], axis=1)
    return x.reshape(len(x), -1, factor).max(axis=2)[..., None].astype(np.float32)


def pooled(ds: Dataset, factor: int) -> Dataset:
    """``ds`` with every split's PDFs max-pooled by ``factor`` (:func:`pool_pdfs`)."""
    from dataclasses import replace

    return replace(
        ds,
        X_train=pool_pdfs(ds.X_train, factor),
        X_valid=pool_pdfs(ds.X_valid, factor),
        X_test=pool_pdfs(ds.X_test, factor),
    )


def with_extra_inputs(ds: Dataset, features: np.ndarray) -> Dataset:
    """``ds`` whose second input (``z_*``, used by the two-input model) holds ``features[idx]`` per split — e.g.
    the baseline's PDF summaries, so that the network sees what the baseline sees."""
    from dataclasses import replace

    f = np.asarray(features, dtype=np.float32)
    return replace(ds, z_train=f[ds.idx_train], z_valid=f[ds.idx_valid], z_test=f[ds.idx_test])
