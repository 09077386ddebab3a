"""The pneumonia case's training: backbone features cached once per configuration, the head (or the whole
model) trained with early stopping on validation, and predictions over labelled tf.data datasets."""

from __future__ import annotations

import numpy as np

from ..models.transfer import compile_binary
from ..models.transfer_config import TransferConfig
from .keras_loops import fit_keras
from .result import TrainingResult


class FeatureCache:
    """Backbone features computed once per (backbone, alpha, size, weights, pooling, split) and reused by every
    model whose backbone is frozen with the same pretrained weights (the head then trains in seconds); the
    training split's in :func:`canonical_order`."""

    def __init__(self):
        self.store: dict = {}
        self.views: dict = {}  # trunk activations of pre-drawn views (casebook.training.xray_finetune)

    @staticmethod
    def key(model, c: TransferConfig, split: str) -> tuple:
        """What the features of ``split`` depend on: the pretrained backbone, the input, the pooling."""
        weights = c.weights if c.weights is not None else f"random-{id(model)}"
        return (c.backbone, c.alpha, c.img_size, str(weights), c.pooling, c.input_shape, c.include_preprocessing, split)

    def get(self, model, c: TransferConfig, ds, split: str):
        """(features, labels) of split ``split`` (dataset ``ds``) through ``model``'s features part."""
        key = self.key(model, c, split)
        if key not in self.store:
            import tensorflow as tf

            f = model.get_layer("features")
            # one traced graph: about twice the throughput of eager calls on a CPU (EfficientNet-Lite0, 224 px)
            extract = tf.function(lambda x: f(x, training=False), reduce_retracing=True)
            feats, ys, digests = [], [], []
            for x, y in ds:
                feats.append(np.asarray(extract(x)))
                ys.append(np.asarray(y))
                digests.append(image_digests(np.asarray(x)[..., :1]))  # as the cached views'
            feats, ys = np.concatenate(feats), np.concatenate(ys)
            # the training split in a canonical order: whatever order the shuffled dataset gave this time
            order = canonical_order(np.concatenate(digests), ys) if split == "train" else slice(None)
            self.store[key] = (feats[order], ys[order])
        return self.store[key]


def image_digests(images) -> np.ndarray:
    """A 64-bit digest of each image's bytes (BLAKE2b), to put a shuffled split back in one order."""
    import hashlib

    images = np.ascontiguousarray(np.asarray(images))
    return np.array(
        [int.from_bytes(hashlib.blake2b(im.tobytes(), digest_size=8).digest(), "little") for im in images],
        dtype=np.uint64,
    )


def canonical_order(digests, labels) -> np.ndarray:
    """Indices sorting a split by image digest (then label): the same order whichever way a shuffled pipeline
    was iterated, so cached features, cached views and the runs trained on them do not depend on how many
    passes over the data came before (a loop here, or a fresh Ray worker)."""
    return np.lexsort((np.asarray(labels), np.asarray(digests)))


def train_xray(
    model,
    c: TransferConfig,
    datasets: dict,
    cache: FeatureCache,
    class_weight=None,
    patience: int = 3,
    verbose: int = 0,
) -> TrainingResult:
    """Train a :func:`casebook.models.transfer.build` model for ``c.epochs`` epochs; monitor and early-stop on
    the validation split only.

    ``datasets``: ``{"train": ds, "val": ds}`` (tf.data, labels included). Frozen backbone → the head is trained
    on cached features (same weights as the full model); ``cached_views`` → the layers after the cut train on
    cached views (:func:`casebook.training.xray_finetune.train_on_views`: warm start, schedule, no early
    stopping); otherwise the whole model trains end to end.
    ``validation`` holds ``proba`` (P(pneumonia)) and ``y`` of the validation split; ``model`` is ``model``.
    """
    import keras

    if c.cached_views:
        from .xray_finetune import train_on_views

        return train_on_views(model, c, datasets, cache, class_weight=class_weight, verbose=verbose)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    if c.strategy == "feature_extraction":
        head = model.get_layer("head")
        # a separate trainer over the head's own layers (same weights): the nested head itself is never compiled,
        # so the saved model carries no second optimizer that a reload would try to restore
        head = compile_binary(keras.Model(head.inputs, head.outputs, name="head_trainer"), c)
        f_tr, y_tr = cache.get(model, c, datasets["train"], "train")
        f_va, y_va = cache.get(model, c, datasets["val"], "val")
        validation = (f_va, _targets(y_va, c.one_hot))
        result = fit_keras(
            head,
            f_tr,
            _targets(y_tr, c.one_hot),
            validation_data=validation,
            epochs=c.epochs,
            batch_size=c.batch_size or 64,
            class_weight=class_weight,
            callbacks=[stop],
            verbose=verbose,
        )
        p_va = positive_proba(head.predict(f_va, batch_size=256, verbose=0))
    else:
        train, val = (_rebatched(datasets[s], c.batch_size, c.one_hot) for s in ("train", "val"))
        if c.lr_schedule != "constant" and int(train.cardinality()) > 0:
            compile_binary(model, c, steps=int(train.cardinality()) * c.epochs)
        result = fit_keras(
            model,
            train,
            validation_data=val,
            epochs=c.epochs,
            class_weight=class_weight,
            callbacks=[stop],
            verbose=verbose,
            shuffle=False,
        )  # the dataset shuffles itself
        p_va, y_va = predict_dataset(model, datasets["val"])
    result.model = model
    result.validation.update(proba=p_va, y=y_va)
    return result


def _targets(y, one_hot: bool):
    """Labels as the loss expects them: 0/1, or one-hot for 2 softmax units."""
    y = np.asarray(y)
    return np.eye(2, dtype=np.float32)[y.astype(int)] if one_hot else y


def _rebatched(ds, batch_size: int | None, one_hot: bool):
    """A tf.data split with ``params['batch_size']`` (when given) and one-hot labels (when the loss needs them)."""
    import tensorflow as tf

    if batch_size:
        ds = ds.unbatch().batch(batch_size)
    return ds.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), 2))) if one_hot else ds


def positive_proba(out) -> np.ndarray:
    """P(pneumonia) from a model's output: the sigmoid unit, or the second of 2 softmax units."""
    out = np.asarray(out)
    return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.ravel()


def predict_members(ensemble, ds) -> tuple[np.ndarray, np.ndarray]:
    """(P(class 1) of each member of an :func:`casebook.models.transfer.average_of` model, shape (n, members);
    labels) over a labelled tf.data dataset: one pass, through the ensemble's own ``member_<k>`` parts (their
    mean is the ensemble's output)."""
    members = [layer for layer in ensemble.layers if layer.name.startswith("member_")] or [ensemble]
    ps, ys = [], []
    for x, y in ds:
        ps.append(np.stack([positive_proba(m(x, training=False)) for m in members], axis=1))
        ys.append(np.asarray(y))
    return np.concatenate(ps), np.concatenate(ys)


def predict_dataset(model, ds) -> tuple[np.ndarray, np.ndarray]:
    """(P(class 1), labels) over a labelled tf.data dataset, in its order."""
    ps, ys = [], []
    for x, y in ds:
        ps.append(positive_proba(model(x, training=False)))
        ys.append(np.asarray(y))
    return np.concatenate(ps), np.concatenate(ys)


def threshold_for_recall(y_true, score, min_recall: float) -> float:
    """The highest decision threshold at which the recall of class 1 on ``(y_true, score)`` is still at least
    ``min_recall``: the score of the ⌈min_recall · n₁⌉-th highest-scoring positive. A rule fixed in advance,
    applied to validation data only; it rests on a quantile of many positives' scores rather than on the few
    negatives a saturated validation set misclassifies."""
    positives = np.sort(np.asarray(score, dtype=float)[np.asarray(y_true) == 1])[::-1]
    if not 0 < min_recall <= 1 or len(positives) == 0:
        raise ValueError(f"min_recall must be in (0, 1] and y_true must hold positives (got {min_recall!r})")
    return float(positives[int(np.ceil(min_recall * len(positives) - 1e-9)) - 1])


def threshold_rule(min_recall: float | None) -> str:
    """The decision-threshold rule in words (logged with every run): :func:`threshold_for_recall` at
    ``min_recall``, or (None) the highest balanced accuracy."""
    if min_recall is None:
        return "highest balanced accuracy on validation (Youden's J)"
    return f"highest threshold with validation recall(pneumonia) >= {min_recall:g}"
