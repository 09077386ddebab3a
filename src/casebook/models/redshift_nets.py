"""The redshift-reliability networks on PDFs sampled on a fine grid: a 1-D CNN, a deeper CNN, CNN-GRU, CNN-LSTM,
and a two-input CNN that also sees per-object numbers. Each is compiled for one-hot targets (Adam, categorical
cross-entropy, accuracy). The seed project's ``make_CNN*`` names are adapters in :mod:`casebook.redshift`."""

from __future__ import annotations

DOWNSAMPLE = 4  # input max-pooling: 17,908 → 4,477 steps (4e-4 in ln(1+z), narrower than any peak)


def _conv_block(x, filters: int, kernel: int, pool: int, n_convs: int = 1):
    from keras import layers

    for _ in range(n_convs):
        x = layers.Conv1D(filters, kernel, padding="same", activation="relu")(x)
    return layers.MaxPooling1D(pool)(x)


def _head(x, n_classes: int):
    from keras import layers

    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(32, activation="relu")(x)
    return layers.Dense(n_classes, activation="softmax")(x)


def _compile(model, lr: float):
    import keras

    optimizer = keras.optimizers.Adam(lr)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def _pdf_input(length: int, downsample: int):
    """The PDF input; with ``downsample > 1`` a max-pooling that keeps every peak's height while cutting the
    convolutions' cost by that factor (what makes a CNN epoch on 10,000 PDFs fit in seconds on a CPU); then a
    ``pdf_scaler`` Normalization layer (one mean and variance, adapted on training rows only by
    :func:`casebook.training.keras_loops.adapt_pdf_scaler`)."""
    import keras
    from keras import layers

    inp = keras.Input((length, 1), name="pdf")
    x = layers.MaxPooling1D(downsample, name="downsample")(inp) if downsample > 1 else inp
    return inp, layers.Normalization(axis=None, name="pdf_scaler")(x)


def _cnn_trunk(x):
    x = _conv_block(x, 32, 9, 4)
    x = _conv_block(x, 64, 6, 4)
    return _conv_block(x, 128, 3, 4)


def cnn(length: int, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """[input max-pool] → 3 conv blocks (Conv1D 32/9, 64/6, 128/3, ReLU, max-pooling 4) → global max-pooling →
    Dense 64 → 32 → softmax."""
    import keras
    from keras import layers

    inp, x = _pdf_input(length, downsample)
    x = layers.GlobalMaxPooling1D()(_cnn_trunk(x))
    return _compile(keras.Model(inp, _head(x, n_classes), name="CNN"), lr)


def cnn8(length: int, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """[input max-pool] → 4 blocks of two convolutions (32/10, 64/6, 128/5, 256/3), each with ReLU (the seed
    forgot them), max-pooling 4 → Dense 64 → 32 → softmax."""
    import keras
    from keras import layers

    inp, x = _pdf_input(length, downsample)
    for filters, kernel in ((32, 10), (64, 6), (128, 5), (256, 3)):
        x = _conv_block(x, filters, kernel, 4, n_convs=2)
    x = layers.GlobalMaxPooling1D()(x)
    return _compile(keras.Model(inp, _head(x, n_classes), name="CNN8"), lr)


def trunk_pools(steps: int, target: int = 35) -> tuple[int, int, int]:
    """Pooling factors of the recurrent models' three conv blocks: they shorten ``steps`` (after any input
    downsampling) to about ``target`` time steps, so the GRU/LSTM layers stay cheap on a CPU (17,908 / 4 →
    4×4×4 → 70 steps; a 560-step pooled input → 4×4×1 → 35 steps)."""
    total = max(1, round(steps / target))
    pools = []
    for _ in range(3):
        p = 4 if total >= 4 else (2 if total >= 2 else 1)
        pools.append(p)
        total //= p
    return tuple(pools)


def _recurrent(length: int, n_classes: int, cell: str, lr: float, downsample: int, dropout: float = 0.0):
    import keras
    from keras import layers

    inp, x = _pdf_input(length, downsample)
    pools = trunk_pools(length // max(downsample, 1))
    x = _conv_block(x, 32, 9, pools[0])
    x = _conv_block(x, 64, 6, pools[1])
    x = _conv_block(x, 64, 3, pools[2])
    rnn = layers.GRU if cell == "gru" else layers.LSTM
    x = rnn(64, return_sequences=True, dropout=dropout)(x)
    x = rnn(32, dropout=dropout)(x)
    name = "CNNGRU" if cell == "gru" else "CNNLSTM"
    return _compile(keras.Model(inp, _head(x, n_classes), name=name), lr)


def cnn_gru(length: int, n_classes: int, dropout: float = 0.2, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """Conv trunk (3 blocks, pooling from :func:`trunk_pools`) → GRU(64, sequences) → GRU(32), both with input
    ``dropout`` → Dense 64 → 32 → softmax."""
    return _recurrent(length, n_classes, "gru", lr, downsample, dropout)


def cnn_lstm(length: int, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE):
    """Conv trunk (3 blocks, pooling from :func:`trunk_pools`) → LSTM(64, sequences) → LSTM(32) → Dense 64 → 32 →
    softmax."""
    return _recurrent(length, n_classes, "lstm", lr, downsample)


def cnn_two_inputs(length: int, n_classes: int, lr: float = 1e-3, downsample: int = DOWNSAMPLE, n_extra: int = 1):
    """PDF branch (the CNN trunk) + a second input ``z`` of ``n_extra`` numbers per object — the estimated
    redshift (1), or the baseline's PDF summaries (6) so that the network sees what the baseline sees — scaled in
    the model by a Normalization layer adapted on training rows → Dense 64 → 32 → softmax."""
    import keras
    from keras import layers

    pdf, x = _pdf_input(length, downsample)
    z = keras.Input((n_extra,), name="z")
    x = layers.GlobalMaxPooling1D()(_cnn_trunk(x))
    zn = layers.Normalization(name="z_scaler")(z)
    x = layers.Concatenate()([x, zn])
    return _compile(keras.Model([pdf, z], _head(x, n_classes), name="CNN_2inputs"), lr)


NETWORKS = {"CNN": cnn, "CNN8": cnn8, "CNNGRU": cnn_gru, "CNNLSTM": cnn_lstm, "CNN_2inputs": cnn_two_inputs}
