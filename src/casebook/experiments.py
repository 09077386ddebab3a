"""Tracked experiments: one call that builds, trains, chooses a threshold on validation, and logs everything
to MLflow. Above training, report and tracking in the package's layers (it uses all three)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from . import cluster, config
from .models import redshift_nets, transfer
from .models.transfer_config import TransferConfig
from .preprocessing import class_weights
from .report import figures, metrics, records
from .tracking import executions, model_registry, run_logging
from .training import keras_loops, xray
from .training.result import TrainingResult, history_to_frame


def _training_labels(model, c: TransferConfig, datasets: dict, cache: xray.FeatureCache) -> np.ndarray:
    if c.strategy == "feature_extraction":  # the cached pass over the training split yields its labels too
        return cache.get(model, c, datasets["train"], "train")[1]
    return np.concatenate([np.asarray(y) for _, y in datasets["train"]])


def _log_validation(name: str, y_va, p_va, class_names, extra: dict | None = None, min_recall: float | None = None):
    """Inside the active run: the decision threshold chosen on validation (``xray.threshold_rule``: the highest
    threshold keeping the recall of class 1 at ``min_recall`` or more, else the highest balanced accuracy), the
    validation metrics at it (logged as ``val_*`` with the threshold and ``extra``) and the validation confusion
    matrix figure. Returns ``(threshold, predictions, metrics)``."""
    import matplotlib.pyplot as plt

    recall_rule = min_recall is not None
    thr = xray.threshold_for_recall(y_va, p_va, min_recall) if recall_rule else metrics.choose_threshold(y_va, p_va)
    pred = (p_va >= thr).astype(int)
    val = {k: float(f(y_va, pred, p_va)) for k, f in metrics.per_class_metrics(class_names).items()}
    run_logging.log_metrics({f"val_{k}": v for k, v in val.items()} | {"threshold": thr} | (extra or {}))
    title = f"{name} (validation)"
    ax = figures.plot_confusion_matrix(y_va, pred, [c.upper() for c in class_names], title=title)
    run_logging.log_figure(ax.figure, "confusion_matrix_val")
    plt.close(ax.figure)
    return thr, pred, val


def run_xray_experiment(
    params: dict,
    added_layers: list,
    stage: str,
    datasets: dict,
    cache: xray.FeatureCache,
    experiment: str = "pneumonia",
    input_example=None,
    class_names=("normal", "pneumonia"),
    log_model: bool = True,
    name: str | None = None,
    min_recall: float | None = None,
) -> dict:
    """One tracked transfer-learning run: configuration (:meth:`TransferConfig.from_seed`: the seed's ``params``
    and ``added_layers``, or the same in casebook's names) → build → train (validation monitoring only) →
    decision threshold chosen on validation (``xray.threshold_rule(min_recall)``) → validation metrics → MLflow
    (the configuration's params and the threshold rule, ``stage`` tag, per-epoch metrics, final validation
    metrics, confusion-matrix figure, the model with signature and explicit pip requirements). The run is named
    ``name``, else ``<backbone>#<k>`` automatically. Returns a summary dict (run id, name, ``config``, ``params``
    and ``added_layers`` in casebook's names, ``training`` (the :class:`TrainingResult`), ``history``, validation
    metrics and predictions, model, ``phases`` (e.g. warm-start and view-caching seconds), seconds)."""

    c = TransferConfig.from_seed(params, added_layers)
    model = transfer.build(c)
    name = name or executions.next_run_name(experiment, c.backbone)
    t0 = time.perf_counter()
    run_params = {
        **c.as_params(),
        "trainable_backbone_layers": transfer.trainable_backbone_layers(model),
        "threshold_rule": xray.threshold_rule(min_recall),
    }
    with run_logging.run(experiment, name, params=run_params, tags={"stage": stage}) as active:
        weights = class_weights(_training_labels(model, c, datasets, cache)) if c.equilibrate else None
        result = xray.train_xray(model, c, datasets, cache, class_weight=weights)
        run_logging.log_history(result, prefix="epoch_")  # per-epoch curves; final validation metrics are val_*
        p_va, y_va = result.validation["proba"], result.validation["y"]
        seconds = time.perf_counter() - t0
        phases = {k: float(v) for k, v in result.outputs.items() if isinstance(v, int | float)}
        extra = {"train_seconds": seconds, **phases}
        thr, pred, val = _log_validation(name, y_va, p_va, class_names, extra, min_recall)
        if log_model:
            run_logging.log_model(model, "keras", input_example=input_example)
    params_out = c.as_params()
    layers_out = params_out.pop("added_layers")
    return {
        "run_id": active.info.run_id,
        "name": name,
        "stage": stage,
        "config": c,
        "params": params_out,
        "added_layers": layers_out,
        "training": result,
        "history": result.history,
        "threshold": thr,
        "val": val,
        "val_pred": pred,
        "val_true": y_va,
        "val_proba": p_va,
        "model": model,
        "phases": phases,
        "seconds": time.perf_counter() - t0,
    }


SWEEP_KEYS = ("run_id", "name", "stage", "params", "added_layers", "threshold", "val", "phases", "seconds")


def xray_record(run: dict) -> dict:
    """A :func:`run_xray_experiment` summary as plain data (what a sweep's trial returns): the scalar facts,
    ``history`` as lists and the validation arrays as lists; the model stays in MLflow (``run_id``)."""
    arrays = {k: np.asarray(run[k]).tolist() for k in ("val_pred", "val_true", "val_proba")}
    return {**{k: run[k] for k in SWEEP_KEYS}, "history": run["history"].to_dict("list"), **arrays}


def _tracked_sweep(trial_fn, trials: list[dict], experiment: str, name: str, shared: dict) -> list[dict]:
    """``trials`` through :func:`casebook.cluster.sweep`, each told the current execution of ``experiment``
    (the trial function starts with :func:`_enter_trial`); every run has ended when it returns."""
    context = executions.execution_context(experiment)
    configs = [{**t, "execution": context} for t in trials]
    try:
        return cluster.sweep(trial_fn, configs, name=name, shared=shared)
    finally:
        executions.end_unfinished(experiment)


def _enter_trial(trial: dict) -> str:
    """What every trial does first, wherever it runs: join the driver's execution, delete what a killed earlier
    attempt of this trial left, seed. Returns the experiment."""
    context = trial["execution"]
    executions.join_execution(context)
    executions.discard_unfinished(context["experiment"], trial["name"])
    config.seed_everything(trial["seed"])
    return context["experiment"]


def xray_trial(trial: dict, data, cache: xray.FeatureCache, input_example=None) -> dict:
    """One trial of :func:`run_xray_sweep`, wherever it runs: :func:`_enter_trial`, run
    :func:`run_xray_experiment` under the name the driver chose, and return its :func:`xray_record`."""
    experiment = _enter_trial(trial)
    run = run_xray_experiment(
        trial["params"],
        trial["added_layers"],
        trial["stage"],
        data.datasets(),
        cache,
        experiment=experiment,
        input_example=input_example,
        name=trial["name"],
        min_recall=trial.get("min_recall"),
    )
    return xray_record(run)


def run_xray_sweep(
    candidates: list[tuple[dict, list]],
    stage: str,
    data,
    cache: xray.FeatureCache,
    experiment: str = "pneumonia",
    input_example=None,
    seed: int = config.DEFAULT_SEED,
    seeds: list[int] | None = None,
    min_recall: float | None = None,
) -> list[dict]:
    """Every ``(params, added_layers)`` of ``candidates`` as one tracked run, through :func:`casebook.cluster.sweep`:
    a loop here, or Ray Tune trials on the cluster ``CASEBOOK_RAY_ADDRESS`` names, each trial logging its child run
    of the current execution (names ``<backbone>#<k>`` chosen here, in order; each trial seeded with ``seed``, or
    candidate ``k`` with ``seeds[k]``; every run's threshold by the same ``xray.threshold_rule(min_recall)``).
    ``data``: a :class:`casebook.preprocessing.XrayData`. Every run has ended when it returns. Returns the records
    in the order of ``candidates``, with ``history`` as a frame and the validation arrays as arrays."""
    stems = [TransferConfig.from_seed(params, layers).backbone for params, layers in candidates]
    seeds = list(seeds) if seeds is not None else [seed] * len(candidates)
    if len(seeds) != len(candidates):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(candidates)} candidates")
    names = executions.reserve_run_names(experiment, stems)
    trials = [
        {"params": p, "added_layers": layers, "stage": stage, "name": n, "seed": s, "min_recall": min_recall}
        for (p, layers), n, s in zip(candidates, names, seeds, strict=True)
    ]
    shared = {"data": data, "cache": cache, "input_example": input_example}
    outcomes = _tracked_sweep(xray_trial, trials, experiment, f"{experiment}-{stage}", shared)
    for record in outcomes:
        record["history"] = history_to_frame(record["history"])
        for key in ("val_pred", "val_true", "val_proba"):
            record[key] = np.asarray(record[key])
    return outcomes


def _member_model(member: dict):
    """A run's model: in memory, or loaded from MLflow by its run id (a sweep's record)."""
    if member.get("model") is not None:
        return member["model"]
    return model_registry.load_run_model(member["run_id"])


def run_xray_ensemble(
    members: list[dict],
    stage: str = "ensemble",
    experiment: str = "pneumonia",
    input_example=None,
    class_names=("normal", "pneumonia"),
    min_recall: float | None = None,
) -> dict:
    """The deep ensemble of tracked runs (``members``: :func:`run_xray_experiment` summaries) as one tracked run
    named ``ensemble#<k>``: its validation probability is the mean of the members' (the same as the ensemble
    model's output on those images), its decision threshold is chosen on validation by the single runs' rule
    (``xray.threshold_rule(min_recall)``), and the averaging model (:func:`casebook.models.transfer.average_of`)
    is logged so that it can be registered.
    Returns a summary dict with the keys of :func:`run_xray_experiment`'s (``params`` lists the members)."""

    t0 = time.perf_counter()
    names = [m["name"] for m in members]
    y_va = members[0]["val_true"]
    p_va = np.mean([m["val_proba"] for m in members], axis=0)
    model = transfer.average_of([_member_model(m) for m in members])
    name = executions.next_run_name(experiment, "ensemble")
    params = {"members": names, "combination": "mean probability", "threshold_rule": xray.threshold_rule(min_recall)}
    with run_logging.run(experiment, name, params=params, tags={"stage": stage}) as active:
        thr, pred, val = _log_validation(name, y_va, p_va, class_names, min_recall=min_recall)
        run_logging.log_model(model, "keras", input_example=input_example)
    return {
        "run_id": active.info.run_id,
        "name": name,
        "stage": stage,
        "params": params,
        "added_layers": [],
        "threshold": thr,
        "val": val,
        "val_pred": pred,
        "val_true": y_va,
        "val_proba": p_va,
        "model": model,
        "seconds": time.perf_counter() - t0,
    }


def run_redshift_experiment(
    model_name: str,
    ds,
    epochs: int,
    batch_size: int,
    notebook: str,
    label: str = "",
    experiment: str = "redshift",
    checkpoint_dir=None,
    params: dict | None = None,
    seed: int = config.DEFAULT_SEED,
) -> TrainingResult:
    """One tracked redshift network: build ``redshift_nets.NETWORKS[model_name]`` for ``ds``'s (possibly
    pooled) input, train with early stopping, checkpoint (``best.keras`` in ``checkpoint_dir``, if given) and LR
    schedule on validation loss (:func:`casebook.training.keras_loops.train_keras_classifier`), log params and
    per-epoch metrics to MLflow, and compute the seed's ``save_in_dict`` record. Returns the
    :class:`TrainingResult`, with ``outputs`` holding ``run_id``, ``name``, ``record``, ``val_proba`` (what the
    tie rule compares candidates on) and ``test_proba`` (:func:`keep_redshift_record` writes the record and
    draws its figure)."""
    import keras

    from .redshift import seed_api

    name = label or model_name
    keras.utils.set_random_seed(seed)
    length = ds.X_train.shape[1]
    extra = {}
    if model_name == "CNN_2inputs":
        extra["n_extra"] = np.asarray(ds.z_train).reshape(len(ds.z_train), -1).shape[1]
    net = redshift_nets.NETWORKS[model_name](length, ds.n_classes, downsample=1, **extra)
    run_params = {
        "model": model_name,
        "input_length": length,
        "epoch_cap": epochs,
        "batch_size": batch_size,
        "n_train": len(ds.y_train),
        **(params or {}),
    }
    with run_logging.run(experiment, name, params=run_params, tags={"notebook": notebook}) as active:
        result = keras_loops.train_keras_classifier(net, ds, epochs, batch_size, output_dir=checkpoint_dir, verbose=0)
        run_logging.log_history(
            result.history.rename(columns={"accuracy": "acc", "val_accuracy": "val_acc", "learning_rate": "lr"})
        )
        run_logging.log_metrics(
            {
                "val_acc_at_best": result.validation["accuracy_at_best"],
                "epochs_run": result.epochs_run,
                "seconds_per_epoch": round(result.seconds_per_epoch, 2),
            }
        )
        x_train = keras_loops.keras_inputs(net, ds.X_train, ds.z_train)
        x_test = keras_loops.keras_inputs(net, ds.X_test, ds.z_test)
        history = result.history.to_dict("list")
        record = seed_api.seed_record(
            net, x_test, ds.Y_test, x_train, ds.Y_train, history, ds.n_classes, ds.class_names
        )
    val_proba = net.predict(keras_loops.keras_inputs(net, ds.X_valid, ds.z_valid), batch_size=256, verbose=0)
    test_proba = net.predict(x_test, batch_size=256, verbose=0)
    run_id = active.info.run_id
    result.outputs.update(run_id=run_id, name=name, record=record, val_proba=val_proba, test_proba=test_proba)
    return result


def keep_redshift_record(result: TrainingResult, notebook: str, records_dir=None) -> TrainingResult:
    """Where the notebook runs: write ``result``'s seed record as ``<records_dir>/<name>.json``, draw the seed's
    2×2 ``fig`` from it once, log that figure to the result's run and save it under ``assets/<notebook>/``.
    Adds ``record_file`` and ``figure`` to ``result.outputs``; returns ``result``."""
    import matplotlib.pyplot as plt

    from .redshift import seed_api

    out = result.outputs
    folder = Path(records_dir or config.outputs_dir() / "redshift" / "records")
    record_file = records.save_record(out["record"], folder / f"{_slug(out['name'])}.json")
    figure = seed_api.fig(record_file)
    figure.suptitle(out["name"])
    run_logging.log_figure(figure, "report", run_id=out["run_id"])
    figures.save_fig(figure, notebook, f"report_{_slug(out['name'])}")
    plt.close(figure)
    out.update(record_file=str(record_file), figure=figure)
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")


def redshift_trial(trial: dict, data, summaries=None) -> dict:
    """One trial of :func:`run_redshift_sweep`, wherever it runs: :func:`_enter_trial`, split ``data`` (a
    :class:`casebook.redshift.catalogue.RedshiftData`) as the trial says (``target``, ``undersample``, ``pool``,
    ``threshold``; ``extra_inputs``: ``summaries`` as the second input), run :func:`run_redshift_experiment`
    (``pool`` and ``undersample`` logged as params, the checkpoint in a scratch folder), and return its result
    as plain data."""
    from .redshift import dataset, seed_api

    experiment = _enter_trial(trial)
    split = seed_api.load_dataset(
        trial.get("target", "DeltaZ"),
        seed=trial["seed"],
        data=data,
        threshold=trial["threshold"],
        undersample=trial.get("undersample", False),
        pool=trial["pool"],
    )
    if trial.get("extra_inputs"):
        split = dataset.with_extra_inputs(split, summaries)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_redshift_experiment(
            trial["model"],
            split,
            trial["epochs"],
            trial["batch_size"],
            trial["notebook"],
            label=trial["name"],
            experiment=experiment,
            checkpoint_dir=scratch,
            params={"pool": trial["pool"]} | ({"undersample": True} if trial.get("undersample") else {}),
            seed=trial["seed"],
        )
    outputs = {k: result.outputs[k] for k in ("run_id", "name", "record", "val_proba", "test_proba")}
    return {"training": result.as_record(), **outputs}


def run_redshift_sweep(
    trials: list[dict],
    data,
    notebook: str,
    *,
    epochs: int,
    batch_size: int,
    threshold: float,
    seed: int = config.DEFAULT_SEED,
    summaries=None,
    experiment: str = "redshift",
    records_dir=None,
) -> dict[str, TrainingResult]:
    """Every trial of ``trials`` as one tracked network, through :func:`casebook.cluster.sweep`: a loop here,
    or Ray Tune trials on the cluster ``CASEBOOK_RAY_ADDRESS`` names, each logging its child run of the current
    execution, every one with the same ``epochs`` cap, ``batch_size``, target ``threshold`` and ``seed``. A
    trial is a dict: ``name`` (the run's), ``model`` (a key of ``redshift_nets.NETWORKS``), ``pool``, and
    optionally ``target`` (``DeltaZ``), ``undersample`` and ``extra_inputs`` (``summaries`` as the second
    input). Here, afterwards, :func:`keep_redshift_record` writes each record and its figure. Returns
    ``{name: TrainingResult}`` in the order of ``trials`` (no models; ``outputs`` as
    :func:`run_redshift_experiment`'s and :func:`keep_redshift_record`'s)."""
    common = {"epochs": epochs, "batch_size": batch_size, "threshold": threshold, "seed": seed}
    configs = [{**t, **common, "notebook": notebook} for t in trials]
    shared = {"data": data, "summaries": summaries}
    outcomes = _tracked_sweep(redshift_trial, configs, experiment, f"{experiment}-sweep", shared)
    results = {}
    for record in outcomes:
        result = TrainingResult.from_record(record["training"])
        result.outputs.update({k: record[k] for k in ("run_id", "name", "record")})
        result.outputs.update({k: np.asarray(record[k]) for k in ("val_proba", "test_proba")})
        results[record["name"]] = keep_redshift_record(result, notebook, records_dir)
    return results
