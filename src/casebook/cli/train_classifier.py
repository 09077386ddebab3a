"""train-classifier: train a random forest, SVM or logistic regression on make_classification data or your CSV.

Examples:
  train-classifier --model random-forest --output-dir outputs/classifier
  train-classifier --model svm --class-sep 1.0 --n-clusters-per-class 3 --cv 5
  train-classifier --model logistic-regression --data mydata.csv --target label --output-dir out/

Writes into --output-dir: model.skops (safe format: pipeline + feature names + target), validation.csv
(the held-out validation rows, with the target column) and metrics.json. Nothing is written if it fails.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from .. import config
from .inputs import check_trainable, positive_finite, read_table
from .outputs import check_writable_dir, fmt_mean_std, staged_output
from .runtime import CLIError, Parser, first_line, run
from .tracking_options import add_track_option, check_cluster, check_tracking_server, tracked

PROG = "train-classifier"
EXPERIMENT = "synthetic"
MODELS = ("random-forest", "svm", "logistic-regression")  # = casebook.models.tabular.TABULAR_MODELS (import-free)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=MODELS, default="random-forest")
    g = p.add_argument_group("generated data (scikit-learn make_classification; defaults = the seed project)")
    g.add_argument("--n-samples", type=int, default=10_000)
    g.add_argument("--n-features", type=int, default=10)
    g.add_argument("--n-informative", type=int, default=5)
    g.add_argument("--n-classes", type=int, default=4)
    g.add_argument("--n-clusters-per-class", type=int, default=1)
    g.add_argument("--class-sep", type=float, default=3.0)
    g.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="data generation, splits and model seed")
    c = p.add_argument_group("your own data")
    c.add_argument("--data", type=Path, help="CSV file with numeric feature columns and a target column")
    c.add_argument("--target", help="name of the target column (required with --data)")
    p.add_argument("--cv", type=int, default=5, help="cross-validation folds on the training split (default 5)")
    p.add_argument("--output-dir", type=Path, default=Path("outputs/classifier"))
    add_track_option(p, "synthetic")
    return p


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.data is not None and not args.target:
        raise CLIError("--target is required with --data")
    if args.target and args.data is None:
        raise CLIError("--target needs --data")
    if args.cv < 2:
        raise CLIError(f"--cv must be at least 2, got {args.cv}")
    positive_finite("--class-sep", args.class_sep)
    for name in ("n_samples", "n_features", "n_informative", "n_classes", "n_clusters_per_class"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    check_writable_dir(args.output_dir)
    if args.track:  # the server answers and accepts the login before any work (CASEBOOK_MLFLOW_URI)
        check_tracking_server()
    check_cluster(tracked=args.track)  # its cross-validation runs on the cluster CASEBOOK_RAY_ADDRESS names

    from casebook.data import synthetic

    if args.data is not None:
        df = read_table(args.data, args.target, require_target=True)
        target, source = args.target, str(args.data)
    else:
        try:
            df = synthetic.make_synthetic(
                args.n_samples,
                args.n_features,
                args.n_informative,
                0,
                args.n_classes,
                args.n_clusters_per_class,
                args.class_sep,
                args.seed,
            )
        except ValueError as e:
            raise CLIError(f"invalid generator parameters: {first_line(e)}") from None
        target, source = "target", "make_classification"
    X, y = df.drop(columns=target), df[target].to_numpy()
    if X.shape[1] == 0:
        raise CLIError("no feature columns besides the target")
    check_trainable(y, source, need_per_class=max(5, math.ceil(args.cv / 0.7) + 2), smallest_split=0.099)
    params = {k: v for k, v in vars(args).items() if k not in ("data", "output_dir", "track")}
    with tracked(args.track, EXPERIMENT, f"cli-{args.model}", params) as active_run:  # a refusing server stops here
        fit_and_save(args, df, X, y, target, source, params, active_run, t0)
    print(
        f"wrote {config.display_path(args.output_dir)}/model.skops, validation.csv, metrics.json  "
        f"({time.perf_counter() - t0:.1f} s wall)"
    )
    return 0


def fit_and_save(args, df, X, y, target: str, source: str, params: dict, active_run, t0: float) -> None:
    """Train, report, and write the three output files (through a staging folder); log them to the open
    MLflow run, if any, before they are moved into place."""
    import json

    import numpy as np
    from sklearn.metrics import accuracy_score, classification_report

    from casebook.persistence import save_skops
    from casebook.training import search

    try:
        fit = search.train_tabular(X, y, args.model, args.cv, args.seed)
    except ValueError as e:
        raise CLIError(f"cannot train on this data: {first_line(e)}") from None
    pipe, scores, pred = fit["pipeline"], fit["cv_scores"], fit["test_pred"]
    y_train, y_test, X_val, y_val = fit["y_train"], fit["y_test"], fit["X_val"], fit["y_val"]
    acc = accuracy_score(y_test, pred)
    val_acc = accuracy_score(y_val, fit["val_pred"])
    print(
        f"data: {source}, {len(df)} rows x {X.shape[1]} features; split train {len(y_train)} / "
        f"test {len(y_test)} / validation {len(y_val)}"
    )
    print(
        f"{args.cv}-fold CV accuracy ({args.model}): {fmt_mean_std(scores)}  folds: "
        + " ".join(f"{s:.4f}" for s in scores)
    )
    print("test classification report:")
    print(classification_report(y_test, pred, digits=4, zero_division=0))
    print(f"test accuracy: {acc:.4f}   validation accuracy: {val_acc:.4f}")

    metrics = {
        "model": args.model,
        "data": source,
        "target": target,
        "features": list(X.columns),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "n_validation": len(y_val),
        "cv_folds": args.cv,
        "cv_accuracy": [float(s) for s in scores],
        "cv_accuracy_mean": float(np.mean(scores)),
        "cv_accuracy_std": float(np.std(scores)),
        "test_accuracy": float(acc),
        "validation_accuracy": float(val_acc),
        "test_report": classification_report(y_test, pred, output_dict=True, zero_division=0),
        "params": params,
    }
    bundle = {
        "pipeline": pipe,
        "features": list(map(str, X.columns)),
        "target": str(target),
        "classes": [c.item() if hasattr(c, "item") else c for c in pipe.classes_],
        "model": args.model,
    }
    with staged_output(args.output_dir) as stage:
        save_skops(bundle, stage / "model.skops")
        X_val.assign(**{target: y_val}).to_csv(stage / "validation.csv", index=False)
        metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        if active_run is not None:  # inside the stage: if the server refuses, no output is left either
            log_outputs(metrics, pipe, X_val, stage)
            print(f"logged run {active_run.info.run_id} to {EXPERIMENT!r} at {tracking_location()}")


def tracking_location() -> str:
    from casebook import config

    return config.mlflow_tracking_uri() if config.mlflow_is_remote() else "the local MLflow store"


def log_outputs(metrics: dict, pipeline, X_example, stage: Path) -> None:
    """Into the open MLflow run: the three accuracies, the pipeline as an MLflow scikit-learn model (skops,
    casebook's type allow-list, a signature) and the output files as artifacts."""
    from casebook.tracking import backend, run_logging

    run_logging.log_metrics({k: metrics[k] for k in ("cv_accuracy_mean", "test_accuracy", "validation_accuracy")})
    run_logging.log_model(pipeline, "sklearn", input_example=X_example.head(5))
    backend.mlflow_module().log_artifacts(str(stage), artifact_path="output")


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
