"""Leak-free preprocessing: every step is a pipeline step, so it is fitted inside CV folds on training rows only.

Samplers (SMOTE, :class:`IQROutlierRemover`) run only while a pipeline is *fitted*; at predict time they are
skipped, so resampled or removed rows never reach evaluation.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import PowerTransformer, StandardScaler
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from . import config


class IQRClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip each feature to [Q1 − k·IQR, Q3 + k·IQR], the bounds learned from the rows it is fitted on."""

    def __init__(self, k: float = 1.5):
        self.k = k

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        q1, q3 = np.percentile(X, [25, 75], axis=0)
        self.lower_, self.upper_ = q1 - self.k * (q3 - q1), q3 + self.k * (q3 - q1)
        return self

    def transform(self, X):
        check_is_fitted(self)
        return np.clip(validate_data(self, X, dtype=np.float64, reset=False), self.lower_, self.upper_)


class GeoSimilarity(TransformerMixin, BaseEstimator):
    """Append, to the input columns, the RBF similarity exp(−γ·d²) of each row's (latitude, longitude) to
    ``n_clusters`` k-means centres of the rows it is fitted on (training rows only; the target is never used).

    A small MLP given two raw coordinates has to carve coastlines and cities out of a few ReLUs; these columns
    hand it "how close is this block group to each dense area" directly. ``gamma`` is in 1/degree².
    ``columns``: the coordinates' names in a DataFrame, or their integer positions (any 2-D input)."""

    def __init__(
        self,
        n_clusters: int = 50,
        gamma: float = 2.0,
        columns=("Latitude", "Longitude"),
        seed: int = config.DEFAULT_SEED,
    ):
        self.n_clusters, self.gamma, self.columns, self.seed = n_clusters, gamma, columns, seed

    def _coordinate_positions(self) -> list[int]:
        """Where ``columns`` are in the validated input (names looked up in the fitted DataFrame's columns)."""
        columns = list(self.columns)
        if columns and all(isinstance(c, str) for c in columns):
            names = list(getattr(self, "feature_names_in_", []))
            if not set(columns) <= set(names):
                raise ValueError(f"GeoSimilarity needs a DataFrame with columns {columns}")
            return [names.index(c) for c in columns]
        if columns and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in columns):
            if not all(0 <= c < self.n_features_in_ for c in columns):
                raise ValueError(
                    f"GeoSimilarity's column positions {columns} are out of range: X has {self.n_features_in_} "
                    "feature(s)"
                )
            return [int(c) for c in columns]
        raise ValueError(f"columns must be column names or integer positions, got {self.columns!r}")

    def fit(self, X, y=None):
        from sklearn.cluster import KMeans

        X = validate_data(self, X, dtype=np.float64)
        coords = X[:, self._coordinate_positions()]
        if not 1 <= self.n_clusters <= len(coords):
            raise ValueError(
                f"n_clusters must be between 1 and the number of rows (n_samples = {len(coords)}), "
                f"got {self.n_clusters}"
            )
        self.kmeans_ = KMeans(self.n_clusters, n_init=10, random_state=self.seed).fit(coords)
        return self

    def transform(self, X):
        from sklearn.metrics.pairwise import rbf_kernel

        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        similarity = rbf_kernel(X[:, self._coordinate_positions()], self.kmeans_.cluster_centers_, gamma=self.gamma)
        return np.hstack([X, similarity])

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        n_centres = len(self.kmeans_.cluster_centers_)
        return np.asarray([*names, *(f"geo_sim_{i}" for i in range(n_centres))], dtype=object)


class IQROutlierRemover(BaseEstimator):
    """A sampler (imblearn ``fit_resample`` protocol): drops *training* rows with any feature outside
    [Q1 − k·IQR, Q3 + k·IQR]. Test rows are never dropped: samplers are skipped at predict time.
    ``fit_resample`` returns X as it came (a DataFrame keeps its index) and y as an array."""

    def __init__(self, k: float = 3.0):
        self.k = k

    def fit(self, X, y=None):
        self.clipper_ = IQRClipper(self.k).fit(validate_data(self, X, dtype=np.float64))
        return self

    def fit_resample(self, X, y):
        checked, _ = validate_data(self, X, y, dtype=np.float64)
        self.clipper_ = IQRClipper(self.k).fit(checked)
        keep = np.all((checked >= self.clipper_.lower_) & (checked <= self.clipper_.upper_), axis=1)
        self.n_removed_ = int((~keep).sum())
        return (X[keep] if not isinstance(X, pd.DataFrame) else X.loc[keep]), np.asarray(y)[keep]


OUTLIER_OPTIONS = ("none", "clip", "remove")
BALANCE_OPTIONS = ("none", "smote", "class_weight")


def with_class_weight(model, y=None):
    """``model`` asked to weigh classes inversely to their frequency, where its API allows it."""
    model = clone(model)
    params = model.get_params()
    if "class_weight" in params:
        model.set_params(class_weight="balanced")
    elif "scale_pos_weight" in params and y is not None:  # XGBoost
        y = np.asarray(y)
        model.set_params(scale_pos_weight=float((y == 0).sum() / max((y == 1).sum(), 1)))
    return model


def make_pipeline(
    model,
    outliers: str = "none",
    balance: str = "none",
    power: bool = True,
    seed: int = config.DEFAULT_SEED,
    y_train=None,
):
    """imblearn Pipeline: [outliers] → Yeo-Johnson → StandardScaler → [SMOTE] → model.

    ``outliers``: none / clip (:class:`IQRClipper`) / remove (:class:`IQROutlierRemover`, training rows only);
    ``balance``: none / smote / class_weight (``y_train`` is needed for XGBoost's ``scale_pos_weight``).
    """
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline

    if outliers not in OUTLIER_OPTIONS or balance not in BALANCE_OPTIONS:
        raise ValueError(f"outliers must be one of {OUTLIER_OPTIONS}, balance one of {BALANCE_OPTIONS}")
    steps = []
    if outliers == "clip":
        steps.append(("outliers", IQRClipper()))
    elif outliers == "remove":
        steps.append(("outliers", IQROutlierRemover()))
    if power:
        steps.append(("power", PowerTransformer(method="yeo-johnson", standardize=False)))
    steps.append(("scale", StandardScaler()))
    if balance == "smote":
        steps.append(("smote", SMOTE(random_state=seed)))
    if balance == "class_weight":
        model = with_class_weight(model, y_train)
    steps.append(("model", model))
    return Pipeline(steps)


def stratified_split(X, y, test_size: float = 0.25, seed: int = config.DEFAULT_SEED):
    """One stratified, seeded split: the test part keeps the real class ratio and is used once, at the end."""
    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)


def split_three(X, y, test: float = 0.201, validation: float = 0.099, seed: int = config.DEFAULT_SEED):
    """Stratified train / test / validation split (default sizes: the seed project's 7,000 / 2,010 / 990 of
    10,000). Returns ``X_train, X_test, X_val, y_train, y_test, y_val``."""
    n = len(y)
    n_val, n_test = round(n * validation), round(n * test)
    X_rest, X_val, y_rest, y_val = train_test_split(X, y, test_size=n_val, stratify=y, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X_rest, y_rest, test_size=n_test, stratify=y_rest, random_state=seed
    )
    return X_train, X_test, X_val, y_train, y_test, y_val


def gamma_xy(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """MAGIC frame → (features, y) with hadron = 1 (the positive class, as in the seed project), gamma = 0."""
    return df.drop(columns="class"), (df["class"].to_numpy() == "h").astype(int)


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def images_to_tensor(x, mean: float = MNIST_MEAN, std: float = MNIST_STD):
    """uint8 images (N, 28, 28) → normalised float32 torch tensor (N, 1, 28, 28), all at once (vectorised)."""
    import torch

    return (torch.from_numpy(np.ascontiguousarray(x)).float().div_(255).sub_(mean).div_(std)).unsqueeze(1)


AFFINE_SUBPIXEL = 256  # random_affine's source positions snap to 1/256 pixel: exact interpolation weights


def random_affine(x, generator, max_degrees: float = 10.0, max_shift: float = 2.0):
    """A batch of image tensors (N, C, H, W), each rotated about its centre by up to ``max_degrees`` and shifted
    by up to ``max_shift`` pixels (uniform, drawn from ``generator`` on the CPU), bilinear, edges extended; in the
    batch's device, dtype and memory layout. The MNIST CNN's light training augmentation.

    The same bits on every CPU, thread count and vector width: float64 element-wise steps only, each rounded
    once by IEEE rules whatever the vectorisation, and one rounding to the batch's dtype at the end. Source
    positions snap to 1/:data:`AFFINE_SUBPIXEL` pixel, so the bilinear weights are exact and a last-bit
    difference between cosine implementations moves nothing unless it straddles a snapping boundary. (Torch's
    ``affine_grid`` + ``grid_sample`` are not: ``linspace`` computes vector lanes and the remainder with
    different formulas, so a 28-pixel grid rounds differently with AVX2 and AVX-512, and the interpolation
    rounds differently per vector path; notebook 05's augmented run differed between two CPUs for that.)"""
    import torch

    n, c, h, w = x.shape
    dev = x.device if x.device.type != "mps" else torch.device("cpu")  # MPS has no float64
    draw = (torch.rand(n, 3, generator=generator) * 2 - 1).double()  # uniform in [-1, 1]
    angle = draw[:, 0] * np.deg2rad(max_degrees)
    params = torch.stack([torch.cos(angle), torch.sin(angle), draw[:, 1] * max_shift, draw[:, 2] * max_shift], 1)
    cos, sin, shift_x, shift_y = params.to(dev)[:, :, None, None].unbind(1)
    rows = torch.arange(h, dtype=torch.float64, device=dev)[:, None] - (h - 1) / 2  # from the centre, in pixels
    cols = torch.arange(w, dtype=torch.float64, device=dev)[None, :] - (w - 1) / 2
    src_x = torch.round((cos * cols - sin * rows + shift_x + (w - 1) / 2) * AFFINE_SUBPIXEL) / AFFINE_SUBPIXEL
    src_y = torch.round((sin * cols + cos * rows + shift_y + (h - 1) / 2) * AFFINE_SUBPIXEL) / AFFINE_SUBPIXEL
    left, top = torch.floor(src_x), torch.floor(src_y)
    fx, fy = (src_x - left)[:, None], (src_y - top)[:, None]
    pixels = x.to(dev, torch.float64).reshape(n, c, h * w)

    def at(row, col):  # pixel values at (row, col) per image, edges extended
        flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long().reshape(n, 1, h * w).expand(n, c, h * w)
        return pixels.gather(2, flat).reshape(n, c, h, w)

    upper = (1 - fx) * at(top, left) + fx * at(top, left + 1)
    lower = (1 - fx) * at(top + 1, left) + fx * at(top + 1, left + 1)
    out = ((1 - fy) * upper + fy * lower).to(x.device, x.dtype)
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return out.contiguous(memory_format=layout)


def scale_images(x) -> np.ndarray:
    """uint8 images (N, H, W) → float32 in [0, 1] with a trailing channel axis (N, H, W, 1), as Keras expects."""
    return (np.asarray(x).astype("float32") / 255.0)[..., None]


def holdout_split(n: int, n_val: int, y=None, seed: int = config.DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, validation) carving a stratified validation set of ``n_val`` rows out of training
    data (the test set is never used for monitoring)."""
    idx = np.arange(n)
    tr, va = train_test_split(idx, test_size=n_val, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(va)


# ------------------------------------------------------------------------------------------------ chest X-rays


def grouped_split(index, val_fraction: float = 0.15, seed: int = config.DEFAULT_SEED):
    """Split a chest X-ray index's *training* rows into train / validation, stratified by label and grouped by
    patient (no patient on both sides). Returns two DataFrames."""
    from sklearn.model_selection import StratifiedGroupKFold

    df = index[index["split"] == "train"].reset_index(drop=True)
    k = max(2, round(1 / val_fraction))
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    tr, va = next(cv.split(df, df["label"], groups=df["patient_id"]))
    return df.iloc[tr].reset_index(drop=True), df.iloc[va].reset_index(drop=True)


def xray_dataset(
    paths,
    labels,
    img_size: int = 224,
    preprocess=None,
    batch_size: int = 32,
    shuffle: bool = False,
    cache: bool = True,
    seed: int = config.DEFAULT_SEED,
):
    """``tf.data`` pipeline streaming JPEGs from disk: decode as grey → pad to square (keeping the aspect ratio)
    → resize to ``img_size`` → grey to 3 channels → cache (as uint8-range images, not the float set) →
    [shuffle] → batch → the backbone's own ``preprocess`` → prefetch. Yields ``(images, labels)``.

    Every path is checked first (:func:`casebook.data.images.check_images`): an unreadable image is named in a
    ``DataFormatError`` here, instead of surfacing as a TensorFlow decode error in the middle of training."""
    import tensorflow as tf

    from .data.images import check_images

    check_images(paths)

    def load(path, label):
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=1)
        img = tf.image.resize_with_pad(img, img_size, img_size, antialias=True)
        img = tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
        return tf.image.grayscale_to_rgb(img), label

    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, dtype=np.float32)))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if preprocess is not None:
        ds = ds.map(lambda x, y: (preprocess(tf.cast(x, tf.float32)), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class XrayData:
    """The pneumonia training and validation splits as file lists (frames with ``path`` and ``label``), turned
    into :func:`xray_dataset` pipelines once per process by :meth:`datasets`. It pickles as the lists alone, so
    that a trial on another machine (a Ray worker) rebuilds its own pipelines from them."""

    def __init__(self, train: pd.DataFrame, val: pd.DataFrame, img_size: int, batch_size: int, seed: int):
        self.frames = {"train": train[["path", "label"]], "val": val[["path", "label"]]}
        self.img_size, self.batch_size, self.seed = img_size, batch_size, seed
        self._built: dict | None = None

    def datasets(self) -> dict:
        """``{"train": shuffled pipeline, "val": pipeline}``, built on first use."""
        if self._built is None:
            train, val = self.frames["train"], self.frames["val"]
            size, batch = self.img_size, self.batch_size
            self._built = {
                "train": xray_dataset(train.path, train.label, size, batch_size=batch, shuffle=True, seed=self.seed),
                "val": xray_dataset(val.path, val.label, size, batch_size=batch),
            }
        return self._built

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_built": None}


def image_statistics(paths, dark_level: int = 16, frame: float = 0.08) -> pd.DataFrame:
    """Simple per-image statistics that expose acquisition artefacts (exposure, contrast, black borders, detail):
    mean and standard deviation of the grey levels (0–255), the fraction of near-black pixels (≤ ``dark_level``),
    the mean grey level of a border frame ``frame`` × the image size wide, and ``sharpness``, the variance of the
    4-neighbour Laplacian (low for a blurry image). One row per path, in order."""
    from PIL import Image

    rows = []
    for path in paths:
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        h, w = img.shape
        dh, dw = max(1, round(frame * h)), max(1, round(frame * w))
        border = np.concatenate([img[:dh].ravel(), img[-dh:].ravel(), img[:, :dw].ravel(), img[:, -dw:].ravel()])
        inner = img[1:-1, 1:-1]
        laplacian = img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:] - 4 * inner
        rows.append((img.mean(), img.std(), np.mean(img <= dark_level), border.mean(), laplacian.var()))
    return pd.DataFrame(rows, columns=["mean", "contrast", "dark_fraction", "border_mean", "sharpness"])


def class_weights(y) -> dict:
    """Inverse-frequency class weights (``equilibrate``) of integer labels: n / (n_classes * count), scikit-learn's
    ``compute_class_weight("balanced")``."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y).astype(int)
    classes = np.unique(y)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}
