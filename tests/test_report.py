import json

import numpy as np
import pytest

from casebook import config
from casebook.report import figures, metrics, readme_table, results_file


def test_bootstrap_ci_brackets_the_value_and_shrinks_with_n(full):
    rng = np.random.default_rng(0)

    def run(n):
        y = rng.integers(0, 2, n)
        s = np.clip(y * 0.6 + rng.normal(0.2, 0.3, n), 0, 1)
        return metrics.bootstrap_metrics(y, (s > 0.5).astype(int), s, n_boot=300)

    small, big = run(200), run(5000)
    for m in ("accuracy", "roc_auc", "pr_auc", "f1"):
        lo, hi = big[m]["ci95"]
        assert lo <= big[m]["value"] <= hi
        assert hi - lo < small[m]["ci95"][1] - small[m]["ci95"][0]


def test_bootstrap_perfect_predictions():
    y = np.array([0, 1] * 50)
    r = metrics.bootstrap_metrics(y, y, y.astype(float), n_boot=50)
    assert r["accuracy"] == {"value": 1.0, "ci95": [1.0, 1.0]}


def test_tpr_at_fpr():
    y = np.array([0] * 100 + [1] * 100)
    s = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.4, 1.0, 100)]
    assert metrics.tpr_at_fpr(y, s, 0.0) < metrics.tpr_at_fpr(y, s, 0.05) <= 1.0
    assert metrics.tpr_at_fpr(y, s, 0.5) == 1.0


def _models():
    return {
        "a": {"accuracy": {"value": 0.9, "ci95": [0.88, 0.92]}},
        "b": {"accuracy": {"value": 0.8, "ci95": [0.7, 0.9]}},
    }


def test_results_file_schema_and_readme_table(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    selection = results_file.selection_record("validation accuracy", {"a": 0.91, "b": 0.85})
    path = results_file.write_results(
        "demo",
        "toy",
        "80/20 split",
        {"01_x": 12.3, "02_y": 60.0},
        _models(),
        "a",
        selection=selection,
        best_kind="baseline",
    )
    d = json.loads(path.read_text())
    assert path.parent == config.results_dir() and d["best"] == "a" and d["runtime_s"] == 72.3
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{readme_table.README_START}\nstale table\n{readme_table.README_END}\noutro\n")
    assert readme_table.update_readme(readme, path.parent)
    text = readme.read_text()
    assert "0.900 [0.880, 0.920]" in text and "stale table" not in text and text.endswith("outro\n")
    assert "| a (baseline), by validation accuracy |" in text
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert [row.split(")")[0] for row in rows] == [
        "| [01 · demo](notebooks/01_x.ipynb",
        "| [02 · demo](notebooks/02_y.ipynb",
    ]
    assert "| 0.2 min |" in rows[0] and "| 1.0 min |" in rows[1]
    assert "<summary>toy</summary>80/20 split</details>" in rows[0]
    assert not readme_table.update_readme(readme, path.parent)  # idempotent


def _publish(case, notebook, runtimes, models, best, targets, monkeypatch, **kwargs):
    """A results file written as casebook.publish writes it: the notebook's targets judged on its model."""
    from casebook import provenance
    from casebook.report.targets import judge

    monkeypatch.setenv(provenance.NOTEBOOK_ENV, notebook)
    model, targets = targets
    judged = [{**t, "model": model} for t in judge(targets, models[model])]
    return results_file.write_results(case, "toy", "p", runtimes, models, best, targets=judged, **kwargs)


def test_the_readme_table_has_one_row_per_notebook_in_notebook_order(tmp_path, monkeypatch):
    """Two notebooks sharing a results file (as 01 and 02 share gamma-telescope) get a row each, with the model
    each publishes, its metrics, verdicts and wall time; rows follow the notebooks' order, not the files'."""
    from casebook.report.targets import Target

    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    models = _models()
    selection = results_file.selection_record("CV accuracy", {"a": 0.91, "b": 0.85})
    high, low = Target("accuracy", 0.95, "a paper"), Target("accuracy", 0.75, "the seed")
    _publish("zeta", "01_first", {"01_first": 60}, {"a": models["a"]}, "a", ("a", [high]), monkeypatch)
    runtimes = {"01_first": 60, "02_second": 120}
    _publish("zeta", "02_second", runtimes, models, "a", ("b", [low]), monkeypatch, selection=selection)
    _publish("alpha", "03_third", {"03_third": 30}, {"a": models["a"]}, "a", ("a", [low]), monkeypatch)
    table = readme_table.results_markdown(tmp_path / "assets" / "results")
    rows = table.splitlines()[2:]
    assert [row.split("](")[0] for row in rows] == ["| [01 · zeta", "| [02 · zeta", "| [03 · alpha"]
    first, second, third = rows
    assert "| a, by CV accuracy |" in first and "accuracy ≥ 0.95: **missed**" in first and "| 1.0 min |" in first
    assert "| b, the best of this notebook's models by CV accuracy |" in second and "0.800 [0.700, 0.900]" in second
    assert "accuracy ≥ 0.75: **reached**" in second and "| 2.0 min |" in second and "0.900 [0.880" not in second
    assert "accuracy ≥ 0.75: **met**" in third


def test_the_readme_table_falls_back_to_best_without_targets(tmp_path, monkeypatch):
    """Results files written before targets existed: a notebook that produced the case's best shows it; one that
    did not shows its own best model by the recorded selection (02's MLPs beside 01's classical models)."""
    from casebook import provenance

    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    models = {**_models(), "c": {"accuracy": {"value": 0.7, "ci95": [0.6, 0.8]}}}
    monkeypatch.setenv(provenance.NOTEBOOK_ENV, "01_first")
    results_file.write_results("zeta", "toy", "p", {"01_first": 6}, {"a": models["a"]}, "a")
    monkeypatch.setenv(provenance.NOTEBOOK_ENV, "02_second")
    selection = results_file.selection_record("CV accuracy", {"a": 0.9, "b": 0.7, "c": 0.8})
    path = results_file.write_results(
        "zeta", "toy", "p", {"01_first": 6, "02_second": 6}, models, "a", selection=selection
    )
    assert readme_table.published_models(json.loads(path.read_text())) == {"01_first": "a", "02_second": "c"}
    rows = readme_table.results_markdown(path.parent).splitlines()[2:]
    assert "| a, by CV accuracy |" in rows[0] and "| c, the best of this notebook's models" in rows[1]
    assert all("| — |" in row for row in rows)  # no targets recorded, no verdicts invented


def test_the_seed_claims_are_compared_like_for_like(tmp_path, monkeypatch):
    """The seed's claim sits beside our number for the same model measured the same way: a named model's test
    metric, or (notebook 03) the seed's model run at the seed's own settings, recorded in the results file's
    extra (the claim is then restated for that model); where neither exists, the claim stands alone."""
    from casebook.report.targets import Target

    monkeypatch.setenv("CASEBOOK_ASSETS", str(tmp_path / "assets"))
    rf = {"accuracy": {"value": 0.883, "ci95": [0.874, 0.892]}}
    best = {"accuracy": {"value": 0.889, "ci95": [0.88, 0.898]}}
    path = results_file.write_results("g", "t", "p", {"01_gamma": 1}, {"XGBoost": best, "Random Forest": rf}, "XGBoost")
    row = readme_table.results_markdown(path.parent).splitlines()[2]
    assert "| Random Forest accuracy 0.897; ours 0.883 [0.874, 0.892] |" in row
    path.unlink()
    path = results_file.write_results("s", "t", "p", {"03_synthetic": 1}, {"rf": best}, "rf")
    alone = readme_table.results_markdown(path.parent).splitlines()[2]
    assert (
        "| Logistic Regression accuracy 0.99 at the seed's settings |" in alone
        and "0.889 [0.880, 0.898]<br>" not in alone
    )
    at_seed = {"accuracy": {"value": 0.9926, "ci95": [0.9881, 0.9965]}}
    like_for_like = {
        "model": "logistic-regression",
        "seed": {"test accuracy": 0.99, "cv accuracy": [0.99, 0.99]},
        "ours": {"cv accuracy": [0.99], "validation": rf, "test": at_seed},
    }
    side = "logistic-regression at the seed's settings"  # published beside the chosen model, judged by the target
    _publish(
        "s",
        "03_synthetic",
        {"03_synthetic": 1},
        {"rf": best, side: at_seed},
        "rf",
        (side, [Target("accuracy", 0.99, "the seed's README")]),
        monkeypatch,
        extra={"seed_claim_like_for_like": like_for_like},
    )
    row = readme_table.results_markdown(path.parent).splitlines()[2]
    assert "| rf | accuracy 0.889 [0.880, 0.898] |" in row  # the row shows the model the notebook chose
    assert f"| accuracy ≥ 0.99 ({side}): **reached** |" in row
    assert "| logistic-regression accuracy 0.99 at the seed's settings; ours 0.993 [0.988, 0.997] |" in row


def test_bad_results_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="best model"):
        results_file.write_results("demo2", "toy", "p", {"nb": 1}, _models(), "zzz")
    with pytest.raises(ValueError, match="ci95"):
        results_file.write_results("demo2", "toy", "p", {"nb": 1}, {"a": {"accuracy": 0.9}}, "a")
    # "best" must be what the recorded selection picks (here: b on validation, not a)
    with pytest.raises(ValueError, match="selection .validation accuracy. picks 'b'"):
        results_file.write_results(
            "demo2",
            "toy",
            "p",
            {"nb": 1},
            _models(),
            "a",
            selection=results_file.selection_record("validation accuracy", {"a": 0.8, "b": 0.9}),
        )
    lower = results_file.selection_record("validation RMSE", {"a": 0.5, "b": 0.4}, higher_is_better=False)
    assert results_file.chosen_by(lower) == "b"
    declared = results_file.selection_record("validation AUC", {"a": 0.9, "b": 0.8}, rule="the ensemble", chosen="b")
    assert results_file.chosen_by(declared) == "b" and declared["scores"] == {"a": 0.9, "b": 0.8}
    with pytest.raises(ValueError, match="not among the scored models"):
        results_file.selection_record("validation AUC", {"a": 0.9}, rule="the ensemble", chosen="c")
    assert not (config.results_dir() / "demo2.json").exists()
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:start"):
        readme_table.update_readme(readme)


def test_figures_are_saved_under_assets():
    import matplotlib.pyplot as plt

    ax = figures.plot_confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0], ["neg", "pos"])
    path = figures.save_fig(ax.figure, "00_test", "cm")
    plt.close("all")
    assert path == config.assets_root() / "00_test" / "cm.png" and path.stat().st_size > 1000
    axes = figures.plot_learning_curves({"loss": [1, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]})
    assert len(axes) == 2
    for ax in axes:  # whole epochs only
        assert [t for t in ax.get_xticks() if 0.5 <= t <= 2.5] == [1, 2]
    axes = figures.plot_learning_curves({"loss": list(np.linspace(1, 0, 40))})
    ticks = [t for t in axes[0].get_xticks() if 0.5 <= t <= 40.5]
    assert ticks and all(float(t).is_integer() for t in ticks)
    figures.plot_roc_pr(np.array([0, 1, 0, 1]), {"m": np.array([0.1, 0.9, 0.4, 0.6])})
    plt.close("all")


def test_classification_report_frame():
    df = metrics.classification_report_frame([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert list(df.index[:3]) == ["a", "b", "c"] and df.loc["b", "recall"] == 0.5 and df.attrs["accuracy"] == 0.75


def _unvectorised(metric):
    """The same metric behind a plain function: bootstrap_metrics then takes its per-resample reference loop."""

    def call(y_true, y_pred, y_score):
        return metric(y_true, y_pred, y_score)

    return call


def test_vectorised_bootstrap_equals_the_reference_loop(full):
    """The fast path must give exactly what scikit-learn gives on each resample."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(np.clip(y * 0.4 + rng.normal(0.3, 0.3, 300), 0, 1), 1)  # rounded: many ties
    p = (s > 0.5).astype(int)
    fast = metrics.bootstrap_metrics(y, p, s, n_boot=100, seed=1)
    slow_fns = {k: _unvectorised(f) for k, f in metrics.CLASSIFICATION_METRICS.items()}
    slow = metrics.bootstrap_metrics(y, p, s, metrics=slow_fns, n_boot=100, seed=1)
    assert fast == slow
    yr = rng.normal(size=200)
    pr = yr + rng.normal(0, 0.5, 200)
    fast = metrics.bootstrap_metrics(yr, pr, metrics=metrics.REGRESSION_METRICS, n_boot=50)
    slow = metrics.bootstrap_metrics(
        yr,
        pr,
        metrics={k: _unvectorised(f) for k, f in metrics.REGRESSION_METRICS.items()},
        n_boot=50,
    )
    for k in fast:
        np.testing.assert_allclose(fast[k]["ci95"], slow[k]["ci95"], rtol=1e-6)


def test_gamma_metrics_measure_acceptance_of_class_0_at_fixed_hadron_contamination():
    fns = metrics.gamma_metrics()
    assert {"accuracy", "roc_auc", "gamma_acc_at_1pct", "gamma_acc_at_5pct"} <= set(fns)
    y = np.r_[np.zeros(500, int), np.ones(500, int)]  # 0 = gamma (signal), 1 = hadron
    perfect = np.r_[np.linspace(0, 0.4, 500), np.linspace(0.6, 1, 500)]  # score = P(hadron)
    assert fns["gamma_acc_at_1pct"](y, (perfect > 0.5).astype(int), perfect) == pytest.approx(1.0)
    assert fns["gamma_acc_at_1pct"](y, (perfect < 0.5).astype(int), 1 - perfect) == pytest.approx(0.0, abs=0.01)
    rng = np.random.default_rng(0)
    noisy = perfect + rng.normal(0, 0.2, 1000)
    acc1, acc5 = (fns[k](y, None, noisy) for k in ("gamma_acc_at_1pct", "gamma_acc_at_5pct"))
    assert 0 < acc1 < acc5 < 1  # looser contamination keeps more gammas


def test_regression_and_map_plots_draw_what_they_say():
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 300)
    pred = y + rng.normal(0, 0.3, 300)
    a, b = figures.plot_regression_diagnostics(y, pred, cap=5.0, title="m")
    np.testing.assert_allclose(a.collections[0].get_offsets(), np.c_[y, pred])
    np.testing.assert_allclose(b.collections[0].get_offsets(), np.c_[pred, pred - y])
    assert "target cap 5" in [t.get_text() for t in a.get_legend().get_texts()]
    with pytest.raises(ValueError, match="differ in length"):
        figures.plot_regression_diagnostics(y, pred[:-1])
    centres = np.array([[34.0, -118.0], [37.8, -122.4]])  # (latitude, longitude)
    ax = figures.plot_map(rng.uniform(-124, -114, 50), rng.uniform(32, 42, 50), rng.random(50), centres=centres)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), centres[:, ::-1])  # drawn as (x=lon, y=lat)


def test_prediction_titles_say_truth_prediction_and_score():
    assert figures.prediction_title("NORMAL", 1, 0.734) == "NORMAL → PNEUMONIA\np(pneumonia)=0.73"
    assert figures.prediction_title("PNEUMONIA", 0, 0.2).endswith("p(pneumonia)=0.20")


def test_shift_table_reports_prevalence_recalls_auc_and_calibration():
    y = np.array([0, 0, 1, 1])
    table = metrics.shift_table({"a": (y, np.array([0.1, 0.6, 0.4, 0.9])), "b": (y, y * 1.0)}, threshold=0.5)
    a, b = table.loc["a"], table.loc["b"]
    assert a["images"] == 4 and a["prevalence pneumonia"] == 0.5
    assert a["recall normal"] == 0.5 and a["recall pneumonia"] == 0.5 and a["ROC-AUC"] == 0.75
    assert np.isclose(a["mean score | normal"], 0.35) and np.isclose(a["mean score | pneumonia"], 0.65)
    assert b["calibration error"] == 0.0 and a["calibration error"] > 0.2  # scores equal to outcomes: calibrated


def test_shift_figure_and_group_histograms_are_labelled():
    import matplotlib.pyplot as plt
    import pandas as pd

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    axes = figures.plot_score_shift({"val": (y, rng.random(200)), "test": (y, rng.random(200))}, 0.5)
    assert [ax.get_xlabel() for ax in axes] == ["predicted P(pneumonia)"] * 2 + ["mean predicted P(pneumonia)"]
    assert axes[0].get_title() == "true NORMAL images" and len(axes[2].get_lines()) == 3
    frame = pd.DataFrame({"mean": rng.random(50), "class": ["A", "B"] * 25, "split": ["x"] * 50})
    ax = figures.plot_group_histograms(frame, "mean", ["class", "split"])
    assert ax.get_xlabel() == "mean" and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "A · x (25)",
        "B · x (25)",
    ]
    plt.close("all")


def test_the_target_rule_says_met_reached_or_missed_from_the_ci():
    from casebook.report import targets

    high = targets.Target("accuracy", 0.90, "a paper")
    low = targets.Target("rmse", 0.50, "a benchmark", higher_is_better=False)
    assert targets.verdict(0.93, [0.91, 0.95], high) == "met"
    assert targets.verdict(0.91, [0.89, 0.93], high) == "reached"
    assert targets.verdict(0.89, [0.87, 0.91], high) == "missed"
    assert targets.verdict(0.45, [0.40, 0.50], low) == "met"  # the threshold itself is on its side
    assert targets.verdict(0.49, [0.47, 0.52], low) == "reached"
    table = targets.table(
        [high, low], {"accuracy": {"value": 0.91, "ci95": [0.89, 0.93]}, "rmse": {"value": 0.6, "ci95": [0.55, 0.65]}}
    )
    assert list(table["verdict"]) == ["reached", "missed"] and table.index[0] == "accuracy ≥ 0.9"
    assert table.loc["rmse ≤ 0.5", "test value [95% CI]"] == "0.600 [0.550, 0.650]"
    with pytest.raises(KeyError, match="no 'roc_auc'"):
        targets.judge([targets.Target("roc_auc", 0.9, "x")], {"accuracy": {"value": 1, "ci95": [1, 1]}})


def test_the_tie_rule_keeps_the_reference_unless_the_margin_beats_the_noise():
    from casebook.report import choice

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 5000)
    noisy = lambda p: np.where(rng.random(5000) < p, y, (y + 1) % 10)  # noqa: E731
    close = {"CNN": noisy(0.992), "CNN + augmentation": noisy(0.994)}
    tied = choice.choose(y, close, "CNN")
    assert tied.best == "CNN + augmentation" and tied.chosen == "CNN" and tied.tied
    assert tied.ci95[0] < 0 < tied.ci95[1] and "tied" in tied.sentence()
    far = {"CNN": noisy(0.90), "CNN + augmentation": noisy(0.994)}
    better = choice.choose(y, far, "CNN")
    assert better.chosen == "CNN + augmentation" and not better.tied and better.ci95[0] > 0
    table = choice.table(better, y, far)
    assert table.loc["CNN + augmentation", "verdict"] == "better (chosen)"
    assert table.loc["CNN", "advantage over the reference [95% CI]"] == "—"  # no margin against itself
    y_reg = rng.normal(size=2000)
    reg = {"mlp": y_reg + rng.normal(0, 0.6, 2000), "xgb": y_reg + rng.normal(0, 0.4, 2000)}
    rmse = choice.choose(y_reg, reg, "mlp", metric="rmse")
    assert rmse.chosen == "xgb" and rmse.advantage > 0  # lower RMSE is the better side
    record = rmse.record()
    assert record["reference"] == "mlp" and record["chosen"] == "xgb" and len(record["ci95"]) == 2
    selection = results_file.selection_record("validation rmse", rmse.scores, higher_is_better=False, tie=record)
    assert results_file.chosen_by(selection) == "xgb"
    with pytest.raises(ValueError, match="reference"):
        choice.choose(y, close, "ResNet")


def test_tables_show_whole_and_round_to_significant_digits():
    import pandas as pd

    from casebook.report import display

    values = (0.0003333333, 0.88888, 19020.0, 123.456, 0.0, 0.05, 5.0, 21.2, -0.85)
    assert [display.significant(v) for v in values] == [
        "0.0003333",
        "0.8889",
        "19,020",
        "123.5",
        "0",
        "0.05",
        "5",
        "21.2",
        "-0.85",
    ]
    display.setup()
    long = pd.DataFrame({"params": ["{'max_depth': 6, 'learning_rate': 0.1, 'n_estimators': 300, 'subsample': 0.8}"]})
    assert "max_depth': 6, 'learning_rate': 0.1, 'n_estimators': 300, 'subsample': 0.8}" in long.to_string()
    assert "0.0003333" in pd.DataFrame({"lr": [1 / 3000]}).to_string()
