"""server-load: measure a team MLflow server under concurrent clients, optionally through a fault.

Examples:
  MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=... \\
      python -m casebook.cli.server_load --url http://127.0.0.1:5000 --clients 8 --runs 10 --steps 50
  python -m casebook.cli.server_load --url http://127.0.0.1:5000 --mode batched \\
      --at 20 --kill -12345 --then "casebook-mlflow-server --backend-store-uri ... --port 5000 &"

It starts nothing itself: it is pointed at a running server (login from MLFLOW_TRACKING_USERNAME / _PASSWORD).
N clients (threads) each create R runs; each run logs 3 params, S metric points (one request per step, or one
batch), one small artifact of random bytes, and ends. With --at, at that second it sends SIGKILL to --kill
(a PID; negative: a process group) and/or runs --then (a shell command, e.g. a restart). Afterwards it reads
everything back and prints what was sent (acknowledged by the server) against what landed: runs, metric
points, params, artifacts (by sha256), lost and duplicated counts, requests per second and wall time.
Every loop is bounded: --max-seconds stops the clients.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from .runtime import CLIError, Parser, run

PROG = "server-load"
METRIC = "load_metric"


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url", default=os.environ.get("CASEBOOK_MLFLOW_URI"), help="the server (default $CASEBOOK_MLFLOW_URI)"
    )
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--runs", type=int, default=10, help="runs per client")
    p.add_argument("--steps", type=int, default=50, help="metric points per run")
    p.add_argument("--mode", choices=("per-step", "batched"), default="per-step")
    p.add_argument("--experiment", default="casebook-load")
    p.add_argument("--at", type=float, help="second (from the start) of the fault")
    p.add_argument("--kill", type=int, help="PID to SIGKILL at --at (negative: a process group)")
    p.add_argument("--then", help="shell command run at --at, after --kill (e.g. the restart)")
    p.add_argument("--max-seconds", type=float, default=600, help="clients stop after this (default 600)")
    return p


@dataclass
class Sent:
    """What the server acknowledged to one client."""

    runs: dict = field(default_factory=dict)  # (client, index) → run id
    points: Counter = field(default_factory=Counter)  # run id → points acknowledged
    params: Counter = field(default_factory=Counter)
    artifacts: dict = field(default_factory=dict)  # run id → sha256
    requests: int = 0
    errors: list = field(default_factory=list)


def _client_work(k: int, args, experiment_id: str, token: str, sent: Sent, deadline: float, lock) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(args.url)
    for r in range(args.runs):
        if time.monotonic() > deadline:
            return
        try:
            tags = {"load_token": token, "load_client": str(k), "load_index": str(r)}
            run_id = client.create_run(experiment_id, run_name=f"load-{k}-{r}", tags=tags).info.run_id
            with lock:
                sent.runs[(k, r)], sent.requests = run_id, sent.requests + 1
            params = [Param(f"p{i}", f"client {k} run {r} value {i}") for i in range(3)]
            client.log_batch(run_id, params=params)
            with lock:
                sent.params[run_id], sent.requests = 3, sent.requests + 1
            now = int(time.time() * 1000)
            if args.mode == "batched":
                client.log_batch(
                    run_id, metrics=[Metric(METRIC, k * 1e6 + r * 1e3 + s, now, s) for s in range(args.steps)]
                )
                with lock:
                    sent.points[run_id], sent.requests = args.steps, sent.requests + 1
            else:
                for s in range(args.steps):
                    client.log_metric(run_id, METRIC, k * 1e6 + r * 1e3 + s, step=s)
                    with lock:
                        sent.points[run_id] += 1
                        sent.requests += 1
            blob = os.urandom(2048)
            client.log_text(run_id, blob.hex(), "load/blob.txt")
            with lock:
                sent.artifacts[run_id] = hashlib.sha256(blob.hex().encode()).hexdigest()
                sent.requests += 1
            client.set_terminated(run_id)
            with lock:
                sent.requests += 1
        except Exception as e:  # the client's own retries are exhausted: count it, go on
            with lock:
                sent.errors.append(f"client {k} run {r}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")


def _fault(args, t0: float, notes: list) -> None:
    time.sleep(max(0.0, args.at - (time.monotonic() - t0)))
    if args.kill is not None:
        try:
            os.kill(args.kill, signal.SIGKILL) if args.kill > 0 else os.killpg(-args.kill, signal.SIGKILL)
            notes.append(f"{time.monotonic() - t0:.1f} s: SIGKILL sent to {args.kill}")
        except ProcessLookupError:
            notes.append(f"{time.monotonic() - t0:.1f} s: {args.kill} was not running")
    if args.then:
        subprocess.Popen(
            args.then, shell=True, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        notes.append(f"{time.monotonic() - t0:.1f} s: started {args.then!r}")


def landed(url: str, experiment_id: str, token: str) -> dict:
    """Read back every run of this benchmark: points, duplicated steps, params and artifact sha256 per run."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    runs, page = [], None
    while True:
        found = client.search_runs([experiment_id], f"tags.load_token = '{token}'", max_results=1000, page_token=page)
        runs += list(found)
        page = found.token
        if not page:
            break
    out = {}
    for r in runs:
        history = client.get_metric_history(r.info.run_id, METRIC)
        steps = Counter(m.step for m in history)
        try:
            local = client.download_artifacts(r.info.run_id, "load/blob.txt")
            with open(local, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except Exception:
            digest = None
        key = (int(r.data.tags["load_client"]), int(r.data.tags["load_index"]))
        out.setdefault(key, []).append(
            {
                "run_id": r.info.run_id,
                "points": len(history),
                "duplicated_points": sum(c - 1 for c in steps.values() if c > 1),
                "params": len(r.data.params),
                "sha256": digest,
                "status": r.info.status,
            }
        )
    return out


def report(args, sent: Sent, found: dict, wall: float, notes: list) -> str:
    """The table: sent (acknowledged) against landed, lost and duplicated."""
    by_id = {row["run_id"]: row for rows in found.values() for row in rows}
    acknowledged = set(sent.runs.values())
    lost_runs = [rid for rid in acknowledged if rid not in by_id]
    duplicated_runs = sum(len(rows) - 1 for rows in found.values() if len(rows) > 1)
    points_sent = sum(sent.points.values())
    points_landed = sum(by_id[rid]["points"] for rid in acknowledged if rid in by_id)
    lost_points = sum(max(0, n - by_id[rid]["points"]) for rid, n in sent.points.items() if rid in by_id) + sum(
        n for rid, n in sent.points.items() if rid not in by_id
    )
    dup_points = sum(row["duplicated_points"] for row in by_id.values())
    params_sent = sum(sent.params.values())
    params_landed = sum(by_id[rid]["params"] for rid in sent.params if rid in by_id)
    artifacts_ok = sum(1 for rid, digest in sent.artifacts.items() if by_id.get(rid, {}).get("sha256") == digest)
    finished = sum(1 for row in by_id.values() if row["status"] == "FINISHED")
    planned = args.clients * args.runs
    lines = [
        f"{args.clients} clients x {args.runs} runs x {args.steps} steps, {args.mode}; "
        f"{sent.requests} requests in {wall:.1f} s ({sent.requests / wall:.1f} requests/s)",
        f"{'':14s} {'planned':>8s} {'sent':>8s} {'landed':>8s} {'lost':>6s} {'duplicated':>10s}",
        f"{'runs':14s} {planned:8d} {len(acknowledged):8d} {len(by_id):8d} {len(lost_runs):6d} "
        f"{duplicated_runs:10d}   ({finished} finished)",
        f"{'metric points':14s} {planned * args.steps:8d} {points_sent:8d} {points_landed:8d} "
        f"{lost_points:6d} {dup_points:10d}",
        f"{'params':14s} {planned * 3:8d} {params_sent:8d} {params_landed:8d} "
        f"{max(0, params_sent - params_landed):6d} {0:10d}",
        f"{'artifacts':14s} {planned:8d} {len(sent.artifacts):8d} {artifacts_ok:8d} "
        f"{len(sent.artifacts) - artifacts_ok:6d} {0:10d}   (sha256 compared)",
    ]
    lines += [f"fault: {n}" for n in notes]
    lines += [f"client error: {e}" for e in sent.errors[:10]]
    if len(sent.errors) > 10:
        lines.append(f"... {len(sent.errors) - 10} more client errors")
    return "\n".join(lines)


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.url or not args.url.startswith(("http://", "https://")):
        raise CLIError("give --url http://host:port (or set CASEBOOK_MLFLOW_URI)")
    if min(args.clients, args.runs, args.steps) < 1 or args.max_seconds <= 0:
        raise CLIError("--clients, --runs, --steps and --max-seconds must be positive")
    if (args.kill is not None or args.then) and args.at is None:
        raise CLIError("--kill and --then need --at SECONDS")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # and its extra get-run request
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(args.url)
    try:
        found = client.get_experiment_by_name(args.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(args.experiment)
    except MlflowException as e:
        raise CLIError(f"{args.url}: {str(e).splitlines()[0][:200]}") from None
    token, sent, lock, notes = uuid.uuid4().hex, Sent(), threading.Lock(), []
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    workers = [
        threading.Thread(target=_client_work, args=(k, args, experiment_id, token, sent, deadline, lock))
        for k in range(args.clients)
    ]
    if args.at is not None:
        workers.append(threading.Thread(target=_fault, args=(args, t0, notes), daemon=True))
    for w in workers:
        w.start()
    for w in workers[: args.clients]:
        w.join()
    wall = time.monotonic() - t0
    print(report(args, sent, landed(args.url, experiment_id, token), wall, notes), flush=True)
    return 0


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
