"""Training loops and model selection helpers shared by the notebooks.

The torch loop works on tensors already in memory (index batches, no per-sample Python work), which is what
makes it several times faster than a textbook ``DataLoader`` with per-sample transforms on a CPU.
"""
from __future__ import annotations

import copy
import time
from typing import Mapping

import numpy as np
import pandas as pd


def _progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def torch_fit(model, x, y, x_val=None, y_val=None, *, optimizer, epochs: int = 10, batch_size: int = 64,
              loss_fn=None, patience: int | None = None, seed: int = 42, progress: bool = False,
              max_batches: int | None = None, eval_batch_size: int = 1000) -> dict:
    """Train ``model`` with mini-batches drawn from in-memory tensors.

    Records per-epoch ``loss``/``accuracy`` (train, measured on the fly) and ``val_loss``/``val_accuracy``.
    With ``patience``, stops when validation loss has not improved for that many epochs and restores the
    best weights (early stopping on validation data, never on test data). Returns the history dict, with
    ``best_epoch`` and ``epoch_time`` added.
    """
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "epoch_time": []}
    best, best_state, best_epoch, waited = np.inf, None, 0, 0
    n = len(x)
    bar = _progress(range(1, epochs + 1), progress, desc="epochs", leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        total, correct, seen = 0.0, 0, 0
        for b, start in enumerate(range(0, n, batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(idx)
        hist["loss"].append(total / seen)
        hist["accuracy"].append(correct / seen)
        hist["epoch_time"].append(time.perf_counter() - t0)
        if x_val is not None:
            vl, va = torch_evaluate(model, x_val, y_val, loss_fn, eval_batch_size)
            hist["val_loss"].append(vl)
            hist["val_accuracy"].append(va)
            if progress:
                bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}", val_loss=f"{vl:.4f}", val_acc=f"{va:.4f}")
            if vl < best - 1e-6:
                best, best_epoch, waited = vl, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
    if patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    hist = {k: v for k, v in hist.items() if v}
    hist["best_epoch"] = best_epoch or len(hist["loss"])
    return hist


def torch_predict_proba(model, x, batch_size: int = 1000) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([torch.softmax(model(x[i:i + batch_size]), 1) for i in range(0, len(x), batch_size)]).numpy()


def torch_evaluate(model, x, y, loss_fn=None, batch_size: int = 1000) -> tuple[float, float]:
    """(mean loss, accuracy) over ``x, y`` in eval mode."""
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            total += loss_fn(out, y[i:i + batch_size]).item() * len(out)
            correct += (out.argmax(1) == y[i:i + batch_size]).sum().item()
    return total / len(x), correct / len(x)


def search_summary(search) -> pd.DataFrame:
    """A fitted ``*SearchCV`` → its candidates sorted by rank (params, mean and std of the CV score)."""
    res = pd.DataFrame(search.cv_results_)
    cols = ["rank_test_score", "mean_test_score", "std_test_score", "mean_fit_time", "params"]
    return res[cols].sort_values("rank_test_score").reset_index(drop=True)


def run_search(pipeline, space: Mapping, X, y, kind: str = "random", n_iter: int = 10, cv=None,
               scoring: str = "accuracy", seed: int = 42, n_jobs: int = -1):
    """Fit a GridSearchCV (``kind='grid'``) or RandomizedSearchCV on the training data only.

    ``space`` keys are the model's parameter names; they are prefixed with ``model__`` for the pipeline.
    """
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

    cv = cv or StratifiedKFold(3, shuffle=True, random_state=seed)
    grid = {f"model__{k}": v for k, v in space.items()}
    if kind == "grid":
        search = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, n_jobs=n_jobs)
    else:
        search = RandomizedSearchCV(pipeline, grid, n_iter=n_iter, cv=cv, scoring=scoring, n_jobs=n_jobs,
                                    random_state=seed)
    return search.fit(X, y)


def train_tabular(X, y, model: str, cv_folds: int = 5, seed: int = 42) -> dict:
    """The synthetic-classification recipe (shared by ``train-classifier`` and notebook 03): seeded
    train / test / validation split, ``cv_folds``-fold CV on the training part, fit on it, then test and
    validation predictions. Returns a dict with the fitted ``pipeline``, the splits, ``cv_scores`` and
    ``test_pred`` / ``val_pred``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from .models import tabular_classifier
    from .preprocessing import split_three

    X_train, X_test, X_val, y_train, y_test, y_val = split_three(X, y, seed=seed)
    pipe = tabular_classifier(model, seed=seed)
    cv = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(pipe, X_train, y_train, cv=cv, scoring="accuracy")
    pipe.fit(X_train, y_train)
    return {"pipeline": pipe, "cv_scores": scores, "X_train": X_train, "y_train": y_train, "X_test": X_test,
            "y_test": y_test, "X_val": X_val, "y_val": y_val, "test_pred": pipe.predict(X_test),
            "val_pred": pipe.predict(X_val)}
