"""The EfficientNet-Lite backbone: casebook's Keras build with weights ported from a PyTorch state dict. The port is
checked against the PyTorch reference implementation (`efficientnet-lite-pytorch`) on the same input, with random
weights (every tensor distinct, BatchNorm statistics included) and with the shipped ImageNet weights; a weight
file that is not the verified one is refused (a hostile one: tests/test_security.py)."""

import numpy as np
import pytest

from casebook import config, data
from casebook.data import weights
from casebook.models import efficientnet_lite, transfer

config.quiet_tensorflow()


def _torch_lite(state=None):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if state is None:  # random BatchNorm statistics too, so that a swapped mean/variance would show
        generator = torch.Generator().manual_seed(0)
        state = {
            k: (
                torch.rand(v.shape, generator=generator) + 0.5
                if "running_var" in k
                else torch.randn(v.shape, generator=generator) * 0.1
                if v.is_floating_point()
                else v
            )
            for k, v in net.state_dict().items()
        }
    net.load_state_dict(state)
    return net.eval(), state


def _features(torch_net, x):
    import torch

    with torch.no_grad():
        out = torch_net.extract_features(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    return out.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("size", [224, 96])
def test_keras_port_matches_pytorch_with_random_weights(size):
    torch_net, state = _torch_lite()
    keras_net = efficientnet_lite.efficientnet_lite("efficientnet_lite0", (size, size, 3), weights=None)
    efficientnet_lite.set_lite_weights(
        keras_net, {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    )
    x = np.random.default_rng(1).normal(0, 1, (2, size, size, 3)).astype("float32")
    expected = _features(torch_net, x)
    got = np.asarray(keras_net(x, training=False))
    assert got.shape == expected.shape == (2, size // 32 + (size % 32 > 0), size // 32 + (size % 32 > 0), 1280)
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
    assert np.abs(expected).std() > 0.01  # the comparison is not between two constant maps


def test_imagenet_weights_match_pytorch_and_recognise_a_daisy():
    """The shipped weights give the PyTorch model's features; with (x − 127) / 128 (the normalisation the
    TensorFlow weights were trained with) the classifier of the state dict calls scikit-learn's flower a daisy."""
    import tensorflow as tf
    import torch
    from sklearn.datasets import load_sample_image

    path = weights.lite_weights_path("efficientnet_lite0")
    state = efficientnet_lite.lite_state_dict(path)
    torch_net, _ = _torch_lite(
        {k: torch.from_numpy(v) for k, v in state.items()}
        | {k: v for k, v in torch.load(path, weights_only=True).items() if k.endswith("num_batches_tracked")}
    )
    keras_net = efficientnet_lite.efficientnet_lite("efficientnet_lite0", (224, 224, 3), weights="imagenet")
    flower = tf.image.resize(load_sample_image("flower.jpg")[None].astype("float32"), (224, 224)).numpy()
    x = transfer.preprocess_input("efficientnet_lite0")(flower)
    features = np.asarray(keras_net(x, training=False))
    assert np.abs(features - _features(torch_net, x)).max() < 1e-3
    logits = features.mean(axis=(1, 2)) @ state["_fc.weight"].T + state["_fc.bias"]
    assert int(np.argmax(logits)) == 985  # ImageNet class 985: daisy


def test_build_model_accepts_the_lite_backbone_with_in_model_preprocessing():
    params = {
        "model": "efficientnet_lite0",
        "strategy": "partial_fine_tuning",
        "fixed_layers": 100,
        "img_size": 64,
        "weights": None,
        "include_preprocessing": True,
    }
    model = transfer.build_model(params, [{"type": "dense", "units": 8}])
    backbone = transfer.backbone_of(model)
    assert backbone.name == "efficientnet_lite0"
    assert model.get_layer("features").output.shape[-1] == 1280
    assert 0 < transfer.trainable_backbone_layers(model) < sum(1 for layer in backbone.layers if layer.weights)
    image = np.full((1, 64, 64, 3), 127.0, dtype="float32")
    rescaled = model.get_layer("features").get_layer("preprocessing")(image)
    assert np.allclose(np.asarray(rescaled), 0.0)  # (127 − 127) / 128


def test_a_weight_file_that_is_not_the_verified_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEBOOK_DATA", str(tmp_path))
    file_name = weights.LITE_WEIGHTS["efficientnet_lite0"][0]
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / file_name).write_bytes(b"not the weights")
    with pytest.raises(data.DataFormatError, match="checksum mismatch"):
        transfer.build_model({"backbone": "efficientnet_lite0", "strategy": "feature_extraction", "img_size": 32}, [])


def test_a_state_dict_that_does_not_fit_names_the_tensor():
    _, state = _torch_lite()
    arrays = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    keras_net = efficientnet_lite.efficientnet_lite("efficientnet_lite0", (32, 32, 3), weights=None)
    with pytest.raises(ValueError, match="_blocks.3._depthwise_conv.weight is missing"):
        efficientnet_lite.set_lite_weights(
            keras_net, {k: v for k, v in arrays.items() if k != "_blocks.3._depthwise_conv.weight"}
        )
    with pytest.raises(ValueError, match="not used by efficientnet_lite0: _extra"):
        efficientnet_lite.set_lite_weights(keras_net, {**arrays, "_extra.weight": np.zeros(3)})
