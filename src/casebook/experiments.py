"""Tracked experiments: one call that builds, trains, chooses a threshold on validation, and logs everything
to MLflow. Above training, report and tracking in the package's layers (it uses all three)."""
from __future__ import annotations

import time
from pathlib import Path

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


def run_redshift_experiment(model_name: str, ds, epochs: int, batch_size: int, notebook: str, label: str = "",
                            experiment: str = "redshift", records_dir=None, params: dict | None = None,
                            seed: int = 42) -> dict:
    """One tracked redshift network, the seed's way underneath: build ``models.REDSHIFT_MODELS[model_name]`` for
    ``ds``'s (possibly pooled) input, train with early stopping, checkpoint and LR schedule on validation loss
    (:func:`casebook.training.train_keras_classifier`), write the seed's ``save_in_dict`` JSON and draw its 2×2
    ``fig`` from it (saved under ``assets/<notebook>/`` too), and log params, per-epoch metrics, the figure and
    the record to MLflow. Returns the training record with ``name``, ``figure``, ``val_acc_at_best`` and the
    test probabilities."""
    import keras
    import matplotlib.pyplot as plt

    from . import config, redshift

    name = label or model_name
    keras.utils.set_random_seed(seed)
    build = models.REDSHIFT_MODELS[model_name]
    shape = (ds.X_train.shape[1], 1)
    extra = {"n_extra": np.asarray(ds.z_train).reshape(len(ds.z_train), -1).shape[1]} \
        if model_name == "CNN_2inputs" else {}
    net = build(shape, ds.n_classes, downsample=1, **extra)
    folder = Path(records_dir or config.outputs_dir() / "redshift" / "records")
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")
    run_params = {"model": model_name, "input_length": shape[0], "epoch_cap": epochs, "batch_size": batch_size,
                  "n_train": len(ds.y_train), **(params or {})}
    with tracking.run(experiment, name, params=run_params, tags={"notebook": notebook}):
        rec = training.train_keras_classifier(net, ds, epochs, batch_size, output_dir=folder / slug, verbose=0)
        tracking.log_history({k: rec[k] for k in ("loss", "acc", "val_loss", "val_acc", "lr") if rec[k]})
        tracking.log_metrics({"val_acc_at_best": rec["val_acc_at_best"], "epochs_run": rec["epochs_run"],
                              "seconds_per_epoch": rec["seconds_per_epoch"]})
        x_train = training.keras_inputs(net, ds.X_train, ds.z_train)
        x_test = training.keras_inputs(net, ds.X_test, ds.z_test)
        record_file = folder / f"{slug}.json"
        redshift.save_in_dict(net, x_test, ds.Y_test, x_train, ds.Y_train, rec, ds.nb_class, ds.nom_classes,
                              record_file)
        figure = redshift.fig(record_file)
        figure.suptitle(name)
        tracking.log_figure(figure, "report")
        report.save_fig(figure, notebook, f"report_{slug}")
        plt.close(figure)
    return {**rec, "name": name, "figure": figure, "record_file": str(record_file)}
