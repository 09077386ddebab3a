"""A Ray cluster on 127.0.0.1: a head and workers, each a ``ray start --block`` process stopped by its PID.
``make cluster`` runs it (``python -m casebook.cli.local_cluster``), and so do the cluster benchmark and tests.

Ray looks for the machine's external interface even when told 127.0.0.1. Where that must not happen (a shared
machine, CI), the cluster and its clients live in a network namespace that has only loopback
(:class:`LoopbackNamespace`: ``unshare --net``, root only); clients then run with :meth:`LoopbackNamespace.wrap`.
Token authentication is on (a fresh token unless ``RAY_AUTH_TOKEN`` is set), usage statistics off, the dashboard
off, each node's object store capped.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from casebook.cli.runtime import CLIError, Parser, run

PROG = "python -m casebook.cli.local_cluster"
RAY = str(Path(sys.executable).with_name("ray"))


def namespaces_available() -> bool:
    """True where this process may make a network namespace (root, with util-linux's ``unshare``)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    return probe.returncode == 0


class LoopbackNamespace:
    """A network namespace with only ``lo`` up, held open by a sleeping process (stopped by its PID)."""

    def __init__(self):
        script = "ip link set lo up && exec sleep infinity"
        self.process = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(100):
            up = subprocess.run(self.wrap(["ip", "-brief", "link", "show", "lo"]), capture_output=True, text=True)
            if "UP" in up.stdout or "UNKNOWN" in up.stdout:
                return
            time.sleep(0.05)
        self.close()
        raise RuntimeError("the loopback-only network namespace did not come up")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", "--target", str(self.process.pid), "--net", "--", *argv]

    def close(self) -> None:
        _stop(self.process)


class NodeExited(RuntimeError):
    """A ``ray start`` process ended before its node joined the cluster."""


def _last_line(log: Path) -> str:
    """The last line a node wrote to its log (its reason, when ``ray start`` fails)."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else "nothing in its log"


def _stop(*processes: subprocess.Popen, grace: float = 2) -> None:
    """SIGTERM to each process's group, all at once; SIGKILL to those still running ``grace`` seconds later."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        running = [p for p in processes if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.01))


class LocalCluster:
    """A Ray head and ``workers`` worker nodes on 127.0.0.1 (inside ``namespace`` when given), ``cpus`` CPUs each
    (the head ``head_cpus``, default ``cpus``; 0 makes it a coordinator only).

    ``env`` holds what a client needs (``CASEBOOK_RAY_ADDRESS``, ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``)."""

    def __init__(
        self,
        workers: int = 1,
        cpus: int = 1,
        *,
        head_cpus: int | None = None,
        namespace: LoopbackNamespace | None = None,
        token: str | None = None,
        object_store_mb: int = 200,
        port: int | None = None,
    ):
        self.namespace = namespace
        self.cpus, self.object_store = cpus, str(object_store_mb * 1_000_000)
        self.head_cpus = cpus if head_cpus is None else head_cpus
        self.temp_dir = tempfile.mkdtemp(prefix="casebook-ray-")
        self.token = token or os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(16)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0"}
        self._use_port(port)
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.killed = 0  # workers killed since the last add_worker
        self.node_numbers: dict[int, int] = {}  # pid of a node's ray start -> its number (its log's name)
        try:  # one node at a time: a worker that finds no head gives up, and two starting at once race for ports
            self._start_head(tries=1 if port else 2)
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.stop()
            raise

    def _use_port(self, port: int | None) -> None:
        """The head's port (a random one when ``None``), and the address that clients are given."""
        self.port = port or random.randint(20000, 40000)
        self.address = self.env["CASEBOOK_RAY_ADDRESS"] = f"127.0.0.1:{self.port}"

    def _start_head(self, tries: int) -> None:
        """The head, once it is alive. On a loaded machine a head can exit at start (a port taken meanwhile, its
        GCS past a start-up deadline): then it is tried again on another port, when the port was not given."""
        for attempt in range(tries):
            if attempt:
                _stop(self.head)
                self._use_port(None)
            self.head = self._launch(["--head", f"--port={self.port}", "--include-dashboard=false"], 1)
            try:
                self._wait_for_nodes(1, [self.head])
                return
            except NodeExited:
                if attempt == tries - 1:
                    raise

    def _wrap(self, argv: list[str]) -> list[str]:
        return self.namespace.wrap(argv) if self.namespace else argv

    def _launch(self, role: list[str], nodes: int) -> subprocess.Popen:
        """Start one node (the ``nodes``-th), without waiting for it to join."""
        cpus = self.head_cpus if "--head" in role else self.cpus
        argv = [RAY, "start", "--block", *role, "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
        argv += [f"--object-store-memory={self.object_store}", "--disable-usage-stats"]
        if "--head" in role:
            argv.append(f"--temp-dir={self.temp_dir}")
        else:
            argv.append(f"--address={self.address}")
        log = open(Path(self.temp_dir) / f"node-{nodes}.log", "ab")  # noqa: SIM115 (the node's lifetime)
        process = subprocess.Popen(
            self._wrap(argv), env={**os.environ, **self.env}, stdout=log, stderr=log, start_new_session=True
        )
        self.node_numbers[process.pid] = nodes
        return process

    def add_worker(self) -> subprocess.Popen:
        """One more worker node, once it has joined; returns its process (stop it with :meth:`kill_worker`). A
        node killed before is first seen dead by the head, so that the count means the new one."""
        if self.killed:
            self._wait_for_nodes(len(self.workers) + 1, [self.head], fewer=True)
            self.killed = 0
        worker = self._launch([], len(self.workers) + 2)
        self.workers.append(worker)
        self._wait_for_nodes(len(self.workers) + 1, [worker])
        return worker

    def client(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` as a client of this cluster (in its namespace, with its address and token)."""
        env = {**os.environ, **self.env, **kwargs.pop("env", {})}
        return subprocess.run(self._wrap(argv), env=env, **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        env = {**os.environ, **self.env, **kwargs.pop("env", {})}
        return subprocess.Popen(self._wrap(argv), env=env, **kwargs)

    def _wait_for_nodes(
        self, nodes: int, processes: list[subprocess.Popen], timeout: float = 90, fewer: bool = False
    ) -> None:
        """Until ``nodes`` nodes are alive (at most ``nodes`` if ``fewer``; one probe process asks the GCS every
        0.2 s), while every one of ``processes`` still runs."""
        argv = [sys.executable, "-c", _AWAIT_NODES, self.address, str(nodes), str(timeout), str(int(fewer))]
        probe = self.popen(argv, start_new_session=True)
        try:
            while probe.poll() is None:
                for process in processes:
                    if process.poll() is not None:
                        log = Path(self.temp_dir) / f"node-{self.node_numbers[process.pid]}.log"
                        raise NodeExited(f"ray start exited with {process.returncode}: {_last_line(log)}")
                time.sleep(0.2)
        finally:
            _stop(probe)
        if probe.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes in {timeout:.0f} s")

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL a worker node's whole process group: the node dies as a crashed machine would."""
        worker = self.workers.pop(index)
        os.killpg(worker.pid, signal.SIGKILL)
        self.killed += 1
        worker.wait()

    def stop(self) -> None:
        _stop(*[p for p in [*self.workers, self.head] if p is not None])
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# Waits until the GCS counts argv[2] nodes alive (at most argv[2] when argv[4] is 1; exit 0) or argv[3] seconds
# pass (exit 1), without starting a driver (fast, and no session files).
_AWAIT_NODES = """
import sys, time
from ray._raylet import GcsClient
from ray.core.generated import gcs_pb2
address, nodes, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
fewer = sys.argv[4] == "1"
while time.monotonic() < deadline:
    try:
        found = GcsClient(address=address).get_all_node_info(timeout=2)
        alive = sum(1 for n in found.values() if n.state == gcs_pb2.GcsNodeInfo.ALIVE)
        if (alive <= nodes) if fewer else (alive >= nodes):
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
"""


def build_parser() -> Parser:
    ap = Parser(prog=PROG, description="A Ray head and workers on 127.0.0.1 until Ctrl-C (make cluster).")
    ap.add_argument("--workers", type=int, default=1, help="worker nodes besides the head (default 1)")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs each node offers (default 1)")
    ap.add_argument("--object-store-mb", type=int, default=200, help="each node's object store (default 200)")
    ap.add_argument(
        "--isolate",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run the cluster in a loopback-only network namespace (auto: when root)",
    )
    return ap


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 0 or args.cpus < 1 or args.object_store_mb < 80:
        raise CLIError("--workers must be >= 0, --cpus >= 1 and --object-store-mb >= 80")
    isolate = args.isolate == "yes" or (args.isolate == "auto" and namespaces_available())
    if args.isolate == "yes" and not namespaces_available():
        raise CLIError("--isolate yes needs root and util-linux's unshare/nsenter")
    namespace = LoopbackNamespace() if isolate else None
    cluster = None
    try:
        size = {"workers": args.workers, "cpus": args.cpus, "object_store_mb": args.object_store_mb}
        cluster = LocalCluster(**size, namespace=namespace)
        token_file = Path(cluster.temp_dir) / "token"
        token_file.write_text(cluster.token)
        token_file.chmod(0o600)
        print(f"Ray head at {cluster.address} with {args.workers} worker(s), {args.cpus} CPU(s) each")
        print(f"clients: export CASEBOOK_RAY_ADDRESS={cluster.address} RAY_AUTH_MODE=token")
        print(f"         export RAY_AUTH_TOKEN=$(cat {token_file})")
        if namespace:
            print(f"         and run them in its loopback-only network: nsenter -t {namespace.process.pid} -n -- CMD")
        print("Ctrl-C stops every node", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        if cluster is not None:
            cluster.stop()
        if namespace is not None:
            namespace.close()
    return 0


def main(argv=None) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
