"""Notebook 01's CPU-bound search (a randomized search of the random forest over MAGIC, 3-fold CV on the training
split) timed three ways: sequentially in one process, on a Ray cluster of 1 worker and of 2 workers (1 CPU each,
a head that only coordinates), started on 127.0.0.1 by :mod:`casebook.cli.local_cluster` (in a loopback-only
network namespace when run as root). Prints the wall times and the speed-ups over the sequential run, and checks
that every run found the same CV scores.

    python -m casebook.cli.cluster_benchmark [--n-iter 6] [--workers 1 2]
"""

from __future__ import annotations

import json
import sys
import time

from casebook.cli.runtime import CLIError, Parser, first_line, run

PROG = "python -m casebook.cli.cluster_benchmark"
MODEL = "Random Forest"


def gamma_search(n_iter: int = 6, n_jobs: int = -1, seed: int | None = None):
    """Notebook 01's search of :data:`MODEL` on the MAGIC training split (outliers clipped, no resampling, the
    preprocessing 01 chose), under :func:`casebook.cluster.parallel`. Returns the fitted search."""
    from sklearn.model_selection import StratifiedKFold

    from casebook import config
    from casebook import preprocessing as pp
    from casebook.data import magic
    from casebook.models import tabular
    from casebook.training import search

    seed = config.DEFAULT_SEED if seed is None else seed
    X, y = pp.gamma_xy(magic.load_magic())
    X_train, _, y_train, _ = pp.stratified_split(X, y, test_size=0.25, seed=seed)
    est, kind, space = tabular.classical_models(seed)[MODEL]
    pipe = pp.make_pipeline(est, "clip", "none", seed=seed, y_train=y_train)
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    return search.run_search(pipe, space, X_train, y_train, kind=kind, n_iter=n_iter, cv=cv, seed=seed, n_jobs=n_jobs)


def cv_scores(fitted) -> dict:
    """A search's ``cv_results_`` without its timings, as plain data (what must not depend on where it ran)."""
    return {
        key: [str(v) for v in values] if key == "params" or key.startswith("param_") else list(map(float, values))
        for key, values in fitted.cv_results_.items()
        if not key.endswith("_time")
    }


def _timed(n_iter: int, n_jobs: int) -> dict:
    t0 = time.perf_counter()
    fitted = gamma_search(n_iter, n_jobs)
    return {"seconds": time.perf_counter() - t0, "scores": cv_scores(fitted)}


def build_parser() -> Parser:
    ap = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-iter", type=int, default=6, help="randomized-search candidates (default 6, as notebook 01)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes to time (default 1 2)")
    ap.add_argument("--one", action="store_true", help=argparse_hidden())
    return ap


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_iter < 1 or any(w < 1 for w in args.workers):
        raise CLIError("--n-iter and every --workers value must be at least 1")
    from casebook import data
    from casebook.data import magic

    try:  # the data root holds MAGIC (or smoke mode is on) before any cluster starts
        magic.load_magic()
    except data.DataNotFoundError as e:
        raise CLIError(first_line(e)) from None
    if args.one:  # one timed search in this process, under whatever CASEBOOK_RAY_ADDRESS says
        print(json.dumps(_timed(args.n_iter, -1)))
        return 0
    from casebook.cli.local_cluster import LocalCluster, LoopbackNamespace, namespaces_available

    sequential = _timed(args.n_iter, 1)
    rows = [("sequential, 1 process", sequential)]
    namespace = LoopbackNamespace() if namespaces_available() else None
    try:
        for workers in args.workers:
            cluster = LocalCluster(workers, cpus=1, head_cpus=0, namespace=namespace)
            try:
                argv = [sys.executable, "-m", "casebook.cli.cluster_benchmark", "--one", "--n-iter", str(args.n_iter)]
                done = cluster.client(argv, capture_output=True, text=True)
                if done.returncode != 0:
                    raise CLIError(f"the search on {workers} worker(s) failed: {done.stderr.strip()[-300:]}")
                rows.append((f"Ray, {workers} worker(s) x 1 CPU", json.loads(done.stdout.strip().splitlines()[-1])))
            finally:
                cluster.stop()
    finally:
        if namespace is not None:
            namespace.close()
    print(f"{MODEL} randomized search, {args.n_iter} candidates x 3 folds, MAGIC training split")
    for label, row in rows:
        speedup = sequential["seconds"] / row["seconds"]
        same = "same CV scores" if row["scores"] == sequential["scores"] else "CV SCORES DIFFER"
        print(f"  {label:32s} {row['seconds']:7.1f} s   speed-up {speedup:4.2f}x   {same}")
    return 0 if all(row["scores"] == sequential["scores"] for _, row in rows) else 1


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
