"""Past one machine: the searches and sweeps of the case studies on a Ray cluster, when one is named.

``CASEBOOK_RAY_ADDRESS`` decides:

- unset: today's code path; Ray is not even imported. :func:`parallel` is joblib's own backend and
  :func:`sweep` a plain loop.
- ``local``: an in-process Ray on this machine, to try it out (token authentication with a token of its own,
  unless ``RAY_AUTH_MODE`` is set).
- ``host:port``: that cluster's head (``ray start --head`` there). Trials on other nodes cannot write to a local
  sqlite store, so a cluster needs ``CASEBOOK_MLFLOW_URI`` (the team's MLflow server) too.

Token authentication: set ``RAY_AUTH_MODE=token`` and the cluster's ``RAY_AUTH_TOKEN`` on every node and client
(Ray's own variables). Resources per trial: ``CASEBOOK_RAY_CPUS_PER_TRIAL`` (default 1) and
``CASEBOOK_RAY_GPUS_PER_TRIAL`` (default 0); inside a trial, torch's and TensorFlow's thread counts follow the
trial's CPUs. ``CASEBOOK_RAY_STORAGE``: Ray Tune's storage path, shared by every node (default
``<outputs>/ray``; on several hosts a shared folder or bucket).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping, Sequence

from . import config

ADDRESS = "CASEBOOK_RAY_ADDRESS"
CPUS_PER_TRIAL = "CASEBOOK_RAY_CPUS_PER_TRIAL"
GPUS_PER_TRIAL = "CASEBOOK_RAY_GPUS_PER_TRIAL"
STORAGE = "CASEBOOK_RAY_STORAGE"
# what a trial on another node needs to find the data, the mode and the tracking server
FORWARDED = (
    "CASEBOOK_SMOKE",
    "CASEBOOK_DATA",
    "CASEBOOK_OFFLINE",
    "CASEBOOK_HEADLESS",
    "CASEBOOK_OUTPUTS",
    "CASEBOOK_ASSETS",
    "CASEBOOK_MLFLOW",
    "CASEBOOK_MLFLOW_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_DISABLE_TELEMETRY",
)
CONNECT_TIMEOUT_S = 5


class ClusterError(RuntimeError):
    """The Ray cluster named by ``CASEBOOK_RAY_ADDRESS`` cannot be used (one line naming what to fix)."""


def address() -> str | None:
    """``$CASEBOOK_RAY_ADDRESS``, or None when unset (today's single-machine code path)."""
    return os.environ.get(ADDRESS, "").strip() or None


def enabled() -> bool:
    return address() is not None


def _positive(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1
    if value < 0 or (value == 0 and default > 0):
        raise ClusterError(f"{name}={raw!r} is not a valid amount per trial: set it to a positive number")
    return value


def resources() -> dict:
    """CPUs and GPUs per trial, from the environment."""
    return {"cpu": _positive(CPUS_PER_TRIAL, 1), "gpu": _positive(GPUS_PER_TRIAL, 0)}


def check(tracked: bool = True) -> None:
    """Everything the environment names is usable, before any work: the settings are valid, a cluster address
    comes with a tracking server (unless nothing ``tracked`` runs on the cluster, as in a search), and the head
    answers and accepts this client's token. Raises :class:`ClusterError` with one line naming the variable to
    fix. Nothing happens when unset."""
    where = address()
    if where is None:
        return
    resources()
    if tracked and where != "local" and not config.mlflow_is_remote():
        raise ClusterError(
            f"{ADDRESS}={where} runs trials on other nodes, which cannot write to this machine's sqlite store: "
            "set CASEBOOK_MLFLOW_URI to the team's MLflow server"
        )
    connect()


def _runtime_env() -> dict:
    return {"env_vars": {k: os.environ[k] for k in FORWARDED if k in os.environ}}


def connect():
    """Connect to (or, for ``local``, start) the Ray cluster once per process; returns the ``ray`` module."""
    where = address()
    if where is None:
        raise ClusterError(f"{ADDRESS} is not set: nothing to connect to")
    # Ray reads its settings from the environment when it is imported: a refusing head fails in seconds
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", str(CONNECT_TIMEOUT_S))
    if where == "local" and "RAY_AUTH_MODE" not in os.environ:
        _own_token()
    import ray

    if ray.is_initialized():
        return ray
    kwargs = {
        "runtime_env": _runtime_env(),
        "log_to_driver": False,
        "logging_level": "ERROR",
        "configure_logging": True,
    }
    if where == "local":
        kwargs |= {"include_dashboard": False, "num_cpus": os.cpu_count()}
    else:
        _reachable(where)
        kwargs["address"] = where
    with _c_stderr_captured() as captured:  # Ray's C++ client logs each failed attempt straight to fd 2
        try:
            ray.init(**kwargs)
            error = None
        except Exception as e:  # the head answers but refuses: a ConnectionError after Ray's retries
            error = e
    if error is not None:
        why = "its token" if "InvalidAuthToken" in captured[0] else type(error).__name__
        raise ClusterError(
            f"the Ray head at {where} refused this client ({why}): set RAY_AUTH_MODE=token and the cluster's "
            f"RAY_AUTH_TOKEN, or fix {ADDRESS}"
        )
    return ray


def _own_token() -> None:
    """An in-process cluster (``local``) gets token authentication with a fresh token of this process: its
    ports are open on the machine's interfaces, and without an explicit mode Ray writes ``~/.ray/auth_token``
    (readable by other users), which also switches every later ``ray start`` of this user to token mode."""
    import secrets

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


@contextlib.contextmanager
def _c_stderr_captured():
    """File descriptor 2 (what C and C++ code write to) goes to a temporary file while the block runs; the list
    it yields holds that text once the block is over."""
    import sys
    import tempfile

    text: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read())


def _reachable(where: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to ``host:port`` (a ``ray://`` client address is left to Ray)."""
    import socket

    if "://" in where:
        return
    host, _, port = where.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"cannot reach a Ray head at {where} ({type(e).__name__}): fix {ADDRESS}") from None


@contextlib.contextmanager
def parallel():
    """The context every scikit-learn search and cross-validation runs under: joblib's ``ray`` backend when
    ``CASEBOOK_RAY_ADDRESS`` is set (each fit a Ray task, anywhere on the cluster), else joblib's default
    backend, untouched."""
    if not enabled():
        yield
        return
    check(tracked=False)
    import joblib
    from ray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_config(backend="ray"):
        yield


def limit_threads(cpus: float) -> None:
    """Inside a trial: torch's and TensorFlow's thread pools sized to the trial's CPUs (Ray sets only
    ``OMP_NUM_THREADS``). TensorFlow reads its variables when it starts, so this runs before it is imported."""
    import sys

    n = max(1, int(cpus))
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def sweep(
    trial: Callable[..., Mapping],
    configs: Sequence[Mapping],
    name: str = "sweep",
    shared: Mapping | None = None,
    max_retries: int = 2,
) -> list[dict]:
    """Run ``trial(config, **shared)`` for every config; return the records in the order of ``configs``.

    Unset ``CASEBOOK_RAY_ADDRESS``: a plain loop in this process. Set: one Ray Tune trial per config, with the
    resources of :func:`resources`, ``shared`` placed once in Ray's object store, a trial whose worker dies
    retried up to ``max_retries`` times. A record must be JSON-serialisable (numbers, strings, lists, dicts);
    either way each record is passed through JSON, so both paths return the same values and types."""
    shared = dict(shared or {})
    if not enabled():
        return [_as_json(trial(c, **shared)) for c in configs]
    check()
    return _tune(trial, list(configs), name, shared, max_retries)


def _as_json(record: Mapping) -> dict:
    return json.loads(_dumps(record))


def _dumps(record: Mapping) -> str:
    return json.dumps(record, default=_plain)


def _plain(value):
    """NumPy scalars and arrays as Python numbers and lists; anything else is not a record's business."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a sweep record holds a {type(value).__name__}, which is not plain data")


def _storage() -> str:
    where = os.environ.get(STORAGE, "").strip() or str(config.outputs_dir() / "ray")
    if "://" not in where:
        os.makedirs(where, exist_ok=True)
    return where


def _tune(trial, configs: list, name: str, shared: dict, max_retries: int) -> list[dict]:
    # Tune's newer console output prints a configuration table and result paths even at verbose=0; the classic
    # reporter prints nothing at 0, so a notebook's output shows the sweep's tables only
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    need = resources()

    def trainable(tune_config, **objects):
        limit_threads(need["cpu"])
        record = trial(configs[tune_config["index"]], **objects)
        tune.report({"record": _dumps(record)})

    with_objects = tune.with_parameters(trainable, **shared) if shared else trainable
    tuner = tune.Tuner(
        tune.with_resources(with_objects, {"cpu": need["cpu"], "gpu": need["gpu"]}),
        param_space={"index": tune.grid_search(list(range(len(configs))))},
        tune_config=tune.TuneConfig(reuse_actors=True),  # a worker process imports TensorFlow once, not per trial
        run_config=tune.RunConfig(
            name=f"{name}-{os.getpid()}-{id(configs):x}",
            storage_path=_storage(),
            failure_config=tune.FailureConfig(max_failures=max_retries),
            verbose=0,
        ),
    )
    results = tuner.fit()
    records: dict[int, dict] = {}
    for result in results:
        if result.error is not None:
            raise RuntimeError(f"{name}: a trial failed after {max_retries} retries: {result.error}")
        records[result.config["index"]] = json.loads(result.metrics["record"])
    return [records[i] for i in range(len(configs))]
