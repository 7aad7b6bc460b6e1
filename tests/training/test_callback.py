"""WeightHealthCallback in model.fit: the gradients logged are the ones applied."""

import logging
from unittest import mock

import keras
import numpy as np
import pytest

from support.events import numpy_stats, read_events
from support.manual_clock import timed_callback
from support.small_models import dense_regressor, regression_data
import tb_weightnorm
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata
from tb_weightnorm.writer import kernel_grids

LR = 0.05
STATS = schema.all_stat_names()
W_L2, G_L2 = STATS.index("weight/l2"), STATS.index("gradient/l2")
U_L2, U_RATIO = STATS.index("update/l2"), STATS.index("update/ratio")
WEIGHT = slice(0, 9)
GRADIENT = slice(STATS.index("gradient/l1"), STATS.index("gradient/inf_count") + 1)
DIST_INIT, DEAD = STATS.index("weight/dist_init"), STATS.index("gradient/dead_fraction")


def _data(n=96):
    return regression_data(n, 6, seed=0, noise=0.1)


def _model(**compile_kwargs):
    return dense_regressor(6, 8, seed=3, activation="tanh", optimizer=keras.optimizers.SGD(LR), compile_kwargs=compile_kwargs)


def _tables(run_dir):
    """The norm tables of a run, without their (global) row."""
    events = [e for e in read_events(run_dir) if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]
    names = metadata.norm_table_names(events[0][3].plugin_data.content)
    assert names.variables[-1] == schema.GLOBAL_ROW
    return names, [(e[0], e[4][:-1]) for e in events]


def _global_rows(run_dir):
    events = [e for e in read_events(run_dir) if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]
    return [(e[0], e[4][-1]) for e in events]


class _WeightsAfterEachBatch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [[v.numpy() for v in self.model.trainable_variables]]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([v.numpy() for v in self.model.trainable_variables])


def test_every_stat_matches_numpy_at_every_step(tmp_path):
    """Weights from the model itself after each step; the applied gradient from
    the weight change plain SGD made (g = (W_before - W_after) / lr)."""
    x, y = _data()
    model = _model()
    spy = _WeightsAfterEachBatch()
    model.fit(
        x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1), spy],
    )
    names, tables = _tables(str(tmp_path / "train"))
    assert names.variables[:-1] == tuple(v.path for v in model.trainable_variables)
    assert names.layers == ("hidden", "hidden", "out", "out", schema.GLOBAL_LAYER)
    assert names.stats == STATS
    assert [s for s, _ in tables] == list(range(1, 7))
    initial = spy.weights[0]
    for (step, table), (_, global_row) in zip(tables, _global_rows(str(tmp_path / "train"))):
        before, after = spy.weights[step - 1], spy.weights[step]
        grads = []
        for row, w_init, w0, w1 in zip(table, initial, before, after):
            grad = (w0 - w1) / LR
            grads.append(grad)
            np.testing.assert_allclose(row[WEIGHT], numpy_stats(w1), rtol=1e-5, atol=1e-7)
            # The gradient recovered from a float32 weight difference carries
            # that difference's rounding, hence the looser tolerance.
            np.testing.assert_allclose(row[GRADIENT], numpy_stats(grad), rtol=2e-3, atol=1e-5)
            np.testing.assert_allclose(row[U_L2], np.linalg.norm(w1 - w0), rtol=1e-4)
            np.testing.assert_allclose(row[U_RATIO], np.linalg.norm(w1 - w0) / np.linalg.norm(w1), rtol=1e-4)
            np.testing.assert_allclose(row[DIST_INIT], np.linalg.norm(w1 - w_init), rtol=1e-4, atol=1e-7)
            if w1.ndim == 2:
                assert row[DEAD] == np.mean(np.all(grad == 0, axis=0))
            else:
                assert np.isnan(row[DEAD])
        global_grad = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
        np.testing.assert_allclose(global_row[G_L2], global_grad, rtol=2e-3)
        np.testing.assert_allclose(global_row[W_L2], np.sqrt(sum((w**2).sum() for w in after)), rtol=1e-5)


@pytest.mark.parametrize(
    "jit_compile,steps_per_execution,every_n_steps",
    [(False, 1, 3), (True, 1, 1), (False, 4, 1), (True, 4, 1), (True, 4, 3)],
)
def test_update_is_lr_times_the_logged_gradient(tmp_path, jit_compile, steps_per_execution, every_n_steps):
    """With plain SGD the update is lr × the applied gradient, exactly. A gradient
    from a second pass or another batch would not satisfy this."""
    x, y = _data()
    model = _model(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    model.fit(
        x, y, batch_size=8, epochs=2, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=every_n_steps)],
    )
    _, tables = _tables(str(tmp_path / "train"))
    total_steps = 2 * len(x) // 8
    assert [s for s, _ in tables] == [s for s in range(1, total_steps + 1) if (s - 1) % every_n_steps == 0]
    for _, table in tables:
        assert np.all(table[:, G_L2] > 0)
        np.testing.assert_allclose(table[:, U_L2], LR * table[:, G_L2], rtol=1e-4)


def _assert_update_is_lr_times_gradient(table):
    # W_after - W_before is rounded to float32 at the weights' scale.
    atol = 8 * np.finfo(np.float32).eps * table[:, W_L2]
    assert np.all(np.abs(table[:, U_L2] - LR * table[:, G_L2]) <= 1e-4 * LR * table[:, G_L2] + atol)


def _counting_traces(model):
    """Counts the Python calls of the model's train_step: one per trace of a
    train function (a traced function runs no Python)."""
    calls = []
    train_step = model.train_step

    def counted(data):
        calls.append(1)
        return train_step(data)

    model.train_step = counted
    return calls


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_the_logging_step_is_traced_once_per_model_and_reused_by_later_fits(tmp_path, steps_per_execution):
    """A later fit of the same model, with a new callback of the same
    settings, traces nothing and logs the applied gradients as exactly; a
    fit without us runs Keras' own function; compile() or other settings
    trace a new logging step."""
    x, y = _data(100)  # batches of 8: 12 full, then one of 4
    model = _model(steps_per_execution=steps_per_execution)
    traces = _counting_traces(model)

    def fit(log_dir=None, **settings):
        callbacks = [tb_weightnorm.WeightHealthCallback(log_dir, **settings)] if log_dir else []
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
        return len(traces)

    settings = dict(every_n_steps=5, histogram_every_n_steps=10)
    first = fit(tmp_path / "a", **settings)
    assert first > 0
    assert fit(tmp_path / "b", **settings) == first
    assert fit(tmp_path / "b", **settings) == first  # the same run, continued
    # Steps count the optimizer's updates: run b holds the second and third fits.
    for run, steps in (("a", range(1, 27)), ("b", range(27, 79))):
        _, tables = _tables(str(tmp_path / run / "train"))
        assert [s for s, _ in tables] == [s for s in steps if (s - 1) % 5 == 0]
        for _, table in tables:
            _assert_update_is_lr_times_gradient(table)
        histograms = {e[0] for e in read_events(str(tmp_path / run / "train")) if e[2].startswith(metadata.HISTOGRAM_TAG_PREFIX)}
        assert histograms == {s for s in steps if (s - 1) % 10 == 0}
    # Without us: Keras' own function, traced for itself, nothing logged.
    plain = fit()
    assert plain > first and not hasattr(model.train_function, "executions")
    assert fit() == plain
    assert fit(tmp_path / "c", **settings) == plain
    # What is logged changes the logging step: traced anew.
    assert fit(tmp_path / "d", every_n_steps=5, histogram_every_n_steps=0) > plain
    # So does compile(), which makes Keras trace its own function anew too.
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", steps_per_execution=steps_per_execution)
    before_compile = len(traces)
    assert fit(tmp_path / "e", **settings) > before_compile
    _, tables = _tables(str(tmp_path / "e" / "train"))
    for _, table in tables:
        _assert_update_is_lr_times_gradient(table)


def test_a_new_run_on_a_reused_logging_step_measures_from_its_own_initial_weights(tmp_path):
    x, y = _data(32)
    model = _model()
    traces = _counting_traces(model)
    for run in ("a", "b"):
        callback = tb_weightnorm.WeightHealthCallback(tmp_path / run, every_n_steps=1, keep_initial_weights=True)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
        if run == "a":
            traced = len(traces)
    assert len(traces) == traced  # b reused a's logging step
    for run in ("a", "b"):
        _, tables = _tables(str(tmp_path / run / "train"))
        # After the run's first update, the distance from its start is that update.
        first = tables[0][1]
        np.testing.assert_allclose(first[:, DIST_INIT], first[:, U_L2], rtol=1e-5)
        assert np.all(tables[-1][1][:, DIST_INIT] > first[:, DIST_INIT])


def test_a_second_fit_continues_the_steps_and_the_hook_goes_away(tmp_path):
    x, y = _data(32)
    model = _model()
    callback = tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert "apply" not in vars(model.optimizer)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # without us: nothing logged
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    _, tables = _tables(str(tmp_path / "train"))
    assert [s for s, _ in tables] == [1, 2, 5, 6]
    for _, table in tables:
        np.testing.assert_allclose(table[:, U_L2], LR * table[:, G_L2], rtol=1e-4)


def test_uncompiled_model_is_a_clear_error(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback = tb_weightnorm.WeightHealthCallback(tmp_path)
    callback.set_model(model)
    with pytest.raises(ValueError, match="compile"):
        callback.on_train_begin()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_bad_every_n_steps_is_a_clear_error(tmp_path, bad):
    with pytest.raises(ValueError, match="every_n_steps"):
        tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=bad)


class _PoisonAt(keras.callbacks.Callback):
    """Writes a NaN into the hidden kernel before batch `batch` of epoch 2."""

    def __init__(self, batch):
        super().__init__()
        self.batch, self.epoch = batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == self.batch:
            kernel = self.model.get_layer("hidden").kernel
            kernel.assign(np.where(np.arange(kernel.shape[1]) == 0, np.nan, kernel.numpy()))


def test_callback_reports_new_findings_once_at_epoch_end(tmp_path, caplog):
    model = _model()
    x, y = _data()
    health = tb_weightnorm.WeightHealthCallback(str(tmp_path), every_n_steps=1, report="critical")
    with caplog.at_level("WARNING", logger="tb_weightnorm"):
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[health, _PoisonAt(2)])
    reports = [r.getMessage() for r in caplog.records if r.name == "tb_weightnorm"]
    # Training steps 1-6 are epoch 1; the poisoned batch is the 3rd of epoch 2: step 9.
    assert len(reports) == 1 and "nonfinite" in reports[0] and "step 9" in reports[0]
    assert [(f.rule, f.first_step, f.layer) for f in health.findings] == [("nonfinite", 9, "hidden")]


def test_callback_refuses_an_unknown_report_severity(tmp_path):
    with pytest.raises(ValueError, match="report must be one of info, warning, critical"):
        tb_weightnorm.WeightHealthCallback(str(tmp_path), report="loud")


def _conv_fit(tmp_path, epochs, epoch_seconds=0.0, drawing_seconds=0.1, **callback_kwargs):
    """Steps at which kernel grids were logged, over a fit of a tiny CNN whose
    steps take 1 ms, epochs `epoch_seconds` more and each drawing of the grids
    `drawing_seconds`, on a clock the test keeps."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    callback = tb_weightnorm.WeightHealthCallback(str(tmp_path), **callback_kwargs)
    clock, timed = timed_callback(callback, step_seconds=0.001, epoch_seconds=epoch_seconds)
    draw = kernel_grids.write_kernel_grid

    def slow_draw(*args, **kwargs):
        clock.advance(drawing_seconds)
        return draw(*args, **kwargs)

    with mock.patch.object(kernel_grids, "write_kernel_grid", slow_draw):
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[timed, callback])
    return [step for step, _, tag, _, _ in read_events(str(tmp_path / "train")) if tag.startswith(metadata.KERNEL_GRID_TAG_PREFIX)]


def test_kernel_grids_every_epoch_when_asked(tmp_path):
    assert _conv_fit(tmp_path, 3, kernel_grid_every_n_epochs=1) == [0, 2, 4, 6]


def test_automatic_kernel_grids_skip_epochs_too_short_to_pay_for_them(tmp_path):
    # Drawing takes 0.1 s, so drawing again waits for 20 s of training (0.5%);
    # epochs of 2 ms never get there, nor does the end of training.
    assert _conv_fit(tmp_path, 5) == [0]


def test_automatic_kernel_grids_come_back_once_enough_time_has_passed(tmp_path):
    # Epochs of 30 s pay for a drawing each, and the end of training does not
    # draw the last epoch's kernels twice.
    assert _conv_fit(tmp_path / "slow", 2, epoch_seconds=30.0) == [0, 2, 4]
    # Epochs of 12 s pay for one every second epoch: the time adds up.
    assert _conv_fit(tmp_path / "slower", 5, epoch_seconds=12.0) == [0, 4, 8]


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"log_dir": None}, TypeError, r"log_dir must be the path.*WeightHealthCallback\('logs/run1'\)"),
        ({"log_dir": "logs", "every_n_step": 5}, TypeError, "unknown keyword argument.*every_n_step.*include, exclude"),
        ({"log_dir": "logs", "options": "conv*"}, TypeError, "options must be a tb_weightnorm.LogOptions"),
        ({"log_dir": "logs", "options": tb_weightnorm.LogOptions(), "include": ["x"]}, TypeError, "not both"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        tb_weightnorm.WeightHealthCallback(**kwargs)


def test_a_sweep_of_models_in_one_process_reads_no_retracing_warning(tmp_path, caplog):
    # Each model traces its own logging step and buffer reader, from the
    # same code: TensorFlow would call that "retracing" after five models.
    x, y = _data(32)
    tf_logger = logging.getLogger("tensorflow")  # it may not propagate to the root logger
    tf_logger.addHandler(caplog.handler)
    try:
        for run in range(7):
            model = _model()
            callback = tb_weightnorm.WeightHealthCallback(tmp_path / str(run), every_n_steps=1, histogram_every_n_steps=1)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    finally:
        tf_logger.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    assert len(_tables(str(tmp_path / "6" / "train"))[1]) == 4
