"""Safe persistence of scikit-learn objects: skops files checked against an exact allow-list of types
(nothing in a file is executed; pickle is never used)."""

from __future__ import annotations

from pathlib import Path

from . import config

# The exact type names, beyond skops' own default trust, that the objects casebook writes contain: the
# train-classifier bundle (a random forest's trees) and the gamma preprocessing pipelines (every outlier and
# balance option). tests/test_security.py rebuilds each of those objects and checks that this list equals
# what skops reports for them, so it cannot drift. Anything else in a file is refused.
TRUSTED_SKOPS_TYPES = (
    "casebook.preprocessing.IQRClipper",
    "casebook.preprocessing.IQROutlierRemover",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.pipeline.Pipeline",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
)


class UntrustedFileError(ValueError):
    """A model file asks for types or values casebook never writes: refused before anything is built."""


def save_skops(obj, path: str | Path) -> Path:
    """Persist a scikit-learn object with skops (a safe format: loading runs no arbitrary code), atomically."""
    import skops.io as sio

    with config.atomic_path(path) as tmp:
        sio.dump(obj, tmp)
    return Path(path)


def load_skops(path: str | Path):
    """Load a skops file whose types are skops' defaults or exactly those in :data:`TRUSTED_SKOPS_TYPES`.

    Raises :class:`UntrustedFileError` naming every other type the file asks for (nothing is built then).
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    foreign = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if foreign:
        raise UntrustedFileError(
            f"{path}: refusing to load untrusted types {', '.join(foreign)} (casebook writes none of them)"
        )
    return sio.load(path, trusted=list(untrusted))
