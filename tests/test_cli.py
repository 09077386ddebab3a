"""Case study 2: the command-line tools, end to end through subprocesses."""

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from casebook.models import redshift_nets, tabular

PY = sys.executable


# one worker runs the whole module, so its module-scoped fixture is built once (conftest: loadgroup)
pytestmark = pytest.mark.xdist_group("cli-trained")


def cli(tool, *args, cwd=None):
    mod = {"train": "casebook.cli.train_classifier", "predict": "casebook.cli.predict_classification"}[tool]
    return subprocess.run([PY, "-m", mod, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def inproc(capsys):
    """The same ``main()`` the console scripts call, in this process (no interpreter start-up per case)."""
    from casebook.cli import predict_classification, train_classifier

    def call(tool, *args):
        main = {"train": train_classifier.main, "predict": predict_classification.main}[tool]
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code
        out = capsys.readouterr()
        return _Result(code, out.out, out.err)

    return call


def test_bad_input_really_exits_2_from_the_console_script(tmp_path):
    r = cli("train", "--model", "knn", "--output-dir", tmp_path / "o")
    assert_bad_input(r, "invalid choice")
    r = cli("predict", "--model", tmp_path / "none.skops", "--data", tmp_path / "x.csv")
    assert_bad_input(r, "model file not found")
    assert not (tmp_path / "o").exists()


def assert_bad_input(r, *words):
    assert r.returncode == 2, r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each model trained once on a small generated set (shared by the tests below)."""
    base = tmp_path_factory.mktemp("cli")
    out = {}
    for model in ("random-forest", "svm", "logistic-regression"):
        d = base / model
        r = cli("train", "--model", model, "--n-samples", 1500, "--cv", 3, "--output-dir", d)
        assert r.returncode == 0, r.stderr
        out[model] = (d, r.stdout)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["random-forest", "svm", "logistic-regression"])
def test_train_then_predict_reproduces_the_reported_validation_accuracy(trained, model):
    d, stdout = trained[model]
    assert {p.name for p in d.iterdir()} == {"model.skops", "validation.csv", "metrics.json"}
    metrics = json.loads((d / "metrics.json").read_text())
    assert "CV accuracy" in stdout and "±" in stdout and "test accuracy" in stdout
    assert len(metrics["cv_accuracy"]) == 3 and metrics["n_validation"] == round(1500 * 0.099)
    r = cli("predict", "--model", d / "model.skops")  # data and output default to the model's folder
    assert r.returncode == 0, r.stderr
    assert f"accuracy: {metrics['validation_accuracy']:.4f}" in r.stdout
    preds = pd.read_csv(d / "predictions.csv")
    assert len(preds) == metrics["n_validation"]


@pytest.mark.slow
def test_same_seed_same_predictions(tmp_path, trained):
    d, _ = trained["random-forest"]
    r = cli("train", "--model", "random-forest", "--n-samples", 1500, "--cv", 3, "--output-dir", tmp_path / "again")
    assert r.returncode == 0
    for folder in (d, tmp_path / "again"):
        assert cli("predict", "--model", folder / "model.skops", "--output", folder / "p.csv").returncode == 0
    assert pd.read_csv(d / "p.csv").equals(pd.read_csv(tmp_path / "again" / "p.csv"))


@pytest.mark.slow
def test_train_on_a_user_csv_with_reordered_columns_at_predict_time(tmp_path, trained):
    d, _ = trained["logistic-regression"]
    df = pd.read_csv(d / "validation.csv").rename(columns={"target": "label"})
    df.to_csv(tmp_path / "mine.csv", index=False)
    r = cli(
        "train",
        "--model",
        "logistic-regression",
        "--data",
        tmp_path / "mine.csv",
        "--target",
        "label",
        "--cv",
        2,
        "--output-dir",
        tmp_path / "m",
    )
    assert r.returncode == 0, r.stderr
    shuffled = df[list(reversed(df.columns))]
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    r = cli(
        "predict",
        "--model",
        tmp_path / "m" / "model.skops",
        "--data",
        tmp_path / "shuffled.csv",
        "--output",
        tmp_path / "p.csv",
    )
    assert r.returncode == 0 and "accuracy:" in r.stdout


def _csv(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "case",
    [
        "unknown-model",
        "missing-csv",
        "empty-csv",
        "header-only",
        "non-numeric",
        "nan",
        "inf",
        "target-absent",
        "cv-too-small",
        "unwritable",
        "bad-generator",
    ],
)
def test_train_bad_input_exits_2_and_writes_nothing(tmp_path, case, inproc):
    out = tmp_path / "out"
    good = "a,b,y\n" + "\n".join(f"{i},{i % 7},{i % 2}" for i in range(40)) + "\n"
    args = {
        "unknown-model": ["--model", "knn"],
        "missing-csv": ["--data", tmp_path / "nope.csv", "--target", "y"],
        "empty-csv": ["--data", _csv(tmp_path, "e.csv", ""), "--target", "y"],
        "header-only": ["--data", _csv(tmp_path, "h.csv", "a,b,y\n"), "--target", "y"],
        "non-numeric": ["--data", _csv(tmp_path, "n.csv", good.replace("\n3,3,1", "\n3,abc,1")), "--target", "y"],
        "nan": ["--data", _csv(tmp_path, "nan.csv", good.replace("\n3,3,1", "\n3,,1")), "--target", "y"],
        "inf": ["--data", _csv(tmp_path, "inf.csv", good.replace("\n3,3,1", "\n3,inf,1")), "--target", "y"],
        "target-absent": ["--data", _csv(tmp_path, "t.csv", good), "--target", "label"],
        "cv-too-small": ["--cv", 1],
        "unwritable": [],
        "bad-generator": ["--n-informative", 20, "--n-features", 5],
    }[case]
    if case == "unwritable":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "out"
        if os.access(locked, os.W_OK):  # root ignores permission bits: use a path below a file instead
            out = _csv(tmp_path, "afile", "x") / "out"
    r = inproc("train", *args, "--n-samples", 300, "--output-dir", out)
    assert_bad_input(r)
    assert not out.exists()
    assert not [p for p in tmp_path.rglob(".out.*")], "no staging folder left behind"


@pytest.mark.parametrize(
    "case",
    [
        "missing-model",
        "corrupt-model",
        "missing-column",
        "extra-column",
        "non-numeric",
        "nan",
        "empty",
        "header-only",
        "other-features",
    ],
)
def test_predict_bad_input_exits_2_and_writes_nothing(tmp_path, trained, case, inproc):
    d, _ = trained["svm"]
    model = d / "model.skops"
    val = pd.read_csv(d / "validation.csv")
    data = tmp_path / "in.csv"
    if case == "missing-model":
        model = tmp_path / "none.skops"
        val.to_csv(data, index=False)
    elif case == "corrupt-model":
        model = _csv(tmp_path, "bad.skops", "this is not a zip file")
        val.to_csv(data, index=False)
    elif case == "missing-column":
        val.drop(columns="x3").to_csv(data, index=False)
    elif case == "extra-column":
        val.assign(extra=1.0).to_csv(data, index=False)
    elif case == "non-numeric":
        val.astype({"x2": object}).assign(x2=lambda f: f.x2.where(f.index != 5, "oops")).to_csv(data, index=False)
    elif case == "nan":
        val.assign(x1=lambda f: f.x1.where(f.index != 3)).to_csv(data, index=False)
    elif case == "empty":
        data.write_text("")
    elif case == "header-only":
        data.write_text(",".join(val.columns) + "\n")
    elif case == "other-features":  # a model trained on different features
        other = tmp_path / "other"
        assert (
            inproc(
                "train", "--n-features", 6, "--n-informative", 3, "--n-samples", 300, "--cv", 2, "--output-dir", other
            ).returncode
            == 0
        )
        model = other / "model.skops"
        val.to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    r = inproc("predict", "--model", model, "--data", data, "--output", out)
    assert_bad_input(r)
    assert not out.exists()


def test_help_is_fast_and_imports_no_framework():
    for tool in ("train", "predict"):
        t0 = time.perf_counter()
        r = cli(tool, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout
        assert time.perf_counter() - t0 < 2.0
    code = (
        "import sys; sys.argv=['x','--help']\nimport casebook.cli.train_classifier as t\n"
        "try: t.build_parser().parse_args(['--help'])\nexcept SystemExit: pass\n"
        "bad=[m for m in ('torch','tensorflow','sklearn','mlflow') if m in sys.modules]; print(bad)"
    )
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().endswith("[]"), r.stdout


def test_cli_choices_match_the_package():
    """The tools keep import-free copies of the package's names (for a fast --help); they must not drift."""
    from casebook.cli import train_classifier, train_redshift
    from casebook.redshift import dataset

    assert train_classifier.MODELS == tabular.TABULAR_MODELS
    assert set(train_redshift.MODELS) == set(redshift_nets.NETWORKS)
    assert train_redshift.TARGETS == dataset.TARGETS and train_redshift.INPUTS == dataset.INPUTS
