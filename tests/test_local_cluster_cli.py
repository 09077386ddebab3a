"""``make cluster`` (``python -m casebook.cli.local_cluster``) as a user runs it: the real head and worker start in
a loopback-only namespace, a client that follows the printed instructions sees both nodes, and Ctrl-C stops
every node and removes the token file."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from casebook.cli.local_cluster import namespaces_available

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.xdist_group("ray-cluster"),  # one Ray cluster at a time on the machine
    pytest.mark.skipif(not namespaces_available(), reason="needs root and unshare/nsenter for a loopback-only netns"),
]

# What a user's client sees once it has exported the printed variables.
NODES = """
import ray
ray.init(log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"]]
print(len(alive), sum(n["Resources"].get("CPU", 0) for n in alive))
"""


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


def _printed(process: subprocess.Popen, last: str, timeout: float = 300) -> str:
    """What the tool printed up to the line that contains ``last``."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    text, deadline = "", time.monotonic() + timeout
    while last not in text:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            text += lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            pytest.fail(f"the cluster printed no {last!r} in {timeout:.0f} s: {text}")
    return text


def test_make_cluster_starts_a_head_and_a_worker_and_ctrl_c_stops_them():
    argv = [sys.executable, "-m", "casebook.cli.local_cluster", "--workers", "1"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    tool = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = _printed(tool, "Ctrl-C stops every node")
        address = re.search(r"CASEBOOK_RAY_ADDRESS=(\S+)", printed).group(1)
        token_file = Path(re.search(r"RAY_AUTH_TOKEN=\$\(cat (\S+)\)", printed).group(1))
        netns = re.search(r"nsenter -t (\d+) -n", printed).group(1)
        client_env = {**env, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token"}
        client_env["RAY_AUTH_TOKEN"] = token_file.read_text()
        probe = ["nsenter", "-t", netns, "-n", "--", sys.executable, "-c", NODES]
        seen = subprocess.run(probe, env=client_env, capture_output=True, text=True, timeout=120)
        assert seen.returncode == 0, seen.stderr[-2000:]
        assert seen.stdout.split()[-2:] == ["2", "2.0"]  # the head and one worker, 1 CPU each
        assert oct(token_file.stat().st_mode)[-3:] == "600"
        tool.send_signal(signal.SIGINT)
        assert tool.wait(60) == 0
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert not token_file.exists()
    assert not Path(f"/proc/{netns}").exists(), "the namespace's holder process outlived the cluster"


def test_make_cluster_refuses_bad_sizes_with_one_line():
    argv = [sys.executable, "-m", "casebook.cli.local_cluster", "--workers", "-1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--workers" in done.stderr
