"""Degenerate input, bad paths, interruption and file modes for the command-line tools, plus a property-based
fuzz test: every outcome is exit 0 with correct output, or exit 2 with one stderr line and nothing written."""

import contextlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casebook import persistence
from casebook.cli import predict_classification, train_classifier, train_redshift
from casebook.training import search

PY = sys.executable


# one worker runs the whole module, so its module-scoped fixture is built once (conftest: loadgroup)
pytestmark = pytest.mark.xdist_group("cli-robustness")


def call(main, *args):
    """A tool's ``main()`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_exit_2(result, *words):
    code, out, err = result
    lines = err.strip().splitlines()
    assert code == 2, out + err
    assert len(lines) == 1 and "error:" in lines[0], err
    reason = lines[0].split("error:", 1)[1].strip()
    assert reason and not reason.endswith(":"), f"empty reason: {lines[0]!r}"
    for w in words:
        assert w in lines[0], lines[0]


def csv_text(n_rows: int = 60, n_classes: int = 2, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    y = np.arange(n_rows) % n_classes
    x = rng.normal(size=(n_rows, 4)) + y[:, None]
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)]).assign(target=y)
    return df.to_csv(index=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust")
    data = write(d / "train.csv", csv_text())
    code, _, err = call(
        train_classifier.main,
        "--model",
        "logistic-regression",
        "--data",
        data,
        "--target",
        "target",
        "--cv",
        2,
        "--output-dir",
        d / "model",
    )
    assert code == 0, err
    return d / "model"


# ------------------------------------------------------------------------------------------- degenerate data


@pytest.mark.parametrize("model", ["random-forest", "svm", "logistic-regression"])
def test_a_single_class_target_is_refused(tmp_path, model):
    data = write(tmp_path / "one.csv", "a,b,y\n" + "".join(f"{i},{i % 3},1\n" for i in range(50)))
    out = tmp_path / "out"
    r = call(train_classifier.main, "--model", model, "--data", data, "--target", "y", "--output-dir", out)
    assert_one_line_exit_2(r, "single class")
    assert not out.exists()


def test_one_generated_class_is_refused(tmp_path):
    r = call(train_classifier.main, "--n-classes", 1, "--n-samples", 200, "--output-dir", tmp_path / "o")
    assert r[0] == 2 and len(r[2].strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows", [1, 5])
def test_tiny_csvs_get_our_message_not_scikit_learns(tmp_path, rows):
    data = write(tmp_path / "tiny.csv", "a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(rows)))
    r = call(train_classifier.main, "--data", data, "--target", "y", "--output-dir", tmp_path / "o")
    assert_one_line_exit_2(r)
    assert "test_size" not in r[2] and ("single class" in r[2] or "too few rows" in r[2])
    assert not (tmp_path / "o").exists()


def test_duplicate_column_names_are_detected_from_the_raw_header(tmp_path):
    data = write(tmp_path / "dup.csv", "a,a,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(40)))
    r = call(train_classifier.main, "--data", data, "--target", "y", "--output-dir", tmp_path / "o")
    assert_one_line_exit_2(r, "duplicate column names ['a']")


def test_output_that_is_a_directory_is_refused_before_predicting(tmp_path, model_dir):
    target = tmp_path / "already-a-dir"
    target.mkdir()
    r = call(predict_classification.main, "--model", model_dir / "model.skops", "--output", target)
    assert_one_line_exit_2(r, "is a directory")
    assert list(target.iterdir()) == []


def test_an_uncreatable_output_dir_is_refused_before_training(tmp_path, monkeypatch):
    def must_not_train(*a, **k):
        raise AssertionError("trained before checking the output directory")

    monkeypatch.setattr(search, "train_tabular", must_not_train)
    r = call(train_classifier.main, "--n-samples", 200, "--output-dir", "/proc/casebook-cannot-exist/out")
    assert_one_line_exit_2(r, "cannot be created")


@pytest.mark.parametrize("case", ["not-a-bundle", "cannot-predict", "feature-count"])
def test_skops_bundles_of_the_wrong_shape_are_refused(tmp_path, model_dir, case):
    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    bundle = sio.load(model_dir / "model.skops", trusted=sio.get_untrusted_types(file=model_dir / "model.skops"))
    if case == "not-a-bundle":
        bundle = ["pipeline", "features"]
    elif case == "cannot-predict":
        bundle["pipeline"] = StandardScaler().fit(np.zeros((3, 4)))
    else:
        bundle["features"] = bundle["features"][:2]
    path = persistence.save_skops(bundle, tmp_path / "odd.skops")
    r = call(
        predict_classification.main,
        "--model",
        path,
        "--data",
        model_dir / "validation.csv",
        "--output",
        tmp_path / "p.csv",
    )
    assert_one_line_exit_2(r, "not a train-classifier model")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--n-objects", "5"], "--n-objects must be at least"),
        (["--lr", "nan"], "--lr must be a positive finite number"),
        (["--lr", "-1"], "--lr must be a positive finite number"),
        (["--threshold", "inf"], "--threshold must be"),
    ],
)
def test_train_redshift_refuses_bad_numbers_before_loading_anything(tmp_path, args, words):
    r = call(train_redshift.main, *args, "--output-dir", tmp_path / "o")
    assert_one_line_exit_2(r, words)
    assert not (tmp_path / "o").exists()


def test_train_redshift_refuses_a_single_class_threshold(tmp_path, empty_root, monkeypatch):
    monkeypatch.setenv("CASEBOOK_SMOKE", "1")
    r = call(train_redshift.main, "--threshold", "100", "--n-objects", "300", "--output-dir", tmp_path / "o")
    assert_one_line_exit_2(r, "single class")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------- files and signals


@pytest.mark.slow
def test_sigterm_during_training_leaves_nothing_behind(tmp_path, empty_root):
    out = tmp_path / "nested" / "run"
    env = {**os.environ, "CASEBOOK_ASSETS": str(tmp_path / "assets"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "casebook.cli.train_redshift",
            "--n-objects",
            "600",
            "--epochs",
            "300",
            "--batch-size",
            "16",
            "--output-dir",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("nested/run/.staging.*/best.keras")):  # the first checkpoint: in the stage
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "train-redshift: terminated"
    assert not (tmp_path / "nested").exists(), list(tmp_path.rglob("*"))
    assert not (tmp_path / "assets").exists(), "a CLI writes nothing outside its --output-dir"


@pytest.mark.slow
def test_an_output_folder_that_is_a_mount_point_receives_the_outputs(tmp_path):
    """A Docker volume (or any mount point) as --output-dir: files staged elsewhere could not be renamed into
    it (EXDEV); staged inside it they are. A tmpfs mounted in a private mount namespace stands in for it."""
    if os.getuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a tmpfs needs root and unshare(1)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespaces here: {probe.stderr.strip()}")
    out = tmp_path / "volume"
    out.mkdir()
    script = (
        f"mount -t tmpfs casebook-volume {out} && {PY} -m casebook.cli.train_classifier --model "
        f"logistic-regression --n-samples 300 --cv 2 --output-dir {out} && ls -A {out} && "
        f"{PY} -m casebook.cli.predict_classification --model {out}/model.skops"
    )
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    listed = r.stdout.split("wall)")[1].split()[:3]
    assert sorted(listed) == ["metrics.json", "model.skops", "validation.csv"], r.stdout
    assert "accuracy" in r.stdout.split("predicted")[-1]


@pytest.mark.slow
def test_outputs_honour_the_umask(tmp_path, model_dir):
    out = tmp_path / "predictions.csv"
    out.write_text("old\n")
    out.chmod(0o644)
    subprocess.run(
        [PY, "-m", "casebook.cli.predict_classification", "--model", model_dir / "model.skops", "--output", out],
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and out.read_text() != "old\n"
    subprocess.run(
        [PY, "-m", "casebook.cli.predict_classification", "--model", model_dir / "model.skops", "--output", out],
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE((model_dir / "model.skops").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------- fuzz

BASE = csv_text(n_rows=60, n_classes=2, seed=1)


def _mutate(text: str, ops: list, rng: np.random.Generator) -> bytes:
    lines = text.splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    delimiter, bom, cut = ",", False, None
    for op in ops:
        j = int(rng.integers(len(header))) if header else 0
        i = int(rng.integers(len(rows))) if rows else 0
        if op == "drop-column" and len(header) > 1:
            header.pop(j)
            rows = [r[:j] + r[j + 1 :] for r in rows]
        elif op == "duplicate-column" and header:
            header.append(header[j])
            rows = [r + [r[j] if j < len(r) else ""] for r in rows]
        elif op == "reorder-columns":
            order = rng.permutation(len(header))
            header = [header[k] for k in order]
            rows = [[r[k] if k < len(r) else "" for k in order] for r in rows]
        elif op in ("text", "nan", "inf", "huge", "tiny", "negative-huge") and rows and rows[i]:
            value = {
                "text": "abc",
                "nan": "",
                "inf": "inf",
                "huge": "1e400",
                "tiny": "1e-320",
                "negative-huge": "-1.7e308",
            }[op]
            rows[i][j % len(rows[i])] = value
        elif op == "empty-lines":
            rows.insert(i, [])
        elif op == "ragged-row" and rows:
            rows[i] = rows[i] + ["1"]
        elif op == "drop-rows":
            rows = rows[: int(rng.integers(0, 8))]
        elif op == "bom":
            bom = True
        elif op in (";", "\t", "|"):
            delimiter = op
        elif op == "truncate":
            cut = float(rng.random())
    body = "\n".join(delimiter.join(r) for r in [header, *rows]) + "\n"
    raw = body.encode()
    if cut is not None:
        raw = raw[: int(len(raw) * cut)]
    return (b"\xef\xbb\xbf" if bom else b"") + raw


OPS = st.lists(
    st.sampled_from(
        [
            "drop-column",
            "duplicate-column",
            "reorder-columns",
            "text",
            "nan",
            "inf",
            "huge",
            "tiny",
            "negative-huge",
            "empty-lines",
            "ragged-row",
            "drop-rows",
            "bom",
            ";",
            "\t",
            "|",
            "truncate",
        ]
    ),
    min_size=0,
    max_size=3,
)


def _check_outcome(result, written: list[Path], n_expected_rows=None, output: Path | None = None):
    code, out, err = result
    if code == 0:
        assert all(p.exists() for p in written), (out, err)
        if output is not None:
            assert len(pd.read_csv(output)) == n_expected_rows
    else:
        assert code == 2, (code, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], err
        assert not any(p.exists() for p in written), "something was written on failure"


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)


def fuzz(examples: int, tool_case) -> list[int]:
    """Run ``tool_case(csv_path, folder)`` on ``examples`` mutated CSVs (each in a fresh folder); it checks
    the outcome and returns the exit code. Returns the exit codes."""
    codes = []

    @settings(FUZZ, max_examples=examples)
    @given(ops=OPS, seed=st.integers(0, 2**16))
    def one_case(ops, seed):
        with tempfile.TemporaryDirectory() as d:
            data = Path(d) / "in.csv"
            data.write_bytes(_mutate(BASE, ops, np.random.default_rng(seed)))
            codes.append(tool_case(data, Path(d)))

    one_case()
    return codes


@pytest.mark.slow
def test_fuzz_predict_classification(model_dir, record_property):
    def predict(data: Path, folder: Path) -> int:
        output = folder / "pred.csv"
        result = call(
            predict_classification.main, "--model", model_dir / "model.skops", "--data", data, "--output", output
        )
        rows = len(pd.read_csv(data, encoding="utf-8-sig")) if result[0] == 0 else None
        _check_outcome(result, [output], rows, output)
        assert not list(folder.glob(".pred.csv.*")), "temporary file left behind"
        return result[0]

    codes = fuzz(600, predict)
    record_property("fuzz_cases", f"{len(codes)} cases: {codes.count(0)} exit 0, {codes.count(2)} exit 2")
    assert len(codes) >= 300 and codes.count(0) > 0 and codes.count(2) > 0


@pytest.mark.slow
def test_fuzz_train_classifier(record_property):
    def train(data: Path, folder: Path) -> int:
        out = folder / "out"
        result = call(
            train_classifier.main,
            "--model",
            "logistic-regression",
            "--data",
            data,
            "--target",
            "target",
            "--cv",
            2,
            "--output-dir",
            out,
        )
        _check_outcome(result, [out / "model.skops", out / "metrics.json", out / "validation.csv"])
        if result[0] != 0:
            assert not out.exists() and not list(folder.glob(".out.*"))
        return result[0]

    codes = fuzz(150, train)
    record_property("fuzz_cases", f"{len(codes)} cases: {codes.count(0)} exit 0, {codes.count(2)} exit 2")
    assert len(codes) >= 100 and codes.count(0) > 0 and codes.count(2) > 0
