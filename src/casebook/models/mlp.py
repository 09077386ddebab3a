"""Fully connected networks: the torch MLP of the gamma case (trained as a scikit-learn estimator by
:class:`casebook.training.mlp_classifier.TorchMLPClassifier`) and the Keras MLP of California Housing."""

from __future__ import annotations


def make_mlp(n_in: int, hidden: tuple[int, ...], n_out: int):
    """n_in → h1 → h2 → … → n_out with ReLU between layers (logits out: use cross-entropy)."""
    import torch.nn as nn

    layers, prev = [], n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def make_housing_mlp(n_features: int = 8, learning_rate: float = 1e-3, steps_per_execution: int = 1):
    """Keras MLP for California Housing, exactly: Dense(64, relu) → Dense(32, relu) → Dense(1); Adam, MSE, MAE.

    ``steps_per_execution`` > 1 runs that many batches per compiled call: the same updates on the same batches, with
    far less Python overhead for a network this small (only batch-level callbacks see fewer calls)."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((n_features,)),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(1),
        ],
        name="housing_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="mse",
        metrics=["mae"],
        steps_per_execution=steps_per_execution,
    )
    return model
