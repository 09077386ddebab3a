"""Hostile inputs: files a user could receive must never run code, and corrupt data must never pass as valid.

Each payload, if it ran, would create a marker file; every test asserts the marker does not exist.
"""

import builtins
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from casebook import config, data, persistence
from casebook.data import images, synthetic
from casebook.models import efficientnet_lite, mlp, tabular
from casebook.redshift import catalogue, files, simulator
from casebook.training import mlp_classifier, search

PY = sys.executable
SRC = Path(config.__file__).resolve().parent


def _payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('code ran')"


class _Exec:
    """Pickles to ``exec(code)``: what a crafted pickle does when it is loaded."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def run_tool(module, *args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [PY, "-m", module, *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300
    )


def assert_refused(r, marker: Path, *words):
    assert not marker.exists(), "the payload ran"
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


# ------------------------------------------------------------------------------------------- model files


def hostile_skops_bundle(path: Path, marker: Path) -> Path:
    """Only builtins/numpy/sklearn types: numpy.full_like fills the input with a code string, then
    numpy.vectorize(builtins.exec) runs it at predict time (the types a prefix allow-list trusted)."""
    import skops.io as sio
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    pipe = Pipeline(
        [
            ("fill", FunctionTransformer(np.full_like, kw_args={"fill_value": _payload(marker), "dtype": object})),
            ("run", FunctionTransformer(np.vectorize(builtins.exec))),
            ("model", DummyClassifier()),
        ]
    )
    for _, step in pipe.steps:  # fitted one by one: fitting the pipeline would run the payload right here
        step.fit(X, y)
    sio.dump({"pipeline": pipe, "features": ["x0", "x1"], "target": "target", "model": "random-forest"}, path)
    return path


@pytest.mark.slow
def test_hostile_skops_bundle_is_refused_by_predict_classification(tmp_path):
    marker = tmp_path / "marker"
    model = hostile_skops_bundle(tmp_path / "model.skops", marker)
    (tmp_path / "in.csv").write_text("x0,x1\n1,2\n3,4\n")
    r = run_tool(
        "casebook.cli.predict_classification",
        "--model",
        model,
        "--data",
        tmp_path / "in.csv",
        "--output",
        tmp_path / "pred.csv",
    )
    assert_refused(r, marker, "untrusted types", "builtins.exec", "numpy.vectorize")
    assert not (tmp_path / "pred.csv").exists()


def test_hostile_preprocessing_of_a_saved_mlp_pipeline_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "marker"
    folder = tmp_path / "mlp"
    folder.mkdir()
    prep = Pipeline([("f", FunctionTransformer(np.vectorize(builtins.exec)))])
    prep.steps[0][1].fit(np.zeros((2, 1)))
    sio.dump(prep, folder / "preprocessing.skops")
    with pytest.raises(persistence.UntrustedFileError, match="builtins.exec"):
        mlp_classifier.load_pipeline_with_mlp(folder)
    assert not marker.exists()


def test_pickled_torch_weights_and_foreign_mlp_configs_are_refused(tmp_path):
    import pickle

    import torch

    marker = tmp_path / "marker"
    folder = tmp_path / "mlp"
    folder.mkdir()
    (folder / "mlp_config.json").write_text('{"hidden": [4], "classes": [0, 1], "n_features_in": 3}')
    with open(folder / "mlp_state_dict.pt", "wb") as f:
        pickle.dump(_Exec(_payload(marker)), f)
    with pytest.raises(pickle.UnpicklingError):  # torch.load(weights_only=True) refuses the global
        mlp_classifier.TorchMLPClassifier.load(folder)
    assert not marker.exists()
    torch.save(mlp.make_mlp(3, (4,), 2).state_dict(), folder / "mlp_state_dict.pt")
    assert mlp_classifier.TorchMLPClassifier.load(folder).predict_proba(np.zeros((1, 3))).shape == (1, 2)
    (folder / "mlp_config.json").write_text('{"hidden": [4], "classes": [0, 1], "n_features_in": 3, "evil": 1}')
    with pytest.raises(ValueError, match="not a TorchMLPClassifier config"):
        mlp_classifier.TorchMLPClassifier.load(folder)


def test_a_hostile_efficientnet_lite_state_dict_is_never_unpickled(tmp_path):
    import pickle

    marker = tmp_path / "marker"
    hostile = tmp_path / "efficientnet-lite0.pth"
    with open(hostile, "wb") as f:
        pickle.dump({"_conv_stem.weight": _Exec(_payload(marker))}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):  # torch.load(weights_only=True) refuses the global
        efficientnet_lite.lite_state_dict(hostile)
    assert not marker.exists()


def _written_objects():
    """Every kind of object casebook writes with skops: the train-classifier bundle for each model (the
    label types a CSV can give) and the gamma preprocessing pipeline for every outlier/balance option."""
    from casebook import preprocessing as pp

    df = synthetic.make_synthetic(200, n_classes=2)
    X, y = df.drop(columns="target"), df["target"].to_numpy()
    for name in tabular.TABULAR_MODELS:
        for labels in (y, y.astype(str), y.astype(float)):
            pipe = search.train_tabular(X, labels, name, 2, 0)["pipeline"]
            yield {
                "pipeline": pipe,
                "features": list(X.columns),
                "target": "target",
                "model": name,
                "classes": [c.item() if hasattr(c, "item") else c for c in pipe.classes_],
            }
    for outliers in pp.OUTLIER_OPTIONS:
        for balance in pp.BALANCE_OPTIONS:
            pipe = pp.make_pipeline(mlp_classifier.TorchMLPClassifier(epochs=1), outliers, balance, y_train=y)
            yield pipe.fit(X, y)[:-1]


@pytest.mark.slow
def test_the_skops_allow_list_is_exactly_what_casebook_writes(tmp_path):
    import skops.io as sio

    needed = set()
    for k, obj in enumerate(_written_objects()):
        path = persistence.save_skops(obj, tmp_path / f"{k}.skops")
        needed |= set(sio.get_untrusted_types(file=path))
        persistence.load_skops(path)  # and each loads through the allow-list
    assert needed == set(persistence.TRUSTED_SKOPS_TYPES)


def test_no_loader_in_the_package_unpickles_without_an_explicit_opt_in():
    """A static guard over src/: every torch.load passes weights_only=True, Keras is never asked for
    safe_mode=False, pickle/joblib/cloudpickle never load, and allow_pickle=True appears only behind the
    documented opt-in of the redshift attribute reader (and the writer, which only saves)."""
    offenders, unpicklers = [], []
    for path in SRC.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            where = f"{path.relative_to(SRC)}:{n}: {line.strip()}"
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(where)
            if re.search(r"safe_mode\s*=\s*False|\b(pickle|joblib|cloudpickle|dill)\.loads?\(", code):
                offenders.append(where)
            if "np.load(" in code and "allow_pickle=True" in code:
                unpicklers.append(where)
    assert offenders == []
    assert len(unpicklers) == 1 and "redshift/files.py" in unpicklers[0], unpicklers  # read_attributes_npy only
    with pytest.raises(data.DataFormatError, match="trust_pickle=True"):
        files.convert_attributes(Path("anywhere"))  # ... which refuses without the explicit opt-in


# ------------------------------------------------------------------------------------------- redshift files


def _redshift_files(folder: Path, attributes) -> Path:
    folder.mkdir(parents=True)
    sim = simulator.simulate(simulator.SimulationConfig(n=200, seed=1))
    np.save(folder / "pdfs32.npy", sim.log_pdf)
    np.save(folder / "zgrid32.npy", sim.zgrid)
    np.save(folder / "attributes32.npy", attributes if attributes is not None else sim.attributes, allow_pickle=True)
    return folder


def test_hostile_attributes_npy_is_refused_by_train_redshift(tmp_path):
    marker = tmp_path / "marker"
    hostile = np.empty((200, 9), dtype=object)
    hostile[:] = 1.0
    hostile[0, 0] = _Exec(_payload(marker))
    _redshift_files(tmp_path / "data" / "redshift", hostile)
    out = tmp_path / "out"
    r = run_tool(
        "casebook.cli.train_redshift",
        "--epochs",
        1,
        "--output-dir",
        out,
        env={"CASEBOOK_DATA": str(tmp_path / "data"), "CASEBOOK_ASSETS": str(tmp_path / "assets")},
    )
    assert_refused(r, marker, "pickled object array", "python -m casebook.redshift convert", "--trust-pickle")
    assert not out.exists()
    with pytest.raises(data.DataFormatError, match="could run code"):
        files.read_files(tmp_path / "data" / "redshift")
    assert not marker.exists()
    r = run_tool("casebook.redshift", "convert", tmp_path / "data" / "redshift")  # no --trust-pickle
    assert r.returncode == 2 and "only for a file you produced" in r.stderr and not marker.exists()
    assert not (tmp_path / "data" / "redshift" / "attributes32.npz").exists()


def test_a_trusted_export_converts_once_then_loads_without_pickle(tmp_path):
    folder = _redshift_files(tmp_path / "redshift", None)
    original = np.load(folder / "attributes32.npy", allow_pickle=True)
    r = run_tool("casebook.redshift", "convert", folder, "--trust-pickle")
    assert r.returncode == 0, r.stderr
    (folder / "attributes32.npy").unlink()
    back = files.read_files(folder)
    assert back.attributes.shape == original.shape
    assert (back.attributes[:, 0].astype(str) == original[:, 0].astype(str)).all()
    np.testing.assert_array_equal(back.delta_z, original[:, 3].astype(float))
    assert (back.status == catalogue.RedshiftData(back.log_pdf, back.zgrid, original).status).all()


def test_npz_members_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    folder = _redshift_files(tmp_path / "redshift", None)
    (folder / "attributes32.npy").unlink()
    evil = np.empty(200, dtype=object)
    evil[0] = _Exec(_payload(marker))
    np.savez(folder / "attributes32.npz", col0=evil)
    with pytest.raises(data.DataFormatError):
        files.read_files(folder)
    np.save(folder / "pdfs32.npy", evil, allow_pickle=True)
    with pytest.raises(data.DataFormatError):
        files.read_files(folder)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- images


def _jpeg(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(img).convert("RGB").save(path, quality=90)
    return path


def _corrupt(paths: dict[str, Path]) -> None:
    raw = paths["flipped"].read_bytes()
    mid = len(raw) // 2
    paths["flipped"].write_bytes(raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1 :])
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("<html>not an image</html>")


def test_unreadable_images_are_named_without_a_manifest(tmp_path):
    folder = tmp_path / "chest-xray"
    good = _jpeg(folder / "train" / "NORMAL" / "IM-0001-0001.jpeg")
    bad = {
        "empty": _jpeg(folder / "train" / "NORMAL" / "IM-0002-0001.jpeg", 1),
        "text": _jpeg(folder / "test" / "PNEUMONIA" / "person1_bacteria_1.jpeg", 2),
    }
    cut = _jpeg(folder / "test" / "NORMAL" / "IM-0003-0001.jpeg", 3)
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not an image")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(data.DataFormatError) as e:
        images.verify_chest_images(folder, None)
    msg = str(e.value)
    assert msg.startswith("3 bad image(s)") and "IM-0001-0001" not in msg
    for p in (*bad.values(), cut):
        assert str(p.relative_to(folder)) in msg
    images.check_images([good])  # a good image passes


def test_training_input_names_an_unreadable_image(tmp_path):
    from casebook import preprocessing as pp

    good = _jpeg(tmp_path / "IM-0001-0001.jpeg")
    bad = tmp_path / "IM-0002-0001.jpeg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(data.DataFormatError, match="IM-0002-0001.jpeg"):
        pp.xray_dataset([good, bad], [0, 1], img_size=32)


@pytest.mark.realdata
def test_data_check_names_byte_flipped_empty_and_non_image_xrays(real_data, tmp_path):
    """`python -m casebook.data` on a copy of the data root (symlinks) with three images spoiled."""
    root = tmp_path / "root"
    root.mkdir()
    for entry in real_data.iterdir():
        if entry.name != "chest-xray":
            (root / entry.name).symlink_to(entry)
    src = real_data / "chest-xray"
    dst = root / "chest-xray"
    for p in src.rglob("*"):
        if p.is_file():
            (dst / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / p.relative_to(src)).symlink_to(p)
    manifest = pd.read_csv(src / "manifest.csv")
    picks = {
        kind: dst / r.split / r.label / r.file
        for kind, r in zip(("flipped", "empty", "text"), manifest.iloc[[3, 700, 5000]].itertuples(), strict=False)
    }
    for p in picks.values():  # replace the link by a private copy before spoiling it
        data_bytes = p.read_bytes()
        p.unlink()
        p.write_bytes(data_bytes)
    _corrupt(picks)
    r = run_tool("casebook.data", env={"CASEBOOK_DATA": str(root)})
    assert r.returncode == 1
    line = [x for x in r.stdout.splitlines() if x.startswith("chest-xray")][0]
    assert "3 bad image(s)" in line
    for p in picks.values():
        assert str(p.relative_to(dst)) in line
    assert re.search(r"^mnist\s+ok$", r.stdout, re.M)


def test_present_but_corrupt_data_fails_the_real_data_fixture(tmp_path, monkeypatch):
    """conftest.real_data_status: absent data may skip, present-but-corrupt data must fail."""
    from conftest import real_data_status

    root = tmp_path / "root"
    (root / "magic-gamma").mkdir(parents=True)
    monkeypatch.setenv("CASEBOOK_DATA", str(root))
    monkeypatch.setenv("CASEBOOK_OFFLINE", "1")
    complete, corrupt = real_data_status()
    assert not complete and corrupt == []  # absent: may skip
    (root / "magic-gamma" / "magic04.data").write_text("1,2,3,g\n")
    complete, corrupt = real_data_status()
    assert len(corrupt) == 1 and corrupt[0].startswith("magic-gamma: checksum mismatch")
    assert config.data_root() == root.resolve()
