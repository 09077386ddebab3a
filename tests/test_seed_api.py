"""The seeds' documented interfaces, called verbatim (smoke data). Seed 003 (LAM redshift): the dataset API,
the three model factories, save_in_dict and fig, all from casebook.redshift."""
import json

import matplotlib.figure
import numpy as np
import pytest

from casebook.data import DataFormatError


@pytest.fixture(scope="module")
def seed_split(tmp_path_factory):
    import os

    os.environ["CASEBOOK_SMOKE"] = "1"  # 300 simulated objects
    try:
        from casebook.redshift import load_processed

        return load_processed('DeltaZ', True)
    finally:
        os.environ.pop("CASEBOOK_SMOKE")


def test_load_processed_and_load_dataset_return_the_11_documented_items(seed_split, smoke):
    from casebook.redshift import load_dataset, load_processed

    (X_train, X_validation, X_test, target_train, target_validation, target_test,
     Y_train, Y_validation, Y_test, nb_class, nom_classes) = seed_split
    assert nb_class == 2 and len(nom_classes) == 2 and X_train.shape[1:] == (17908, 1)
    assert np.bincount(target_train).tolist() == [len(target_train) // 2] * 2  # undersampled: train only
    assert np.array_equal(Y_validation.argmax(1), target_validation) and Y_test.shape == (len(target_test), 2)
    plain = load_dataset('DeltaZ', False)
    assert len(tuple(plain)) == 11 and len(plain.X_train) > len(X_train)
    assert np.array_equal(plain.X_validation, X_validation) and np.array_equal(plain.target_test, target_test)
    by_keyword = load_processed('DeltaZ', Undersample=True)
    assert np.array_equal(by_keyword.X_train, X_train)


def test_make_cnn_gru_lstm_save_in_dict_and_fig_verbatim(seed_split, tmp_path, smoke):
    from casebook.redshift import fig, make_CNN, make_CNNGRU, make_CNNLSTM, save_in_dict

    (X_train, X_validation, X_test, target_train, target_validation, target_test,
     Y_train, Y_validation, Y_test, nb_class, nom_classes) = seed_split
    model = make_CNN((17908, 1), nb_class)
    history = model.fit(X_train, Y_train, validation_data=(X_validation, Y_validation), epochs=2, verbose=0)
    file_name = tmp_path / "report_CNN_DeltaZ"
    d = save_in_dict(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes, file_name)
    on_disk = json.loads(file_name.with_suffix(".json").read_text())  # JSON, never pickle
    assert set(on_disk) == set(d) == {"conf_matrix_train", "conf_matrix_test", "nb_class", "nom_classes", "acc",
                                      "loss", "val_acc", "val_loss", "report", "model_summary", "lr"}
    assert np.array(on_disk["conf_matrix_test"]).sum() == len(target_test) and len(on_disk["loss"]) == 2
    figure = fig(file_name)
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 4
    assert file_name.with_suffix(".png").is_file()
    for make, args in ((make_CNNGRU, ((17908, 1), nb_class)), (make_CNNGRU, ((17908, 1), nb_class, .2)),
                       (make_CNNLSTM, ((17908, 1), nb_class))):
        net = make(*args)
        assert "accuracy" in [m.name for m in net.metrics] or net.compiled
        net.fit(X_train[:8], Y_train[:8], epochs=1, verbose=0)
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(DataFormatError, match="not a save_in_dict file"):
        fig(tmp_path / "broken.json")
