"""The pneumonia recipe: the model cut into a frozen trunk and a trainable top, fine-tuning on cached views
(warm start, cosine schedule, BatchNorm frozen), the nuisance augmentation, the recall threshold rule."""

import numpy as np
import pytest

from casebook import config
from casebook.models import transfer, xray_views
from casebook.models.transfer_config import TransferConfig
from casebook.training import xray, xray_finetune

config.quiet_tensorflow()

LITE = {
    "backbone": "efficientnet_lite0",
    "img_size": 64,
    "weights": None,
    "include_preprocessing": True,
    "strategy": "partial_fine_tuning",
    "fixed_layers": 95,  # block 11 onwards trains
    "augment": True,
    "cached_views": 2,
    "warm_start_epochs": 2,
    "lr_schedule": "cosine",
    "epochs": 2,
    "batch_size": 8,
    "learning_rate": 1e-2,
}
HEAD = [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dropout", "rate": 0.2}]


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (n, 64, 64, 1)).astype(np.float32)
    return np.repeat(base, 3, axis=-1)


def _datasets(n: int = 24):
    import tensorflow as tf

    x, y = _images(n), np.array([0, 1] * (n // 2), dtype=np.float32)
    return {s: tf.data.Dataset.from_tensor_slices((x, y)).batch(8) for s in ("train", "val")}, x


def test_the_trunk_and_top_share_the_model_and_compose_to_it():
    c = TransferConfig.from_seed(LITE, HEAD)
    model = transfer.build(c)
    trunk, top, top_features = transfer.split_at_cut(model, c)
    x = _images(3)
    np.testing.assert_allclose(top(trunk(x)), model(x), atol=1e-5)
    np.testing.assert_allclose(top_features(trunk(x)), model.get_layer("features")(x), atol=1e-5)
    assert trunk.output.shape[1:] == (4, 4, 112)
    model_weights = {id(w) for w in model.weights}
    assert {id(w) for w in top.weights} <= model_weights and {id(w) for w in trunk.weights} <= model_weights
    assert not any(layer.name == "augmentation" for layer in model.get_layer("features").layers)  # pre-drawn


def test_a_cut_inside_a_residual_block_is_refused():
    c = TransferConfig.from_seed({**LITE, "fixed_layers": 18}, HEAD)  # block2, after its input was split off
    with pytest.raises(ValueError, match="not a single tensor"):
        transfer.split_at_cut(transfer.build(c), c)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"strategy": "fine_tuning"}, "needs strategy 'partial_fine_tuning'"),
        ({"augment": False}, "needs augment=True"),
        ({"lr_schedule": "step"}, "valid: constant, cosine"),
        ({"warm_start_epochs": -1}, "warm_start_epochs"),
    ],
)
def test_recipe_settings_that_cannot_work_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        TransferConfig.from_seed({**LITE, **change}, HEAD)


def test_the_cosine_schedule_warms_up_then_decays_to_zero():
    c = TransferConfig.from_seed(LITE, HEAD)
    schedule = transfer.learning_rate(c, steps=100)
    rates = [float(schedule(step)) for step in (0, 10, 55, 100)]
    assert rates[0] == 0 and np.isclose(rates[1], 1e-2) and 0 < rates[2] < 1e-2 and rates[3] < 1e-6
    constant = TransferConfig.from_seed({**LITE, "lr_schedule": "constant"}, HEAD)
    assert transfer.learning_rate(constant, steps=100) == 1e-2


@pytest.mark.slow
def test_fine_tuning_on_cached_views_trains_only_after_the_cut():
    config.seed_everything(0)
    c = TransferConfig.from_seed(LITE, HEAD)
    model = transfer.build(c)
    datasets, x = _datasets()
    backbone = transfer.backbone_of(model)
    frozen_before = backbone.get_layer("block10_project_conv").get_weights()[0].copy()
    trained_before = backbone.get_layer("block15_project_conv").get_weights()[0].copy()
    bn_before = np.array(backbone.get_layer("block15_project_bn").moving_mean)
    pretrained_features = np.asarray(model.get_layer("features")(x))
    cache = xray.FeatureCache()
    result = xray.train_xray(model, c, datasets, cache, class_weight={0: 1.0, 1: 1.0})
    assert result.outputs["warm_start_epochs"] >= 1 and result.epochs_run == c.epochs
    assert np.array_equal(frozen_before, backbone.get_layer("block10_project_conv").get_weights()[0])
    assert not np.array_equal(trained_before, backbone.get_layer("block15_project_conv").get_weights()[0])
    assert np.array_equal(bn_before, np.array(backbone.get_layer("block15_project_bn").moving_mean))
    views, labels = next(iter(v for k, v in cache.views.items() if k[-1] == "train"))
    assert views.shape[:2] == (2, 24) and views.dtype == np.float32 and len(labels) == 24
    frozen = TransferConfig.from_seed({**LITE, "strategy": "feature_extraction", "cached_views": 0}, HEAD)
    features, feature_labels = cache.store[cache.key(model, frozen, "train")]  # filled from the clean views
    order = xray.canonical_order(xray.image_digests(x[..., :1]), np.array([0, 1] * 12))
    np.testing.assert_allclose(features, pretrained_features[order], rtol=1e-4, atol=1e-6)
    assert np.array_equal(feature_labels, labels)
    assert not np.allclose(views[0].astype(np.float32), views[1].astype(np.float32))  # view 1 is augmented
    p_full = xray.positive_proba(model.predict(x, verbose=0))  # the registered model scores as the cached path
    np.testing.assert_allclose(result.validation["proba"], p_full, atol=1e-4)


def test_augmented_views_are_reproducible_and_change_the_image():
    images = _images(4, seed=1)[..., 0]
    one = xray_views.augmented_views(images, 1, seed=42)
    assert one.shape == images.shape and one.min() >= 0 and one.max() <= 255
    np.testing.assert_array_equal(one, xray_views.augmented_views(images, 1, seed=42))
    assert not np.allclose(one, xray_views.augmented_views(images, 2, seed=42))
    assert not np.allclose(one, images)


def test_the_shifted_validation_degradations_blur_or_recompress():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    images = np.repeat(ndimage.zoom(rng.uniform(0, 255, (2, 56, 56)), (1, 4, 4))[..., None], 3, axis=-1)

    def detail(x):
        return np.mean([ndimage.laplace(im[..., 0]).var() for im in x])

    for kind, value in xray_views.SHIFTS.values():
        out = xray_views.degraded(images, kind, value)
        assert out.shape == images.shape and np.array_equal(out[..., 0], out[..., 2])
        if kind == "jpeg":  # block artefacts: changed, not necessarily smoother
            assert 0 < np.abs(out - images).mean() < 10
        else:
            assert detail(out) < 0.8 * detail(images)
    with pytest.raises(ValueError, match="unknown degradation"):
        xray_views.degraded(images, "noise", 1)


def test_the_recall_threshold_is_the_highest_that_keeps_the_recall():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    score = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    for target in (0.9, 0.96, 1.0):
        t = xray.threshold_for_recall(y, score, target)
        recall = np.mean(score[y == 1] >= t)
        above = np.min(score[(y == 1) & (score > t)])
        assert recall >= target and np.mean(score[y == 1] >= above) < target
    with pytest.raises(ValueError, match="min_recall"):
        xray.threshold_for_recall(y, score, 0.0)


@pytest.mark.slow
def test_warm_start_reuses_the_frozen_candidates_features(tmp_path):
    from casebook.models.efficientnet_lite import efficientnet_lite

    weights = tmp_path / "lite.weights.h5"
    efficientnet_lite("efficientnet_lite0", (64, 64, 3), None).save_weights(weights)
    c = TransferConfig.from_seed({**LITE, "weights": str(weights)}, HEAD)
    datasets, _ = _datasets()
    cache = xray.FeatureCache()
    frozen = TransferConfig.from_seed(
        {**LITE, "weights": str(weights), "strategy": "feature_extraction", "cached_views": 0}, HEAD
    )
    xray.train_xray(transfer.build(frozen), frozen, datasets, cache)
    assert len(cache.store) == 2
    xray_finetune.warm_start_head(transfer.build(c), c, datasets, cache)
    assert len(cache.store) == 2  # the same (backbone, size, weights, pooling) features: nothing recomputed


@pytest.mark.slow
def test_the_ensemble_members_scores_average_to_the_ensemble_and_the_shift_check_runs():
    import tensorflow as tf

    tiny = {"backbone": "mobilenet", "alpha": 0.25, "img_size": 64, "weights": None, "strategy": "feature_extraction"}
    members = [
        transfer.build_model({**tiny, "include_preprocessing": True}, [{"type": "dense", "units": u}]) for u in (4, 8)
    ]
    ensemble = transfer.average_of(members)
    x, y = _images(12, seed=2), np.array([0, 1] * 6, dtype=np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.uint8), y)).batch(5)
    p_members, y_out = xray.predict_members(ensemble, ds)
    assert p_members.shape == (12, 2) and np.array_equal(y_out, y)
    np.testing.assert_allclose(p_members.mean(1), xray.predict_dataset(ensemble, ds)[0], atol=1e-6)
    p_clean = p_members.mean(1)
    threshold = float(np.median(p_clean))
    table = xray_finetune.shifted_validation(ensemble, ds, p_clean, threshold)
    assert list(table.index) == ["none", *xray_views.SHIFTS]
    assert np.isclose(table.loc["none", "recall normal"], np.mean(p_clean[y == 0] < threshold))
    assert ((table["roc_auc"] >= 0) & (table["roc_auc"] <= 1)).all()


@pytest.mark.slow
def test_a_sweep_gives_each_candidate_its_seed_and_every_run_the_declared_threshold_rule(empty_root, smoke):
    from casebook import experiments
    from casebook import preprocessing as pp
    from casebook.data import chest_xray
    from casebook.tracking import executions

    executions.start_execution("pneumonia-rule-test", "test")
    index = chest_xray.chest_xray_index(n_per_class=12)  # the synthetic stand-in (empty data root)
    train, val = pp.grouped_split(index, 0.3, 0)
    data = pp.XrayData(train, val, img_size=32, batch_size=16, seed=0)
    tiny = {"backbone": "mobilenet", "alpha": 0.25, "img_size": 32, "weights": None, "epochs": 2}
    candidates = [({**tiny, "strategy": "feature_extraction"}, HEAD)] * 2
    runs = experiments.run_xray_sweep(
        candidates, "candidate", data, xray.FeatureCache(), "pneumonia-rule-test", seeds=[1, 2], min_recall=0.9
    )
    assert runs[0]["val_proba"].tolist() != runs[1]["val_proba"].tolist()  # two seeds, two heads
    ensemble = experiments.run_xray_ensemble(runs, experiment="pneumonia-rule-test", min_recall=0.9)
    for run in [*runs, ensemble]:
        y, p = run["val_true"], run["val_proba"]
        assert run["threshold"] == xray.threshold_for_recall(y, p, 0.9) and run["val"]["recall_pneumonia"] >= 0.9
    logged = executions.search("pneumonia-rule-test")
    assert set(logged["params.threshold_rule"]) == {xray.threshold_rule(0.9)}
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 candidates"):
        experiments.run_xray_sweep(candidates, "candidate", data, xray.FeatureCache(), seeds=[1])


@pytest.mark.slow
def test_cached_training_features_and_views_do_not_depend_on_the_shuffle():
    import tensorflow as tf

    c = TransferConfig.from_seed({**LITE, "cached_views": 2}, HEAD)
    model = transfer.build(c)
    trunk = transfer.split_at_cut(model, c)[0]
    x, y = _images(20, seed=4), np.array([0, 1] * 10, dtype=np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(20, seed=0, reshuffle_each_iteration=True).batch(8)
    first, second = xray.FeatureCache(), xray.FeatureCache()
    features = first.get(model, c, ds, "train")
    views = xray_finetune.cached_views(first, trunk, c, ds, "train")
    next(iter(ds))  # one more pass: the shuffled order differs from here on
    np.testing.assert_allclose(second.get(model, c, ds, "train")[0], features[0], rtol=1e-3, atol=1e-9)
    again = xray_finetune.cached_views(second, trunk, c, ds, "train")  # batches differ: float rounding only
    np.testing.assert_allclose(again[0], views[0], rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(again[1], views[1])
