"""The seeds' documented interfaces, called verbatim (smoke data). Seed 003 (LAM redshift): the dataset API,
the three model factories, save_in_dict and fig, all from casebook.redshift."""

import json

import matplotlib.figure
import numpy as np
import pytest

from casebook.data import DataFormatError
from casebook.models import transfer, transfer_config
from casebook.training import xray

# one worker runs the whole module, so its module-scoped fixture is built once (conftest: loadgroup)
pytestmark = pytest.mark.xdist_group("seed-split")


@pytest.fixture(scope="module")
def seed_split(tmp_path_factory):
    import os

    os.environ["CASEBOOK_SMOKE"] = "1"  # 300 simulated objects
    try:
        from casebook.redshift import load_processed

        return load_processed("DeltaZ", True)
    finally:
        os.environ.pop("CASEBOOK_SMOKE")


def test_load_processed_and_load_dataset_return_the_11_documented_items(seed_split, smoke):
    from casebook.redshift import load_dataset, load_processed

    (
        X_train,
        X_validation,
        X_test,
        target_train,
        target_validation,
        target_test,
        Y_train,
        Y_validation,
        Y_test,
        nb_class,
        nom_classes,
    ) = seed_split
    assert nb_class == 2 and len(nom_classes) == 2 and X_train.shape[1:] == (17908, 1)
    assert np.bincount(target_train).tolist() == [len(target_train) // 2] * 2  # undersampled: train only
    assert np.array_equal(Y_validation.argmax(1), target_validation) and Y_test.shape == (len(target_test), 2)
    plain = load_dataset("DeltaZ", False)
    assert len(tuple(plain)) == 11 and len(plain.X_train) > len(X_train)
    assert np.array_equal(plain.X_validation, X_validation) and np.array_equal(plain.target_test, target_test)
    by_keyword = load_processed("DeltaZ", Undersample=True)
    assert np.array_equal(by_keyword.X_train, X_train)


def test_make_cnn_gru_lstm_save_in_dict_and_fig_verbatim(seed_split, tmp_path, smoke):
    from casebook.redshift import fig, make_CNN, make_CNNGRU, make_CNNLSTM, save_in_dict

    (
        X_train,
        X_validation,
        X_test,
        target_train,
        target_validation,
        target_test,
        Y_train,
        Y_validation,
        Y_test,
        nb_class,
        nom_classes,
    ) = seed_split
    model = make_CNN((17908, 1), nb_class)
    history = model.fit(X_train, Y_train, validation_data=(X_validation, Y_validation), epochs=2, verbose=0)
    file_name = tmp_path / "report_CNN_DeltaZ"
    d = save_in_dict(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes, file_name)
    on_disk = json.loads(file_name.with_suffix(".json").read_text())  # JSON, never pickle
    assert (
        set(on_disk)
        == set(d)
        == {
            "conf_matrix_train",
            "conf_matrix_test",
            "nb_class",
            "nom_classes",
            "acc",
            "loss",
            "val_acc",
            "val_loss",
            "report",
            "model_summary",
            "lr",
        }
    )
    assert np.array(on_disk["conf_matrix_test"]).sum() == len(target_test) and len(on_disk["loss"]) == 2
    figure = fig(file_name)
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 4
    assert file_name.with_suffix(".png").is_file()
    for make, args in (
        (make_CNNGRU, ((17908, 1), nb_class)),
        (make_CNNGRU, ((17908, 1), nb_class, 0.2)),
        (make_CNNLSTM, ((17908, 1), nb_class)),
    ):
        net = make(*args)
        assert "accuracy" in [m.name for m in net.metrics] or net.compiled
        net.fit(X_train[:8], Y_train[:8], epochs=1, verbose=0)
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(DataFormatError, match="not a save_in_dict file"):
        fig(tmp_path / "broken.json")


# ------------------------------------------------------------------------------------------- seed 004 (pneumonia)

SEED_PARAMS = {  # the README's dict, verbatim
    "rgb": False,
    "include_top": False,
    "input_tensor": None,
    "classifier_activation": "softmax",
    "alpha": 0.35,
    "weights": "imagenet",
    "strategy": "no_tuning",
    "fixed_layers": 100,
    "epochs": 1,
    "batch_size": 100,
    "img_size": 224,
    "input_shape": (224, 224, 3),
    "pooling": "max",
    "equilibrate": True,
    "optimizer": "adamw",
    "loss": "categorical_crossentropy",
    "data_augmentation": True,
    "include_preprocessing": False,
    "model": "mobilenetv2",
}
SEED_LAYERS = [  # the README's list, verbatim
    {"type": "dropout", "count": 0.3},
    {"type": "dense", "count": 128, "activation": "relu"},
    {"type": "dropout", "count": 0.2},
    {"type": "dense", "count": 2, "activation": "softmax"},
]


def test_the_seed_params_verbatim_name_the_missing_weights_file_offline(empty_root):
    from casebook.models.transfer import build_model

    with pytest.raises(ValueError) as e:
        build_model(SEED_PARAMS, SEED_LAYERS)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in str(e.value)
    assert str(empty_root / "weights") in str(e.value)


def test_the_seed_params_verbatim_build_the_documented_model():
    import keras

    c = transfer_config.TransferConfig.from_seed({**SEED_PARAMS, "weights": None}, SEED_LAYERS)  # random: offline
    model = transfer.build_model({**SEED_PARAMS, "weights": None}, SEED_LAYERS)
    p = c.as_params()
    assert p["backbone"] == "mobilenetv2" and p["strategy"] == "feature_extraction" and p["augment"] is True
    assert model.input.shape[1:] == (224, 224, 3) and model.output.shape[1:] == (2,)
    assert transfer.trainable_backbone_layers(model) == 0  # no_tuning: frozen
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    features = model.get_layer("features")
    assert any(layer.name == "augmentation" for layer in features.layers)
    assert type(features.get_layer("pooled")).__name__ == "GlobalMaxPooling2D"
    head = [layer for layer in model.get_layer("head").layers if layer.weights]
    assert [layer.units for layer in head] == [128, 2] and head[-1].activation.__name__ == "softmax"
    rates = [layer.rate for layer in model.get_layer("head").layers if type(layer).__name__ == "Dropout"]
    assert rates == [0.3, 0.2]
    x = np.random.default_rng(0).uniform(-1, 1, (4, 224, 224, 3)).astype("float32")
    model.fit(x, np.eye(2, dtype="float32")[[0, 1, 0, 1]], epochs=1, verbose=0)
    assert np.allclose(model.predict(x, verbose=0).sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"include_top": True}, "include_top"),
        ({"input_tensor": "a tensor"}, "input_tensor"),
        ({"classifier_activation": "sigmoid"}, "classifier_activation"),
        ({"input_shape": (128, 128, 3)}, "input_shape"),
        ({"model": "vgg16", "include_preprocessing": True}, "include_preprocessing"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"colour_jitter": 0.1}, "colour_jitter"),
        ({"model": "mobilenet", "backbone": "vgg16"}, "'model'"),
    ],
)
def test_a_seed_key_that_cannot_be_honoured_is_named(change, key):
    from casebook.models.transfer_config import TransferConfig

    with pytest.raises(ValueError, match=key):
        TransferConfig.from_seed({**SEED_PARAMS, "weights": None, **change}, SEED_LAYERS)


def test_grey_input_and_in_model_preprocessing_match_the_pipeline():
    base = {"model": "mobilenet", "alpha": 0.25, "img_size": 32, "weights": None, "strategy": "no_tuning"}
    inside = transfer.build_model({**base, "input_shape": (32, 32, 1), "include_preprocessing": True}, [])
    outside = transfer.build_model(base, [])
    transfer.backbone_of(outside).set_weights(transfer.backbone_of(inside).get_weights())
    grey = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    rgb = transfer.preprocess_input("mobilenet")(np.repeat(grey, 3, axis=-1))
    np.testing.assert_allclose(inside.get_layer("features")(grey), outside.get_layer("features")(rgb), atol=1e-5)


def test_categorical_loss_and_batch_size_are_used_by_training():
    import tensorflow as tf

    x = np.random.default_rng(2).uniform(-1, 1, (12, 32, 32, 3)).astype("float32")
    y = np.array([0, 1] * 6, dtype="float32")
    ds = {s: tf.data.Dataset.from_tensor_slices((x, y)).batch(4) for s in ("train", "val")}
    base = {
        "model": "mobilenet",
        "alpha": 0.25,
        "img_size": 32,
        "weights": None,
        "epochs": 1,
        "loss": "categorical_crossentropy",
        "batch_size": 3,
    }
    for strategy in ("no_tuning", "fine_tuning"):
        c = transfer_config.TransferConfig.from_seed({**base, "strategy": strategy}, [{"type": "dense", "count": 8}])
        model = transfer.build(c)
        fit = xray.train_xray(model, c, ds, xray.FeatureCache())
        p_va, y_va = fit.validation["proba"], fit.validation["y"]
        assert p_va.shape == (12,) and ((p_va >= 0) & (p_va <= 1)).all() and fit.epochs_run == 1
        assert np.array_equal(y_va, y)
    rebatched = xray._rebatched(ds["train"], 3, one_hot=True)
    assert [int(b[0].shape[0]) for b in rebatched] == [3, 3, 3, 3]
    assert next(iter(rebatched))[1].shape[1:] == (2,)


def test_the_seed_figures_per_stage_plot_loss_and_accuracy_with_integer_epochs():
    from casebook.report import figures

    runs = [
        {
            "name": f"mobilenet#{k}",
            "params": {"strategy": "fine_tuning"},
            "val_true": [0, 1, 1, 0],
            "val_pred": [0, 1, 0, 0],
            "history": {
                "loss": [0.9, 0.5, 0.4][:n],
                "val_loss": [1.0, 0.6, 0.5][:n],
                "accuracy": [0.5, 0.7, 0.8][:n],
                "val_accuracy": [0.4, 0.6, 0.7][:n],
            },
        }
        for k, n in ((1, 1), (2, 3))
    ]
    graphs = figures.plot_runs_curves(runs, "candidates")
    assert [ax.get_ylabel() for ax in graphs.axes] == ["loss", "loss", "accuracy", "accuracy"]
    ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in graphs.axes]
    assert ticks[0] == ["1"] and ticks[1] == ["1", "2", "3"] and all(ax.get_xlabel() == "epoch" for ax in graphs.axes)
    confusion = figures.plot_runs_confusion(runs, ["NORMAL", "PNEUMONIA"], "candidates")
    assert len([ax for ax in confusion.axes if ax.get_title().endswith("(validation)")]) == 2
