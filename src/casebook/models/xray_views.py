"""Nuisance augmentation of chest X-rays (the image detail, compression and exposure a new hospital changes) and
the fixed degradations of a "shifted validation" view: TensorFlow ops on grey levels 0-255, stateless (a view
is a function of its seed and the image's position, so every run sees the same pre-drawn views)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class NuisanceStrength:
    """The ranges one augmented view draws from (uniform; gamma log-uniform). Blur widths are in pixels of a
    224-pixel image (scaled to the working size). Detail changes the image with probability ``p_detail``: a
    Gaussian blur, a down- then up-scaling, or an unsharp-mask sharpening, one third each, so that sharpness
    stops telling the classes apart in either direction (on the training split, PNEUMONIA images are blurrier:
    their median Laplacian variance is 96 against NORMAL's 151; a blur of σ 0.3-1.2 px spans and exceeds that
    gap). No horizontal flip: a chest X-ray is not left-right symmetric."""

    rotation_deg: float = 7.0
    zoom: float = 0.08
    shift: float = 0.05
    p_detail: float = 0.75
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    downscale: tuple[float, float] = (0.4, 0.85)
    sharpen: tuple[float, float] = (0.3, 1.0)
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 90)
    gamma: tuple[float, float] = (0.75, 1.33)
    contrast: tuple[float, float] = (0.8, 1.2)

    def as_dict(self) -> dict:
        return asdict(self)


NUISANCE = NuisanceStrength()
SHIFTS = {  # the fixed degradations of the shifted-validation views: (kind, value)
    "blur σ 0.8": ("blur", 0.8),
    "down/up × 0.6": ("downup", 0.6),
    "JPEG q 40": ("jpeg", 40),
}


def _uniform(seed, k: int, low: float, high: float):
    import tensorflow as tf

    return tf.random.stateless_uniform([], seed=seed + tf.constant([0, 1], tf.int64) * k, minval=low, maxval=high)


def _affine(img, seed, s: NuisanceStrength):
    """Rotation, zoom and shift about the image centre, black outside (one projective transform)."""
    import tensorflow as tf

    h, w = tf.cast(tf.shape(img)[0], tf.float32), tf.cast(tf.shape(img)[1], tf.float32)
    angle = _uniform(seed, 1, -1.0, 1.0) * s.rotation_deg * math.pi / 180
    zoom = 1.0 + _uniform(seed, 2, -s.zoom, s.zoom)
    tx, ty = _uniform(seed, 3, -s.shift, s.shift) * w, _uniform(seed, 4, -s.shift, s.shift) * h
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom  # the map from output to input pixels
    matrix = tf.stack([cos, -sin, cx - cos * cx + sin * cy - tx, sin, cos, cy - sin * cx - cos * cy - ty, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=img[None],
        transforms=matrix[None],
        output_shape=tf.shape(img)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return out[0]


def gaussian_blur(img, sigma):
    """A grey image (H, W, 1), float, blurred by a separable Gaussian of width ``sigma`` pixels."""
    import tensorflow as tf

    radius = 4
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2 * tf.cast(sigma, tf.float32) ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    padded = tf.pad(img[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    rows = tf.nn.conv2d(padded, tf.reshape(kernel, [-1, 1, 1, 1]), 1, "VALID")
    return tf.nn.conv2d(rows, tf.reshape(kernel, [1, -1, 1, 1]), 1, "VALID")[0]


def down_up(img, factor):
    """A grey image (H, W, 1) scaled down by ``factor`` (antialiased) and back up: the detail of a smaller scan."""
    import tensorflow as tf

    size = tf.shape(img)[:2]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32), 1)
    return tf.image.resize(tf.image.resize(img, small, antialias=True), size, method="bilinear")


def jpeg(img, quality):
    """A grey image (H, W, 1), float 0-255, re-compressed as JPEG at ``quality``."""
    import tensorflow as tf

    as_bytes = tf.cast(tf.round(tf.clip_by_value(img, 0, 255)), tf.uint8)
    return tf.cast(tf.image.adjust_jpeg_quality(as_bytes, quality), tf.float32)


def augment_view(img, seed, size: int, s: NuisanceStrength = NUISANCE):
    """One augmented view of a grey image (H, W, 1), grey levels 0-255, of a ``size``-pixel dataset: affine →
    detail (blur / down-up / sharpen, or none) → JPEG (or none) → gamma → contrast. ``seed``: int64 pair."""
    import tensorflow as tf

    x = _affine(tf.cast(img, tf.float32), seed, s)
    scale = size / 224
    sigma = _uniform(seed, 6, *s.blur_sigma) * scale
    factor = _uniform(seed, 7, *s.downscale)
    amount = _uniform(seed, 12, *s.sharpen)
    third, choice = s.p_detail / 3, _uniform(seed, 5, 0.0, 1.0)
    x = tf.case(
        [
            (choice < third, lambda: gaussian_blur(x, sigma)),
            (choice < 2 * third, lambda: down_up(x, factor)),
            (choice < 3 * third, lambda: x + amount * (x - gaussian_blur(x, scale))),
        ],
        default=lambda: x,
    )
    quality = tf.cast(_uniform(seed, 8, *s.jpeg_quality), tf.int32)
    x = tf.cond(_uniform(seed, 9, 0.0, 1.0) < s.p_jpeg, lambda: jpeg(x, quality), lambda: x)
    gamma = tf.exp(_uniform(seed, 10, math.log(s.gamma[0]), math.log(s.gamma[1])))
    x = 255.0 * (tf.clip_by_value(x, 0, 255) / 255.0) ** gamma
    mean = tf.reduce_mean(x)
    return tf.clip_by_value((x - mean) * _uniform(seed, 11, *s.contrast) + mean, 0, 255)


def _grey(images):
    images = np.asarray(images)
    return images[..., :1] if images.ndim == 4 else images[..., None]


def augmented_views(images, view: int, seed: int, s: NuisanceStrength = NUISANCE, batch_size: int = 64):
    """View ``view`` (≥ 1) of every image of ``images`` (N, H, W[, C] grey levels, channels equal) as float32
    (N, H, W, C): image ``i`` drawn with the seed ``(seed · 1000 + view, i)``, so a view never depends on
    the order of the calls."""
    import tensorflow as tf

    grey = _grey(images)
    size = grey.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((grey, tf.range(len(grey), dtype=tf.int64)))
    base = tf.constant(seed * 1000 + view, tf.int64)
    ds = ds.map(lambda x, i: augment_view(x, tf.stack([base, i]), size, s), num_parallel_calls=tf.data.AUTOTUNE)
    out = np.concatenate([b.numpy() for b in ds.batch(batch_size)])
    return _channels_like(out, images)


def degraded(images, kind: str, value) -> np.ndarray:
    """``images`` (N, H, W[, C] grey levels) degraded one fixed way, as float32 in their shape: ``blur``
    (Gaussian, σ = ``value`` pixels of a 224-pixel image), ``downup`` (scale ``value``) or ``jpeg`` (quality
    ``value``). The shifted-validation views: a proxy for a scanner's change of detail, never the test set."""
    import tensorflow as tf

    ops = {
        "blur": lambda x: gaussian_blur(x, value * x.shape[0] / 224),
        "downup": lambda x: down_up(x, value),
        "jpeg": lambda x: jpeg(x, int(value)),
    }
    if kind not in ops:
        raise ValueError(f"unknown degradation {kind!r}; valid: {', '.join(ops)}")
    grey = tf.constant(_grey(images), tf.float32)
    out = np.stack([ops[kind](x).numpy() for x in tf.unstack(grey)]) if len(grey) else grey.numpy()
    return _channels_like(np.clip(out, 0, 255), images)


def _channels_like(grey: np.ndarray, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        return grey[..., 0].astype(np.float32)
    return np.repeat(grey, images.shape[-1], axis=-1).astype(np.float32)
