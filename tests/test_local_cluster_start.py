"""How ``LocalCluster`` starts its head, without Ray: a head that exits at start is tried once more on another
port (unless the port was given), and the error quotes the node's own last log line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from casebook.cli import local_cluster
from casebook.cli.local_cluster import LocalCluster, NodeExited


def _fake_node(cluster: LocalCluster, nodes: int, exits: bool) -> subprocess.Popen:
    """A stand-in for ``ray start``: one that fails at once, writing its reason to its log, or one that runs."""
    log = Path(cluster.temp_dir) / f"node-{nodes}.log"
    log.write_text("starting\nException: The current node timed out during startup.\n")
    argv = [sys.executable, "-c", "raise SystemExit(1)"] if exits else ["sleep", "60"]
    process = subprocess.Popen(argv, start_new_session=True)
    cluster.node_numbers[process.pid] = nodes
    return process


def test_a_head_that_exits_at_start_is_tried_once_more_on_another_port(monkeypatch):
    ports = iter([31001, 31002])
    monkeypatch.setattr(local_cluster.random, "randint", lambda a, b: next(ports))
    heads: list[tuple[int, subprocess.Popen]] = []

    def launch(self, role, nodes):
        heads.append((self.port, _fake_node(self, nodes, exits=not heads)))
        return heads[-1][1]

    def wait_for_nodes(self, nodes, processes, **kwargs):
        try:
            processes[0].wait(2)
        except subprocess.TimeoutExpired:
            return  # still running: it joined
        raise NodeExited("ray start exited with 1")

    monkeypatch.setattr(LocalCluster, "_launch", launch)
    monkeypatch.setattr(LocalCluster, "_wait_for_nodes", wait_for_nodes)
    cluster = LocalCluster(workers=0)
    try:
        assert [port for port, _ in heads] == [31001, 31002]
        assert cluster.head is heads[1][1] and cluster.head.poll() is None
        assert cluster.address == cluster.env["CASEBOOK_RAY_ADDRESS"] == "127.0.0.1:31002"
    finally:
        cluster.stop()
    assert cluster.head.poll() is not None and not Path(cluster.temp_dir).exists()


def test_a_head_on_a_given_port_is_not_retried_and_the_error_quotes_its_log(monkeypatch):
    heads: list[subprocess.Popen] = []
    temp_dirs: list[str] = []

    def launch(self, role, nodes):
        temp_dirs.append(self.temp_dir)
        heads.append(_fake_node(self, nodes, exits=True))
        return heads[-1]

    monkeypatch.setattr(LocalCluster, "_launch", launch)
    with pytest.raises(NodeExited, match=r"exited with 1: Exception: The current node timed out during startup"):
        LocalCluster(workers=0, port=31003)  # the real wait sees the head exit before it joins
    assert len(heads) == 1 and not Path(temp_dirs[0]).exists()
