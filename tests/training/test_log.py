"""tb_weightnorm.log() in custom training loops, read back from the event files."""

import keras
import numpy as np
from tensorboard.backend.event_processing import event_file_loader
import pytest
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2

from support.events import numpy_stats, read_events
import tb_weightnorm
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata


def _model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="hidden"), keras.layers.Dense(1, name="out")])


def _names(events):
    return metadata.norm_table_names(events[0][3].plugin_data.content)


WEIGHT_ONLY = {"keep_initial_weights": False}


def test_eager_log_writes_weight_stats_that_match_numpy(tmp_path):
    model = _model()
    writer = tf.summary.create_file_writer(str(tmp_path))
    logged_weights = []
    with writer.as_default():
        for step in range(3):
            assert bool(tb_weightnorm.log(model, step=step, **WEIGHT_ONLY))
            logged_weights.append([v.numpy() for v in model.trainable_variables])
            model.layers[0].kernel.assign_add(tf.ones_like(model.layers[0].kernel))
    writer.flush()
    events = read_events(str(tmp_path))
    assert [e[0] for e in events] == [0, 1, 2]
    names = _names(events)
    assert names.variables == tuple(v.path for v in model.trainable_variables)
    assert names.layers == ("hidden", "hidden", "out", "out")
    assert names.stats == tuple(f"weight/{s}" for s in schema.TENSOR_STATS)
    # The first event makes it a TENSOR series of our plugin; the later ones
    # carry no metadata at all (loaders keep a series' first).
    first = events[0][3]
    assert first.plugin_data.plugin_name == "weight_health"
    assert first.data_class == summary_pb2.DATA_CLASS_TENSOR
    (path,) = tmp_path.glob("events.out.tfevents.*")
    sizes = [v.metadata.ByteSize() for e in event_file_loader.EventFileLoader(str(path)).Load() for v in e.summary.value]
    assert sizes[0] > 0 and sizes[1:] == [0, 0]
    for _, _, tag, _, table in events:
        assert tag == metadata.norm_table_tag(names)
        assert table.shape == (4, 9) and table.dtype == np.float32
    for (_, _, _, _, table), weights in zip(events, logged_weights):
        for row, w in zip(table, weights):
            np.testing.assert_allclose(row, numpy_stats(w), rtol=1e-5, atol=1e-7)


def test_log_inside_tf_function_with_gradients_and_default_step(tmp_path):
    model = _model()
    optimizer = keras.optimizers.SGD(0.05)
    x = tf.random.normal([16, 5], seed=2)
    y = tf.random.normal([16, 1], seed=3)
    writer = tf.summary.create_file_writer(str(tmp_path))
    grads_seen = []

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, **WEIGHT_ONLY)
        optimizer.apply(grads, model.trainable_variables)
        return grads

    # As with tf.summary.scalar, a default step read inside tf.function must be
    # a variable (a Python int would be frozen into the traced graph).
    step_var = tf.Variable(0, dtype=tf.int64)
    tf.summary.experimental.set_step(step_var)
    for step in range(4):
        step_var.assign(step * 10)
        weights_before = [v.numpy() for v in model.trainable_variables]
        grads = [g.numpy() for g in train_step()]
        grads_seen.append((weights_before, grads))
    tf.summary.experimental.set_step(None)
    writer.flush()
    events = read_events(str(tmp_path))
    assert [e[0] for e in events] == [0, 10, 20, 30]
    names = _names(events)
    assert names.stats[9:18] == tuple(f"gradient/{s}" for s in schema.TENSOR_STATS)
    assert names.stats[18] == "gradient/dead_fraction"
    assert names.variables[-1] == schema.GLOBAL_ROW
    for (_, _, _, _, table), (weights, grads) in zip(events, grads_seen):
        for row, w, g in zip(table, weights, grads):
            np.testing.assert_allclose(row[:9], numpy_stats(w), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(row[9:18], numpy_stats(g), rtol=1e-5, atol=1e-7)
        global_grad = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
        np.testing.assert_allclose(table[-1, 10], global_grad, rtol=1e-5)


def test_none_gradient_is_logged_as_not_measured(tmp_path):
    model = _model()
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    grads[1] = None
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        tb_weightnorm.log(model, gradients=grads, step=0)
    events = read_events(str(tmp_path))
    stats, table = _names(events).stats, events[0][4]
    gradient_columns = [i for i, s in enumerate(stats) if s.startswith("gradient/")]
    assert np.isnan(table[1, gradient_columns]).all()
    assert table[0, stats.index("gradient/l2")] == pytest.approx(np.sqrt(20.0))


def test_list_of_variables(tmp_path):
    a = tf.Variable([3.0, 4.0], name="alpha")
    b = keras.Variable(np.ones([2, 2], np.float32), name="beta")
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        tb_weightnorm.log([a, b], step=5)
    events = read_events(str(tmp_path))
    assert _names(events).variables == ("alpha", "beta")
    assert events[0][4][0, 1] == pytest.approx(5.0)


def test_no_writer_is_a_clear_error():
    with pytest.raises(RuntimeError, match="create_file_writer"):
        tb_weightnorm.log(_model(), step=0)


def test_no_step_is_a_clear_error(tmp_path):
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        with pytest.raises(ValueError, match="set_step"):
            tb_weightnorm.log(_model())


def test_gradients_that_do_not_match_are_a_clear_error(tmp_path):
    model = _model()
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        with pytest.raises(ValueError, match="trainable_variables"):
            tb_weightnorm.log(model, gradients=[tf.zeros([1])], step=0)


def test_unbuilt_model_and_wrong_type_are_clear_errors(tmp_path):
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        with pytest.raises(ValueError, match="not built"):
            tb_weightnorm.log(keras.Sequential([keras.layers.Dense(2)]), step=0)
        with pytest.raises(TypeError, match="keras.Model"):
            tb_weightnorm.log("my model", step=0)


def _misuses(model):
    """(call, exception, what the message must say) of each misuse of log()."""
    kernel, bias = model.trainable_variables[:2]
    return {
        "a dict of variables": (lambda: tb_weightnorm.log({"k": kernel}, step=0), TypeError, "model.trainable_variables"),
        "a string": (lambda: tb_weightnorm.log("model", step=0), TypeError, "keras.Model"),
        "a numpy array": (lambda: tb_weightnorm.log(np.ones([5, 4]), step=0), TypeError, "list of variables"),
        "a list of numpy arrays": (lambda: tb_weightnorm.log([np.ones([5, 4])], step=0), TypeError, r"tf\.Variable or keras\.Variable"),
        "a list of tensors": (lambda: tb_weightnorm.log([tf.ones([5, 4])], step=0), TypeError, r"tf\.Variable or keras\.Variable"),
        "one tensor as gradients": (
            lambda: tb_weightnorm.log(model, gradients=tf.ones([5, 4]), step=0), TypeError, r"a list with one gradient"),
        "a dict of gradients": (
            lambda: tb_weightnorm.log(model, gradients={"k": tf.ones([5, 4])}, step=0), TypeError, "a list with one gradient"),
        "gradients in another order": (
            lambda: tb_weightnorm.log(model, gradients=[tf.ones([4]), tf.ones([5, 4]), tf.ones([4, 1]), tf.ones([1])], step=0),
            ValueError, r"gradient 0 has shape \(4,\) but its variable .*kernel has shape \(5, 4\).*order"),
        "strings as gradients": (
            lambda: tb_weightnorm.log(model, gradients=["a", "b", "c", "d"], step=0), TypeError, "tape.gradient"),
        "a string step": (lambda: tb_weightnorm.log(model, step="ten"), TypeError, "step must be an integer"),
        "a float step": (lambda: tb_weightnorm.log(model, step=1.5), TypeError, "step must be an integer"),
        "a float tensor step": (lambda: tb_weightnorm.log(model, step=tf.constant(1.0)), TypeError, r"tf\.cast\(step, tf\.int64\)"),
        "a callback keyword": (lambda: tb_weightnorm.log(model, step=0, every_n_steps=10), TypeError, "call it every N steps"),
        "options of the wrong type": (lambda: tb_weightnorm.log(model, step=0, options={"include": "x"}), TypeError, "LogOptions"),
    }


@pytest.mark.parametrize("misuse", list(_misuses(_model())))
def test_misuse_is_a_clear_error_and_loses_nothing_logged(tmp_path, misuse):
    model = _model()
    call, error, message = _misuses(model)[misuse]
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tb_weightnorm.log(model, step=1)
        with pytest.raises(error, match=message):
            call()
        tb_weightnorm.log(model, step=2)
    writer.flush()
    assert [e[0] for e in read_events(str(tmp_path))] == [1, 2]


def test_numpy_gradients_are_taken_as_tensors(tmp_path):
    model = _model()
    grads = [np.full(v.shape, 2.0, np.float32) for v in model.trainable_variables]
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        tb_weightnorm.log(model, gradients=grads, step=0)
    events = read_events(str(tmp_path))
    stats = _names(events).stats
    assert events[0][4][0, stats.index("gradient/l2")] == pytest.approx(2.0 * np.sqrt(20))


@pytest.mark.parametrize(
    "options",
    [{}, {"keep_initial_weights": False}, {"stats": ["*/l2", "update/*"], "exclude": ["*/bias"]}],
    ids=["defaults", "no_weight_copies", "chosen_stats"],
)
def test_log_and_the_callback_log_the_same_table_for_the_same_options(tmp_path, options):
    """Both take their table from one plan (`table.spec_for`): the same rows,
    columns and histograms, except the update, which log() can only compute
    from a copy of the weights it may keep (the callback reads the weights
    before the update inside the optimizer's step)."""
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    callback = tb_weightnorm.WeightHealthCallback(
        str(tmp_path / "fit"), every_n_steps=1, histogram_every_n_steps=1, report=None, **options
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    writer = tf.summary.create_file_writer(str(tmp_path / "loop"))
    with writer.as_default():
        tb_weightnorm.log(model, gradients=grads, step=0, histogram_every_n_steps=1, **options)
    writer.flush()

    def names_and_histogram_tag(run_dir):
        events = read_events(str(run_dir))
        tables = [e for e in events if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]
        (histogram_tag,) = {e[2] for e in events if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)}
        return _names(tables), histogram_tag

    fit, fit_histograms = names_and_histogram_tag(tmp_path / "fit" / "train")
    loop, loop_histograms = names_and_histogram_tag(tmp_path / "loop")
    assert loop.variables == fit.variables and loop.layers == fit.layers
    assert loop_histograms == fit_histograms
    keeps_copies = options.get("keep_initial_weights", True)  # a small model keeps them by default
    assert any(s.startswith("update/") for s in fit.stats)
    assert loop.stats == tuple(s for s in fit.stats if keeps_copies or not s.startswith("update/"))
    assert ("weight/dist_init" in fit.stats) == ("weight/dist_init" in loop.stats) == (
        keeps_copies and "stats" not in options
    )
