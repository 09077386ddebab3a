"""Datasets, one module per family (registry, checksums, images, fetch, one per dataset, weights); here, their errors.

Resolution order for every dataset (full mode):

1. the data root (``$CASEBOOK_DATA``, default ``<repo>/data``), one folder per dataset as in the README's
   Data section::

       <root>/mnist/train-images-idx3-ubyte.gz ...      <root>/magic-gamma/magic04.data
       <root>/fashion-mnist/...                         <root>/california-housing/cal_housing.data
       <root>/chest-xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg
       <root>/weights/mobilenet_2_5_224_tf_no_top.h5

   every file is checked against the sha256 in :data:`REGISTRY`;
2. a download from the official source, verified, written atomically (a temporary file renamed into
   place: a half-written file is never left behind);
3. :class:`DataNotFoundError`, whose message names every missing file, where to put it and where to get it.

Smoke mode (``CASEBOOK_SMOKE=1``) never downloads: it returns a small deterministic subset of the real data
when present, else a small synthetic stand-in with the same schema (flagged by ``.attrs['synthetic']`` on
DataFrames, or the ``synthetic`` attribute of the returned bundle). Full mode never substitutes synthetic data.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class: every data problem raises a subclass with a one-line, actionable message."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset is neither in the data root nor downloadable."""


class ChecksumError(DataError):
    """A file's sha256 differs from the registry's."""


class DataFormatError(DataError, ValueError):
    """A file is truncated or not in the expected format."""


class DataRootError(DataError, FileNotFoundError):
    """``$CASEBOOK_DATA`` points at a folder that does not exist."""
