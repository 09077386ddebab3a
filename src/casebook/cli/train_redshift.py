"""train-redshift: train a redshift-reliability classifier on redshift-probability curves.

Examples:
  python -m casebook.cli.train_redshift --model CNN --target DeltaZ --epochs 10 --output-dir outputs/redshift/cnn
  python -m casebook.cli.train_redshift --model CNNGRU --target Success3 --undersample --n-objects 4000

Data: <data root>/redshift/{pdfs32,zgrid32}.npy + attributes32.npz (or the survey's attributes32.npy: see
--trust-pickle) when present, else the simulator
(--n-objects, --seed). Writes into --output-dir: best.keras (ModelCheckpoint on validation loss),
model.keras (final, best weights restored), record.json (confusion matrices, curves, learning rate per epoch,
classification report, model summary) and report.png (the 2x2 report figure). Nothing is written outside
--output-dir, and nothing at all if training fails or is interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import config
from .inputs import check_trainable, positive_finite
from .outputs import check_writable_dir, staged_output
from .runtime import CLIError, Parser, run
from .tracking_options import add_track_option, check_tracking_server, tracked

PROG = "train-redshift"
MODELS = ("CNN", "CNN8", "CNNGRU", "CNNLSTM", "CNN_2inputs")
TARGETS = ("DeltaZ", "Success2", "Success3", "Flag3")
INPUTS = ("logPDF", "PDF", "logLikelihood")
MIN_OBJECTS = 100  # below this a 70/15/15 stratified split leaves validation and test sets of a handful
MIN_PER_CLASS = 10


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=MODELS, default="CNN")
    p.add_argument("--target", choices=TARGETS, default="DeltaZ")
    p.add_argument("--input", choices=INPUTS, default="logPDF", dest="input_data")
    p.add_argument("--undersample", action="store_true", help="balance the training set only")
    p.add_argument("--threshold", type=float, default=1e-3, help="|ΔZ| threshold of the DeltaZ target")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-objects", type=int, default=8000, help="simulated objects when no real data is present")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    p.add_argument("--output-dir", type=Path, default=Path("outputs/redshift"))
    add_track_option(p, "redshift")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling the survey's object attributes32.npy (can run code: only for a file "
        "you produced; better: python -m casebook.redshift convert FOLDER --trust-pickle once)",
    )
    return p


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("epochs", "batch_size", "n_objects"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be positive")
    if args.n_objects < MIN_OBJECTS:
        raise CLIError(
            f"--n-objects must be at least {MIN_OBJECTS} (train/validation/test splits), got {args.n_objects}"
        )
    positive_finite("--lr", args.lr)
    positive_finite("--threshold", args.threshold)
    check_writable_dir(args.output_dir)
    t0 = time.perf_counter()
    from casebook import config

    config.quiet_tensorflow()
    from casebook.data import DataError
    from casebook.models import redshift_nets
    from casebook.redshift import dataset, files, seed_api
    from casebook.report import records
    from casebook.training import keras_loops

    if args.track:  # the server answers and accepts the login before any work (CASEBOOK_MLFLOW_URI)
        check_tracking_server()

    config.seed_everything(args.seed)
    try:
        d = files.load(n=args.n_objects, seed=args.seed, allow_pickle=args.trust_pickle)
    except DataError as e:
        raise CLIError(str(e)) from None
    y, names = dataset.make_target(d, args.target, args.threshold)
    check_trainable(y, f"target {args.target} (threshold {args.threshold:g})", MIN_PER_CLASS, 0.15)
    ds = seed_api.load_dataset(
        args.target, args.undersample, args.input_data, args.seed, data=d, threshold=args.threshold
    )
    print(
        f"data: {'simulated' if d.simulated else 'real files'}, {len(d.log_pdf)} objects; target {args.target} "
        f"{ds.class_names}; train {len(ds.y_train)} / valid {len(ds.y_valid)} / test {len(ds.y_test)}"
    )
    import keras

    keras.utils.set_random_seed(args.seed)
    model = redshift_nets.NETWORKS[args.model](ds.X_train.shape[1], ds.n_classes, lr=args.lr)
    params = {k: v for k, v in vars(args).items() if k not in ("output_dir", "track")}
    run_name = f"cli-{args.model}-{args.target}"
    with tracked(args.track, "redshift", run_name, params) as active_run, staged_output(args.output_dir) as stage:
        result = keras_loops.train_keras_classifier(model, ds, args.epochs, args.batch_size, output_dir=stage)
        model.save(stage / "model.keras")
        rec = records.classifier_record(result, ds)
        rec.update(
            model_name=args.model,
            target=args.target,
            input=args.input_data,
            undersample=args.undersample,
            simulated=d.simulated,
            n_objects=len(d.log_pdf),
        )
        records.save_record(rec, stage / "record.json")
        fig = records.record_figure(rec, f"{args.model} on {args.target}")
        fig.savefig(stage / "report.png", dpi=110, bbox_inches="tight")
        if active_run is not None:  # inside the stage: if the server refuses, no output is left either
            from casebook.tracking import backend, run_logging

            run_logging.log_metrics({"test_accuracy": rec["report"]["accuracy"], "best_epoch": rec["best_epoch"]})
            run_logging.log_history({k: rec[k] for k in ("loss", "acc", "val_loss", "val_acc")})  # the seed's names
            backend.mlflow_module().log_artifacts(str(stage), artifact_path="output")
    print(
        f"test accuracy {rec['report']['accuracy']:.4f}; best epoch {rec['best_epoch']}; "
        f"{rec['seconds_per_epoch']:.1f} s/epoch"
    )
    print(
        f"wrote {config.display_path(args.output_dir)}/best.keras, model.keras, record.json, report.png "
        f"({time.perf_counter() - t0:.0f} s wall)"
    )
    return 0


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
