"""The image CNNs: the MNIST CNN (PyTorch) and the Fashion-MNIST CNN with its augmentation (Keras)."""

from __future__ import annotations

from .. import config


def make_mnist_cnn():
    """The MNIST CNN, exactly: Conv2d(1,16,3,p=1) → ReLU → MaxPool2 → Conv2d(16,32,3,p=1) → ReLU → MaxPool2 →
    Flatten (32·7·7 = 1568) → Linear(1568,128) → ReLU → Linear(128,10). Outputs logits."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1568, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def fashion_augmentation(seed: int = config.DEFAULT_SEED):
    """Keras 3 preprocessing layers equivalent to the seed's ImageDataGenerator(rotation_range=10,
    zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1). Active only in training."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2),
        ],
        name="augmentation",
    )


def light_augmentation(seed: int = config.DEFAULT_SEED, max_shift: int = 2):
    """A lighter training augmentation for Fashion-MNIST than the seed's: a random horizontal flip (a garment
    mirrored is the same garment) and shifts of up to ``max_shift`` pixels; no rotation or zoom, which change a
    28-pixel silhouette more than the classes differ. Active only in training."""
    import keras
    from keras import layers

    shift = max_shift / 28
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed + 1),
        ],
        name="augmentation",
    )


def make_fashion_cnn(
    augment: bool = False,
    dropout: float = 0.2,
    seed: int = config.DEFAULT_SEED,
    augmentation=None,
    learning_rate=1e-3,
    label_smoothing: float = 0.0,
):
    """Keras CNN for Fashion-MNIST: [augmentation] → Conv2D(32,3)+ReLU → MaxPool → Dropout → Conv2D(64,3)+ReLU →
    MaxPool → Dropout → Flatten → Dense(128, relu) → Dropout → Dense(10, softmax); Adam, categorical CE.
    Dropout rates (unspecified by the seed): ``dropout`` after each conv block, twice that before the output.
    ``augment=True``: the seed's augmentation (:func:`fashion_augmentation`); ``augmentation``: any other
    augmentation block (e.g. :func:`light_augmentation`). ``learning_rate``: Adam's rate or a Keras schedule;
    ``label_smoothing``: of the cross-entropy targets."""
    import keras
    from keras import layers

    if augment and augmentation is None:
        augmentation = fashion_augmentation(seed)
    stack = (
        [keras.Input((28, 28, 1))]
        + ([augmentation] if augmentation is not None else [])
        + [
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(2 * dropout),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model = keras.Sequential(stack, name="fashion_cnn_aug" if augmentation is not None else "fashion_cnn")
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return model
