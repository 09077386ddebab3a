import gzip
import hashlib
import io
import re
import struct

import numpy as np
import pandas as pd
import pytest

from casebook import data
from casebook.data import california, checksums, chest_xray, fetch, magic, mnist, registry, weights


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def test_registry_is_complete():
    assert set(registry.REGISTRY) == {
        "mnist",
        "fashion-mnist",
        "magic-gamma",
        "california-housing",
        "chest-xray",
        "weights",
    }
    for info in registry.REGISTRY.values():
        assert info.licence and info.citation and info.homepage
        for f in info.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.name


def test_wrong_checksum_names_file_and_both_hashes(empty_root):
    folder = empty_root / "magic-gamma"
    folder.mkdir()
    (folder / "magic04.data").write_text("1,2,3\n")
    actual = hashlib.sha256(b"1,2,3\n").hexdigest()
    with pytest.raises(data.ChecksumError) as e:
        magic.load_magic()
    msg = str(e.value)
    assert "magic04.data" in msg and registry.REGISTRY["magic-gamma"].files[0].sha256 in msg and actual in msg


def test_missing_data_root_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CASEBOOK_DATA", str(tmp_path / "nope"))
    with pytest.raises(data.DataRootError, match="does not exist"):
        fetch.dataset_dir("mnist")


def test_not_found_says_which_files_go_where(empty_root, full):
    with pytest.raises(data.DataNotFoundError) as e:
        mnist.load_mnist()
    msg = str(e.value)
    assert str(empty_root / "mnist") in msg
    for name in registry.IDX_NAMES:
        assert name in msg
    assert "http" in msg


def test_full_mode_never_substitutes_synthetic_data(empty_root, full):
    for loader in (magic.load_magic, california.load_california_housing, chest_xray.chest_xray_index):
        with pytest.raises(data.DataNotFoundError):
            loader()


def test_smoke_mode_stand_ins_have_the_real_schema(empty_root, smoke):
    s = mnist.load_mnist()
    assert s.synthetic and s.x_train.shape[1:] == (28, 28) and s.x_train.dtype == np.uint8
    assert set(np.unique(s.y_train)) == set(range(10))
    m = magic.load_magic()
    assert m.attrs["synthetic"] and list(m.columns) == magic.MAGIC_FEATURES + ["class"]
    assert set(m["class"]) == {"g", "h"}
    x, y = california.load_california_housing()
    assert list(x.columns) == california.CALIFORNIA_FEATURES and y.name == "MedHouseVal" and y.max() <= 5.00001
    idx = chest_xray.chest_xray_index()
    assert idx.attrs["synthetic"] and set(idx.split) == {"train", "test"} and set(idx.label) == {0, 1}


def test_load_idx_roundtrip_and_bad_files(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(mnist.load_idx(good), arr)

    trunc = tmp_path / "trunc.gz"
    trunc.write_bytes(gzip.compress(_idx_bytes(arr)[:-5]))
    with pytest.raises(data.DataFormatError, match="truncated"):
        mnist.load_idx(trunc)
    notidx = tmp_path / "notidx"
    notidx.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(data.DataFormatError, match="not an IDX"):
        mnist.load_idx(notidx)
    badgz = tmp_path / "bad.gz"
    badgz.write_bytes(gzip.compress(_idx_bytes(arr))[:20])
    with pytest.raises(data.DataFormatError, match="not a readable IDX"):
        mnist.load_idx(badgz)


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    payload = b"hello casebook\n"
    remote = registry.RemoteFile("f.txt", hashlib.sha256(payload).hexdigest(), ("http://example.invalid/f.txt",))
    dest = tmp_path / "ds" / "f.txt"

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"tampered"))
    with pytest.raises(data.DataNotFoundError, match="checksum mismatch"):
        fetch._atomic_download(remote, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing half-written

    class Broken(_FakeResponse):
        def read(self, *a):
            raise ConnectionResetError("connection reset mid-download")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: Broken(payload))
    with pytest.raises(data.DataNotFoundError, match="reset"):
        fetch._atomic_download(remote, dest)
    assert list(dest.parent.iterdir()) == []

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(payload))
    fetch._atomic_download(remote, dest)
    assert dest.read_bytes() == payload


def test_california_transformation_matches_scikit_learn_documentation():
    raw = np.array(
        [
            [-122.23, 37.88, 41.0, 880.0, 129.0, 322.0, 126.0, 8.3252, 452600.0],
            [-122.22, 37.86, 21.0, 7099.0, 1106.0, 2401.0, 1138.0, 8.3014, 358500.0],
        ]
    )
    x, y = california.california_from_raw(raw)
    # scikit-learn's documented first rows of fetch_california_housing()
    np.testing.assert_allclose(x.iloc[0], [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23], rtol=1e-5)
    np.testing.assert_allclose(
        x.iloc[1], [8.3014, 21.0, 6.238137, 0.97188, 2401.0, 2.109842, 37.86, -122.22], rtol=1e-5
    )
    np.testing.assert_allclose(y, [4.526, 3.585])


@pytest.mark.parametrize(
    "name, pid",
    [
        ("person1372_bacteria_3501.jpeg", "person1372"),
        ("person1_virus_6.jpeg", "person1"),
        ("IM-0011-0001-0002.jpeg", "IM-0011"),
        ("NORMAL2-IM-0007-0001.jpeg", "NORMAL2-IM-0007"),
    ],
)
def test_patient_id(name, pid):
    assert chest_xray.patient_id(name) == pid


def test_patient_id_rejects_unknown_names():
    with pytest.raises(data.DataFormatError):
        chest_xray.patient_id("scan.jpeg")


@pytest.mark.realdata
def test_every_registry_entry_resolves_and_verifies(real_data):
    assert fetch.verify_all() == {k: "ok" for k in registry.REGISTRY}
    # every chest X-ray image against its manifest sha256
    folder = fetch.dataset_dir("chest-xray")
    manifest = pd.read_csv(folder / "manifest.csv")
    bad = [
        r.file for r in manifest.itertuples() if checksums.sha256_of(folder / r.split / r.label / r.file) != r.sha256
    ]
    assert len(manifest) == 5840 and bad == []


@pytest.mark.realdata
def test_real_loaders_shapes_and_counts(real_data):
    s = mnist.load_mnist()
    assert s.x_train.shape == (60000, 28, 28) and s.x_test.shape == (10000, 28, 28) and not s.synthetic
    assert abs(s.x_train.mean() / 255 - 0.1307) < 1e-3
    f = mnist.load_mnist("fashion-mnist")
    assert np.bincount(f.y_train).tolist() == [6000] * 10
    m = magic.load_magic()
    assert m.shape == (19020, 11) and m["class"].value_counts().to_dict() == {"g": 12332, "h": 6688}
    x, y = california.load_california_housing()
    assert x.shape == (20640, 8) and abs(y.mean() - 2.068558) < 1e-6
    idx = chest_xray.chest_xray_index()
    assert idx.groupby(["split", "label_name"]).size().to_dict() == {
        ("test", "NORMAL"): 234,
        ("test", "PNEUMONIA"): 390,
        ("train", "NORMAL"): 1341,
        ("train", "PNEUMONIA"): 3875,
    }


@pytest.mark.realdata
def test_smoke_subsets_are_small_and_deterministic(real_data, monkeypatch):
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    a, b = magic.load_magic(), magic.load_magic()
    assert len(a) == 1000 and a.equals(b) and not a.attrs["synthetic"]
    assert 0.3 < (a["class"] == "h").mean() < 0.4


@pytest.mark.realdata
def test_weights_are_installed_into_the_keras_cache(real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    path = weights.keras_weights_path()
    cached = tmp_path / "models" / path.name
    assert cached.is_file() and checksums.sha256_of(cached) == checksums.sha256_of(path)
