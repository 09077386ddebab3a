"""Run facts: a stopwatch and the process's peak memory."""

from __future__ import annotations

import resource
import time


class Stopwatch:
    """Wall time since creation: ``sw = Stopwatch(); ...; sw.elapsed``; ``sw.lap('name')`` records laps."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.laps: dict[str, float] = {}
        self._last = self.t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
        return self.laps[name]


def peak_memory_gb() -> float:
    """Peak resident memory (max RSS) of this process, in GB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
