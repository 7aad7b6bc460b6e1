"""Every kind of variable is logged or left out cleanly: integer and boolean
ones, empty ones, float16/bfloat16/float64 ones, frozen and unused layers,
mixed precision steps the loss scale skips, and a variable of 100 million
values, whose histograms and norms are computed where it lives, a piece at a
time, without a copy of it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from support.applied import assert_update_is_lr_times_gradient, norm_tables
from support.events import numpy_stats, read_events
import tb_weightnorm
from tb_weightnorm.wire import metadata

LR = 0.05
WEIGHT = slice(0, 9)
HUGE_SCRIPT = Path(__file__).parent.parent / "support" / "scripts" / "log_huge_variable.py"


def _variables():
    return {
        "f32": tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5, name="f32"),
        "i32": tf.Variable([1, -2, 3], dtype=tf.int32, name="i32"),
        "flag": tf.Variable([True, False, True], name="flag"),
        "empty": tf.Variable(tf.zeros([0, 4]), name="empty"),
        "half": tf.Variable(tf.constant([0.5, -1.25, 3.0], tf.float16), name="half"),
        "bf16": tf.Variable(tf.constant([0.5, -1.25, 3.0], tf.bfloat16), name="bf16"),
        "f64": tf.Variable([1e-3, 2.0], dtype=tf.float64, name="f64"),
        "u8": tf.Variable([5, 7], dtype=tf.uint8, name="u8"),
    }


def _changed(v):
    """A new value for each variable: a step's change, small where it can be."""
    return {
        "f32": v["f32"].numpy() + 0.5,
        "i32": v["i32"].numpy() + np.int32([1, 0, -1]),
        "flag": np.logical_not(v["flag"].numpy()),
        "empty": v["empty"].numpy(),
        "half": v["half"].numpy() + np.float16(0.001),
        "bf16": v["bf16"].numpy() - tf.constant(0.25, tf.bfloat16).numpy(),
        "f64": v["f64"].numpy() + 1e-12,
        "u8": np.uint8([3, 9]),  # 5 -> 3 must not wrap around to 254
    }


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_log_every_dtype_empty_and_boolean_variable(tmp_path, mode):
    v = _variables()
    names_in_order = list(v)
    writer = tf.summary.create_file_writer(str(tmp_path))

    def log(step):
        with writer.as_default():
            return tb_weightnorm.log(list(v.values()), step=step, histogram_every_n_steps=1, histogram_bins=4,
                                     keep_initial_weights=True)

    if mode == "function":
        log = tf.function(log)
    before = {k: x.numpy() for k, x in v.items()}
    log(tf.constant(1, tf.int64))
    for k, value in _changed(v).items():
        v[k].assign(value)
    log(tf.constant(2, tf.int64))
    writer.flush()
    names, tables = norm_tables(tmp_path)
    assert names.variables == tuple(names_in_order) and [s for s, _ in tables] == [1, 2]
    stats = names.stats
    update, dist = stats.index("update/l2"), stats.index("weight/dist_init")
    for i, k in enumerate(names_in_order):
        now = v[k].numpy().astype(np.float64)
        np.testing.assert_allclose(tables[1][1][i, WEIGHT], numpy_stats(now), rtol=1e-6, atol=1e-12, equal_nan=True)
        change = np.linalg.norm(now - before[k].astype(np.float64))
        # The difference is taken in float32 (float64 for float64): exact for
        # these small changes, no wrap-around, no float16 rounding.
        np.testing.assert_allclose(tables[1][1][i, [update, dist]], [change, change], rtol=1e-6, atol=1e-20)
    assert tables[1][1][names_in_order.index("u8"), update] == pytest.approx(np.hypot(2, 2))
    assert tables[1][1][names_in_order.index("f64"), update] == pytest.approx(1e-12, rel=1e-3)
    hists = [e for e in read_events(str(tmp_path)) if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    for step_hist in hists:
        counts = step_hist[4][0, :, 2:].sum(axis=1)
        np.testing.assert_array_equal(counts, [x.numpy().size for x in v.values()])


class _Odd(keras.layers.Layer):
    """A layer with the variables layers hold besides kernels: a step counter
    (int), a flag (bool), an empty weight, float16 and bfloat16 statistics,
    and a weight its output does not use."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 3), name="kernel")
        self.counter = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="counter")
        self.flag = self.add_weight(shape=(), dtype="bool", initializer="zeros", trainable=False, name="flag")
        self.empty = self.add_weight(shape=(0, 3), name="empty")
        self.half = self.add_weight(shape=(3,), dtype="float16", initializer="ones", trainable=False, name="half")
        self.bf16 = self.add_weight(shape=(3,), dtype="bfloat16", initializer="ones", trainable=False, name="bf16")
        self.unused = self.add_weight(shape=(2,), name="unused")

    def call(self, x):
        self.counter.assign_add(1)
        self.flag.assign(tf.logical_not(self.flag))
        self.half.assign(tf.cast(tf.reduce_mean(x, axis=0)[:3], "float16"))
        return tf.matmul(x, self.kernel)


def test_fit_with_a_frozen_branch_and_odd_variables(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    frozen = keras.layers.Dense(3, name="frozen")
    frozen.trainable = False
    outputs = keras.layers.Dense(1, name="head")(
        keras.layers.Concatenate()([_Odd(name="odd")(inputs), frozen(inputs)])
    )
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(32, 1)).astype("float32")
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
            tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1,
                                               trainable_only=False)])
    names, tables, checked = assert_update_is_lr_times_gradient(tmp_path / "train", LR)
    assert [s for s, _ in tables] == [1, 2, 3, 4]
    odd = model.get_layer("odd")
    # Integer and boolean variables are state, not weights: not logged.
    assert odd.counter.path not in names.variables and odd.flag.path not in names.variables
    assert int(odd.counter.numpy()) > 0
    g, w = names.stats.index("gradient/l2"), names.stats.index("weight/l2")
    last = tables[-1][1]
    for variable in (odd.empty, odd.unused, frozen.kernel, frozen.bias, odd.half, odd.bf16):
        row = last[names.variables.index(variable.path)]
        assert np.isnan(row[g]), variable.path  # no gradient: not measured
        np.testing.assert_allclose(row[WEIGHT], numpy_stats(variable.numpy()), rtol=1e-6, equal_nan=True)
    assert last[names.variables.index(odd.empty.path), w] == 0
    assert checked == 4 * 3  # odd/kernel and head's kernel and bias, at every step
    hists = [e for e in read_events(str(tmp_path / "train")) if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    assert [e[0] for e in hists] == [1, 2, 3, 4]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_model_with_float16_or_bfloat16_variables(tmp_path, dtype):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype=dtype),
                              keras.layers.Dense(8, activation="tanh", name="h", dtype=dtype),
                              keras.layers.Dense(1, name="out", dtype=dtype)])
    assert model.trainable_variables[0].dtype == dtype
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(dtype)
    y = np.random.default_rng(1).normal(size=(32, 1)).astype(dtype)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
        tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1)])
    names, tables = norm_tables(tmp_path / "train")
    assert [s for s, _ in tables] == [1, 2, 3, 4]
    last = tables[-1][1]
    for row, v in zip(last, model.trainable_variables):
        np.testing.assert_allclose(row[WEIGHT], numpy_stats(np.asarray(v.numpy(), np.float64)), rtol=1e-6)
    g, u = names.stats.index("gradient/l2"), names.stats.index("update/l2")
    # The update is taken in float32 from the stored weights, so it is the
    # applied lr x gradient up to the rounding of the weights themselves.
    rows = last[:-1]
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype]
    bound = 0.05 * LR * rows[:, g] + eps * rows[:, names.stats.index("weight/l2")]
    assert (np.abs(rows[:, u] - LR * rows[:, g]) <= bound).all()


def test_mixed_precision_skips_overflowing_steps_and_logs_the_unscaled_applied_gradients(tmp_path):
    """A loss scale far too high: the first steps' scaled float16 gradients
    overflow and the LossScaleOptimizer skips them (halving the scale). Those
    updates never happen, so nothing is logged for them; the steps that are
    applied are logged with their unscaled gradient, finite."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="h"),
                                  keras.layers.Dense(1, name="out", dtype="float32")])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(LR), initial_scale=2.0**24)
        model.compile(optimizer=optimizer, loss="mse")
        x = np.random.default_rng(0).normal(size=(160, 6)).astype("float32")
        y = np.random.default_rng(1).normal(size=(160, 1)).astype("float32")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
            tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    applied = int(optimizer.inner_optimizer.iterations.numpy())
    assert 0 < applied < 20  # some of the 20 steps were skipped
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR, rtol=1e-3)
    assert [s for s, _ in tables] == list(range(1, applied + 1))
    counts = [names.stats.index(s) for s in ("gradient/nan_count", "gradient/inf_count")]
    for _, table in tables:
        assert not table[:-1][:, counts].any()
        # A scaled gradient would be thousands of times the unscaled one.
        assert table[-1, names.stats.index("gradient/l2")] < 100


def test_a_100_million_value_variable_is_logged_where_it_lives_without_a_copy(tmp_path):
    """A 400 MB float32 variable, updated sparsely (as an optimizer updates an
    embedding table, after which every full read copies it), logged with
    norms and histograms in a tf.function. Nothing the graph hands to the
    host is larger than the small tables, and logging it raised the peak
    memory of the process by far less than the variable's size: no copy of
    it, and no temporary of its size, was made."""
    env = dict(os.environ, MALLOC_ARENA_MAX="2")  # keeps glibc's per-thread slack out of the peak
    result = subprocess.run(
        [sys.executable, str(HUGE_SCRIPT), str(tmp_path / "huge")], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for shape in out["to_host"]:
        assert None not in shape and int(np.prod(shape)) <= 1000, out["to_host"]
    assert out["peak_growth"] < out["variable_bytes"] / 4, out["peak_growth"]
    # The numbers are right: the variable is 100,000 rows of the same 1,000
    # values, with a NaN and an +Inf written over the first two of them.
    row = (np.arange(1000, dtype=np.float32) / np.float32(1000) - np.float32(0.5)).astype(np.float64)
    replaced = row[:2]
    count = 100_000 * 1000 - 2
    total = 100_000 * row.sum() - replaced.sum()
    squares = 100_000 * (row**2).sum() - (replaced**2).sum()
    mean = total / count
    expected = {
        "weight/l1": 100_000 * np.abs(row).sum() - np.abs(replaced).sum(), "weight/l2": np.sqrt(squares),
        "weight/linf": 0.5, "weight/mean": mean, "weight/std": np.sqrt(squares / count - mean**2),
        "weight/min": -0.5, "weight/max": row.max(), "weight/nan_count": 1, "weight/inf_count": 1,
    }
    stats = dict(zip(out["stats"], out["table"][0]))
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-8), name  # abs: the mean nearly cancels
    histogram = np.array(out["histogram"])[0, 0]
    counts = 100_000 * np.histogram(row, 32, range=(row.min(), row.max()))[0]
    counts[0] -= 2  # both replaced values were in the first bucket
    np.testing.assert_array_equal(histogram[2:34], counts)
    np.testing.assert_array_equal(histogram[34:], [1, 0, 1])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_large_embedding_is_read_a_piece_at_a_time_inside_the_train_step(tmp_path, monkeypatch, jit_compile):
    """With chunks of 64 values, a 50 x 4 embedding table (updated sparsely,
    so a full read would copy it) is a large variable: its weight stats,
    histograms and update come from pieces read after the optimizer's update,
    and match the weights and the applied step."""
    from tb_weightnorm.graph import tensor_groups

    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(50, 4, name="embed"),
                              keras.layers.Flatten(), keras.layers.Dense(1, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", jit_compile=jit_compile)
    x = np.random.default_rng(0).integers(0, 50, size=(32, 3)).astype("int32")
    y = np.random.default_rng(1).normal(size=(32, 1)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
        tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, histogram_every_n_steps=1, histogram_bins=5)])
    names, tables, _ = assert_update_is_lr_times_gradient(tmp_path / "train", LR, rtol=1e-3)
    assert [s for s, _ in tables] == [1, 2, 3, 4]
    table = model.get_layer("embed").embeddings
    row = tables[-1][1][names.variables.index(table.path)]
    np.testing.assert_allclose(row[WEIGHT], numpy_stats(table.numpy()), rtol=1e-5)
    hists = [e for e in read_events(str(tmp_path / "train")) if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)]
    assert hists[-1][4][0, 0, 2:].sum() == 200
