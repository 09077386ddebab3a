"""The seed project's documented API: load_processed, load_dataset, make_CNN*, save_in_dict, fig."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import config
from ..data import DataFormatError
from ..models import redshift_nets
from .catalogue import RedshiftData, data_fingerprint
from .dataset import Dataset, make_input, make_target, pool_pdfs, split_indices, undersample_indices
from .files import load


def load_dataset(
    target: str = "DeltaZ",
    Undersample: bool = False,
    input_data: str = "logPDF",
    seed: int = config.DEFAULT_SEED,
    data: RedshiftData | None = None,
    threshold: float = 1e-3,
    *,
    undersample: bool | None = None,
    pool: int = 1,
) -> Dataset:
    """The seed's ``load_dataset(target, Undersample)``: stratified, seeded 70/15/15 splits of ``data`` (default
    :func:`load`), unpacking into the 11 documented items. Undersampling (``Undersample``, or casebook's
    ``undersample=`` keyword) is applied to the **training set only**; validation and test keep the real class
    balance. ``pool > 1`` max-pools the PDFs by that factor (:func:`pool_pdfs`), split by split."""
    undersample = Undersample if undersample is None else undersample
    d = data if data is not None else load(seed=seed)
    y, names = make_target(d, target, threshold)
    tr, va, te = split_indices(y, seed)
    if undersample:
        tr = undersample_indices(tr, y, seed)
    z = d.z_est.astype(np.float32)
    X = {name: pool_pdfs(make_input(d, input_data, idx), pool) for name, idx in (("tr", tr), ("va", va), ("te", te))}
    return Dataset(X["tr"], y[tr], X["va"], y[va], X["te"], y[te], len(names), names, tr, va, te, z[tr], z[va], z[te])


def load_processed(
    target: str = "DeltaZ",
    Undersample: bool = False,
    input_data: str = "logPDF",
    seed: int = config.DEFAULT_SEED,
    folder: Path | None = None,
    data: RedshiftData | None = None,
    threshold: float = 1e-3,
    *,
    undersample: bool | None = None,
    pool: int = 1,
) -> Dataset:
    """The seed's ``load_processed(target, Undersample)``: :func:`load_dataset`, cached on disk the way the seed
    kept its splits, ``<folder>/<target>/<balanced|unbalanced>/<key>/{TRAIN,VALID,TEST}/{X,Y,Z}.npy`` +
    ``meta.json``. The key covers everything the split depends on (input representation, seed, threshold, and a
    fingerprint of the data), so a cache made from other data or settings is never returned."""
    undersample = Undersample if undersample is None else undersample
    d = data if data is not None else load(seed=seed)
    settings = {
        "target": target,
        "undersample": bool(undersample),
        "input": input_data,
        "seed": seed,
        "threshold": threshold,
        "data": data_fingerprint(d),
        "pool": int(pool),
    }
    import hashlib

    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(folder or config.outputs_dir() / "redshift" / "processed")
    base = folder / target / ("balanced" if undersample else "unbalanced") / key
    meta_path = base / "meta.json"
    parts = ("TRAIN", "VALID", "TEST")
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("settings") == settings:
        meta = json.loads(meta_path.read_text())
        arrays = {s: [np.load(base / s / f"{a}.npy") for a in "XYZ"] for s in parts}
        idx = {s: np.asarray(meta["idx"][s]) for s in parts}
        return Dataset(
            *arrays["TRAIN"][:2],
            *arrays["VALID"][:2],
            *arrays["TEST"][:2],
            meta["n_classes"],
            meta["class_names"],
            idx["TRAIN"],
            idx["VALID"],
            idx["TEST"],
            arrays["TRAIN"][2],
            arrays["VALID"][2],
            arrays["TEST"][2],
        )
    ds = load_dataset(
        target, input_data=input_data, seed=seed, data=d, threshold=threshold, undersample=undersample, pool=pool
    )
    splits = {
        "TRAIN": (ds.X_train, ds.y_train, ds.z_train),
        "VALID": (ds.X_valid, ds.y_valid, ds.z_valid),
        "TEST": (ds.X_test, ds.y_test, ds.z_test),
    }
    for s, arrays in splits.items():
        (base / s).mkdir(parents=True, exist_ok=True)
        for name, arr in zip("XYZ", arrays, strict=False):
            np.save(base / s / f"{name}.npy", arr)
    meta = {
        "settings": settings,
        "n_classes": ds.n_classes,
        "class_names": ds.class_names,
        "idx": {"TRAIN": ds.idx_train.tolist(), "VALID": ds.idx_valid.tolist(), "TEST": ds.idx_test.tolist()},
    }
    with config.atomic_path(meta_path) as tmp:  # written last: a cache without it is never read
        tmp.write_text(json.dumps(meta))
    return ds


SEED_RECORD_KEYS = (
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
)


# casebook's training record (casebook.report.records) → the seed's key names
SEED_NAME_OF = {
    "cm_train": "conf_matrix_train",
    "cm_test": "conf_matrix_test",
    "class_names": "nom_classes",
    "acc": "acc",
    "loss": "loss",
    "val_acc": "val_acc",
    "val_loss": "val_loss",
    "report": "report",
    "summary": "model_summary",
    "lr": "lr",
}


def seed_record(model, x_test, y_test, x_train, y_train, history, n_classes: int, class_names) -> dict:
    """The model's results as a dict with exactly the seed's documented keys (:data:`SEED_RECORD_KEYS`):
    casebook's :func:`~casebook.report.records.training_record`, translated to the seed's names. ``y_*`` are
    one-hot; ``history`` is a Keras History, its dict, or a dict of per-epoch lists."""
    from ..report.records import training_record

    h = getattr(history, "history", history) or {}
    per_epoch = lambda *keys: [float(v) for v in next((h[k] for k in keys if k in h), [])]  # noqa: E731
    keras_names = {"accuracy": ("accuracy", "acc"), "loss": ("loss",), "val_accuracy": ("val_accuracy", "val_acc")}
    keras_names |= {"val_loss": ("val_loss",), "learning_rate": ("learning_rate", "lr")}
    curves = {name: per_epoch(*aliases) for name, aliases in keras_names.items()}
    truth = [np.asarray(y).argmax(1) for y in (y_train, y_test)]
    pred = [model.predict(x, verbose=0).argmax(1) for x in (x_train, x_test)]
    names = [str(n) for n in class_names][: int(n_classes)]
    ours = training_record(model, curves, truth[0], pred[0], truth[1], pred[1], names)
    seed = {SEED_NAME_OF[key]: value for key, value in ours.items() if key in SEED_NAME_OF}
    seed["nb_class"] = int(n_classes)
    return {key: seed[key] for key in SEED_RECORD_KEYS}


def save_in_dict(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes, file_name) -> dict:
    """The seed's ``save_in_dict``: :func:`seed_record`, written to ``file_name`` as **JSON** (never pickle;
    ``.json`` is added when the name has no suffix) and returned."""
    from ..report.records import save_record

    record = seed_record(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes)
    path = Path(file_name)
    save_record(record, path if path.suffix else path.with_suffix(".json"))
    return record


def _length(input_shape) -> int:
    """The seed passes ``input_shape=(17908, 1)``; casebook's callers pass the length: accept both."""
    if isinstance(input_shape, (tuple, list)):
        if len(input_shape) != 2 or input_shape[1] != 1:
            raise ValueError(f"input_shape must be (length, 1), got {tuple(input_shape)}")
        return int(input_shape[0])
    return int(input_shape)


def make_CNN(input_shape, num_classes: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: N802
    """The seed's ``make_CNN(input_shape, num_classes)`` (``input_shape=(17908, 1)``, or the length alone):
    :func:`casebook.models.redshift_nets.cnn`, compiled for ``fit(X, Y)`` with one-hot ``Y``."""
    return redshift_nets.cnn(_length(input_shape), num_classes, lr, downsample)


def make_CNN8(input_shape, n_classes: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: N802
    """The seed's ``make_CNN8``: :func:`casebook.models.redshift_nets.cnn8`."""
    return redshift_nets.cnn8(_length(input_shape), n_classes, lr, downsample)


def make_CNNGRU(
    input,
    output: int,
    dropout: float = 0.2,
    lr: float = 1e-3,  # noqa: A002, N802
    downsample: int = redshift_nets.DOWNSAMPLE,
):
    """The seed's ``make_CNNGRU(input, output, dropout=.2)``: :func:`casebook.models.redshift_nets.cnn_gru`."""
    return redshift_nets.cnn_gru(_length(input), output, dropout, lr, downsample)


def make_CNNLSTM(input, output: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: A002, N802
    """The seed's ``make_CNNLSTM(input, output)``: :func:`casebook.models.redshift_nets.cnn_lstm`."""
    return redshift_nets.cnn_lstm(_length(input), output, lr, downsample)


def make_CNN_2inputs(
    input_shape,
    n_classes: int,
    lr: float = 1e-3,  # noqa: N802
    downsample: int = redshift_nets.DOWNSAMPLE,
    n_extra: int = 1,
):
    """The seed's ``make_CNN_2inputs``: :func:`casebook.models.redshift_nets.cnn_two_inputs`."""
    return redshift_nets.cnn_two_inputs(_length(input_shape), n_classes, lr, downsample, n_extra)


def fig(file_name):
    """The seed's ``fig(file_name)``: the 2×2 report figure (train and test confusion matrices, learning curves,
    per-class metrics) drawn from a :func:`save_in_dict` file, saved beside it as ``.png`` and returned."""
    from ..report.records import record_figure

    path = Path(file_name)
    path = path if path.suffix else path.with_suffix(".json")
    d = json.loads(path.read_text())
    missing = sorted(set(SEED_RECORD_KEYS) - set(d))
    if missing:
        raise DataFormatError(f"{path} is not a save_in_dict file: missing {missing}")
    val_loss = d["val_loss"] or d["loss"]
    record = {
        "class_names": d["nom_classes"],
        "cm_train": d["conf_matrix_train"],
        "cm_test": d["conf_matrix_test"],
        "loss": d["loss"],
        "val_loss": d["val_loss"],
        "acc": d["acc"],
        "val_acc": d["val_acc"],
        "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else 1,
        "report": d["report"],
    }
    figure = record_figure(record, path.stem)
    figure.savefig(path.with_suffix(".png"), dpi=110, bbox_inches="tight")
    return figure
