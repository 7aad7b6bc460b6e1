"""The callback on the models and setups users train: each test trains a real
model and proves the logged gradient is the applied one (plain SGD: update l2
== lr x gradient l2)."""

import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from support.applied import assert_update_is_lr_times_gradient, norm_tables
from support.events import numpy_stats, read_events
import tb_weightnorm
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata

LR = 0.05


def _fit(model, x, y, run_dir, *, epochs=1, batch_size=16, optimizer=None, loss="mse", **callback_kwargs):
    model.compile(optimizer=optimizer or keras.optimizers.SGD(LR), loss=loss)
    callback_kwargs.setdefault("every_n_steps", 1)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[tb_weightnorm.WeightHealthCallback(run_dir, **callback_kwargs)])
    return model


def _rng():
    return np.random.default_rng(0)


def test_functional_model_with_lstm_and_gru_split_per_gate(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 4))
    x = keras.layers.LSTM(5, return_sequences=True, name="lstm")(inputs)
    x = keras.layers.GRU(3, name="gru")(x)
    outputs = keras.layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs)
    x_data = _rng().normal(size=(32, 6, 4)).astype("float32")
    y_data = _rng().normal(size=(32, 1)).astype("float32")
    _fit(model, x_data, y_data, tmp_path)
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR, min_rows=20)
    rows = names.variables
    for gate in ("input", "forget", "cell", "output"):
        assert f"lstm/lstm_cell/kernel[{gate}]" in rows and f"lstm/lstm_cell/recurrent_kernel[{gate}]" in rows
        assert f"lstm/lstm_cell/bias[{gate}]" in rows
    for gate in ("update", "reset", "candidate"):
        assert f"gru/gru_cell/kernel[{gate}]" in rows
        assert f"gru/gru_cell/bias[{gate}]" in rows  # reset_after bias [2, 3 units]: split on the last axis
    assert names.layers[rows.index("lstm/lstm_cell/kernel[forget]")] == "lstm"
    # The gates partition the variable: their l2 add up in squares to its l2.
    w = names.stats.index("weight/l2")
    last = tables[-1][1]
    gates = [rows.index(f"lstm/lstm_cell/kernel[{g}]") for g in ("input", "forget", "cell", "output")]
    kernel = model.get_layer("lstm").cell.kernel.numpy()
    np.testing.assert_allclose(np.sqrt((last[gates, w] ** 2).sum()), np.linalg.norm(kernel), rtol=1e-5)
    np.testing.assert_allclose(last[gates[1], w], np.linalg.norm(kernel[:, 5:10]), rtol=1e-5)


def test_embedding_with_sparse_gradients(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        keras.layers.Embedding(5000, 8, name="embed"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1, name="out"),
    ], name="embedder")
    x = _rng().integers(0, 5000, size=(32, 5)).astype("int32")
    y = _rng().normal(size=(32, 1)).astype("float32")
    before = model.get_layer("embed").embeddings.numpy()
    _fit(model, x, y, tmp_path, batch_size=32)
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR)
    (step, table), = tables
    row = names.variables.index("embedder/embed/embeddings")
    gradient = (before - model.get_layer("embed").embeddings.numpy()) / LR
    cols = [names.stats.index(f"gradient/{s}") for s in schema.TENSOR_STATS]
    np.testing.assert_allclose(table[row, cols], numpy_stats(gradient), rtol=2e-3, atol=1e-6)
    # An embedding table has no output units: no dead fraction.
    assert np.isnan(table[row, names.stats.index("gradient/dead_fraction")])


def test_batch_norm_moving_stats_are_weights_only_when_asked(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, name="d"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1, name="out")])
    x = _rng().normal(size=(32, 4)).astype("float32")
    y = _rng().normal(size=(32, 1)).astype("float32")
    _fit(model, x, y, tmp_path, trainable_only=False)
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR)
    moving = [i for i, v in enumerate(names.variables) if "moving_" in v]
    assert len(moving) == 2
    g, u, w = (names.stats.index(s) for s in ("gradient/l2", "update/l2", "weight/l2"))
    for _, table in tables:
        assert np.isnan(table[moving][:, [g, u]]).all()
        assert (table[moving, w] > 0).all()
    assert not any("seed_generator" in v for v in names.variables)
    # Default: trainable only.
    _fit(model, x, y, tmp_path / "default")
    default_names, _ = norm_tables(tmp_path / "default" / "train")
    assert not any("moving_" in v for v in default_names.variables)


def test_subclassed_model_with_nested_model_shared_layer_and_unused_variable(tmp_path):
    class Tower(keras.Model):
        def __init__(self):
            super().__init__(name="tower")
            self.shared = keras.layers.Dense(4, activation="relu", name="shared")
            self.inner = keras.Sequential([keras.layers.Dense(4, name="inner_dense")], name="inner")
            self.unused = keras.layers.Dense(3, name="unused")
            self.head = keras.layers.Dense(1, name="head")

        def call(self, x):
            self.unused(x)  # built, but its output never reaches the loss: no gradient
            h = self.shared(x)
            h = self.shared(self.inner(h))  # the shared layer used twice
            return self.head(h)

    keras.utils.set_random_seed(0)
    model = Tower()  # built by fit, as users do
    x = _rng().normal(size=(32, 4)).astype("float32")
    y = _rng().normal(size=(32, 1)).astype("float32")
    with pytest.warns(UserWarning):  # Keras warns about the variable without gradient
        _fit(model, x, y, tmp_path)
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR, min_rows=6)
    assert names.variables.count("tower/shared/kernel") == 1
    assert "inner/inner_dense" in names.layers
    unused = names.variables.index("tower/unused/kernel")
    g = names.stats.index("gradient/l2")
    for _, table in tables:
        assert np.isnan(table[unused, g])  # logged as "no gradient", no crash


def test_keras_applications_mobilenet_without_downloading_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=4)
    x = _rng().normal(size=(16, 32, 32, 3)).astype("float32")
    y = _rng().integers(0, 4, size=(16,))
    _fit(model, x, y, tmp_path, batch_size=8, loss="sparse_categorical_crossentropy",
         histogram_every_n_steps=1, max_kernel_filters=16)
    names, tables, checked = assert_update_is_lr_times_gradient(tmp_path / "train", LR, rtol=1e-3, min_rows=100)
    assert len(tables) == 2
    kinds = {json.loads(e[4][3])["filters_shown"] for e in read_events(str(tmp_path / "train"))
             if e[2].startswith(metadata.KERNEL_GRID_TAG_PREFIX)}
    assert kinds and max(kinds) <= 16


def test_mixed_precision_logs_the_unscaled_gradient(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="h"),
                                  keras.layers.Dense(1, name="out", dtype="float32")])
        model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x = _rng().normal(size=(32, 6)).astype("float32")
        y = _rng().normal(size=(32, 1)).astype("float32")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # A scaled gradient (x 32768) would break this by four orders of magnitude.
    assert_update_is_lr_times_gradient(tmp_path / "train", LR, rtol=1e-3)


@pytest.mark.parametrize("clip", [{"clipnorm": 1e-3}, {"global_clipnorm": 1e-3}])
def test_clipping_logs_the_norm_before_clipping_and_says_so(tmp_path, clip):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="h"), keras.layers.Dense(1, name="out")])
    x = _rng().normal(size=(32, 6)).astype("float32")
    y = 10 * _rng().normal(size=(32, 1)).astype("float32")
    _fit(model, x, y, tmp_path, optimizer=keras.optimizers.SGD(LR, **clip))
    names, tables = norm_tables(tmp_path / "train")
    (key, value), = clip.items()
    assert names.gradient_note == f"before clipping ({key}={value})"
    g, u = names.stats.index("gradient/l2"), names.stats.index("update/l2")
    for _, table in tables:
        rows, global_row = table[:-1], table[-1]
        assert (rows[:, g] > 1e-3).all()  # the unclipped norms
        if key == "clipnorm":
            np.testing.assert_allclose(rows[:, u], LR * 1e-3, rtol=1e-3)
        else:
            np.testing.assert_allclose(np.sqrt((rows[:, u] ** 2).sum()), LR * 1e-3, rtol=1e-3)
            assert global_row[g] == pytest.approx(np.sqrt((rows[:, g] ** 2).sum()), rel=1e-5)


def test_include_exclude_and_stats_choice(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="enc1"),
                              keras.layers.Dense(4, name="enc2"), keras.layers.Dense(1, name="head")],
                             name="filtered")
    x = _rng().normal(size=(16, 4)).astype("float32")
    y = _rng().normal(size=(16, 1)).astype("float32")
    _fit(model, x, y, tmp_path, include=["enc*"], exclude=["*/bias"], stats=["*/l2", "update/ratio"])
    names, tables = norm_tables(tmp_path / "train")
    assert names.variables == ("filtered/enc1/kernel", "filtered/enc2/kernel", schema.GLOBAL_ROW)
    assert names.stats == ("weight/l2", "gradient/l2", "update/l2", "update/ratio")
    assert tables[0][1].shape == (3, 4)
    with pytest.raises(ValueError, match="weight/l9"):
        _fit(model, x, y, tmp_path / "bad", stats=["weight/l9"])
    with pytest.raises(ValueError, match="filtered them all out"):
        _fit(model, x, y, tmp_path / "none", include=["nothing*"])


def test_histograms_and_kernel_grids(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(5, 3, name="rgb_conv"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise"),
        keras.layers.SeparableConv2D(4, 3, name="separable"),
        keras.layers.Conv2DTranspose(3, 3, name="transposed"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1, name="out"),
    ])
    x = _rng().normal(size=(32, 12, 12, 3)).astype("float32")
    y = _rng().normal(size=(32, 1)).astype("float32")
    _fit(model, x, y, tmp_path, epochs=2, every_n_steps=1, histogram_every_n_steps=2, histogram_bins=10,
         kernel_grid_every_n_epochs=1)
    events = read_events(str(tmp_path / "train"))
    histos = [e for e in events if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    assert [e[0] for e in histos] == [1, 3]
    content = metadata.parse_plugin_data(histos[0][3].plugin_data.content).histograms
    assert list(content.kinds) == ["weight", "gradient"] and content.bins == 10
    last = histos[-1][4]
    assert last.shape == (2, len(content.variables), 15)
    # Every element is counted once, in a bucket or as non-finite.
    weights_now = {v.path: v.numpy() for v in model.trainable_variables}
    for i, name in enumerate(content.variables):
        size = weights_now[name].size
        assert last[0, i, 2:].sum() == size
        assert last[1, i, 2:].sum() == size
    grids = [e for e in events if e[2].startswith(metadata.KERNEL_GRID_TAG_PREFIX)]
    # At the start and after each of 2 epochs, one grid per conv kernel.
    assert len(grids) == 3 * 4
    assert sorted({e[0] for e in grids}) == [0, 2, 4]
    for _, _, tag, md, blobs in grids:
        assert md.data_class == 3  # DATA_CLASS_BLOB_SEQUENCE
        grid = metadata.parse_plugin_data(md.plugin_data.content).kernel_grid
        width, height, png, info = blobs
        image = Image.open(io.BytesIO(png))
        assert image.size == (int(width), int(height))
        assert grid.mode == ("rgb" if grid.layer == "rgb_conv" else "diverging")
        assert json.loads(info)["filters_shown"] <= grid.filters_total
    totals = {metadata.parse_plugin_data(e[3].plugin_data.content).kernel_grid.layer:
              metadata.parse_plugin_data(e[3].plugin_data.content).kernel_grid.filters_total for e in grids}
    assert totals == {"rgb_conv": 5, "depthwise": 10, "separable": 10, "transposed": 3}


def test_custom_loop_in_tf_function_logs_the_applied_gradient(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="h"),
                              keras.layers.Dense(1, name="out")])
    optimizer = keras.optimizers.SGD(LR)
    optimizer.build(model.trainable_variables)
    x = tf.constant(_rng().normal(size=(16, 6)).astype("float32"))
    y = tf.constant(_rng().normal(size=(16, 1)).astype("float32"))
    writer = tf.summary.create_file_writer(str(tmp_path))

    @tf.function
    def train_step(step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, step=step, histogram_every_n_steps=2)

    for step in range(1, 6):
        train_step(tf.constant(step, tf.int64))
    writer.flush()
    names, tables = norm_tables(tmp_path)
    u = names.stats.index("update/l2")
    assert np.isnan(tables[0][1][:, u]).all()  # no previous weights at the first call
    # From the second call on, the update since the last call is this step's.
    names_, later, _ = assert_update_is_lr_times_gradient_from(tables[1:], names)
    histos = [e for e in read_events(str(tmp_path)) if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    assert [e[0] for e in histos] == [2, 4]


def assert_update_is_lr_times_gradient_from(tables, names):
    g, u = names.stats.index("gradient/l2"), names.stats.index("update/l2")
    for _, table in tables:
        rows = table[:-1]
        np.testing.assert_allclose(rows[:, u], LR * rows[:, g], rtol=1e-4)
    return names, tables, len(tables)
