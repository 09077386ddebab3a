"""Case study 3: the exact architectures, the preprocessing, the benchmark."""

import numpy as np
import pandas as pd
import pytest

from casebook import config
from casebook import preprocessing as pp
from casebook.data import mnist
from casebook.models import mlp, summary, vision
from casebook.training import keras_loops, result, torch_loop


def test_mnist_cnn_is_exactly_the_specified_architecture():
    import torch

    m = vision.make_mnist_cnn()
    kinds = [type(layer).__name__ for layer in m]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert (m[0].in_channels, m[0].out_channels, m[0].padding) == (1, 16, (1, 1))
    assert (m[3].in_channels, m[3].out_channels) == (16, 32)
    assert (m[7].in_features, m[7].out_features, m[9].out_features) == (1568, 128, 10)
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_images_to_tensor_normalises_with_mnist_statistics():
    x = np.array([[[0, 255]]], dtype=np.uint8).repeat(2, axis=0)
    t = pp.images_to_tensor(x)
    assert t.shape == (2, 1, 1, 2) and t.dtype.is_floating_point
    np.testing.assert_allclose(t[0, 0, 0].numpy(), [-0.1307 / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-5)


def test_holdout_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(np.arange(10), 50)
    tr, va = pp.holdout_split(len(y), 100, y, seed=1)
    assert len(va) == 100 and not set(tr) & set(va) and len(tr) + len(va) == len(y)
    assert np.bincount(y[va]).tolist() == [10] * 10
    assert np.array_equal(va, pp.holdout_split(len(y), 100, y, seed=1)[1])


def test_torch_fit_early_stops_and_restores_best_weights():
    import torch

    torch.manual_seed(0)
    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).long()
    m = mlp.make_mlp(5, (8,), 2)
    fit = torch_loop.torch_fit(
        m, x, y, x[:50], y[:50], optimizer=torch.optim.SGD(m.parameters(), lr=0.0), epochs=20, batch_size=32, patience=3
    )
    assert fit.epochs_run == 4 and fit.best_epoch == 1 and fit.stopped_early  # lr 0: no improvement after epoch 1
    assert list(fit.history.index) == [1, 2, 3, 4] and fit.model is m and fit.n_train == 200


def test_benchmark_compares_the_same_number_of_batches(empty_root, smoke):
    import torch
    import torchvision.transforms as T

    s = mnist.load_mnist()
    x, y = pp.images_to_tensor(s.x_train), torch.from_numpy(s.y_train)
    ds = mnist.torchvision_dataset("mnist", True, T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    xb, yb = ds[0]
    assert xb.shape == (1, 28, 28) and torch.allclose(xb, x[0], atol=1e-6) and yb == int(y[0])
    loops = torch_loop.benchmark_loops(vision.make_mnist_cnn, x, y, ds, n_batches=3, x_val=x[:64], y_val=y[:64])
    assert all(r.outputs["batches"] == 3 and 0 <= r.validation["accuracy"] <= 1 for r in loops.values())
    out = torch_loop.benchmark_table(loops)
    assert list(out.index) == ["tensor loop, channels-last (this notebook)", "textbook DataLoader + ToTensor/Normalize"]
    assert out.attrs["speedup"] > 0 and (out["seconds"] > 0).all()


@pytest.fixture(scope="module")
def keras_mod():
    config.quiet_tensorflow()
    import keras

    return keras


@pytest.mark.slow
def test_housing_mlp_is_exactly_the_specified_architecture(keras_mod):
    m = mlp.make_housing_mlp(8)
    assert [layer.units for layer in m.layers] == [64, 32, 1]
    assert [layer.activation.__name__ for layer in m.layers] == ["relu", "relu", "linear"]
    assert m.count_params() == 8 * 64 + 64 + 64 * 32 + 32 + 33 and m.loss == "mse"
    assert m.predict(np.zeros((2, 8)), verbose=0).shape == (2, 1)


def test_steps_per_execution_gives_the_same_training_as_one_step_per_call(keras_mod):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 8)).astype("float32"), rng.normal(size=300).astype("float32")
    weights = []
    for spe in (1, 8):
        config.seed_everything(3)
        m = mlp.make_housing_mlp(8, steps_per_execution=spe)
        m.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        weights.append(m.get_weights())
    for a, b in zip(*weights, strict=False):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fit_keras_regressor_fits_features_on_train_and_scores_the_keras_validation_rows(keras_mod):
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(250, 8)) * 10 + 3)
    y = X.to_numpy() @ rng.normal(size=8) / 10
    fits = [
        keras_loops.fit_keras_regressor(mlp.make_housing_mlp, StandardScaler(), X, y, epochs=3, batch_size=32, seed=5)
        for _ in range(2)
    ]
    fit = fits[0]
    features = fit.model.features
    assert features.n_samples_seen_ == 250 and np.allclose(features.mean_, X.mean())
    assert fit.epochs_run == 3 and fit.n_train == 250 and fit.seconds > 0
    val_rows = X.iloc[200:]  # Keras' validation_split=0.2 of 250 rows
    expected = np.sqrt(np.mean((fit.model.predict(val_rows) - y[200:]) ** 2))
    rmse = fit.validation["rmse"]
    assert rmse == pytest.approx(expected, rel=1e-5)
    assert rmse**2 == pytest.approx(fit.history["val_loss"].iloc[-1], rel=1e-3)
    assert fits[1].validation["rmse"] == rmse  # same seed, same network


def test_geo_similarity_learns_its_centres_from_the_rows_it_is_fitted_on_only():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"MedInc": rng.random(200), "Latitude": rng.uniform(32, 42, 200), "Longitude": rng.uniform(-124, -114, 200)}
    )
    other = train.assign(Latitude=train["Latitude"] + 50)  # far away: must not move the centres
    geo = pp.GeoSimilarity(n_clusters=5, gamma=1.0).fit(train)
    centres = geo.kmeans_.cluster_centers_.copy()
    out = geo.transform(other)
    np.testing.assert_array_equal(geo.kmeans_.cluster_centers_, centres)
    assert out.shape == (200, 3 + 5) and np.allclose(out[:, :3], other.to_numpy())
    assert np.all(out[:, 3:] < 1e-100)  # 50° from every centre
    at_centre = pd.DataFrame({"MedInc": [0.0], "Latitude": [centres[0, 0]], "Longitude": [centres[0, 1]]})
    assert geo.transform(at_centre)[0, 3] == pytest.approx(1.0)
    assert list(geo.get_feature_names_out())[-1] == "geo_sim_4"
    with pytest.raises(ValueError, match="Latitude"):
        geo.transform(train.drop(columns="Latitude"))
    with pytest.raises(ValueError, match="n_clusters"):
        pp.GeoSimilarity(n_clusters=500).fit(train)


@pytest.mark.slow
@pytest.mark.parametrize("augment", [False, True])
def test_fashion_cnn_builds_and_augmentation_is_inactive_at_inference(keras_mod, augment):
    m = vision.make_fashion_cnn(augment=augment)
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    p1, p2 = m.predict(x, verbose=0), m.predict(x, verbose=0)
    assert p1.shape == (4, 10) and np.allclose(p1.sum(1), 1, atol=1e-5) and np.array_equal(p1, p2)
    convs = [layer for layer in m.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64]
    assert (m.layers[0].name == "augmentation") == augment


def test_augmentation_changes_images_only_in_training(keras_mod):
    aug = vision.fashion_augmentation(0)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert np.array_equal(aug(x, training=False).numpy(), x)
    assert not np.allclose(aug(x, training=True).numpy(), x)


def test_baselines_are_scored_on_the_rows_keras_holds_out():
    import numpy as np
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = X @ np.array([1.0, -2.0])
    y[80:] += 5.0  # only the last 20 rows (Keras' validation_split=0.2) are shifted
    fitted, val_rmse = keras_loops.fit_baseline_regressor(LinearRegression(), X, y)
    assert np.allclose(fitted.coef_, [1.0, -2.0]) and abs(val_rmse - 5.0) < 1e-6


def test_a_training_result_summarises_and_tabulates_the_restored_epoch():
    history = {"loss": [1.0, 0.6, 0.5, 0.45], "val_loss": [1.1, 0.7, 0.8, 0.9], "val_accuracy": [0.5, 0.8, 0.81, 0.82]}
    frame = result.history_to_frame(history)
    fit = result.TrainingResult(frame, result.best_epoch(frame), 12.4, 60, n_train=5000)
    assert fit.summary() == {
        "epochs run": 4,
        "best epoch": 2,
        "best val accuracy": 0.8,
        "best val loss": 0.7,
        "seconds": 12,
    }
    assert fit.stopped_early and fit.epochs_run == 4 and fit.seconds_per_epoch == 3.1
    fit.validation["accuracy_at_best"] = fit.at_best("val_accuracy")
    row = keras_loops.records_table({"CNN": fit}).loc["CNN"]
    assert row["s per epoch per 10k PDFs"] == 6.2 and row["stopped early"] and row["epoch cap"] == 60
    assert row["val accuracy at best epoch"] == 0.8 and row["best epoch"] == 2


def test_keras_summary_text_needs_no_console():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden")], name="tiny")
    text = summary.summary_text(model)
    assert 'Model: "tiny"' in text and "hidden (Dense)" in text and "Total params: 15" in text


def test_torch_fit_steps_the_scheduler_every_batch_and_augments_training_batches_only():
    import torch

    torch.manual_seed(0)
    x, y = torch.randn(96, 5), torch.randint(0, 2, (96,))
    m = mlp.make_mlp(5, (8,), 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=3)
    seen = []

    def augment(xb, generator):
        seen.append(len(xb))
        return xb + torch.randn(xb.shape, generator=generator)

    torch_loop.torch_fit(
        m, x, y, x[:10], y[:10], optimizer=opt, epochs=2, batch_size=32, scheduler=sched, augment=augment
    )
    assert sched.last_epoch == 6, "one scheduler step per batch (3 batches x 2 epochs)"
    assert seen == [32] * 6, "only the training batches are augmented"


def test_random_affine_is_seeded_keeps_layout_and_is_the_identity_at_zero():
    import torch

    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    same = pp.random_affine(x, torch.Generator().manual_seed(0), max_degrees=0, max_shift=0)
    assert torch.equal(same, x) and same.is_contiguous(memory_format=torch.channels_last)
    a = pp.random_affine(x, torch.Generator().manual_seed(1))
    b = pp.random_affine(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x) and a.dtype == x.dtype
    shifted = torch.zeros(1, 1, 8, 8)
    shifted[0, 0, 4, 4] = 1.0
    moved = pp.random_affine(shifted, torch.Generator().manual_seed(2), max_degrees=0, max_shift=2)
    rows, cols = np.nonzero(moved[0, 0].numpy())
    assert moved.shape == shifted.shape and abs(moved.sum().item() - 1) < 1e-6  # bilinear keeps the mass
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6  # within 2 px


def test_random_affine_is_torchs_rotation_and_shift_and_keeps_a_flat_background_flat():
    """The same transform as torch's ``affine_grid`` + ``grid_sample`` (border padding) up to the 1/256-pixel
    snapping of source positions, and a constant image stays exactly constant (grid_sample's float32 weights
    left last-bit noise there, near-ties for the max-pooling)."""
    import torch
    import torch.nn.functional as F

    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    smooth = torch.stack([torch.sin(xx / 4) * torch.cos(yy / 5), (xx - yy) / 28])[:, None]  # 2 images
    draw = torch.rand(2, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
    angle, shift = draw[:, 0] * np.deg2rad(10), draw[:, 1:] * 2 * 2 / 28
    theta = torch.stack([torch.cos(angle), -torch.sin(angle), shift[:, 0], torch.sin(angle), torch.cos(angle)], 1)
    theta = torch.cat([theta, shift[:, 1:]], 1).reshape(2, 2, 3)
    grid = F.affine_grid(theta, [2, 1, 28, 28], align_corners=False)
    torchs = F.grid_sample(smooth, grid, padding_mode="border", align_corners=False)
    ours = pp.random_affine(smooth, torch.Generator().manual_seed(3), max_degrees=10, max_shift=2)
    assert (ours - torchs).abs().max() < 2e-3 < (ours - smooth).abs().max()
    flat = torch.full((8, 1, 28, 28), pp.images_to_tensor(np.zeros((1, 28, 28), np.uint8)).flatten()[0].item())
    assert torch.equal(pp.random_affine(flat, torch.Generator().manual_seed(4)), flat)


AUGMENT_DIGEST = """
import hashlib, numpy as np, torch
from casebook import preprocessing as pp
images = np.random.default_rng(5).integers(0, 256, (64, 28, 28), dtype=np.uint8)
x = pp.images_to_tensor(images).contiguous(memory_format=torch.channels_last)
out = pp.random_affine(x, torch.Generator().manual_seed(5))
grid = torch.linspace(-1, 1, 28)  # affine_grid's base grid: its rounding depends on the kernels
for t in (out, grid):
    print(hashlib.sha256(t.numpy().tobytes()).hexdigest())
print(torch.backends.cpu.get_cpu_capability())
"""


@pytest.mark.slow
def test_random_affine_gives_the_same_bits_with_other_kernels_and_thread_counts():
    """Issue 40: notebook 05's augmented run differed between two CPUs. Torch's unvectorised kernels and one
    thread stand in for another CPU here; the augmented batch must not change by a bit (torch's own
    ``linspace``, which ``affine_grid`` used, does change on x86, which shows that the stand-in bites)."""
    import os
    import subprocess
    import sys

    def run(**env):
        done = subprocess.run(
            [sys.executable, "-c", AUGMENT_DIGEST], env=os.environ | env, capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    augmented, grid, capability = run()
    unvectorised = run(ATEN_CPU_CAPABILITY="default")
    assert unvectorised[0] == augmented, "torch's unvectorised kernels changed the augmented batch"
    assert run(OMP_NUM_THREADS="1")[0] == augmented, "one thread changed the augmented batch"
    if capability.startswith("AVX"):
        assert unvectorised[1] != grid, "the stand-in for another CPU changed nothing here"


def test_light_augmentation_flips_and_shifts_only_in_training_and_the_cnn_takes_it(keras_mod):
    aug = vision.light_augmentation(0)
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    assert np.array_equal(aug(x, training=False).numpy(), x)
    assert not np.allclose(aug(x, training=True).numpy(), x)
    assert [type(layer).__name__ for layer in aug.layers] == ["RandomFlip", "RandomTranslation"]
    schedule = keras_mod.optimizers.schedules.CosineDecay(1e-3, 100)
    m = vision.make_fashion_cnn(augmentation=aug, learning_rate=schedule, label_smoothing=0.1)
    assert m.layers[0] is aug and m.loss.get_config()["label_smoothing"] == 0.1


def test_a_training_result_travels_as_plain_data():
    import json

    history = result.history_to_frame({"loss": [0.9, 0.5, 0.6], "val_loss": [1.0, 0.7, 0.8]})
    trained = result.TrainingResult(history, 2, 3.5, 10, object(), {"accuracy_at_best": 0.8}, n_train=7)
    back = result.TrainingResult.from_record(json.loads(json.dumps(trained.as_record())))
    assert back.model is None and back.history.equals(trained.history)
    assert (back.best_epoch, back.seconds, back.epoch_cap, back.n_train) == (2, 3.5, 10, 7)
    assert back.validation == trained.validation and back.stopped_early and back.epochs_run == 3
