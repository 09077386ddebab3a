"""Case study 4: simulator, reader, dataset API, models, training CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from casebook import config
from casebook.data import DataFormatError, DataNotFoundError
from casebook.models import redshift_nets
from casebook.redshift import baselines, catalogue, dataset, files, seed_api, simulator

# one worker runs the whole module, so its module-scoped fixture is built once (conftest: loadgroup)
pytestmark = pytest.mark.xdist_group("redshift-sim")


@pytest.fixture(scope="module")
def sim():
    return simulator.simulate(simulator.SimulationConfig(n=400, seed=3))


def test_grid_is_uniform_in_log_one_plus_z():
    g = catalogue.make_grid()
    step = np.diff(np.log1p(g.astype(np.float64)))
    assert g.shape == (17908,) and g[0] == 0 and abs(g[-1] - 5) < 1e-5
    assert abs(step.mean() - 1e-4) < 1e-6 and step.std() < 1e-6


def test_simulator_is_deterministic_and_consistent(sim):
    again = simulator.simulate(simulator.SimulationConfig(n=400, seed=3))
    assert np.array_equal(sim.log_pdf, again.log_pdf) and (sim.attributes == again.attributes).all()
    assert not np.array_equal(sim.log_pdf, simulator.simulate(simulator.SimulationConfig(n=400, seed=4)).log_pdf)
    p = np.exp(sim.log_pdf.astype(np.float64))
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-4)  # normalised PDFs
    z_est, z_ref = sim.attributes[:, 1].astype(float), sim.attributes[:, 2].astype(float)
    np.testing.assert_allclose(z_est, sim.zgrid[sim.log_pdf.argmax(1)])  # z_est is the maximum, a grid value
    np.testing.assert_allclose(sim.delta_z, (z_est - z_ref) / (1 + z_ref), rtol=1e-9)
    ok = sim.status == "success"
    assert np.abs(sim.delta_z[ok]).max() < 0.01 and np.abs(sim.delta_z[~ok]).min() > 1e-3
    assert set(sim.status) == set(catalogue.STATUSES) and set(sim.flag) <= set(catalogue.FLAG_VALUES)
    # failures concentrate at low S/N, as in a survey
    snr = sim.attributes[:, 4].astype(float)
    assert np.median(snr[~ok]) < np.median(snr[ok])


def test_reader_round_trip_and_bad_files(sim, tmp_path):
    files.save_files(sim, tmp_path / "redshift")
    back = files.read_files(tmp_path / "redshift")
    assert np.array_equal(back.log_pdf, sim.log_pdf) and not back.simulated
    with pytest.raises(DataNotFoundError, match="pdfs32.npy"):
        files.read_files(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="grid mismatch"):
        files.validate(catalogue.RedshiftData(sim.log_pdf, sim.zgrid[:-1], sim.attributes))
    with pytest.raises(DataFormatError, match="do not match"):
        files.validate(catalogue.RedshiftData(sim.log_pdf, sim.zgrid, sim.attributes[:-1]))
    bad = sim.log_pdf.copy()
    bad[7, 100] = np.nan
    with pytest.raises(DataFormatError, match="NaN or inf"):
        files.validate(catalogue.RedshiftData(bad, sim.zgrid, sim.attributes))
    attrs = sim.attributes.copy()
    attrs[[1, 2], -1] = [5.5, 7.0]
    with pytest.raises(DataFormatError, match="unknown flag values"):
        files.validate(catalogue.RedshiftData(sim.log_pdf, sim.zgrid, attrs))
    kept = files.validate(catalogue.RedshiftData(sim.log_pdf, sim.zgrid, attrs), on_bad_flag="exclude")
    assert len(kept.log_pdf) == len(sim.log_pdf) - 2 and sum(kept.excluded.values()) == 2


def test_targets_and_inputs(sim):
    y, names = dataset.make_target(sim, "DeltaZ", 5e-3)
    assert names == ["|ΔZ| ≥ 0.005", "|ΔZ| < 0.005"] and np.array_equal(y, np.abs(sim.delta_z) < 5e-3)
    y3, n3 = dataset.make_target(sim, "Success3")
    assert n3 == ["success", "spurious", "mismatch"] and set(y3) == {0, 1, 2}
    yf, _ = dataset.make_target(sim, "Flag3")
    assert np.array_equal(yf == 1, np.isin(sim.flag, [2, 9]))
    with pytest.raises(ValueError, match="unknown target"):
        dataset.make_target(sim, "Nope")
    x = dataset.make_input(sim, "logLikelihood", np.arange(3))
    np.testing.assert_allclose(x[..., 0], sim.log_pdf[:3] + sim.log_evidence[:3, None], rtol=1e-5)
    assert dataset.make_input(sim, "PDF", np.arange(3)).max() == 1.0


def test_undersampling_touches_the_training_set_only(sim):
    plain = seed_api.load_dataset("DeltaZ", undersample=False, data=sim, seed=1)
    bal = seed_api.load_dataset("DeltaZ", undersample=True, data=sim, seed=1)
    counts = np.bincount(bal.y_train)
    assert counts[0] == counts[1] and len(bal.y_train) < len(plain.y_train)
    assert np.array_equal(bal.idx_valid, plain.idx_valid) and np.array_equal(bal.idx_test, plain.idx_test)
    assert not set(bal.idx_train) & set(bal.idx_test) and not set(plain.idx_train) & set(plain.idx_valid)
    (
        X_train,
        X_validation,
        X_test,
        target_train,
        target_validation,
        target_test,
        Y_train,
        Y_validation,
        Y_test,
        nb_class,
        nom_classes,
    ) = bal  # the seed's 11 items, in the documented order
    assert X_train.shape == (len(bal.y_train), 17908, 1) and Y_test.shape == (len(bal.y_test), 2) and nb_class == 2
    assert np.array_equal(target_validation, plain.y_valid) and nom_classes == bal.class_names


def test_load_processed_caches_the_splits_per_setting(sim, tmp_path, monkeypatch):
    a = seed_api.load_processed("Success3", data=sim, folder=tmp_path)
    assert len(list((tmp_path / "Success3" / "unbalanced").glob("*/TRAIN/X.npy"))) == 1
    monkeypatch.setattr(seed_api, "load_dataset", lambda *a, **k: pytest.fail("the cache was not used"))
    b = seed_api.load_processed("Success3", data=sim, folder=tmp_path)  # from disk
    assert (
        np.array_equal(a.X_test, b.X_test) and np.array_equal(a.y_train, b.y_train) and b.class_names == a.class_names
    )
    assert np.array_equal(a.z_test, b.z_test) and b.z_train is not None  # the second input survives the cache
    monkeypatch.undo()
    for other in (
        dict(input_data="PDF"),
        dict(seed=7),
        dict(data=simulator.simulate(simulator.SimulationConfig(n=400, seed=9))),
    ):
        c = seed_api.load_processed("Success3", folder=tmp_path, **{"data": sim, **other})
        assert not (np.array_equal(c.X_train, a.X_train) and np.array_equal(c.y_train, a.y_train)), other
    assert len(list((tmp_path / "Success3" / "unbalanced").glob("*/TRAIN/X.npy"))) == 4


def test_summaries(sim):
    f = baselines.pdf_summaries(sim.log_pdf[:20], sim.zgrid, sim.log_evidence[:20])
    assert f.shape == (20, len(baselines.SUMMARY_NAMES)) and np.isfinite(f).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CNN", "CNN8", "CNNGRU", "CNNLSTM", "CNN_2inputs"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_model_builds_and_runs_a_forward_pass(name, n_classes):
    config.quiet_tensorflow()
    m = redshift_nets.NETWORKS[name](4096, n_classes)
    x = np.random.default_rng(0).normal(size=(2, 4096, 1)).astype("float32")
    inputs = {"pdf": x, "z": np.array([[0.5], [1.0]], "float32")} if name == "CNN_2inputs" else x
    p = m.predict(inputs, verbose=0)
    assert p.shape == (2, n_classes) and np.allclose(p.sum(1), 1, atol=1e-5)
    if name == "CNN8":
        convs = [layer for layer in m.layers if type(layer).__name__ == "Conv1D"]
        assert len(convs) == 8 and all(c.activation.__name__ == "relu" for c in convs)


@pytest.mark.slow
def test_training_cli_writes_model_record_and_figure(tmp_path, monkeypatch, empty_root):
    from casebook.cli import train_redshift

    out = tmp_path / "run"
    code = train_redshift.main(
        [
            "--model",
            "CNN",
            "--target",
            "Success3",
            "--n-objects",
            "240",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--undersample",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"best.keras", "model.keras", "record.json", "report.png"}
    rec = json.loads((out / "record.json").read_text())
    for key in ("cm_train", "cm_test", "class_names", "acc", "loss", "val_acc", "val_loss", "lr", "report", "summary"):
        assert key in rec
    assert len(rec["lr"]) == len(rec["loss"]) and np.array(rec["cm_test"]).shape == (3, 3)
    assert not list(config.assets_root().rglob("report_cli_*")), "a CLI writes nothing outside --output-dir"
    assert train_redshift.main(["--epochs", "0", "--output-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_pooling_keeps_every_peak_and_the_split():
    import numpy as np

    from casebook.redshift import baselines, dataset, seed_api, simulator

    x = np.full((2, 35), -30.0, dtype=np.float32)
    x[0, 3], x[1, 33] = -1.0, -2.0  # one peak each, the second in the padded tail
    pooled = dataset.pool_pdfs(x, 16)
    assert pooled.shape == (2, 3, 1) and pooled[0, 0, 0] == -1.0 and pooled[1, 2, 0] == -2.0
    assert pooled.min() == -30.0  # the tail is padded with the row minimum, never with zeros
    d = simulator.simulate(simulator.SimulationConfig(n=200, seed=3))
    full = seed_api.load_dataset("DeltaZ", False, data=d)
    small = seed_api.load_dataset("DeltaZ", False, data=d, pool=16)
    assert np.array_equal(full.idx_test, small.idx_test) and small.X_train.shape[1] == -(-17908 // 16)
    assert np.allclose(dataset.pool_pdfs(full.X_train, 16), small.X_train)
    summaries = baselines.pdf_summaries(d.log_pdf, d.zgrid, d.log_evidence)
    extra = dataset.with_extra_inputs(small, summaries)
    assert extra.z_train.shape == (len(small.y_train), 6) and np.allclose(extra.z_test, summaries[small.idx_test])


def test_ceilings_use_the_simulators_hidden_quantities_and_bound_the_baseline():
    import numpy as np
    import pytest

    from casebook.redshift import baselines, catalogue, seed_api, simulator

    d = simulator.simulate(simulator.SimulationConfig(n=1500, seed=5))
    assert set(d.latent) == set(simulator.LATENT_NAMES)
    lost = d.latent["true_rank"] == -1
    assert np.all(d.status[lost] == "mismatch") and np.all(d.status[d.latent["true_rank"] > 0] != "success")
    ds = seed_api.load_dataset("DeltaZ", False, data=d)
    summaries = baselines.pdf_summaries(d.log_pdf, d.zgrid, d.log_evidence)
    _, baseline, _ = baselines.fit_feature_classifier(summaries, ds, 0)
    _, oracle, proba = baselines.fit_feature_classifier(simulator.ceiling_features(d, oracle=True), ds, 0)
    assert oracle >= baseline - 0.02 and proba.shape == (len(ds.y_test), 2)
    real = catalogue.RedshiftData(d.log_pdf[:5], d.zgrid, d.attributes[:5], simulated=False)
    with pytest.raises(ValueError, match="real data has none"):
        simulator.ceiling_features(real)


def test_recurrent_trunks_shorten_any_input_to_a_few_dozen_steps():
    assert redshift_nets.trunk_pools(17908 // 4) == (4, 4, 4)
    for steps in (280, 560, 1120, 4477):
        a, b, c = redshift_nets.trunk_pools(steps)
        assert 17 <= steps // (a * b * c) <= 70


@pytest.mark.slow
def test_a_zoo_sweep_gives_what_the_tracked_run_gives(sim, tmp_path, monkeypatch):
    """07's zoo as a sweep (a plain loop here; Ray trials on a cluster, tests/test_cluster.py): each trial seeds
    itself and returns plain data, from which the driver rebuilds the TrainingResult, writes the seed record
    and saves its figure; the numbers equal those of the same network trained directly."""
    from casebook import experiments
    from casebook.tracking import backend, executions

    monkeypatch.setenv("CASEBOOK_MLFLOW", str(tmp_path / "mlflow"))
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    monkeypatch.delenv("CASEBOOK_RAY_ADDRESS", raising=False)
    executions.start_execution("redshift-sweep", "test")
    options = {"epochs": 2, "batch_size": 64, "threshold": 1e-3, "seed": 5}
    trial = {"name": "CNN [Success3]", "model": "CNN", "target": "Success3", "pool": 64, "undersample": True}
    swept = experiments.run_redshift_sweep([trial], sim, "nb", experiment="redshift-sweep", **options)
    split = seed_api.load_dataset("Success3", True, seed=5, data=sim, pool=64)
    direct = experiments.run_redshift_experiment(
        "CNN", split, 2, 64, "nb", label="direct", experiment="redshift-sweep", seed=5, checkpoint_dir=tmp_path
    )
    result = swept["CNN [Success3]"]
    assert result.history.index.tolist() == [1, 2] and result.model is None
    assert result.history.to_dict("list") == direct.history.to_dict("list")
    assert result.validation == direct.validation and result.n_train == direct.n_train == len(split.y_train)
    for split_name in ("val_proba", "test_proba"):
        np.testing.assert_allclose(result.outputs[split_name], direct.outputs[split_name], atol=1e-6)
    # the validation predictions the tie rule compares are those of the restored (best-epoch) weights
    restored = np.mean(result.outputs["val_proba"].argmax(1) == split.y_valid)
    assert restored == pytest.approx(result.validation["accuracy_at_best"], abs=1.01 / len(split.y_valid))
    record = json.loads(Path(result.outputs["record_file"]).read_text())
    assert record["conf_matrix_test"] == direct.outputs["record"]["conf_matrix_test"]
    assert (tmp_path / "assets" / "nb" / "report_CNN__Success3.png").is_file()
    runs = executions.search("redshift-sweep", "tags.mlflow.runName = 'CNN [Success3]'")
    assert runs["status"].tolist() == ["FINISHED"] and runs["params.undersample"].tolist() == ["True"]
    logged = backend.setup("redshift-sweep").MlflowClient().list_artifacts(result.outputs["run_id"], "figures")
    assert [f.path for f in logged] == ["figures/report.png"]  # drawn once, by the driver, into the trial's run
    assert (tmp_path / "best.keras").is_file()


def test_the_seed_report_figure_keeps_its_table_inside_panel_d():
    """Panel (d)'s per-class table stays inside its own axes, clear of panel (c)'s accuracy axis and label,
    whatever the class names (|ΔZ| ≥ 0.001 is the longest the targets make)."""
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import classification_report, confusion_matrix

    from casebook.report.records import record_figure

    rng = np.random.default_rng(0)
    for names in (["|ΔZ| ≥ 0.001", "|ΔZ| < 0.001"], ["flag 1", "flags 2+9", "flags 3+4"]):
        y = rng.integers(0, len(names), 300)
        pred = np.where(rng.random(300) < 0.8, y, rng.integers(0, len(names), 300))
        cm = confusion_matrix(y, pred).tolist()
        curves = {"loss": [0.5, 0.4, 0.3], "val_loss": [0.55, 0.45, 0.4], "acc": [0.7, 0.8, 0.85]}
        report = classification_report(y, pred, target_names=names, output_dict=True)
        record = {"class_names": names, "cm_train": cm, "cm_test": cm, "val_acc": [0.7, 0.75, 0.8], **curves}
        figure = record_figure(record | {"best_epoch": 3, "report": report})
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        panel_d = next(ax for ax in figure.axes if ax.tables)
        table = panel_d.tables[0]
        box = panel_d.get_window_extent(renderer)
        texts = [cell.get_text().get_window_extent(renderer) for cell in table.get_celld().values()]
        assert all(box.x0 <= t.x0 and t.x1 <= box.x1 for t in texts), "a cell's text spills out of panel (d)"
        accuracy_axis = figure.axes[-1]  # panel (c)'s twin axis, drawn last
        label = accuracy_axis.yaxis.label.get_window_extent(renderer)
        ticks = [t.get_window_extent(renderer).x1 for t in accuracy_axis.get_yticklabels() if t.get_text()]
        assert max([label.x1, *ticks]) < min(t.x0 for t in texts), "the table covers panel (c)'s accuracy axis"
