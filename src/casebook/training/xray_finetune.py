"""The pneumonia case's fine-tuning on cached views: the frozen first layers of the backbone run once per
training image for a few pre-drawn (nuisance-augmented) views, and only the layers after the cut and the head
train on those activations, after a head warm-started on cached features, with a cosine schedule."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .. import config
from ..models import transfer, xray_views
from ..models.transfer_config import TransferConfig

VIEW_SEED = config.DEFAULT_SEED  # the views are the same for every run and seed: seeds vary the training only
WARM_START_LEARNING_RATE = 1e-3  # the frozen-feature heads' rate


def _images(ds, canonical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A labelled tf.data split gathered once: its images as one grey channel (N, H, W, 1), in their own dtype
    (uint8 from :func:`casebook.preprocessing.xray_dataset`: a quarter of float32's memory), and its labels; in
    the dataset's order, or (``canonical``) in :func:`casebook.training.xray.canonical_order`."""
    from .xray import canonical_order, image_digests

    xs, ys = [], []
    for x, y in ds:
        xs.append(np.asarray(x)[..., :1])
        ys.append(np.asarray(y))
    grey, labels = np.concatenate(xs), np.concatenate(ys)
    if not canonical:
        return grey, labels
    order = canonical_order(image_digests(grey), labels)
    return grey[order], labels[order]


def _as_input(grey, model) -> np.ndarray:
    """Grey images (N, H, W, 1) as ``model`` takes them: float32, the grey level repeated to its channels."""
    channels = model.inputs[0].shape[-1]
    return np.repeat(np.asarray(grey, np.float32), channels, axis=-1)


def _trunk_pass(trunk, grey: np.ndarray, out: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``trunk`` over grey images, batch by batch, written into ``out`` (its dtype: float16 or float32)."""
    import tensorflow as tf

    run = tf.function(lambda x: trunk(x, training=False), reduce_retracing=True)
    for i in range(0, len(grey), batch_size):
        out[i : i + batch_size] = np.asarray(run(_as_input(grey[i : i + batch_size], trunk)))
    return out


def view_key(c: TransferConfig, split: str) -> tuple:
    """What the cached activations depend on: the pretrained frozen layers, the input, the views, the split."""
    return (
        c.backbone, c.alpha, c.img_size, str(c.weights), c.fixed_layers, c.input_shape, c.include_preprocessing,
        c.cached_views if split == "train" else 1, c.augment, VIEW_SEED, split,
    )  # fmt: skip


def cached_views(cache, trunk, c: TransferConfig, ds, split: str):
    """``(activations, labels)`` of a split at the cut, computed once per :func:`view_key` and kept in ``cache``
    (a :class:`~casebook.training.xray.FeatureCache`). Training split: ``(views, N, h, w, c)``, view 0 the images
    themselves (in :func:`~casebook.training.xray.canonical_order`), then ``c.cached_views − 1``
    nuisance-augmented views; other splits: the images themselves, ``(N, h, w, c)``. Float32 throughout, so
    that scores through the cache equal the full model's."""
    key = view_key(c, split)
    if key not in cache.views:
        grey, labels = _images(ds, canonical=split == "train")  # a view's seed follows the image, not the pass
        shape = (len(grey), *trunk.output.shape[1:])
        if split != "train":
            cache.views[key] = (_trunk_pass(trunk, grey, np.empty(shape, np.float32)), labels)
        else:
            views = np.empty((c.cached_views, *shape), np.float32)
            _trunk_pass(trunk, grey, views[0])
            for view in range(1, c.cached_views):
                _trunk_pass(trunk, xray_views.augmented_views(grey, view, VIEW_SEED), views[view])
            cache.views[key] = (views, labels)
    return cache.views[key]


def view_batches(activations, y, batch_size: int, rng, class_weight=None):
    """Training batches over cached views (a ``keras.utils.PyDataset``): every epoch draws one view per image
    and a new order from ``rng``; each batch carries its class weights as sample weights."""
    import keras

    labels = np.asarray(y).reshape(len(y), -1).argmax(1) if np.ndim(y) > 1 else np.asarray(y)
    weights = class_weight or {0: 1.0, 1: 1.0}
    sample_weight = np.array([weights[int(k)] for k in labels], np.float32)

    class ViewBatches(keras.utils.PyDataset):
        def __len__(self):
            return int(np.ceil(len(y) / batch_size))

        def __getitem__(self, i):
            rows = self.order[i * batch_size : (i + 1) * batch_size]
            return activations[self.view[rows], rows].astype(np.float32), y[rows], sample_weight[rows]

        def on_epoch_end(self):
            n_views, n = activations.shape[:2]
            self.view, self.order = rng.integers(0, n_views, n), rng.permutation(n)

    batches = ViewBatches()
    batches.on_epoch_end()
    return batches


def warm_start_head(model, c: TransferConfig, datasets: dict, cache, class_weight=None, patience: int = 3):
    """Train the head of ``model`` on cached features of its still-frozen backbone (shared with the frozen-feature
    candidate of the same backbone: whichever runs first fills the cache), at the frozen heads' rate,
    early-stopped on validation loss (best restored). Returns the epochs run."""
    from .xray import train_xray

    result = train_xray(model, _frozen_config(c), datasets, cache, class_weight=class_weight, patience=patience)
    return result.epochs_run


def _frozen_config(c: TransferConfig) -> TransferConfig:
    """``c`` as the frozen-feature run of its warm start (the frozen candidate's settings and cache key)."""
    return dataclasses.replace(
        c,
        strategy="feature_extraction",
        epochs=c.warm_start_epochs,
        learning_rate=WARM_START_LEARNING_RATE,
        lr_schedule="constant",
        cached_views=0,
        fixed_layers=None,
    )


def _pooled(top_features, acts: np.ndarray, batch_size: int = 128) -> np.ndarray:
    import tensorflow as tf

    run = tf.function(lambda a: top_features(a, training=False), reduce_retracing=True)
    return np.concatenate([np.asarray(run(acts[i : i + batch_size])) for i in range(0, len(acts), batch_size)])


def train_on_views(model, c: TransferConfig, datasets: dict, cache, class_weight=None, verbose: int = 0):
    """Fine-tune ``model`` (a :func:`casebook.models.transfer.build` model, ``partial_fine_tuning`` with
    ``cached_views``): cache the views (:func:`cached_views`; the clean ones, through the still-pretrained top,
    also give the frozen backbone's features when the cache lacks them), warm-start its head
    (:func:`warm_start_head`, if ``c.warm_start_epochs``), then train the
    layers after the cut and the head on the cached views (:func:`view_batches`) for ``c.epochs`` epochs with
    ``c.lr_schedule``, no early stopping (the schedule ends at 0); the validation split is only monitored.
    Returns a :class:`TrainingResult` as :func:`casebook.training.xray.train_xray`'s (``outputs``: warm-start
    epochs and the seconds of each phase)."""
    from .keras_loops import fit_keras
    from .xray import _targets, positive_proba

    t0 = time.perf_counter()
    trunk, top, top_features = transfer.split_at_cut(model, c)
    train_acts, y_tr = cached_views(cache, trunk, c, datasets["train"], "train")
    val_acts, y_va = cached_views(cache, trunk, c, datasets["val"], "val")
    frozen = _frozen_config(c)
    for split, acts, labels in (("train", train_acts[0], y_tr), ("val", val_acts, y_va)):
        key = cache.key(model, frozen, split)  # the frozen backbone's features, from the cached clean images
        if key not in cache.store:
            cache.store[key] = (_pooled(top_features, acts), labels)
    t_views = time.perf_counter() - t0
    warm_epochs = warm_start_head(model, c, datasets, cache, class_weight) if c.warm_start_epochs else 0
    t_warm = time.perf_counter() - t0 - t_views
    batch_size = c.batch_size or 32
    rng = np.random.default_rng(np.random.randint(2**31))  # seeded by the run's seed_everything
    batches = view_batches(train_acts, _targets(y_tr, c.one_hot), batch_size, rng, class_weight)
    transfer.compile_binary(top, c, steps=len(batches) * c.epochs)
    result = fit_keras(
        top,
        batches,
        epochs=c.epochs,
        validation_data=(val_acts, _targets(y_va, c.one_hot)),
        shuffle=False,
        verbose=verbose,
    )
    p_va = positive_proba(top.predict(val_acts, batch_size=128, verbose=0))
    result.model = model
    result.validation.update(proba=p_va, y=y_va)
    result.outputs.update(
        warm_start_epochs=warm_epochs,
        warm_start_seconds=t_warm,
        views_seconds=t_views,
        seconds_per_epoch=result.seconds_per_epoch,
    )
    return result


def shifted_validation(model, ds_val, p_clean, threshold: float, shifts: dict | None = None):
    """A robustness check on validation only: every NORMAL validation image degraded one fixed way
    (:data:`casebook.models.xray_views.SHIFTS`: blur, down/up-scaling, JPEG), the PNEUMONIA images kept, scored
    by ``model`` and compared at ``threshold`` with the clean scores ``p_clean`` (in ``ds_val``'s order). A
    DataFrame, one row per shift: NORMAL recall, mean NORMAL score, ROC-AUC."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from .xray import positive_proba

    images, y = _images(ds_val)
    normal = np.flatnonzero(y == 0)
    rows = {"none": np.asarray(p_clean, dtype=float)}
    for name, (kind, value) in (shifts or xray_views.SHIFTS).items():
        degraded = xray_views.degraded(images[normal], kind, value)
        p = rows["none"].copy()
        p[normal] = positive_proba(model.predict(_as_input(degraded, model), batch_size=64, verbose=0))
        rows[name] = p
    table = {
        name: {
            "recall normal": float(np.mean(p[normal] < threshold)),
            "mean score | normal": float(p[normal].mean()),
            "roc_auc": float(roc_auc_score(y, p)),
        }
        for name, p in rows.items()
    }
    return pd.DataFrame(table).T.rename_axis("NORMAL images degraded by")
