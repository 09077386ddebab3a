"""Where a published number came from: the commit, the data files, the library versions, the machine, the
seeds and the mode of the process that produced it.

:func:`collect` is called by :func:`casebook.report.results_file.write_results` and stored in every results file under
``provenance.<notebook>``; :func:`summary_line` is what each notebook's last cell prints. Nothing here imports
a heavy library: versions are read from the installed distributions, devices only from frameworks the process
has already imported.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from . import config
from .data import checksums, registry

# The libraries that shape the numbers, each with the distribution names it is installed under.
LIBRARIES = {
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "xgboost": ("xgboost-cpu", "xgboost"),
    "torch": ("torch",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "mlflow": ("mlflow",),
}
# Paths whose uncommitted changes do not make a tree "dirty" for the numbers: what a notebook run writes
# itself (figures, results, the README table, the executed notebooks' outputs).
WRITTEN_BY_RUNS = ("assets/", "README.md")
NOTEBOOK_ENV = "CASEBOOK_NOTEBOOK"  # set by casebook.notebooks.execute for the kernel it starts


def library_versions() -> dict[str, str | None]:
    """Installed versions of Python and :data:`LIBRARIES` (None for a library that is not installed)."""
    out = {"python": platform.python_version()}
    for name, dists in LIBRARIES.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _code_cells(text: str) -> list[str]:
    cells = json.loads(text).get("cells", [])
    return ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]


def _notebook_code_changed(path: str) -> bool:
    """A notebook whose code differs from the commit (new outputs alone do not count)."""
    committed = _git("show", f"HEAD:{path}")
    current = config.REPO_ROOT / path
    if committed is None or not current.is_file():
        return True
    try:
        return _code_cells(committed) != _code_cells(current.read_text())
    except (ValueError, OSError):
        return True


def commit_state() -> dict:
    """``commit`` (``git rev-parse HEAD``, None outside a checkout), ``dirty`` and ``dirty_files``: tracked or
    new files that differ from the commit, except what runs write themselves (:data:`WRITTEN_BY_RUNS` and the
    outputs of notebooks whose code is unchanged)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return {"commit": None, "dirty": None, "dirty_files": []}
    status = _git("status", "--porcelain", "--untracked-files=normal") or ""
    changed = []
    for line in status.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if path.startswith(WRITTEN_BY_RUNS):
            continue
        notebook = path.startswith("notebooks/") and path.endswith(".ipynb")
        if notebook and set(line[:2].strip()) == {"M"} and not _notebook_code_changed(path):
            continue
        changed.append(path)
    return {"commit": head.strip(), "dirty": bool(changed), "dirty_files": sorted(changed)}


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def devices() -> dict:
    """The CPU (model, cores this process may use, the vector instruction set torch uses) and the accelerators
    of the frameworks already imported (torch's device, TensorFlow's GPUs)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {"cpu": cpu_model(), "cpu_threads": usable, "machine": platform.machine()}
    if "torch" in sys.modules:
        import torch

        out["torch_device"] = config.describe_device()
        out["torch_threads"] = torch.get_num_threads()
        # the vector instruction set torch's kernels run (AVX2, AVX512, DEFAULT): CPUs of one brand name differ
        # in it, and so in the last bits of threaded and vectorised arithmetic
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        out["tensorflow_gpus"] = gpus
    return out


def collect(wall_s: float | None = None) -> dict:
    """The provenance of what this process publishes now: commit and dirty state, the sha256 of every data
    file it verified (:func:`casebook.data.checksums.verified_files`), library versions, devices, the seeds set
    through :func:`casebook.config.seed_everything`, the mode, start time (UTC) and wall seconds."""
    started = config.STARTED_AT
    return {
        "notebook": os.environ.get(NOTEBOOK_ENV) or None,
        **commit_state(),
        "data_files": checksums.verified_files(),
        "versions": library_versions(),
        "devices": devices(),
        "seeds": sorted(set(config.seeds_used())),
        "mode": "smoke" if config.is_smoke() else "full",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(float(wall_s if wall_s is not None else time.time() - started), 1),
    }


def current_notebook(names) -> str | None:
    """The notebook this process executes (``CASEBOOK_NOTEBOOK``, set by the runner), else the last of
    ``names`` (a notebook run by hand in Jupyter)."""
    names = list(names)
    return os.environ.get(NOTEBOOK_ENV) or (names[-1] if names else None)


def per_notebook(previous: dict | None, runtimes: dict, models) -> tuple[dict, dict]:
    """``(provenance, models_by_notebook)`` of a results file being written: this process's provenance and
    models under its notebook's name, beside the entries the ``previous`` file of the same case kept for the
    other notebooks that still contribute (notebook 01's, when 02 rewrites the file with its MLPs added)."""
    current = current_notebook(runtimes)
    previous = previous or {}
    others = [nb for nb in runtimes if nb != current]
    prov = {nb: p for nb, p in previous.get("provenance", {}).items() if nb in others}
    owned = {
        nb: [m for m in ms if m in models] for nb, ms in previous.get("models_by_notebook", {}).items() if nb in others
    }
    claimed = {m for ms in owned.values() for m in ms}
    owned[current] = [m for m in models if m not in claimed]
    prov[current] = collect(runtimes.get(current))
    return prov, owned


def datasets_read(record: dict) -> list[str]:
    """The registry datasets whose files a provenance record says were verified (``mnist/…`` → ``mnist``)."""
    keys = {name.split("/")[0] for name in record.get("data_files", {})}
    return sorted(k for k in keys if k in registry.REGISTRY)


def summary_line(record: dict) -> str:
    """One line for a notebook's last cell: commit (dirty or clean), mode, versions, device."""
    commit = (record.get("commit") or "no commit")[:10]
    state = "dirty tree" if record.get("dirty") else "clean tree"
    names = ("numpy", "scikit-learn", "xgboost", "torch", "tensorflow", "mlflow")
    versions = ", ".join(f"{n} {record['versions'][n]}" for n in names if record["versions"].get(n))
    dev = record["devices"]
    device = dev.get("torch_device") or f"cpu ({dev['cpu_threads']} threads)"
    n_files = len(record["data_files"])
    return (
        f"provenance: commit {commit} ({state}), {record['mode']} mode, {n_files} data files "
        f"checked, {dev['cpu']}, {device}; {versions}"
    )


def differences(committed: dict, rerun: dict) -> list[str]:
    """What differs between two provenance records in what shapes the numbers: library versions, CPU,
    devices, data files, mode, seeds."""
    out = []
    for name in sorted(set(committed.get("versions", {})) | set(rerun.get("versions", {}))):
        a, b = committed.get("versions", {}).get(name), rerun.get("versions", {}).get(name)
        if a != b:
            out.append(f"{name} {a} → {b}")
    for key in ("cpu", "cpu_threads", "cpu_capability", "torch_device", "tensorflow_gpus"):
        a, b = committed.get("devices", {}).get(key), rerun.get("devices", {}).get(key)
        if a != b:
            out.append(f"{key} {a} → {b}")
    files_a, files_b = committed.get("data_files", {}), rerun.get("data_files", {})
    for name in sorted(set(files_a) | set(files_b)):
        if files_a.get(name) != files_b.get(name):
            out.append(f"data file {name}: sha256 {str(files_a.get(name))[:12]} → {str(files_b.get(name))[:12]}")
    for key in ("mode", "seeds"):
        if committed.get(key) != rerun.get(key):
            out.append(f"{key} {committed.get(key)} → {rerun.get(key)}")
    return out
