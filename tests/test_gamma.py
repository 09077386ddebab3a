"""Case study 1: the protocol is leak-free, and the MLP estimator persists safely."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate

from casebook import persistence
from casebook import preprocessing as pp
from casebook.data import magic
from casebook.models import tabular
from casebook.training import mlp_classifier

SEEN = {"fit": [], "transform": []}


class Spy(TransformerMixin, BaseEstimator):
    """Records the exact rows it is fitted on and the rows it transforms."""

    def __init__(self, where="start"):
        self.where = where

    def fit(self, X, y=None):
        SEEN["fit"].append((self.where, np.asarray(X).copy()))
        SEEN.setdefault("y", []).append((self.where, None if y is None else np.asarray(y).copy()))
        return self

    def transform(self, X):
        SEEN["transform"].append((self.where, np.asarray(X).copy()))
        return X


def _rows(a):
    return {tuple(np.round(r, 9)) for r in np.asarray(a)}


@pytest.fixture
def split(empty_root, smoke):
    X, y = pp.gamma_xy(magic.load_magic())
    return pp.stratified_split(X, y, test_size=0.25, seed=0)


def test_nothing_fitted_ever_sees_a_test_row_and_smote_never_reaches_evaluation(split):
    X_train, X_test, y_train, y_test = split
    pipe = pp.make_pipeline(LogisticRegression(max_iter=500), outliers="remove", balance="smote", seed=0)
    pipe.steps.insert(0, ("spy_in", Spy("start")))
    pipe.steps.insert(len(pipe.steps) - 1, ("spy_model", Spy("model")))
    SEEN["fit"].clear()
    SEEN["y"] = []
    cross_validate(pipe, X_train, y_train, cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=1)
    fitted = clone(pipe).fit(X_train, y_train)
    train_rows, test_rows = _rows(X_train), _rows(X_test)
    starts = [x for w, x in SEEN["fit"] if w == "start"]
    assert len(starts) == 4  # 3 folds + final refit
    for x in starts:
        assert _rows(x) <= train_rows and not (_rows(x) & test_rows)
    # the model's input at fit time holds SMOTE rows (more minority rows than the training data had) ...
    y_model = [v for w, v in SEEN["y"] if w == "model"][-1]
    counts = np.bincount(y_model)
    assert counts[0] == counts[1] and counts[1] > (y_train == 1).sum()  # SMOTE balanced the fit data
    assert fitted[-1].classes_.tolist() == [0, 1]
    # ... but at predict time the model sees exactly the test rows: no resampling, nothing removed
    SEEN["transform"].clear()
    pred = fitted.predict(X_test)
    seen_by_model = [x for w, x in SEEN["transform"] if w == "model"]
    assert len(pred) == len(X_test) and len(seen_by_model[-1]) == len(X_test)


def test_fitted_statistics_come_from_training_rows_only(split):
    X_train, X_test, y_train, _ = split
    pipe = pp.make_pipeline(LogisticRegression(max_iter=500), outliers="clip", balance="smote", seed=0).fit(
        X_train, y_train
    )
    q1, q3 = np.percentile(X_train, [25, 75], axis=0)
    np.testing.assert_allclose(pipe.named_steps["outliers"].lower_, q1 - 1.5 * (q3 - q1))
    both = pd.concat([X_train, X_test])
    q1a, q3a = np.percentile(both, [25, 75], axis=0)
    assert not np.allclose(pipe.named_steps["outliers"].lower_, q1a - 1.5 * (q3a - q1a))
    clipped = pipe.named_steps["outliers"].transform(X_train)
    powered = pipe.named_steps["power"].transform(clipped)
    np.testing.assert_allclose(pipe.named_steps["scale"].mean_, powered.mean(axis=0), atol=1e-9)


def test_outlier_remover_only_drops_training_rows():
    X = np.vstack([np.random.default_rng(0).normal(size=(200, 2)), [[50, 0]]])
    y = np.r_[np.zeros(100), np.ones(101)].astype(int)
    r = pp.IQROutlierRemover()
    Xr, yr = r.fit_resample(X, y)
    assert r.n_removed_ >= 1 and len(Xr) == len(yr) == len(X) - r.n_removed_ and [50, 0] not in Xr.tolist()


def test_bad_preprocessing_options_are_rejected():
    with pytest.raises(ValueError, match="outliers must be one of"):
        pp.make_pipeline(LogisticRegression(), outliers="zap")


def test_mlp_is_deterministic_and_reloads_identically(split, tmp_path):
    X_train, X_test, y_train, _ = split
    pipe = pp.make_pipeline(mlp_classifier.TorchMLPClassifier(hidden=(16, 8), epochs=4, seed=1), seed=0)
    a = clone(pipe).fit(X_train, y_train).predict_proba(X_test)
    pipe.fit(X_train, y_train)
    assert np.array_equal(a, pipe.predict_proba(X_test))  # same seed, same network
    run = pipe[-1].training_
    assert run.history["val_loss"].notna().all() and run.epochs_run <= 4 and 1 <= run.best_epoch <= 4
    folder = mlp_classifier.save_pipeline_with_mlp(pipe, tmp_path / "mlp")
    assert {p.suffix for p in folder.iterdir()} == {".skops", ".pt", ".json"}
    again = mlp_classifier.load_pipeline_with_mlp(folder)
    assert np.array_equal(again.predict_proba(X_test), pipe.predict_proba(X_test))
    with pytest.raises(ValueError, match="optimizer"):
        mlp_classifier.TorchMLPClassifier(optimizer="rmsprop").fit(X_train, y_train)


def test_skops_refuses_foreign_types(tmp_path):
    import skops.io as sio

    path = tmp_path / "x.skops"
    sio.dump({"f": pd.Timestamp("2020-01-01")}, path)
    with pytest.raises(ValueError, match="untrusted"):
        persistence.load_skops(path)


def test_every_zoo_model_fits_in_a_pipeline(split):
    X_train, X_test, y_train, _ = split
    zoo = tabular.classical_models(seed=0)
    assert len(zoo) >= 8 and "AdaBoost" in zoo and "Gradient Boosting" in zoo
    for name, (est, kind, space) in zoo.items():
        if "n_estimators" in est.get_params():
            est.set_params(n_estimators=10)
        pipe = pp.make_pipeline(est, balance="class_weight", y_train=y_train).fit(X_train[:400], y_train[:400])
        s = tabular.positive_scores(pipe, X_test[:50])
        assert s.shape == (50,) and np.isfinite(s).all(), name
        assert kind in ("grid", "random") and space
