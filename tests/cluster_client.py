"""A client of the test cluster (tests/test_cluster.py runs it inside the cluster's loopback-only network
namespace, or outside it with CASEBOOK_RAY_ADDRESS unset for the local reference). Prints one JSON line.

    python tests/cluster_client.py search
    python tests/cluster_client.py sweep N [ensemble]   # N smoke trials of notebook 08's candidates, then what
                                                        # landed [and their deep ensemble, models read from MLflow]
    python tests/cluster_client.py zoo                  # two smoke trials of notebook 07's model zoo
    python tests/cluster_client.py all DIR              # search, zoo and sweep 4 ensemble in one process, each
                                                        # result written to DIR/<scenario>.json once it is known
"""

import json
import sys
from pathlib import Path

from casebook import cluster, config
from casebook.tracking import backend, executions


def search() -> dict:
    from casebook.cli.cluster_benchmark import cv_scores, gamma_search

    fitted = gamma_search(n_iter=2)
    on_ray = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    workers = 0
    if on_ray:
        workers = sum(1 for n in sys.modules["ray"].nodes() if n["Alive"])
    return {"ray": on_ray, "nodes": workers, "scores": cv_scores(fitted)}


HEAD = [{"type": "dense", "units": 16, "activation": "relu"}]


def candidates(n: int) -> list:
    base = {
        "backbone": "mobilenet",
        "alpha": 0.25,
        "img_size": 64,
        "weights": None,
        "learning_rate": 1e-3,
        "equilibrate": True,
        "strategy": "feature_extraction",
        "epochs": 2,
    }
    variants = [
        (base, HEAD),
        ({**base, "learning_rate": 3e-3}, HEAD),
        (base, [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}]),
        ({**base, "loss": "focal"}, HEAD),
    ]
    return variants[:n]


def sweep(n: int, ensemble: bool = False) -> dict:
    import numpy as np

    from casebook import experiments
    from casebook import preprocessing as pp
    from casebook.data import chest_xray
    from casebook.training import xray

    experiment = "pneumonia"
    execution = executions.start_execution(experiment, "cluster-test")
    index = chest_xray.chest_xray_index(n_per_class=12)
    train, val = pp.grouped_split(index, 0.3, config.DEFAULT_SEED)
    xray_data = pp.XrayData(train, val, img_size=64, batch_size=16, seed=config.DEFAULT_SEED)
    example = np.zeros((2, 64, 64, 3), dtype=np.float32)
    records = experiments.run_xray_sweep(
        candidates(n), "candidate", xray_data, xray.FeatureCache(), experiment, example
    )
    champion = max(records, key=lambda r: (r["val"]["roc_auc_pneumonia"], r["val"]["accuracy"]))
    mean = experiments.run_xray_ensemble(records, input_example=example)["val"] if ensemble else None
    mlflow = backend.setup(experiment)
    landed = executions.search(experiment)
    runs = [
        {
            "name": row["tags.mlflow.runName"],
            "status": row["status"],
            "parent": row.get("tags.mlflow.parentRunId"),
            "val_roc_auc": row.get("metrics.val_roc_auc_pneumonia"),
            "models": len(
                mlflow.search_logged_models(
                    experiment_ids=[row["experiment_id"]],
                    filter_string=f"source_run_id = '{row['run_id']}'",
                    output_format="list",
                )
            ),
        }
        for _, row in landed.iterrows()
    ]
    deleted = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.`{executions.EXECUTION_TAG}` = '{execution}'",
        run_view_type=mlflow.entities.ViewType.DELETED_ONLY,
    )
    return {
        "ray": cluster.enabled(),
        "execution": execution,
        "names": [r["name"] for r in records],
        "val": {r["name"]: r["val"] for r in records},
        "champion": champion["name"],
        "ensemble_val": mean,
        "runs": runs,
        "deleted_attempts": len(deleted),
    }


def zoo() -> dict:
    from casebook import experiments
    from casebook.redshift import baselines, simulator

    experiment = "redshift"
    execution = executions.start_execution(experiment, "cluster-test")
    simulated = simulator.simulate(simulator.SimulationConfig(n=300, seed=3))
    summaries = baselines.pdf_summaries(simulated.log_pdf, simulated.zgrid, simulated.log_evidence)
    trials = [
        {"name": "CNN [DeltaZ]", "model": "CNN", "pool": 64},
        {"name": "CNN_2inputs [DeltaZ]", "model": "CNN_2inputs", "pool": 64, "extra_inputs": True},
    ]
    options = {"epochs": 2, "batch_size": 32, "threshold": 1e-3, "summaries": summaries}
    results = experiments.run_redshift_sweep(trials, simulated, "cluster-test", **options)
    landed = executions.search(experiment)
    return {
        "ray": cluster.enabled(),
        "execution": execution,
        "val": {name: r.validation["accuracy_at_best"] for name, r in results.items()},
        "test_proba": {name: r.outputs["test_proba"].tolist() for name, r in results.items()},
        "files": [
            str(config.assets_root() / "cluster-test" / f"report_{s}.png")
            for s in ("CNN__DeltaZ", "CNN_2inputs__DeltaZ")
        ]
        + [r.outputs["record_file"] for r in results.values()],
        "runs": [
            {"name": row["tags.mlflow.runName"], "status": row["status"], "parent": row["tags.mlflow.parentRunId"]}
            for _, row in landed.iterrows()
        ],
    }


if __name__ == "__main__":
    scenario = sys.argv[1]
    if scenario == "search":
        result = search()
    elif scenario == "zoo":
        result = zoo()
    elif scenario == "all":
        folder = Path(sys.argv[2])
        for name, run in (("search", search), ("zoo", zoo), ("sweep", lambda: sweep(4, ensemble=True))):
            (folder / f"{name}.part").write_text(json.dumps(run(), default=str))
            (folder / f"{name}.part").rename(folder / f"{name}.json")
        result = {"done": sorted(p.name for p in folder.glob("*.json"))}
    else:
        result = sweep(int(sys.argv[2]), "ensemble" in sys.argv[3:])
    print(json.dumps(result, default=str))
