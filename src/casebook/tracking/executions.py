"""Executions (a notebook's parent run), run names, and comparing runs."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from .. import cluster
from .backend import run_mode, setup
from .team_server import translate_errors

# One notebook execution (or tool invocation) = one parent run; the runs it creates are its children, tagged with
# its id, so comparisons, run names and champions only ever see the current execution, whatever the store holds.
EXECUTION_TAG = "casebook.execution"


_EXECUTIONS: dict[str, dict] = {}  # experiment → {"run_id", "name"}


def start_execution(experiment: str, name: str) -> str:
    """Open a new execution of ``experiment``: a parent run called ``name`` (e.g. the notebook), tagged with
    its own id and the mode. Every :func:`run` of that experiment in this process becomes its child; :func:`search`,
    :func:`compare` and :func:`next_run_name` then read only this execution's runs. Returns the execution id.
    A Ray cluster named by ``CASEBOOK_RAY_ADDRESS`` is checked first (:func:`casebook.cluster.check`)."""
    cluster.check()
    mlflow = setup(experiment)
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    with translate_errors(f"create a run in experiment {experiment!r}"):
        parent = client.create_run(experiment_id, run_name=name, tags={"mode": run_mode(), "kind": "execution"})
        client.set_tag(parent.info.run_id, EXECUTION_TAG, parent.info.run_id)
        client.set_terminated(parent.info.run_id)
    _EXECUTIONS[experiment] = {"run_id": parent.info.run_id, "name": name}
    return parent.info.run_id


def execution_id(experiment: str) -> str | None:
    """The id of the current execution of ``experiment`` in this process (None before :func:`start_execution`)."""
    found = _EXECUTIONS.get(experiment)
    return found["run_id"] if found else None


def execution_context(experiment: str) -> dict:
    """What a process elsewhere (a Ray trial) needs to log into this process's current execution of
    ``experiment``: pass it to :func:`join_execution` there."""
    found = _EXECUTIONS.get(experiment)
    if found is None:
        raise RuntimeError(f"no execution of {experiment!r} is open: call start_execution first")
    return {"experiment": experiment, **found}


def join_execution(context: dict) -> None:
    """Make the runs of this process children of the execution described by ``context``
    (:func:`execution_context` of the process that opened it)."""
    _EXECUTIONS[context["experiment"]] = {"run_id": context["run_id"], "name": context["name"]}


def reserve_run_names(experiment: str, stems: Iterable[str]) -> list[str]:
    """Names for runs about to start elsewhere (a sweep's trials), numbered as :func:`next_run_name` would
    number them one after another: ``["mobilenet", "mobilenet", "lite"]`` → ``mobilenet#1``, ``mobilenet#2``,
    ``lite#1`` in a fresh execution."""
    taken: dict[str, int] = {}
    names = []
    for stem in stems:
        if stem not in taken:
            taken[stem] = int(next_run_name(experiment, stem).rsplit("#", 1)[1]) - 1
        taken[stem] += 1
        names.append(f"{stem}#{taken[stem]}")
    return names


def discard_unfinished(experiment: str, run_name: str) -> int:
    """Delete this execution's runs called ``run_name`` that did not finish: what a killed earlier attempt of a
    retried trial left behind, so that the retry's run is the only one of that name. Returns how many."""
    mlflow = setup(experiment)
    found = search(experiment, f"tags.mlflow.runName = '{run_name}' and attributes.status != 'FINISHED'")
    for run_id in found.get("run_id", []):
        mlflow.MlflowClient().delete_run(run_id)
    return len(found)


def end_unfinished(experiment: str, status: str = "FAILED") -> list[str]:
    """Mark this execution's runs still RUNNING as ``status`` (a trial that never came back): every run ends.
    Returns their names."""
    mlflow = setup(experiment)
    found = search(experiment, "attributes.status = 'RUNNING'")
    for run_id in found.get("run_id", []):
        mlflow.MlflowClient().set_terminated(run_id, status)
    return list(found.get("tags.mlflow.runName", []))


def search(experiment: str, filter_string: str = "", order_by: Iterable[str] | None = None) -> pd.DataFrame:
    """``mlflow.search_runs`` on one experiment (this project's store), newest first by default; only the current
    execution's runs once :func:`start_execution` opened one."""
    mlflow = setup(experiment)
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=scoped_filter(experiment, filter_string),
        order_by=list(order_by) if order_by else ["attributes.start_time DESC"],
    )


def compare(
    experiment: str,
    metrics: Iterable[str],
    params: Iterable[str] = (),
    filter_string: str = "",
    sort_by: str | None = None,
) -> pd.DataFrame:
    """A tidy comparison table of runs: run name, chosen params and metrics, sorted by ``sort_by`` (desc)."""
    runs = search(experiment, filter_string)
    if runs.empty:
        return runs
    cols = {"tags.mlflow.runName": "run"}
    cols.update({f"params.{p}": p for p in params})
    cols.update({f"metrics.{m}": m for m in metrics})
    table = runs[[c for c in cols if c in runs]].rename(columns=cols)
    if sort_by and sort_by in table:
        table = table.sort_values(sort_by, ascending=False)
    return table.reset_index(drop=True)


def next_run_name(experiment: str, stem: str) -> str:
    """Automatic run names like ``mobilenet#3``: one more than the runs already named ``stem#k`` (in the current
    execution, if one is open, so every execution numbers its runs from 1)."""
    runs = search(experiment, filter_string=f"tags.mlflow.runName LIKE '{stem}#%'")
    return f"{stem}#{len(runs) + 1}"


def scoped_filter(experiment: str, filter_string: str) -> str:
    """``filter_string`` restricted to the children of the current execution, if one is open."""
    eid = execution_id(experiment)
    if eid is None:
        return filter_string
    own = f"tags.`{EXECUTION_TAG}` = '{eid}' and tags.kind != 'execution'"
    return f"{own} and {filter_string}" if filter_string else own
