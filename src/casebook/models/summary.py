"""A Keras model described as plain text (layers, output shapes, parameter counts)."""

from __future__ import annotations

import numpy as np


def summary_text(model) -> str:
    """A Keras model's summary as plain text (layer, type, output shape, parameters; totals), built without
    ``model.summary``, whose rich console draws empty boxes in Jupyter even when its output is captured."""
    lines = [f'Model: "{model.name}"', f"{'layer (type)':40s} {'output shape':24s} {'params':>10s}"]
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        lines.append(f"{layer.name + ' (' + type(layer).__name__ + ')':40s} {shape:24s} {layer.count_params():>10,}")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    return "\n".join(lines)
