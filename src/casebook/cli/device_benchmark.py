"""device-benchmark: time the torch training of notebooks 02 and 05 on each available device (CPU, CUDA, MPS).

Examples:
  python -m casebook.cli.device_benchmark                      # every available device
  python -m casebook.cli.device_benchmark --devices cpu cuda --json outputs/device-benchmark.json

Runs the notebooks' own code paths on their real data (data root: CASEBOOK_DATA): notebook 05's CNN for one
epoch over the 55,000 training images (batch 64, Adam; float32, and bfloat16 autocast on CUDA), its loop
benchmark (tensor loop vs textbook DataLoader), and notebook 02's MLP (TorchMLPClassifier, Adam, 64-32,
early stopping) on the MAGIC training split. Prints one table; --json also writes it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import config
from .runtime import CLIError, Parser, run

PROG = "device-benchmark"


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--devices", nargs="+", help="default: cpu plus every accelerator torch sees")
    p.add_argument("--loop-batches", type=int, default=300, help="batches per loop in the loop benchmark")
    p.add_argument("--json", type=Path, help="also write the table here")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    return p


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def mnist_rows(dev, seed: int, loop_batches: int) -> list[dict]:
    """Notebook 05: one timed epoch of the specified CNN (after a warm-up), and the loop benchmark."""
    import torch
    import torchvision.transforms as T
    from torch.utils.data import Subset

    from casebook import config
    from casebook import preprocessing as pp
    from casebook.data import mnist
    from casebook.models.vision import make_mnist_cnn
    from casebook.training import torch_loop

    digits = mnist.load_mnist("mnist")
    tr, va = pp.holdout_split(len(digits.y_train), 5_000, digits.y_train, seed)
    x_all = pp.images_to_tensor(digits.x_train)
    y_train, y_val = torch.from_numpy(digits.y_train[tr]), torch.from_numpy(digits.y_train[va])
    rows = []
    for amp in (False, True) if dev.type == "cuda" else (False,):
        config.seed_everything(seed)
        net, x_train, x_val = torch_loop.channels_last(make_mnist_cnn(), x_all[tr], x_all[va], device=dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        torch_loop.torch_fit(net, x_train, y_train, optimizer=opt, epochs=1, max_batches=20, seed=seed, amp=amp)
        _sync()
        fit = torch_loop.torch_fit(
            net, x_train, y_train, x_val, y_val, optimizer=opt, epochs=1, batch_size=64, seed=seed, amp=amp
        )
        _sync()
        rows.append(
            {
                "device": config.describe_device(dev),
                "notebook": "05",
                "what": "CNN epoch, 55k images, batch 64" + (", bf16 autocast" if amp else ""),
                "seconds": round(fit.history["epoch_time"].iloc[0], 2),
                "validation accuracy": round(fit.history["val_accuracy"].iloc[0], 4),
            }
        )
    textbook = Subset(
        mnist.torchvision_dataset(
            "mnist", train=True, transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
        ),
        tr,
    )
    bench = torch_loop.benchmark_loops(
        make_mnist_cnn, x_all[tr], y_train, textbook, n_batches=loop_batches, seed=seed, device=dev
    )
    for name, r in torch_loop.benchmark_table(bench).iterrows():
        rows.append(
            {
                "device": config.describe_device(dev),
                "notebook": "05",
                "what": f"{name}: {loop_batches} batches",
                "seconds": round(r["seconds"], 2),
                "validation accuracy": None,
            }
        )
    return rows


def gamma_rows(dev, seed: int) -> list[dict]:
    """Notebook 02: the default MLP (Adam, 64-32, up to 60 epochs, early stopping) on the MAGIC training
    split, after the notebook's Yeo-Johnson + scaling fitted on that split."""
    from sklearn.preprocessing import PowerTransformer, StandardScaler

    from casebook import config
    from casebook import preprocessing as pp
    from casebook.data import magic
    from casebook.training.mlp_classifier import TorchMLPClassifier

    X, y = pp.gamma_xy(magic.load_magic())
    X_train, X_test, y_train, y_test = pp.stratified_split(X, y, test_size=0.25, seed=seed)
    power = PowerTransformer(method="yeo-johnson", standardize=False).fit(X_train)
    scale = StandardScaler().fit(power.transform(X_train))
    prep = lambda frame: scale.transform(power.transform(frame))  # noqa: E731
    config.seed_everything(seed)
    _sync()
    t0 = time.perf_counter()
    clf = TorchMLPClassifier(seed=seed, device=str(dev)).fit(prep(X_train), y_train)
    _sync()
    seconds = time.perf_counter() - t0
    return [
        {
            "device": config.describe_device(dev),
            "notebook": "02",
            "what": f"MLP fit, {len(y_train)} rows, {clf.training_.epochs_run} epochs (early stopping)",
            "seconds": round(seconds, 2),
            "validation accuracy": round(clf.training_.history["val_accuracy"].iloc[-1], 4),
            "test accuracy": round(float((clf.predict(prep(X_test)) == y_test).mean()), 4),
        }
    ]


def main_impl(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd
    import torch

    from casebook import config
    from casebook.data import DataError

    names = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
        ["mps"] if torch.backends.mps.is_available() else []
    )
    try:
        devices = [config.device(n) for n in names]
    except RuntimeError as e:
        raise CLIError(str(e)) from None
    rows = []
    try:
        for dev in devices:
            rows += mnist_rows(dev, args.seed, args.loop_batches) + gamma_rows(dev, args.seed)
    except DataError as e:
        raise CLIError(str(e)) from None
    table = pd.DataFrame(rows)
    print(f"torch {torch.__version__}; CPU threads {torch.get_num_threads()}")
    print(table.to_string(index=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        table.to_json(args.json, orient="records", indent=2)
    return 0


def main(argv=None) -> int:
    return run(main_impl, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
