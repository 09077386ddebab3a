"""MNIST and Fashion-MNIST: IDX files, the train/test arrays, torchvision datasets, smoke stand-ins."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config
from . import DataFormatError
from .fetch import real_dir_or_none, stratified_subset
from .registry import IDX_NAMES

_IDX_DTYPES = {0x08: np.uint8}


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array of its declared shape."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFormatError(f"{path}: not a readable IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not 1 <= raw[3] <= 4:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{path}: truncated or padded IDX file (header says {dims} = {expected} values, found {len(raw) - header})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass
class ImageSplits:
    """Image classification data: uint8 images (N, 28, 28) and int64 labels, train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    synthetic: bool = False

    def __iter__(self):  # unpacks like Keras: (x_train, y_train), (x_test, y_test) = load_mnist()
        return iter(((self.x_train, self.y_train), (self.x_test, self.y_test)))


MNIST_CLASSES = [str(i) for i in range(10)]


FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 stand-ins: each class is a fixed random blob pattern plus noise and a small shift."""
    rng = np.random.default_rng(1234)
    templates = (rng.random((10, 7, 7)) > 0.6).astype(np.float32)
    templates = np.kron(templates, np.ones((4, 4), np.float32))  # (10, 28, 28)
    r = np.random.default_rng(seed)
    y = r.integers(0, 10, n)
    x = templates[y] * 200 + r.normal(0, 40, (n, 28, 28))
    x = np.roll(x, r.integers(-2, 3), axis=2)
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def load_mnist(kind: str = "mnist", n_train: int | None = None, n_test: int | None = None) -> ImageSplits:
    """MNIST or Fashion-MNIST (``kind='fashion-mnist'``) from the four IDX files.

    Returns an :class:`ImageSplits` with x: uint8 (N, 28, 28), y: int64 (N,); 60,000 / 10,000 in full mode.
    Smoke mode: 2,000 / 500 (stratified, fixed), or synthetic stand-ins when the files are absent.
    """
    names = FASHION_CLASSES if kind == "fashion-mnist" else MNIST_CLASSES
    n_train = n_train or config.pick(None, 2000)
    n_test = n_test or config.pick(None, 500)
    folder = real_dir_or_none(kind)
    if folder is None:
        xtr, ytr = _synthetic_images(n_train, 0)
        xte, yte = _synthetic_images(n_test, 1)
        return ImageSplits(xtr, ytr, xte, yte, names, synthetic=True)
    arrays = [load_idx(folder / n) for n in IDX_NAMES]
    xtr, ytr, xte, yte = arrays
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataFormatError(f"{folder}: image and label counts differ")
    ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
    i, j = stratified_subset(ytr, n_train or len(ytr)), stratified_subset(yte, n_test or len(yte))
    return ImageSplits(xtr[i], ytr[i], xte[j], yte[j], names)


def torchvision_dataset(kind: str = "mnist", train: bool = True, transform=None):
    """The same arrays as a torchvision-style dataset (``(PIL image, label)`` items, optional transform)."""
    from PIL import Image
    from torchvision.datasets import VisionDataset

    splits = load_mnist(kind)
    x, y = (splits.x_train, splits.y_train) if train else (splits.x_test, splits.y_test)

    class _ArrayDataset(VisionDataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            img = Image.fromarray(x[i])  # uint8 (28, 28) → mode "L"
            return (self.transform(img) if self.transform else img), int(y[i])

    return _ArrayDataset(root=str(config.data_root()), transform=transform)
