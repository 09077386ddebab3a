"""casebook's own estimators pass scikit-learn's estimator checks; the MLP on data too small for its validation
split trains predictably; GeoSimilarity finds its coordinates by name or by position alike."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from casebook import preprocessing as pp
from casebook.training import mlp_classifier

# Small and on the CPU, so the checks run in seconds; the MLP still learns scikit-learn's blobs (accuracy > 0.83).
CHECKED = [
    pp.IQRClipper(),
    pp.GeoSimilarity(n_clusters=2, columns=(0, 1)),  # positions: the checks pass arrays without column names
    pp.IQROutlierRemover(),
    mlp_classifier.TorchMLPClassifier(hidden=(8,), lr=0.03, epochs=10, device="cpu"),
]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _blobs(n_per_class, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return rng.normal(size=(len(y), 3)) + y[:, None], y


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 0, 0, 1, 1, 1]),  # one validation row (10% of 6, rounded up) cannot hold both classes
        np.r_[np.zeros(29, int), 1],  # a class with a single row cannot be on both sides
    ],
    ids=["too-few-rows", "single-row-class"],
)
def test_the_mlp_trains_on_all_rows_without_early_stopping_where_no_validation_split_fits(y):
    X = np.random.default_rng(0).normal(size=(len(y), 3))
    clf = mlp_classifier.TorchMLPClassifier(hidden=(4,), epochs=5, patience=1, device="cpu").fit(X, y)
    run = clf.training_
    assert run.n_train == len(y) and run.epochs_run == 5 and "val_loss" not in run.history
    assert clf.predict_proba(X).shape == (len(y), 2) and set(clf.predict(X)) <= {0, 1}


def test_the_mlp_keeps_its_validation_split_where_it_fits():
    X, y = _blobs(10)  # 2 validation rows, one per class
    run = mlp_classifier.TorchMLPClassifier(hidden=(4,), epochs=5, device="cpu").fit(X, y).training_
    assert run.n_train == 18 and run.history["val_loss"].notna().all()


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_a_validation_fraction_outside_0_1_is_refused_by_name(fraction):
    X, y = _blobs(10)
    with pytest.raises(ValueError, match="validation_fraction must be between 0 and 1"):
        mlp_classifier.TorchMLPClassifier(validation_fraction=fraction, device="cpu").fit(X, y)


def test_the_mlp_refuses_a_continuous_target_and_nan_before_training():
    X, y = _blobs(10)
    clf = mlp_classifier.TorchMLPClassifier(device="cpu")
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, y + 0.5)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(np.where(np.eye(len(y), 3, dtype=bool), np.nan, X), y)
    assert not hasattr(clf, "model_")


def test_geo_similarity_by_name_equals_by_position():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"MedInc": rng.random(60), "Latitude": rng.uniform(32, 42, 60), "Longitude": rng.uniform(-124, -114, 60)}
    )
    by_name = pp.GeoSimilarity(n_clusters=4, seed=0).fit(frame)
    by_position = pp.GeoSimilarity(n_clusters=4, columns=(1, 2), seed=0).fit(frame.to_numpy())
    np.testing.assert_array_equal(by_name.transform(frame), by_position.transform(frame.to_numpy()))
    assert list(by_name.get_feature_names_out()[:3]) == list(frame.columns)
    with pytest.raises(ValueError, match="needs a DataFrame with columns"):
        pp.GeoSimilarity(n_clusters=4).fit(frame.to_numpy())
    with pytest.raises(ValueError, match="out of range"):
        pp.GeoSimilarity(n_clusters=4, columns=(1, 3)).fit(frame.to_numpy())


def test_outlier_remover_returns_a_frame_with_its_index():
    X, y = _blobs(20)
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 140))
    frame.iloc[7, 0] = 1e6
    kept, y_kept = pp.IQROutlierRemover().fit_resample(frame, y)
    assert isinstance(kept, pd.DataFrame) and 107 not in kept.index and len(kept) == len(y_kept) == 39
    np.testing.assert_array_equal(y_kept, np.delete(y, 7))


def test_class_weights_are_scikit_learns_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    assert pp.class_weights(y) == dict(enumerate(expected)) == {0: 8 / 9, 1: 8 / 3, 2: 8 / 12}
    assert pp.class_weights(np.array([0, 2, 2])) == {0: 1.5, 2: 0.75}  # only the classes present
