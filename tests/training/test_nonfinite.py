"""NaN and Inf in weights, gradients and updates never stop logging or
training: they are counted, every other stat is taken over the finite values,
and every step is recorded, in `model.fit` with the callback and in custom
loops with `log()`, eager and in tf.function; histograms and kernel grids
included."""

import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from support.events import numpy_stats, read_events
import tb_weightnorm
from test_callback import _WeightsAfterEachBatch
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata

LR = 0.05
STATS = schema.all_stat_names()
WEIGHT = slice(0, 9)
GRADIENT = slice(STATS.index("gradient/l1"), STATS.index("gradient/inf_count") + 1)
NAN, INF = schema.TENSOR_STATS.index("nan_count"), schema.TENSOR_STATS.index("inf_count")


def by_kind(run_dir):
    """(norm table names, [(step, table)], histogram names, [(step, histograms)], [kernel grid events])."""
    events = read_events(str(run_dir))
    tables = [e for e in events if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]
    hists = [e for e in events if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    grids = [e for e in events if e[2].startswith(metadata.KERNEL_GRID_TAG_PREFIX)]
    names = metadata.norm_table_names(tables[0][3].plugin_data.content)
    hist_names = metadata.parse_plugin_data(hists[0][3].plugin_data.content).histograms if hists else None
    return names, [(e[0], e[4]) for e in tables], hist_names, [(e[0], e[4]) for e in hists], grids


def assert_histograms_agree_with_tables(names, tables, hist_names, hists):
    """The histograms and the norm table count the same NaN and Inf and see
    the same finite range, though computed apart."""
    table_at = dict(tables)
    assert hists
    for step, hist in hists:
        table = table_at[step]
        for k, kind in enumerate(("weight", "gradient")):
            for i, variable in enumerate(hist_names.variables):
                row = table[names.variables.index(variable)]
                stats = row[STATS.index(f"{kind}/l1") : STATS.index(f"{kind}/inf_count") + 1]
                h = hist[k, i]
                if np.isnan(stats[0]):  # no gradient: an empty histogram
                    assert not h[2:].any()
                    continue
                assert h[-3] == stats[NAN] and h[-2] + h[-1] == stats[INF], (step, kind, variable)
                np.testing.assert_allclose(h[:2], stats[5:7], rtol=1e-6, equal_nan=True)


class _Poison(keras.callbacks.Callback):
    """Before batch `batch` of the first epoch, writes `values` at `index` of `variable`."""

    def __init__(self, batch, variable, index, values):
        super().__init__()
        self.batch, self.variable, self.index, self.values = batch, variable, index, values

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.batch:
            value = self.variable().numpy()
            for index, v in zip(self.index, self.values):
                value[index] = v
            self.variable().assign(value)


def test_fit_with_nan_and_inf_weights_in_one_layer_keeps_the_finite_stats(tmp_path):
    """A NaN and an Inf written into the `split` kernel mid-run, in a column the
    loss does not read: they stay (their gradient is 0), training goes on, and
    every stat of that kernel but the counts is the finite values' own."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    clean = keras.layers.Dense(1, name="clean_head")(keras.layers.Dense(3, activation="tanh", name="clean")(inputs))
    split = keras.layers.Dense(2, name="split")(inputs)
    model = keras.Model(inputs, keras.layers.Concatenate()([clean, split]))
    # The loss reads clean_head and split's first column only.
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=lambda y, p: tf.reduce_mean(tf.square(y - p[:, :2])))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    spy = _WeightsAfterEachBatch()
    poison = _Poison(3, lambda: model.get_layer("split").kernel, [(0, 1), (2, 1)], [np.nan, np.inf])
    model.fit(
        x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
        callbacks=[poison, tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1), spy],
    )
    names, tables, hist_names, hists, _ = by_kind(tmp_path / "train")
    assert [s for s, _ in tables] == list(range(1, 9)) and [s for s, _ in hists] == list(range(1, 9))
    kernel = names.variables.index(model.get_layer("split").kernel.path)
    g_l2, u_l2 = STATS.index("gradient/l2"), STATS.index("update/l2")
    for step, table in tables:
        after = spy.weights[step]
        for row, w in zip(table, after):
            np.testing.assert_allclose(row[WEIGHT], numpy_stats(w), rtol=1e-5, atol=1e-7, equal_nan=True)
        expected = (1, 1) if step >= 4 else (0, 0)
        assert tuple(table[kernel, [NAN, INF]]) == expected
        # Gradients stay finite: the loss never reads the poisoned column.
        assert not table[:-1, GRADIENT][:, [NAN, INF]].any()
        # The update over its finite values is still lr x the gradient.
        np.testing.assert_allclose(table[:-1, u_l2], LR * table[:-1, g_l2], rtol=1e-4, atol=1e-7)
        assert np.isfinite(table[-1, [STATS.index("weight/l2"), g_l2]]).all()  # the (global) row
    assert_histograms_agree_with_tables(names, tables, hist_names, hists)


def test_fit_keeps_logging_when_a_loss_makes_inf_gradients_and_everything_turns_nan(tmp_path):
    """A loss whose gradients overflow to +-Inf at once; the kernels then go
    Inf and NaN. Training and logging carry on, every step recorded, and the
    conv kernel's grid is still drawn at every epoch end."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5, 5, 3)),
        keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(1, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=lambda y, p: tf.reduce_mean(p) * 3.4e38)
    x = (10 * np.random.default_rng(1).normal(size=(32, 5, 5, 3))).astype("float32")
    history = model.fit(
        x, np.zeros((32, 1), "float32"), batch_size=8, epochs=2, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1,
                                                      kernel_grid_every_n_epochs=1, report=None)],
    )
    assert len(history.history["loss"]) == 2
    names, tables, hist_names, hists, grids = by_kind(tmp_path / "train")
    assert [s for s, _ in tables] == list(range(1, 9)) and [s for s, _ in hists] == list(range(1, 9))
    first = tables[0][1]
    assert first[:-1, GRADIENT][:, INF].sum() > 0
    last = tables[-1][1]
    for row, v in zip(last, model.trainable_variables):
        np.testing.assert_allclose(row[WEIGHT], numpy_stats(v.numpy()), rtol=1e-5, equal_nan=True)
    # The conv kernel has no finite value left: norms 0 and moments NaN, not a crash or garbage.
    conv = names.variables.index(model.get_layer("conv").kernel.path)
    assert last[conv, NAN] + last[conv, INF] == model.get_layer("conv").kernel.numpy().size
    assert last[conv, STATS.index("weight/l2")] == 0 and np.isnan(last[conv, STATS.index("weight/mean")])
    assert_histograms_agree_with_tables(names, tables, hist_names, hists)
    assert sorted({e[0] for e in grids}) == [0, 4, 8]
    for step, _, _, _, (width, height, png, info) in grids:
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert image.shape[:2] == (int(height), int(width))
        if step == 8:  # every weight NaN or Inf: only the markers are drawn
            assert json.loads(info)["scale"] == 0.0
            colours = {tuple(c) for c in image.reshape(-1, 3)}
            assert colours & {(0, 0, 0), (255, 255, 0)}


class _Roots(keras.layers.Layer):
    """Passes its input through; its weight is for a loss of its own."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(4,), name="w")

    def call(self, x):
        return x


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_log_counts_nan_and_inf_gradients_and_weights_in_a_custom_loop(tmp_path, mode):
    """Real gradients with NaN and Inf (sqrt at 0 and below 0) and a conv
    kernel holding a NaN and an Inf, logged with histograms and kernel grids."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(1, name="out"), _Roots(name="roots")], name="m")
    roots = model.get_layer("roots").w
    roots.assign([0.0, 1.0, 4.0, -1.0])
    kernel = model.get_layer("conv").kernel
    poisoned = kernel.numpy()
    poisoned[0, 0, 0, 0], poisoned[1, 1, 0, 1] = np.nan, -np.inf
    kernel.assign(poisoned)
    variables = model.trainable_variables
    writer = tf.summary.create_file_writer(str(tmp_path))

    def step(step):
        with tf.GradientTape() as tape:
            # d sqrt(w)/dw is +Inf at 0 and NaN below 0.
            loss = tf.reduce_sum(tf.sqrt(roots)) + 0.0 * tf.reduce_sum(model(tf.ones([1, 4, 4, 1])))
        grads = tape.gradient(loss, variables)
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, step=step, histogram_every_n_steps=1,
                              kernel_grid_every_n_steps=1)
        return grads

    if mode == "function":
        step = tf.function(step)
    grads = [g.numpy() for g in step(tf.constant(1, tf.int64))]
    step(tf.constant(2, tf.int64))
    writer.flush()
    names, tables, hist_names, hists, grids = by_kind(tmp_path)
    assert [s for s, _ in tables] == [1, 2] and [s for s, _ in hists] == [1, 2]
    table = tables[0][1]
    for v, g in zip(variables, grads):
        row = table[names.variables.index(v.path)]
        np.testing.assert_allclose(row[WEIGHT], numpy_stats(v.numpy()), rtol=1e-5, atol=1e-7, equal_nan=True)
        np.testing.assert_allclose(row[GRADIENT], numpy_stats(g), rtol=1e-5, atol=1e-7, equal_nan=True)
    roots_row = table[names.variables.index(roots.path)]
    assert roots_row[GRADIENT][[NAN, INF]].tolist() == [1, 1]
    np.testing.assert_allclose(roots_row[GRADIENT][1], np.hypot(0.5, 0.25), rtol=1e-6)
    # The (global) gradient norm is over the finite values too, not NaN.
    finite = np.concatenate([g[np.isfinite(g)].ravel() for g in grads])
    np.testing.assert_allclose(table[-1, STATS.index("gradient/l2")], np.linalg.norm(finite), rtol=1e-5)
    assert_histograms_agree_with_tables(names, tables, hist_names, hists)
    assert [e[0] for e in grids] == [1, 2]
    width, height, png, info = grids[0][4]
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert json.loads(info)["scale"] == pytest.approx(np.nanmax(np.abs(np.where(np.isinf(poisoned), np.nan, poisoned))))
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (0, 0, 0) in colours and (255, 255, 0) in colours
