"""The helpers the gamma lessons (01, 02) show: out-of-fold predictions that are the searches' own fold models,
whole parameter text, one table per set of searches; the MLP's optimiser; the training step notebook 02 prints."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from casebook.training import mlp_classifier, search


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=300, n_features=6, n_informative=4, random_state=3)


def _pipe(model):
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def test_params_text_drops_pipeline_prefixes_and_rounds_floats_to_four_significant_digits():
    text = search.params_text({"model__lr": 1 / 3000, "model__hidden": (64, 32), "model__optimizer": "adam"})
    assert text == "lr=0.0003333, hidden=(64, 32), optimizer=adam"
    assert search.params_text({"C": 10, "gamma": 0.2}) == "C=10, gamma=0.2"
    space = {"C": [0.01, 1], "gamma": ["scale", 1e-6], "hidden": [(8,), (16, 8)]}
    assert search.space_text(space) == "C ∈ {0.01, 1}; gamma ∈ {scale, 1e-06}; hidden ∈ {(8,), (16, 8)}"


def test_best_out_of_fold_predictions_are_the_fold_models_that_gave_the_search_its_score(data):
    X, y = data
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    space = {"max_depth": [1, 3, 6], "min_samples_leaf": [1, 10]}
    fitted = search.run_search(_pipe(DecisionTreeClassifier(random_state=0)), space, X, y, kind="grid", cv=cv)
    oof = search.best_out_of_fold(fitted, X, y, n_jobs=1)
    for k, (_, rows) in enumerate(cv.split(X, y)):
        fold_score = fitted.cv_results_[f"split{k}_test_score"][fitted.best_index_]
        assert np.mean(oof[rows] == y[rows]) == pytest.approx(fold_score)
    worst = dict(zip(fitted.cv_results_["rank_test_score"], fitted.cv_results_["params"], strict=True))
    other = _pipe(DecisionTreeClassifier(random_state=0)).set_params(**worst[max(worst)])
    assert not np.array_equal(search.out_of_fold(other, X, y, cv, n_jobs=1), oof)  # the best, not any candidate


def test_out_of_fold_is_scikit_learns_cross_val_predict(data):
    X, y = data
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    pipe = _pipe(LogisticRegression())
    proba = search.out_of_fold(pipe, X, y, cv, method="predict_proba", n_jobs=1)
    np.testing.assert_array_equal(proba, cross_val_predict(pipe, X, y, cv=cv, method="predict_proba"))
    assert proba.shape == (len(y), 2)


def test_searches_table_has_one_whole_row_per_search_best_first(data):
    X, y = data
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    tree = search.run_search(
        _pipe(DecisionTreeClassifier(random_state=0)), {"max_depth": [1, 4]}, X, y, kind="grid", cv=cv
    )
    logistic = search.run_search(
        _pipe(LogisticRegression()), {"C": [0.001, 0.01, 1.0]}, X, y, kind="random", n_iter=2, cv=cv, seed=0
    )
    table = search.searches_table({"tree": tree, "logistic": logistic})
    assert list(table["CV score"]) == sorted([tree.best_score_, logistic.best_score_], reverse=True)
    assert table.loc["tree", "search"] == "grid" and table.loc["logistic", "search"] == "random"
    assert table.loc["tree", "candidates"] == 2 and table.loc["logistic", "candidates"] == 2
    assert table.loc["tree", "best parameters"] == search.params_text(tree.best_params_)
    assert "model__" not in table.loc["logistic", "best parameters"]


def test_make_optimizer_builds_adam_or_sgd_with_momentum_over_every_weight_of_the_network():
    import torch

    from casebook.models.mlp import make_mlp

    network = make_mlp(4, (8,), 2)
    adam = mlp_classifier.make_optimizer(network, "adam", lr=0.01, weight_decay=0.1)
    sgd = mlp_classifier.make_optimizer(network, "sgd", lr=0.2, momentum=0.5)
    assert isinstance(adam, torch.optim.Adam) and isinstance(sgd, torch.optim.SGD)
    assert adam.param_groups[0]["lr"] == 0.01 and adam.param_groups[0]["weight_decay"] == 0.1
    assert sgd.param_groups[0]["lr"] == 0.2 and sgd.param_groups[0]["momentum"] == 0.5
    assert {id(p) for p in sgd.param_groups[0]["params"]} == {id(p) for p in network.parameters()}


def test_the_estimator_trains_with_the_optimiser_it_names(data):
    X, y = data
    settings = dict(hidden=(8,), epochs=3, device="cpu", seed=0)
    adam = mlp_classifier.TorchMLPClassifier(optimizer="adam", lr=1e-3, **settings).fit(X, y)
    sgd = mlp_classifier.TorchMLPClassifier(optimizer="sgd", lr=1e-3, **settings).fit(X, y)
    same_start = mlp_classifier.TorchMLPClassifier(optimizer="adam", lr=1e-3, **settings).fit(X, y)
    first = adam.model_[0].weight.detach()
    assert torch_equal(first, same_start.model_[0].weight.detach())  # seeded: the same run twice
    assert not torch_equal(first, sgd.model_[0].weight.detach())  # another optimiser, other weights


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_the_training_step_notebook_02_prints_is_in_the_one_loop_that_trains_the_network():
    """Notebook 02 prints torch_fit's lines from the batch to the optimiser's step, and the lines of
    TorchMLPClassifier.fit that build and train the network; both slices must exist and hold the step."""
    import inspect

    from casebook.training import torch_loop

    loop = inspect.getsource(torch_loop.torch_fit)
    start = loop.index("idx = order[")
    step = loop[start : loop.index("optimizer.step()", start)]
    assert all(part in step for part in ("optimizer.zero_grad", "model(xb)", "loss_fn(out, yb)", "loss.backward()"))
    fit = inspect.getsource(mlp_classifier.TorchMLPClassifier.fit)
    start = fit.index("torch.manual_seed")
    built = fit[start : fit.index("seed=self.seed,", start)]
    assert all(part in built for part in ("make_mlp(", "make_optimizer(", "CrossEntropyLoss", "torch_fit("))
