"""Case study 5: the model factory, the image pipeline, the patient-grouped split, the MLflow round trip."""

import numpy as np
import pytest

from casebook import config
from casebook import preprocessing as pp
from casebook.data import chest_xray, weights
from casebook.models import transfer
from casebook.training import xray

config.quiet_tensorflow()

TINY = {"backbone": "mobilenet", "alpha": 0.25, "img_size": 32, "weights": None}


@pytest.mark.parametrize(
    "params, layers, message",
    [
        ({"strategy": "fine_tuning", "img_size": 32}, [], "missing params \\['backbone'\\]"),
        ({**TINY, "backbone": "alexnet", "strategy": "fine_tuning"}, [], "valid: mobilenetv2, mobilenet, resnet50v2"),
        ({**TINY, "strategy": "unfreeze_all"}, [], "valid: feature_extraction, partial_fine_tuning, fine_tuning"),
        ({**TINY, "strategy": "partial_fine_tuning"}, [], "needs params\\['fixed_layers'\\]"),
        ({**TINY, "strategy": "fine_tuning"}, [{"type": "conv"}], "valid: dense, dropout, flatten, batchnorm"),
        ({**TINY, "strategy": "fine_tuning"}, [{"type": "dense"}], "missing \\['units'\\]"),
        ({**TINY, "strategy": "fine_tuning", "loss": "hinge"}, [], "valid: binary_crossentropy, focal"),
    ],
)
def test_invalid_params_name_the_valid_choices(params, layers, message):
    with pytest.raises(ValueError, match=message):
        transfer.build_model(params, layers)


def test_strategies_set_the_trainable_layers():
    layers = [{"type": "dense", "units": 8}, {"type": "dropout", "rate": 0.2}, {"type": "batchnorm"}]
    fe = transfer.build_model({**TINY, "strategy": "feature_extraction"}, layers)
    ft = transfer.build_model({**TINY, "strategy": "fine_tuning"}, layers)
    pt = transfer.build_model({**TINY, "strategy": "partial_fine_tuning", "fixed_layers": 40}, layers)
    backbone = transfer.backbone_of(ft)

    def is_bn(layer):
        return type(layer).__name__ == "BatchNormalization"

    weighted = [layer for layer in backbone.layers if layer.weights and not is_bn(layer)]
    assert transfer.trainable_backbone_layers(fe) == 0
    assert transfer.trainable_backbone_layers(ft) == len(weighted) > 0
    assert transfer.trainable_backbone_layers(pt) == sum(1 for x in backbone.layers[40:] if x.weights and not is_bn(x))
    assert not any(x.trainable for x in backbone.layers if is_bn(x))
    assert 0 < transfer.trainable_backbone_layers(pt) < len(weighted)
    assert len(fe.get_layer("head").trainable_weights) > 0
    assert fe.output.shape[-1] == 1


@pytest.mark.slow
def test_batchnorm_stays_in_inference_mode_when_unfrozen():
    m = transfer.build_model({**TINY, "strategy": "fine_tuning", "learning_rate": 0.1}, [])
    bn = [layer for layer in transfer.backbone_of(m).layers if type(layer).__name__ == "BatchNormalization"][0]
    before = np.array(bn.moving_mean)
    x = np.random.default_rng(0).normal(5, 3, (8, 32, 32, 3)).astype("float32")
    m.fit(x, np.array([0, 1] * 4, dtype="float32"), epochs=1, verbose=0)
    assert np.array_equal(before, np.array(bn.moving_mean))  # moving statistics untouched by training
    assert transfer.trainable_backbone_layers(m) > 0


def test_image_pipeline_pads_to_square_and_uses_the_backbone_preprocessing(tmp_path):
    from PIL import Image

    img = np.full((40, 80), 255, np.uint8)  # wide white image
    Image.fromarray(img).save(tmp_path / "a.jpeg")
    ds = pp.xray_dataset(
        [tmp_path / "a.jpeg"], [1], img_size=32, preprocess=transfer.preprocess_input("mobilenet"), batch_size=1
    )
    x, y = next(iter(ds))
    x = np.asarray(x)
    assert x.shape == (1, 32, 32, 3) and float(y[0]) == 1.0
    assert x.min() >= -1.0 and x.max() <= 1.0  # MobileNet's preprocess_input scales to [-1, 1]
    assert np.allclose(x[0, 0], -1.0) and np.allclose(x[0, 16], 1.0, atol=0.05)  # padded rows black, centre white
    assert np.array_equal(x[..., 0], x[..., 2])  # grey → 3 identical channels


def test_grouped_split_keeps_patients_on_one_side(empty_root, smoke):
    idx = chest_xray.chest_xray_index()
    tr, va = pp.grouped_split(idx, 0.25, seed=0)
    assert not set(tr.patient_id) & set(va.patient_id)
    assert set(tr.label) == set(va.label) == {0, 1} and len(tr) + len(va) == (idx.split == "train").sum()
    w = pp.class_weights(np.array([0, 1, 1, 1]))
    assert w == {0: 2.0, 1: 4 / 6}


@pytest.mark.realdata
def test_offline_imagenet_weights_load(real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    m = transfer.build_model(
        {"backbone": "mobilenet", "alpha": 0.25, "img_size": 224, "strategy": "feature_extraction"}, []
    )
    conv1 = transfer.backbone_of(m).get_layer("conv1").get_weights()[0]
    assert conv1.shape == (3, 3, 3, 8) and np.abs(conv1).sum() > 0
    import h5py

    with h5py.File(weights.keras_weights_path(install=False)) as f:
        stored = f["conv1"]["conv1"]["kernel:0"][()]
    assert np.array_equal(conv1, stored)


@pytest.mark.slow
def test_tracking_round_trip_log_search_alias_load(tmp_path):
    from casebook.tracking import executions, model_registry, run_logging

    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")
    m = transfer.build_model({**TINY, "strategy": "feature_extraction"}, [{"type": "dense", "units": 4}])
    with run_logging.run(
        "pneumonia-test",
        executions.next_run_name("pneumonia-test", "mobilenet"),
        params={"backbone": "mobilenet"},
        tags={"stage": "candidate"},
    ) as r:
        run_logging.log_model(m, "keras", input_example=x[:2])
    runs = executions.search("pneumonia-test", "tags.stage = 'candidate'")
    assert runs.iloc[0]["run_id"] == r.info.run_id and runs.iloc[0]["tags.mlflow.runName"] == "mobilenet#1"
    version = model_registry.register_alias(r.info.run_id, "pneumonia-test-model", "champion")
    loaded = model_registry.load_by_alias("pneumonia-test-model", "champion")
    assert version == 1
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
    assert xray.predict_dataset(m, [(x[:4], np.zeros(4))])[0].shape == (4,)


def test_image_statistics_measure_a_black_border(tmp_path):
    from PIL import Image

    img = np.zeros((100, 100), dtype=np.uint8)
    img[8:92, 8:92] = 200
    Image.fromarray(img).save(tmp_path / "framed.png")
    Image.fromarray(np.full((100, 100), 50, dtype=np.uint8)).save(tmp_path / "flat.png")
    stats = pp.image_statistics([tmp_path / "framed.png", tmp_path / "flat.png"])
    framed, flat = stats.iloc[0], stats.iloc[1]
    assert np.isclose(framed["dark_fraction"], 1 - 84**2 / 100**2) and framed["border_mean"] == 0
    assert np.isclose(framed["mean"], 200 * 84**2 / 100**2)
    assert flat["contrast"] == 0 and flat["dark_fraction"] == 0 and flat["border_mean"] == 50
    assert flat["sharpness"] == 0 and framed["sharpness"] > 0  # a flat image has no detail; the frame's edge has


@pytest.mark.slow
def test_the_deep_ensemble_averages_its_members_probabilities():
    c = {**TINY, "strategy": "feature_extraction"}
    members = [transfer.build_model(c, [{"type": "dense", "units": units}]) for units in (4, 8, 16)]
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    each = [m.predict(x, verbose=0) for m in members]
    ensemble = transfer.average_of(members)
    assert np.allclose(ensemble.predict(x, verbose=0), np.mean(each, axis=0), atol=1e-6)
    assert len({layer.name for layer in ensemble.layers}) == len(ensemble.layers)
