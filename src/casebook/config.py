"""Paths, run mode and seeds: the one place the rest of the package asks.

Environment variables
---------------------
CASEBOOK_DATA     data root, one folder per dataset as in the README's Data section (default ``<repo>/data``)
CASEBOOK_SMOKE    ``1`` = smoke mode: tiny subsets (or synthetic stand-ins) so everything runs in seconds
CASEBOOK_OFFLINE  ``1`` = never try to download
CASEBOOK_ASSETS   where figures and results go (default ``<repo>/assets``)
CASEBOOK_OUTPUTS  trained models and tool outputs (default ``<repo>/outputs``, git-ignored)
CASEBOOK_MLFLOW   folder holding ``mlflow.db`` and ``mlartifacts/`` (default: the repository root)
CASEBOOK_DEVICE   torch device to use (``cpu``, ``cuda``, ``cuda:1``, ``mps``); default: the best available
CASEBOOK_MLFLOW_URI  a tracking server (e.g. ``http://mlflow.example:5000``) that every notebook and tool logs
                  to instead of the local sqlite store; credentials come from MLflow's own
                  ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent


def _find_repo_root() -> Path:
    """The checkout root (the folder with pyproject.toml above the package), else the working directory."""
    for parent in PACKAGE_DIR.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd().resolve()


REPO_ROOT = _find_repo_root()
DEFAULT_SEED = 42
STARTED_AT = time.time()  # when this process first imported casebook (a notebook's start, for provenance)
_SEEDS: list[int] = []


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def is_smoke() -> bool:
    """True in smoke mode (``CASEBOOK_SMOKE=1``): small subsets, short training, same code paths."""
    return _flag("CASEBOOK_SMOKE")


def progress(iterable=None, **kwargs):
    """A progress bar for long loops: a live widget in Jupyter, a text bar on a terminal (``tqdm.auto``), and
    nothing at all when executed headless (``CASEBOOK_HEADLESS=1``, set by ``casebook.notebooks``), so committed
    outputs never hold bar text."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=_flag("CASEBOOK_HEADLESS"), **kwargs)


def is_offline() -> bool:
    """True when downloads must not be attempted (``CASEBOOK_OFFLINE=1``)."""
    return _flag("CASEBOOK_OFFLINE")


def data_root() -> Path:
    """The data root: ``$CASEBOOK_DATA`` or ``<repo>/data``."""
    return Path(os.environ.get("CASEBOOK_DATA") or REPO_ROOT / "data").expanduser().resolve()


def assets_root() -> Path:
    """Where notebooks write figures and results: ``$CASEBOOK_ASSETS``, else ``<repo>/assets`` in full mode.
    Smoke runs default to ``<outputs>/smoke-assets`` (git-ignored): tiny-data figures never overwrite the
    committed ones."""
    if os.environ.get("CASEBOOK_ASSETS"):
        return Path(os.environ["CASEBOOK_ASSETS"]).expanduser().resolve()
    return outputs_dir() / "smoke-assets" if is_smoke() else (REPO_ROOT / "assets").resolve()


def results_dir() -> Path:
    return assets_root() / "results"


def outputs_dir() -> Path:
    """Trained models and tool outputs (git-ignored): ``$CASEBOOK_OUTPUTS`` or ``<repo>/outputs``."""
    return Path(os.environ.get("CASEBOOK_OUTPUTS") or REPO_ROOT / "outputs").expanduser().resolve()


def display_path(path: str | Path) -> str:
    """A path as a notebook should print it: relative to the repository, or under ``$CASEBOOK_DATA``, never
    the machine's absolute path when it can be helped."""
    path = Path(path).resolve()
    data_label = "$CASEBOOK_DATA" if os.environ.get("CASEBOOK_DATA") else "data"
    for root, label in ((data_root(), data_label), (REPO_ROOT, ".")):
        if path.is_relative_to(root):
            rest = path.relative_to(root)
            return label if rest == Path(".") else (str(rest) if label == "." else f"{label}/{rest}")
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def describe_tracking_store() -> str:
    """Where MLflow runs go, as a notebook prints it: the server's URI, or the local store relative to the
    repository (``mlflow.db``)."""
    if mlflow_is_remote():
        return mlflow_tracking_uri()
    return f"local sqlite store {display_path(mlflow_dir() / 'mlflow.db')}"


def mlflow_dir() -> Path:
    return Path(os.environ.get("CASEBOOK_MLFLOW") or REPO_ROOT).expanduser().resolve()


def mlflow_tracking_uri() -> str:
    """``$CASEBOOK_MLFLOW_URI`` (a team's tracking server) when set, else the local store as an absolute
    sqlite URI, so runs land in one place whatever folder a kernel started in."""
    remote = os.environ.get("CASEBOOK_MLFLOW_URI", "").strip()
    return remote or f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def mlflow_is_remote() -> bool:
    """True when runs go to a tracking server (``CASEBOOK_MLFLOW_URI``), which stores the artifacts itself."""
    return mlflow_tracking_uri().startswith(("http://", "https://"))


def mlflow_artifact_root() -> str:
    """Absolute artifact location (a ``file://`` URI) beside the database."""
    return (mlflow_dir() / "mlartifacts").as_uri()


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".part"):
    """Yield a temporary file path beside ``path``; when the block succeeds it replaces ``path`` in one
    rename, with the permissions a plain ``open()`` would give under the umask (``mkstemp`` alone gives
    0600); when it fails (an exception, Ctrl-C, SIGTERM turned into an exception) the temporary file is
    removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def pick(full, smoke):
    """``smoke`` in smoke mode, else ``full``: keeps notebook parameter cells one line each."""
    return smoke if is_smoke() else full


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python start-up chatter (call before importing it). oneDNN stays on:
    it halves the cost of CPU convolutions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    import sys

    if "tensorflow" in sys.modules:  # importing TensorFlow resets its logger: call again after the import
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)


def device(name: str | None = None):
    """The torch device every torch model, tensor and loop of casebook uses: ``name``, else
    ``$CASEBOOK_DEVICE``, else ``cuda`` if a CUDA GPU is available, else ``mps`` (Apple), else ``cpu``.
    Asking for a device that is not available raises ``RuntimeError`` saying what torch sees."""
    import torch

    wanted = (name or os.environ.get("CASEBOOK_DEVICE", "")).strip().lower()
    if not wanted:
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(wanted)
    except RuntimeError:
        raise RuntimeError(f"CASEBOOK_DEVICE={wanted!r} is not a torch device (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not (torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()):
        raise RuntimeError(
            f"device {wanted!r} asked for, but torch {torch.__version__} sees "
            f"{torch.cuda.device_count()} CUDA GPU(s); unset CASEBOOK_DEVICE or use cpu"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(
            f"device 'mps' asked for, but torch {torch.__version__} sees no Apple GPU; unset CASEBOOK_DEVICE or use cpu"
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise RuntimeError(f"CASEBOOK_DEVICE={wanted!r}: casebook runs on cpu, cuda or mps")
    if dev.type == "cuda" and dev.index is None:  # 'cuda' means the current GPU: name it, so devices compare
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def describe_device(dev=None) -> str:
    """One line naming the torch device, e.g. ``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``."""
    import torch

    dev = dev or device()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return "mps (Apple GPU)" if dev.type == "mps" else f"cpu ({torch.get_num_threads()} threads)"


def repository_url() -> str:
    """The repository's address, from ``[project.urls] Repository`` in pyproject.toml (or, for an installed
    package without the checkout, from its metadata)."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        return tomllib.loads(pyproject.read_text())["project"]["urls"]["Repository"]
    from importlib.metadata import metadata

    urls = dict(u.split(", ", 1) for u in metadata("casebook").get_all("Project-URL") or [])
    return urls["Repository"]


def hosted_setup_report() -> str:
    """What a hosted notebook (Colab, Kaggle) has to work with: the devices torch and TensorFlow see, and
    how each dataset gets there. Printed by every notebook's set-up cell on those platforms."""
    import importlib.util

    lines = [f"torch device: {describe_device()}"]
    if importlib.util.find_spec("tensorflow"):
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        lines.append(f"TensorFlow {tf.__version__} GPUs: {', '.join(gpus) or 'none (CPU)'}")
    lines += [
        "data: MNIST, Fashion-MNIST, MAGIC, California Housing and the MobileNet weights download by "
        "themselves, with checksums;",
        "chest X-rays (notebook 08): on Kaggle, add the dataset paultimothymooney/chest-xray-pneumonia "
        "to the notebook (found under /kaggle/input); on Colab, set KAGGLE_USERNAME and KAGGLE_KEY "
        "(kagglehub downloads it).",
    ]
    return "\n".join(lines)


def seed_everything(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy, and — when they are imported — torch and TensorFlow/Keras.

    Frameworks that are not imported yet are not imported here (that costs seconds); call again after
    importing one. Returns the seed so it can be logged.
    """
    import sys

    _SEEDS.append(int(seed))
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS on a GPU
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
    return seed


def seeds_used() -> list[int]:
    """Every seed :func:`seed_everything` set in this process, in order (recorded in results' provenance)."""
    return list(_SEEDS)


quiet_tensorflow()
