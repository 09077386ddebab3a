"""predict-classification: apply a model written by train-classifier to a CSV.

Examples:
  predict-classification                                   # outputs/classifier/{model.skops,validation.csv}
  predict-classification --model out/model.skops --data new.csv --output out/predictions.csv

Feature columns are matched by name (any order); a missing or unexpected column is an error. If the CSV
also has the model's target column, the classification report and accuracy are printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import config
from .inputs import read_table
from .outputs import atomic_write_csv, check_output_file
from .runtime import CLIError, Parser, first_line, run

PROG = "predict-classification"


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, default=Path("outputs/classifier/model.skops"))
    p.add_argument("--data", type=Path, help="CSV to predict (default: validation.csv beside the model)")
    p.add_argument("--output", type=Path, help="predictions CSV (default: predictions.csv beside the model)")
    return p


def load_bundle(path: Path) -> dict:
    if not path.is_file():
        raise CLIError(f"model file not found: {path}")
    from casebook.persistence import UntrustedFileError, load_skops

    try:
        bundle = load_skops(path)
    except UntrustedFileError as e:
        raise CLIError(first_line(e)) from None
    except Exception as e:  # zip/JSON errors from a corrupt or foreign file
        raise CLIError(f"{path} is not a valid model file ({type(e).__name__})") from None
    problem = bundle_problem(bundle)
    if problem:
        raise CLIError(f"{path} is not a train-classifier model: {problem}")
    return bundle


def bundle_problem(bundle) -> str | None:
    """What makes ``bundle`` unlike the dict train-classifier writes, or None."""
    if not isinstance(bundle, dict) or not {"pipeline", "features", "target"} <= set(bundle):
        return "missing pipeline/features/target"
    features, target, pipeline = bundle["features"], bundle["target"], bundle["pipeline"]
    if not isinstance(target, str) or not isinstance(features, list) or not features:
        return "target must be a name and features a non-empty list of names"
    if not all(isinstance(f, str) for f in features) or len(set(features)) != len(features):
        return "feature names must be distinct strings"
    if not callable(getattr(pipeline, "predict", None)):
        return f"its pipeline ({type(pipeline).__name__}) cannot predict"
    n_in = getattr(pipeline, "n_features_in_", None)
    if n_in is None:
        return "its pipeline is not fitted"
    if n_in != len(features):
        return f"its pipeline expects {n_in} features but the bundle names {len(features)}"
    return None


def target_labels(df, target: str, pipeline, path: Path):
    """The CSV's target column as labels of the model's kind (numbers for a model trained on numbers, text
    otherwise), checked before anything is predicted or written: a value that cannot be such a label is an
    error, not a traceback in the report."""
    import numpy as np
    import pandas as pd

    classes = np.asarray(getattr(pipeline, "classes_", []))
    column = df[target]
    if classes.dtype.kind not in "iufb":
        return column.astype(str).to_numpy()
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if np.array_equal(classes, np.round(classes)):  # whole-number labels: 0.5 is no label either
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        i = int(bad.argmax())
        raise CLIError(
            f"{path}: target column {target!r} holds {column.iloc[i]!r} on line {i + 2}; the model's "
            f"labels are {', '.join(map(str, classes[:5].tolist()))}"
        )
    return values.astype(classes.dtype)


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    data_path = args.data or args.model.parent / "validation.csv"
    out_path = args.output or args.model.parent / "predictions.csv"
    check_output_file(out_path)
    bundle = load_bundle(args.model)
    features, target = bundle["features"], bundle["target"]
    df = read_table(data_path, target)
    cols = [c for c in map(str, df.columns) if c != target]
    missing, extra = [f for f in features if f not in cols], [c for c in cols if c not in features]
    if missing:
        raise CLIError(f"{data_path}: missing feature columns {missing} (the model was trained on {features})")
    if extra:
        raise CLIError(f"{data_path}: unexpected columns {extra} (the model was trained on {features})")
    X = df[features]  # reordered by name
    y = target_labels(df, target, bundle["pipeline"], data_path) if target in df.columns else None
    import pandas as pd
    from sklearn.metrics import accuracy_score, classification_report

    try:
        pred = bundle["pipeline"].predict(X)
    except (ValueError, TypeError) as e:
        raise CLIError(f"cannot predict {data_path} with {args.model}: {first_line(e)}") from None
    out = pd.DataFrame({"prediction": pred})
    atomic_write_csv(out, out_path)
    print(f"predicted {len(out)} rows with {bundle.get('model', 'model')} → {config.display_path(out_path)}")
    if y is not None:
        print(classification_report(y, pred, digits=4, zero_division=0))
        print(f"accuracy: {accuracy_score(y, pred):.4f}")
    print(f"({time.perf_counter() - t0:.1f} s wall)")
    return 0


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
