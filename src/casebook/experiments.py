"""Tracked experiments: one call that builds, trains, chooses a threshold on validation, and logs everything
to MLflow. Above training, report and tracking in the package's layers (it uses all three)."""
from __future__ import annotations

import time

import numpy as np

from . import models, report, tracking, training
from .preprocessing import class_weights


def run_xray_experiment(params: dict, added_layers: list, stage: str, datasets: dict, cache: training.FeatureCache,
                        experiment: str = "pneumonia", input_example=None, class_names=("normal", "pneumonia"),
                        log_model: bool = True) -> dict:
    """One tracked transfer-learning run: build → train (validation monitoring only) → decision threshold chosen on
    validation → validation metrics → MLflow (flattened params and added_layers, ``stage`` tag, per-epoch metrics,
    final validation metrics, confusion-matrix figure, the model with signature and explicit pip requirements).
    The run is named ``<backbone>#<k>`` automatically. Returns a summary dict (run id, name, metrics, model)."""
    import matplotlib.pyplot as plt

    model = models.build_model(params, added_layers)
    p = model.casebook_params
    name = tracking.next_run_name(experiment, p["backbone"])
    t0 = time.perf_counter()
    with tracking.run(experiment, name, params={**p, "added_layers": added_layers,
                                                "trainable_backbone_layers": models.trainable_backbone_layers(model)},
                      tags={"stage": stage}) as active:
        y_train = cache.get(model, datasets["train"], "train")[1] if p["strategy"] == "feature_extraction" else \
            np.concatenate([np.asarray(y) for _, y in datasets["train"]])
        cw = class_weights(y_train) if p["equilibrate"] else None
        hist, out = training.train_xray(model, datasets, cache, epochs=p["epochs"], class_weight=cw)
        tracking.log_history(hist, prefix="epoch_")  # per-epoch curves; final validation metrics are val_*
        p_va, y_va = out["val"]
        thr = report.choose_threshold(y_va, p_va)
        pred = (p_va >= thr).astype(int)
        val = {k: float(f(y_va, pred, p_va)) for k, f in report.per_class_metrics(class_names).items()}
        tracking.log_metrics({f"val_{k}": v for k, v in val.items()} | {"threshold": thr,
                                                                        "train_seconds": time.perf_counter() - t0})
        ax = report.plot_confusion_matrix(y_va, pred, [c.upper() for c in class_names], title=f"{name} (validation)")
        tracking.log_figure(ax.figure, "confusion_matrix_val")
        plt.close(ax.figure)
        if log_model:
            tracking.log_model(model, "keras", input_example=input_example)
    return {"run_id": active.info.run_id, "name": name, "stage": stage, "params": p, "added_layers": added_layers,
            "history": hist, "threshold": thr, "val": val, "val_pred": pred, "val_true": y_va, "val_proba": p_va,
            "model": model, "seconds": time.perf_counter() - t0}
