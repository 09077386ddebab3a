"""The transfer-learning configuration of the pneumonia case: one typed, checked :class:`TransferConfig`, built
from the seed's ``params`` dict and ``added_layers`` list by :meth:`TransferConfig.from_seed`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

BACKBONES = {  # name → (keras.applications class, module holding its preprocess_input)
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2"),
    "mobilenet": ("MobileNet", "mobilenet"),
    "resnet50v2": ("ResNet50V2", "resnet_v2"),
    "vgg16": ("VGG16", "vgg16"),
    "densenet121": ("DenseNet121", "densenet"),
    "efficientnetv2b2": ("EfficientNetV2B2", "efficientnet_v2"),
    "efficientnet_lite0": ("efficientnet_lite0", None),  # casebook's own Keras build, weights ported from PyTorch
}
STRATEGIES = ("feature_extraction", "partial_fine_tuning", "fine_tuning")
LAYER_TYPES = {"dense": ("units",), "dropout": ("rate",), "flatten": (), "batchnorm": ()}
LOSSES = ("binary_crossentropy", "focal", "categorical_crossentropy")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
POOLINGS = ("avg", "max", "none")
LR_SCHEDULES = ("constant", "cosine")
# Backbones whose preprocess_input is an affine map a Rescaling layer reproduces inside the model (scale,
# offset); EfficientNetV2 preprocesses itself.
RESCALING = {
    "mobilenet": (1 / 127.5, -1.0),
    "mobilenetv2": (1 / 127.5, -1.0),
    "resnet50v2": (1 / 127.5, -1.0),
    "efficientnet_lite0": (1 / 128.0, -127.0 / 128.0),  # Lite: (x − 127) / 128, as its TF training
}
IN_MODEL_PREPROCESSING = {*RESCALING, "efficientnetv2b2"}


@dataclass(frozen=True)
class AddedLayer:
    """One layer of the head, stacked before the output: dense (``units``, ``activation``), dropout (``rate``),
    flatten or batchnorm."""

    type: str
    units: int | None = None
    rate: float | None = None
    activation: str = "relu"

    def as_dict(self) -> dict:
        keep = {"dense": ("units", "activation"), "dropout": ("rate",)}.get(self.type, ())
        return {"type": self.type, **{k: getattr(self, k) for k in keep}}


@dataclass(frozen=True)
class TransferConfig:
    """Everything one transfer-learning run needs, checked once when built (``ValueError`` naming the setting).

    backbone: one of :data:`BACKBONES`; strategy: ``feature_extraction`` (backbone frozen),
    ``partial_fine_tuning`` (its first ``fixed_layers`` layers frozen) or ``fine_tuning`` (all trainable);
    img_size; alpha (MobileNets); weights (``'imagenet'``, ``None`` for random, or a weight file); optimizer and
    learning_rate; pooling; augment; loss (``binary_crossentropy`` / ``focal`` with a sigmoid unit,
    ``categorical_crossentropy`` with 2 softmax units); input_shape (3 channels, or 1 for grey images); rgb;
    include_preprocessing (the backbone's preprocessing inside the model); classifier_activation (follows the
    loss); equilibrate (class weights), epochs, batch_size; added_layers (the head). ``include_top`` and
    ``input_tensor`` exist because the seed's dict names them; only their defaults can be honoured.

    The fine-tuning recipe (casebook's additions, defaults = the seed's behaviour): ``warm_start_epochs`` (the
    head first trained on cached features of the frozen backbone, early-stopped on validation, before any
    backbone layer trains); ``lr_schedule`` (``constant``, or ``cosine``: a 10 % linear warm-up then cosine decay
    to 0 over the ``epochs``); ``cached_views`` (``partial_fine_tuning`` only: the frozen first ``fixed_layers``
    layers, BatchNorm frozen too, are run once per training image for ``cached_views`` pre-drawn views, view 0
    the image itself and the others nuisance-augmented when ``augment``; only the layers after the cut and the
    head train, on those cached activations: the same forward and backward pass as end to end, with the
    augmentation limited to the pre-drawn views).
    """

    backbone: str
    strategy: str
    img_size: int
    alpha: float = 1.0
    weights: str | None = "imagenet"
    learning_rate: float = 1e-3
    fixed_layers: int | None = None
    pooling: str = "avg"
    augment: bool = False
    loss: str = "binary_crossentropy"
    equilibrate: bool = True
    epochs: int = 5
    batch_size: int | None = None
    optimizer: str = "adam"
    include_top: bool = False
    input_tensor: None = None
    input_shape: tuple[int, int, int] | None = None
    rgb: bool = False
    classifier_activation: str | None = None
    include_preprocessing: bool = False
    added_layers: tuple[AddedLayer, ...] = ()
    warm_start_epochs: int = 0
    lr_schedule: str = "constant"
    cached_views: int = 0

    def __post_init__(self):
        _check_choices(self)
        _check_head(self)
        _check_input(self)
        _check_recipe(self)
        shape = self.input_shape or (self.img_size, self.img_size, 3)
        object.__setattr__(self, "input_shape", tuple(shape))
        object.__setattr__(self, "classifier_activation", self.expected_activation)
        object.__setattr__(self, "added_layers", tuple(self.added_layers))

    @classmethod
    def from_seed(cls, params: dict, added_layers: list) -> TransferConfig:
        """The pneumonia seed's dict, verbatim (its 19 keys: ``model``, ``strategy`` incl. ``no_tuning``,
        ``fixed_layers``, ``alpha``, ``weights``, ``include_top``, ``input_tensor``, ``input_shape``, ``img_size``,
        ``rgb``, ``pooling``, ``classifier_activation``, ``include_preprocessing``, ``data_augmentation``,
        ``optimizer``, ``loss``, ``equilibrate``, ``epochs``, ``batch_size``), or the same settings in casebook's
        names; ``added_layers`` as the seed writes them (``count`` for units or rate). A last dense layer that
        already is the output (2-unit softmax, or 1-unit sigmoid) is taken as the output."""
        fields = _casebook_names(params)
        missing = [k for k in ("backbone", "strategy", "img_size") if k not in fields]
        if missing:
            raise ValueError(
                f"missing params {missing}; required: ['backbone', 'strategy', 'img_size'] ('model' for 'backbone')"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"added_layers"}
        unknown = sorted(set(fields) - known)
        if unknown:
            names = sorted(known | set(SEED_KEYS))
            raise ValueError(f"unknown params {unknown}; known: {names}")
        layers = tuple(_added_layer(i, layer) for i, layer in enumerate(added_layers))
        config = cls(**fields, added_layers=layers)
        if layers and config.is_output(layers[-1]):
            config = dataclasses.replace(config, added_layers=layers[:-1])
        return config

    @property
    def n_outputs(self) -> int:
        """2 softmax units for categorical cross-entropy, else 1 sigmoid unit (P(pneumonia))."""
        return 2 if self.one_hot else 1

    @property
    def one_hot(self) -> bool:
        """Whether labels are one-hot (2 softmax units)."""
        return self.loss == "categorical_crossentropy"

    @property
    def expected_activation(self) -> str:
        return "softmax" if self.one_hot else "sigmoid"

    def is_output(self, layer: AddedLayer) -> bool:
        """The seed ends ``added_layers`` with the output layer itself (dense, 2 units, softmax)."""
        matches = layer.activation == self.expected_activation and layer.units == self.n_outputs
        return layer.type == "dense" and matches

    def as_params(self) -> dict:
        """The settings as a flat dict (MLflow params; keys are the field names), head as ``added_layers``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["added_layers"] = [layer.as_dict() for layer in self.added_layers]
        return out


SEED_KEYS = {"model": "backbone", "data_augmentation": "augment"}  # the seed's key → casebook's
SEED_STRATEGIES = {"no_tuning": "feature_extraction"}  # the seed's name for a frozen backbone
SEED_COUNT = {"dense": "units", "dropout": "rate"}  # the seed's ``count`` means units (dense) or rate (dropout)


def _casebook_names(params: dict) -> dict:
    """The seed's keys and values translated to casebook's (``model`` → ``backbone``, ``no_tuning`` →
    ``feature_extraction``, ``pooling=None`` → ``'none'``)."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    out = dict(params)
    for seed_key, key in SEED_KEYS.items():
        if seed_key not in out:
            continue
        if key in out and out[key] != out[seed_key]:
            raise ValueError(f"params[{seed_key!r}] and params[{key!r}] are two names for one setting and differ")
        out[key] = out.pop(seed_key)
    if "strategy" in out:
        out["strategy"] = SEED_STRATEGIES.get(out["strategy"], out["strategy"])
    if "pooling" in out and out["pooling"] is None:
        out["pooling"] = "none"
    if out.get("input_shape") is not None:
        out["input_shape"] = tuple(out["input_shape"])
    return out


def _added_layer(i: int, layer) -> AddedLayer:
    """One entry of the seed's ``added_layers`` (``count`` standing for units or rate) as an :class:`AddedLayer`."""
    kind = layer.get("type") if isinstance(layer, dict) else None
    if kind not in LAYER_TYPES:
        raise ValueError(f"added_layers[{i}]: unknown layer type {kind!r}; valid: {', '.join(LAYER_TYPES)}")
    settings = {}
    for key in LAYER_TYPES[kind]:
        counted = SEED_COUNT.get(kind) == key and "count" in layer
        if key not in layer and not counted:
            raise ValueError(f"added_layers[{i}] ({kind}) is missing {[key]} (or 'count')")
        settings[key] = layer[key] if key in layer else layer["count"]
    if kind == "dense":
        settings["activation"] = layer.get("activation", "relu")
    return AddedLayer(kind, **settings)


def _check_choices(c: TransferConfig) -> None:
    choices = {
        "backbone": BACKBONES,
        "strategy": STRATEGIES,
        "loss": LOSSES,
        "optimizer": OPTIMIZERS,
        "pooling": POOLINGS,
        "lr_schedule": LR_SCHEDULES,
    }
    for name, valid in choices.items():
        value = getattr(c, name)
        if value not in valid:
            extra = " (or no_tuning)" if name == "strategy" else ""
            raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}{extra}")
    if c.strategy == "partial_fine_tuning" and not isinstance(c.fixed_layers, int):
        raise ValueError(
            "strategy 'partial_fine_tuning' needs params['fixed_layers'] (int: backbone layers kept frozen)"
        )
    for i, layer in enumerate(c.added_layers):
        if layer.type not in LAYER_TYPES:
            raise ValueError(f"added_layers[{i}]: unknown layer type {layer.type!r}; valid: {', '.join(LAYER_TYPES)}")


def _check_head(c: TransferConfig) -> None:
    expected = c.expected_activation
    if c.classifier_activation not in (None, expected):
        raise ValueError(
            f"params['classifier_activation']={c.classifier_activation!r} cannot be honoured with "
            f"loss {c.loss!r}: use {expected!r} (softmax over 2 units for categorical_crossentropy, "
            f"a sigmoid unit otherwise)"
        )
    if c.include_top:
        raise ValueError(
            "params['include_top']=True cannot be honoured: the ImageNet classifier is replaced by "
            "added_layers and the pneumonia output; use include_top=False"
        )
    size_ok = isinstance(c.batch_size, int) and c.batch_size >= 1
    if c.batch_size is not None and not size_ok:
        raise ValueError(f"params['batch_size'] must be a positive int, got {c.batch_size!r}")


def _check_input(c: TransferConfig) -> None:
    if c.input_tensor is not None:
        raise ValueError(
            "params['input_tensor'] cannot be honoured: the model builds its own input from "
            "img_size and input_shape; leave input_tensor=None"
        )
    size = c.img_size
    shape = tuple(c.input_shape) if c.input_shape is not None else (size, size, 3)
    if shape not in ((size, size, 3), (size, size, 1)):
        raise ValueError(
            f"params['input_shape']={shape} must be ({size}, {size}, 3), or ({size}, {size}, 1) "
            f"for grey images, to match img_size={size}"
        )
    if shape[-1] == 1 and c.rgb:
        raise ValueError("params['input_shape'] has 1 channel but params['rgb'] is True")
    if c.include_preprocessing and c.backbone not in IN_MODEL_PREPROCESSING:
        raise ValueError(
            f"params['include_preprocessing']=True cannot be honoured for {c.backbone!r} (only "
            f"{', '.join(sorted(IN_MODEL_PREPROCESSING))}); preprocess in the data pipeline instead"
        )


def _check_recipe(c: TransferConfig) -> None:
    for name in ("warm_start_epochs", "cached_views", "epochs"):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"params[{name!r}] must be an int ≥ 0, got {value!r}")
    if c.cached_views and c.strategy != "partial_fine_tuning":
        raise ValueError(
            f"params['cached_views']={c.cached_views} needs strategy 'partial_fine_tuning' (the frozen layers "
            f"before fixed_layers are what is cached), got {c.strategy!r}"
        )
    if c.cached_views > 1 and not c.augment:
        raise ValueError(
            f"params['cached_views']={c.cached_views} needs augment=True (views after the first are augmented "
            "copies; without augmentation use cached_views=1)"
        )
