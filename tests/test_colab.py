"""Colab, Kaggle and accelerators: badges and set-up cells come from the one repository URL; every torch path
runs on config.device(); CPU results do not depend on the device plumbing."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from casebook import config, notebooks
from casebook.data import chest_xray, fetch
from casebook.models import mlp, vision
from casebook.training import mlp_classifier, torch_loop

NOTEBOOKS = notebooks.list_notebooks()


def test_the_repository_url_is_written_once_in_pyproject():
    url = config.repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    tracked = subprocess.run(["git", "ls-files"], cwd=config.REPO_ROOT, capture_output=True, text=True).stdout.split()
    slug = url.removeprefix("https://")
    holders = sorted(
        f
        for f in tracked
        if f.endswith((".py", ".toml", ".md", ".ipynb", ".yml", ".cfg", ".txt"))
        and slug in (config.REPO_ROOT / f).read_text(errors="ignore")
    )
    generated = {"README.md", *(f"notebooks/{p.name}" for p in NOTEBOOKS)}
    assert set(holders) - generated == {"pyproject.toml"}, holders


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badges_and_setup_cell_are_generated_from_the_url(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert not notebooks.sync_setup(copy), "run `python -m casebook.notebooks --sync-setup`"
    nb = json.loads(path.read_text())
    title = "".join(nb["cells"][0]["source"])
    assert notebooks.badges(path.stem) in title
    assert "colab.research.google.com/github/" in title and "kaggle.com/kernels/welcome?src=" in title
    setup = [c for c in nb["cells"] if c["cell_type"] == "code"][1]
    source = "".join(setup["source"])
    assert source == notebooks.setup_cell() and setup.get("outputs", []) == []
    assert "check=True" in source and f'REPOSITORY = "{config.repository_url()}"' in source
    assert all(len(line) <= 100 for line in source.splitlines())


def test_readme_badges_are_generated_from_the_url(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copy(config.REPO_ROOT / "README.md", copy)
    assert not notebooks.sync_readme(copy)
    text = copy.read_text()
    for p in NOTEBOOKS:
        assert notebooks.badges(p.stem) in text


def test_the_setup_cell_fails_loudly_when_the_clone_fails(tmp_path, monkeypatch):
    """Run the generated cell as Kaggle would, with a repository URL that cannot be cloned."""
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    code = notebooks.setup_cell(url=f"file://{tmp_path}/no-such-repo").replace(
        "/kaggle/working/casebook", str(tmp_path / "checkout")
    )
    with pytest.raises(subprocess.CalledProcessError):
        exec(compile(code, "setup-cell", "exec"), {})
    assert not (tmp_path / "checkout").exists()


def test_config_device_picks_the_best_available_and_refuses_unavailable_ones(monkeypatch):
    monkeypatch.delenv("CASEBOOK_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert config.device().type == expected
    monkeypatch.setenv("CASEBOOK_DEVICE", "cpu")
    assert config.device() == torch.device("cpu") and config.describe_device().startswith("cpu (")
    monkeypatch.setenv("CASEBOOK_DEVICE", "tpu-please")
    with pytest.raises(RuntimeError, match="not a torch device"):
        config.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("CASEBOOK_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="sees 0 CUDA GPU"):
            config.device()
        with pytest.raises(RuntimeError, match="sees 0 CUDA GPU"):
            mlp_classifier.TorchMLPClassifier(epochs=1, device="cuda").fit(np.zeros((20, 2)), np.arange(20) % 2)
    else:
        assert config.device("cuda:0").type == "cuda"


def _mlp_data(n=400):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def test_the_mlp_trains_and_predicts_on_the_configured_device(monkeypatch):
    X, y = _mlp_data()
    dev = config.device()
    clf = mlp_classifier.TorchMLPClassifier(epochs=3, seed=1).fit(X, y)
    assert torch_loop.model_device(clf.model_) == dev
    p = clf.predict_proba(X)
    assert isinstance(p, np.ndarray) and p.shape == (len(X), 2)
    monkeypatch.setenv("CASEBOOK_DEVICE", "cpu")
    again = mlp_classifier.TorchMLPClassifier(epochs=3, seed=1).fit(X, y)
    on_cpu = mlp_classifier.TorchMLPClassifier(epochs=3, seed=1, device="cpu").fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), on_cpu.predict_proba(X))  # same seed, same numbers


def test_torch_fit_accumulates_exactly_like_python_floats():
    """The on-device running sums give the same per-epoch loss as summing loss.item() in Python, so CPU
    histories are unchanged by the device plumbing."""
    X, y = _mlp_data(300)
    x, t = torch.from_numpy(X), torch.from_numpy(y)

    def fit():
        torch.manual_seed(0)
        net = mlp.make_mlp(6, (8,), 2)
        return net, torch_loop.torch_fit(
            net, x, t, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=2, batch_size=32, seed=3
        )

    net, hist = fit()
    torch.manual_seed(0)
    ref = mlp.make_mlp(6, (8,), 2)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(3)
    expected = []
    for _ in range(2):
        order, total = torch.randperm(len(x), generator=gen), 0.0
        for start in range(0, len(x), 32):
            idx = order[start : start + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ref(x[idx]), t[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        expected.append(total / len(x))
    assert hist.history["loss"].tolist() == expected
    assert fit()[1].history["loss"].tolist() == expected


def test_channels_last_moves_model_and_tensors_to_the_device():
    net, x = torch_loop.channels_last(vision.make_mnist_cnn(), torch.zeros(2, 1, 28, 28))
    assert torch_loop.model_device(net) == config.device() and x.device.type == config.device().type
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_a_chest_xray_dataset_attached_on_kaggle_is_found(tmp_path, monkeypatch, empty_root):
    attached = tmp_path / "kaggle-input" / "chest-xray-pneumonia" / "chest_xray"
    for split in ("train", "test"):
        for cls in chest_xray.CHEST_CLASSES:
            (attached / split / cls).mkdir(parents=True)
    monkeypatch.setattr(fetch, "KAGGLE_INPUT", tmp_path / "kaggle-input")
    assert fetch.kaggle_chest_dir() == attached
    assert fetch.dataset_dir("chest-xray") == attached
    monkeypatch.setattr(fetch, "KAGGLE_INPUT", tmp_path / "nowhere")
    assert fetch.kaggle_chest_dir() is None
