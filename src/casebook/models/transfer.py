"""The pneumonia case's transfer-learning model, built from a :class:`~casebook.models.transfer_config.
TransferConfig`: image → features (augmentation, an ImageNet backbone, pooling) → head → output."""

from __future__ import annotations

from .. import config as settings
from .efficientnet_lite import LITE_BLOCKS, efficientnet_lite
from .transfer_config import BACKBONES, RESCALING, TransferConfig


def preprocess_input(backbone: str):
    """The backbone's own ``keras.applications.<module>.preprocess_input`` (EfficientNet-Lite: ``(x − 127) / 128``,
    the normalisation its TensorFlow weights were trained with)."""
    import importlib

    if BACKBONES[backbone][1] is None:
        scale, offset = RESCALING[backbone]
        return lambda x: x * scale + offset
    return importlib.import_module(f"keras.applications.{BACKBONES[backbone][1]}").preprocess_input


def keras_weight_file(backbone: str, alpha: float = 1.0, size: int = 224) -> str:
    """The file name Keras downloads for a backbone's no-top ImageNet weights (what to put in the data root's
    ``weights/`` folder, or in ``~/.keras/models/``, to work offline)."""
    rows = size if size in (96, 128, 160, 192, 224) else 224
    mobilenet_alpha = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}.get(float(alpha), str(alpha))
    return {
        "mobilenet": f"mobilenet_{mobilenet_alpha}_{rows}_tf_no_top.h5",
        "mobilenetv2": f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5",
        "resnet50v2": "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "densenet121": "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "efficientnetv2b2": "efficientnetv2-b2_notop.h5",
    }[backbone]


def _with_weights(cls, kwargs: dict, path):
    net = cls(weights=None, **kwargs)
    net.load_weights(path)  # an HDF5 / .weights.h5 file: arrays only, nothing executable
    return net


def make_backbone(c: TransferConfig):
    """The ImageNet backbone without its top. Weights: ``'imagenet'`` (the data root's verified registry file,
    else a file of Keras' name in ``<data root>/weights/``, else Keras' download or cache), ``None`` (random:
    only when asked explicitly), or a path to a weight file. Offline without the file, the error names the file
    and where to put it."""
    import keras

    from ..data import DataNotFoundError
    from ..data.weights import KERAS_WEIGHTS, keras_weights_path

    if c.backbone in LITE_BLOCKS:
        return efficientnet_lite(c.backbone, (c.img_size, c.img_size, 3), c.weights)
    cls = getattr(keras.applications, BACKBONES[c.backbone][0])
    kwargs = {"input_shape": (c.img_size, c.img_size, 3), "include_top": False}
    if c.backbone in ("mobilenet", "mobilenetv2"):
        kwargs["alpha"] = c.alpha
    if c.backbone == "efficientnetv2b2":
        kwargs["include_preprocessing"] = bool(c.include_preprocessing)
    if c.weights is None:
        return cls(weights=None, **kwargs)
    if c.weights != "imagenet":
        return _with_weights(cls, kwargs, c.weights)
    key = f"{c.backbone}_{c.alpha:g}_224_no_top"
    if key in KERAS_WEIGHTS:
        try:
            return _with_weights(cls, kwargs, keras_weights_path(key))
        except DataNotFoundError:
            pass
    file_name = keras_weight_file(c.backbone, c.alpha, c.img_size)
    local = settings.data_root() / "weights" / file_name
    if local.is_file():
        return _with_weights(cls, kwargs, local)
    try:
        if settings.is_offline():
            raise ConnectionError("CASEBOOK_OFFLINE=1")
        return cls(weights="imagenet", **kwargs)
    except Exception as e:  # offline: the download fails
        raise ValueError(
            f"ImageNet weights for {c.backbone} (alpha={c.alpha}) are not available here "
            f"({type(e).__name__}): put {file_name} (from Keras' keras-applications storage) in "
            f"{local.parent}/ or ~/.keras/models/; offline in the registry: "
            f"{', '.join(KERAS_WEIGHTS)}; or pass weights=None for random initialisation"
        ) from None


def xray_augmentation(seed: int = settings.DEFAULT_SEED):
    """Small rotations, zooms and shifts (no horizontal flip: the heart is on the left of a chest X-ray)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
            layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed + 2),
        ],
        name="augmentation",
    )


def learning_rate(c: TransferConfig, steps: int | None = None):
    """``c.learning_rate``, or with ``lr_schedule='cosine'`` and the run's ``steps``: a linear warm-up over the
    first 10 % of the steps to ``c.learning_rate``, then cosine decay to 0 (Loshchilov & Hutter, SGDR)."""
    import keras

    if c.lr_schedule == "constant" or not steps:
        return c.learning_rate
    warmup = steps // 10
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(c.learning_rate, steps, alpha=0.0)
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, steps - warmup), alpha=0.0, warmup_target=c.learning_rate, warmup_steps=warmup
    )


def _optimizer(c: TransferConfig, steps: int | None = None):
    import keras

    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[c.optimizer](learning_rate(c, steps))


def compile_binary(model, c: TransferConfig, steps: int | None = None):
    """Compile with the chosen optimizer and loss: a sigmoid unit (binary or focal cross-entropy) or, for the
    seed's ``categorical_crossentropy``, 2 softmax units on one-hot labels. Metrics: accuracy and ROC-AUC.
    ``steps``: the optimizer steps of the whole run, for ``lr_schedule='cosine'``."""
    import keras

    if c.one_hot:
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        focal = c.loss == "focal"
        loss = keras.losses.BinaryFocalCrossentropy(gamma=2.0) if focal else keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    model.compile(optimizer=_optimizer(c, steps), loss=loss, metrics=[accuracy, keras.metrics.AUC(name="auc")])
    return model


def _image_input(c: TransferConfig):
    """The model's input: ``input_shape`` (3 channels, or 1 for grey images, replicated to the 3 the ImageNet
    backbones expect), then the backbone's preprocessing inside the model when ``include_preprocessing``."""
    import keras
    from keras import layers

    inp = keras.Input(c.input_shape, name="image")
    x = layers.Concatenate(name="grey_to_rgb")([inp, inp, inp]) if c.input_shape[-1] == 1 else inp
    if c.include_preprocessing and c.backbone != "efficientnetv2b2":  # EfficientNetV2 does it itself
        scale, offset = RESCALING[c.backbone]
        x = layers.Rescaling(scale, offset=offset, name="preprocessing")(x)
    return inp, x


def _features(c: TransferConfig, backbone):
    import keras
    from keras import layers

    inp, x = _image_input(c)
    x = xray_augmentation()(x) if c.augment and not c.cached_views else x  # cached views: augmented beforehand
    x = backbone(x, training=False)
    if c.pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pooled")(x)
    elif c.pooling == "max":
        x = layers.GlobalMaxPooling2D(name="pooled")(x)
    return keras.Model(inp, x, name="features")


def _head(c: TransferConfig, n_features_shape):
    import keras
    from keras import layers

    h_in = keras.Input(n_features_shape, name="features_in")
    h = h_in
    for layer in c.added_layers:
        if layer.type == "dense":
            h = layers.Dense(layer.units, activation=layer.activation)(h)
        elif layer.type == "dropout":
            h = layers.Dropout(layer.rate)(h)
        elif layer.type == "flatten":
            h = layers.Flatten()(h)
        else:
            h = layers.BatchNormalization()(h)
    if len(h.shape) > 2:
        h = layers.Flatten()(h)
    out = layers.Dense(c.n_outputs, activation=c.classifier_activation, name="p_pneumonia")(h)
    return keras.Model(h_in, out, name="head")


def _freeze(c: TransferConfig, backbone) -> None:
    from keras import layers

    backbone.trainable = c.strategy != "feature_extraction"
    if c.strategy == "partial_fine_tuning":
        for layer in backbone.layers[: c.fixed_layers]:
            layer.trainable = False
    for layer in backbone.layers:  # BatchNorm stays in inference mode: a frozen BN layer uses its moving
        if isinstance(layer, layers.BatchNormalization):  # statistics (training=False alone is overridden)
            layer.trainable = False


def build(c: TransferConfig):
    """The model ``image → features (augmentation, backbone with its BatchNorm layers frozen so they stay in
    inference mode, pooling) → head``, compiled; ``model.get_layer("features")`` and ``model.get_layer("head")``
    are usable on their own (train the head on cached features: same weights, far less CPU). The nested head
    stays uncompiled: a saved model then holds one optimizer only."""
    import keras

    backbone = make_backbone(c)
    features = _features(c, backbone)
    head = _head(c, features.output.shape[1:])
    inp = features.input
    model = keras.Model(inp, head(features(inp)), name=f"{c.backbone}_{c.strategy}")
    _freeze(c, backbone)
    return compile_binary(model, c)


def split_at_cut(model, c: TransferConfig):
    """A :func:`build` model cut after its first ``c.fixed_layers`` backbone layers (the frozen ones), as three Keras
    models sharing its layers and weights: ``trunk`` (image → the activations entering layer ``fixed_layers``:
    grey to RGB, preprocessing, the frozen layers), ``top`` (those activations → the rest of the backbone →
    pooling → head → output) and ``top_features`` (the same without the head: the pooled features).
    ``top(trunk(x))`` is ``model(x)``; training ``top`` trains ``model``. ValueError when the cut is not a single
    tensor (inside a residual block: choose the first layer of a block)."""
    import keras

    backbone, features = backbone_of(model), model.get_layer("features")
    if not isinstance(c.fixed_layers, int) or not 0 < c.fixed_layers < len(backbone.layers):
        raise ValueError(f"fixed_layers must be between 1 and {len(backbone.layers) - 1}, got {c.fixed_layers!r}")
    first = backbone.layers[c.fixed_layers]
    cut = first.input
    try:
        if isinstance(cut, list | tuple):
            raise ValueError("several inputs")
        rest = keras.Model(cut, backbone.output, name="backbone_top")
    except ValueError:
        raise ValueError(
            f"fixed_layers={c.fixed_layers} cuts {backbone.name} at {first.name!r}, which is not a single tensor "
            "(a residual connection crosses it): choose the first layer of a block"
        ) from None
    image = keras.Input(tuple(model.inputs[0].shape[1:]), name="image")
    x = image
    for name in ("grey_to_rgb", "preprocessing"):
        if any(layer.name == name for layer in features.layers):
            step = features.get_layer(name)
            x = step([x, x, x]) if name == "grey_to_rgb" else step(x)
    trunk = keras.Model(image, keras.Model(backbone.input, cut, name="backbone_trunk")(x), name="trunk")
    acts = keras.Input(tuple(cut.shape[1:]), name="trunk_activations")
    y = rest(acts)
    if any(layer.name == "pooled" for layer in features.layers):
        y = features.get_layer("pooled")(y)
    top = keras.Model(acts, model.get_layer("head")(y), name="top")
    return trunk, top, keras.Model(acts, y, name="top_features")


def build_model(params: dict, added_layers: list):
    """The pneumonia seed's ``build_model(params, added_layers)``: its dict and list verbatim (see
    :meth:`TransferConfig.from_seed`), returning the compiled model of :func:`build`."""
    return build(TransferConfig.from_seed(params, added_layers))


def trainable_backbone_layers(model) -> int:
    """How many of the backbone's layers have trainable weights (the strategy's effect, for tests and logs;
    BatchNorm layers are always frozen, so they never count)."""
    return sum(1 for layer in backbone_of(model).layers if layer.trainable and layer.weights)


def layer_table(model, c: TransferConfig):
    """What trains in a :func:`build` model, part by part (a DataFrame: layers, parameters, trainable
    parameters): the preprocessing, the backbone's frozen first ``fixed_layers`` layers, the rest of the
    backbone (BatchNorm frozen), the head."""
    import pandas as pd

    backbone = backbone_of(model)
    cut = (
        c.fixed_layers
        if c.strategy == "partial_fine_tuning"
        else (len(backbone.layers) if not backbone.trainable else 0)
    )
    parts = {
        f"backbone layers 0-{cut - 1}": backbone.layers[:cut],
        f"backbone layers {cut}-{len(backbone.layers) - 1}": backbone.layers[cut:],
        "head": model.get_layer("head").layers,
    }
    rows = []
    for name, layers in parts.items():
        if not layers:
            continue
        weights = [w for layer in layers for w in layer.weights]
        trainable = [w for layer in layers for w in layer.trainable_weights]
        first, last = layers[0].name, layers[-1].name
        rows.append((name, f"{first} … {last}", len(layers), _count(weights), _count(trainable)))
    columns = ["part", "from … to", "layers", "parameters", "trainable parameters"]
    return pd.DataFrame(rows, columns=columns).set_index("part")


def _count(weights) -> int:
    import numpy as np

    return int(sum(np.prod(w.shape) for w in weights))


def backbone_of(model):
    """The keras.applications backbone inside a :func:`build` model."""
    return [
        layer
        for layer in model.get_layer("features").layers
        if hasattr(layer, "layers") and layer.name != "augmentation"
    ][0]


def average_of(members, name: str = "deep_ensemble"):
    """A deep ensemble as one Keras model: the image goes through every member (each a :func:`build` model,
    weights as trained) and the output is the mean of their P(pneumonia). Averaged probabilities are the most
    robust choice under dataset shift among the methods compared by Ovadia et al. (NeurIPS 2019).

    Each member enters as a new, uncompiled model over its ``features`` and ``head`` parts (the same layers and
    weights, named ``member_<k>``): the saved ensemble then holds no optimizer state, and the members are not
    changed."""
    import keras
    from keras import layers

    inp = keras.Input(tuple(members[0].inputs[0].shape[1:]), name="image")
    outputs = []
    for k, member in enumerate(members, 1):
        features, head = member.get_layer("features"), member.get_layer("head")
        part = keras.Model(features.input, head(features.output), name=f"member_{k}")
        outputs.append(part(inp))
    out = layers.Average(name="mean_probability")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inp, out, name=name)
