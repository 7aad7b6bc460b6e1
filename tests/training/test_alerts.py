"""Alerts: WeightHealthCallback(stop_on=...) stops (or raises) at the step a
finding appears, saves the last healthy weights first, and gets along with
Keras' EarlyStopping and ModelCheckpoint in the same fit. Real training."""

import logging
import os

import keras
import numpy as np
import pytest

from support.events import read_events
from support.small_models import dense_regressor, regression_data
import tb_weightnorm
from tb_weightnorm import diagnosis
from tb_weightnorm.read import export
from tb_weightnorm.wire import metadata
from tb_weightnorm.writer.alerts import AlertPolicy, WeightHealthAlert

BATCH, SAMPLES = 16, 96  # 6 steps an epoch


def _data():
    return regression_data(SAMPLES, 6, seed=0, noise=0.1)


def _model(learning_rate=0.01, **compile_kwargs):
    return dense_regressor(
        6, 8, seed=7, activation="tanh", name="alert_mlp", optimizer=keras.optimizers.SGD(learning_rate),
        compile_kwargs=compile_kwargs,
    )


class _WeightsByStep(keras.callbacks.Callback):
    """model.weights after every train function call, by optimizer step."""

    def on_train_begin(self, logs=None):
        self.at = {int(self.model.optimizer.iterations.numpy()): self._weights()}

    def on_train_batch_end(self, batch, logs=None):
        self.at[int(self.model.optimizer.iterations.numpy())] = self._weights()

    def _weights(self):
        return [v.numpy() for v in self.model.weights]


class _InfBeforeStep(keras.callbacks.Callback):
    """Writes +Inf into the hidden kernel just before optimizer step `step` runs."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step - 1:
            kernel = self.model.get_layer("hidden").kernel
            value = kernel.numpy()
            value[0, 0] = np.inf
            kernel.assign(value)


def _saved_weights(path):
    model = _model()
    model.load_weights(path)
    return [v.numpy() for v in model.weights]


def _logged_steps(run_dir):
    return [e[0] for e in read_events(run_dir) if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]


def _assert_same_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def test_an_inf_stops_training_at_its_step_beside_checkpoint_and_early_stopping(tmp_path, caplog):
    bad = 10  # the 4th step of epoch 2
    x, y = _data()
    model = _model()
    spy = _WeightsByStep()
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "ckpt-{epoch:02d}.weights.h5"), save_weights_only=True
    )
    early = keras.callbacks.EarlyStopping(monitor="loss", patience=100)
    callback = tb_weightnorm.WeightHealthCallback(tmp_path / "logs", every_n_steps=1, stop_on="critical")
    with caplog.at_level(logging.ERROR, logger="tb_weightnorm"):
        history = model.fit(
            x, y, batch_size=BATCH, epochs=5, shuffle=False, verbose=0,
            callbacks=[checkpoint, early, callback, _InfBeforeStep(bad), spy],
        )

    assert int(model.optimizer.iterations.numpy()) == bad
    alert = callback.alert
    assert (alert.finding.rule, alert.finding.severity, alert.finding.layer) == ("nonfinite", "critical", "hidden")
    assert alert.finding.variable == "alert_mlp/hidden/kernel"
    assert (alert.step, alert.finding.first_step, alert.healthy_step, alert.action) == (bad, bad, bad - 1, "stop")
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    for words in (f"alert at step {bad}", "critical nonfinite", "layer hidden (alert_mlp/hidden/kernel)",
                  f"weights of step {bad - 1}", alert.weights_path, "Stopping training"):
        assert words in record.getMessage()

    # The weights saved are those after the last healthy step, finite, loadable by Keras.
    assert alert.weights_path == os.path.join(str(tmp_path / "logs"), "train", "tb_weightnorm", "last_healthy.weights.h5")
    saved = _saved_weights(alert.weights_path)
    assert all(np.isfinite(w).all() for w in saved)
    _assert_same_weights(saved, spy.at[bad - 1])
    # The model itself is left as training left it (with its Inf).
    assert not np.isfinite(model.get_layer("hidden").kernel.numpy()).all()

    # Everything logged up to the bad step is on disk.
    assert _logged_steps(str(tmp_path / "logs" / "train")) == list(range(1, bad + 1))
    # Keras' callbacks did their part: two epochs ran (the second cut short) and each was checkpointed.
    assert history.epoch == [0, 1]
    assert sorted(os.listdir(tmp_path))[:2] == ["ckpt-01.weights.h5", "ckpt-02.weights.h5"]
    _assert_same_weights(_saved_weights(str(tmp_path / "ckpt-01.weights.h5")), spy.at[6])
    assert early.stopped_epoch == 0 and early.wait == 0


def test_a_learning_rate_of_1e4_stops_at_the_first_critical_finding(tmp_path):
    x, y = _data()
    model = _model(learning_rate=1e4)
    spy = _WeightsByStep()
    callback = tb_weightnorm.WeightHealthCallback(
        tmp_path, every_n_steps=1, stop_on="critical", healthy_weights_path=tmp_path / "healthy.weights.h5"
    )
    model.fit(x, y, batch_size=BATCH, epochs=5, shuffle=False, verbose=0, callbacks=[callback, spy])
    stopped = int(model.optimizer.iterations.numpy())
    assert stopped < 30 and callback.alert is not None

    # The diagnosis of the logged tables, one more logged step at a time, first turns critical there.
    [history] = list(export.histories(str(tmp_path)))
    first_critical = next(
        int(history.steps[n - 1])
        for n in range(1, len(history.steps) + 1)
        if any(f.severity == "critical" and f.ongoing for f in diagnosis.diagnose(history.head(n)))
    )
    assert stopped == callback.alert.step == first_critical == history.steps[-1]
    assert callback.alert.healthy_step == stopped - 1
    saved = _saved_weights(str(tmp_path / "healthy.weights.h5"))
    assert all(np.isfinite(w).all() for w in saved)
    _assert_same_weights(saved, spy.at[stopped - 1])


def test_on_alert_raise_raises_from_fit_with_everything_logged_and_the_hook_gone(tmp_path):
    bad = 4
    x, y = _data()
    model = _model()
    callback = tb_weightnorm.WeightHealthCallback(
        tmp_path, every_n_steps=1, stop_on=["nonfinite"], on_alert="raise", report=None
    )
    with pytest.raises(WeightHealthAlert, match=f"alert at step {bad}: critical nonfinite") as raised:
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[callback, _InfBeforeStep(bad)])
    assert raised.value.alert is callback.alert and callback.alert.healthy_step == bad - 1
    assert _logged_steps(str(tmp_path / "train")) == list(range(1, bad + 1))
    assert "apply" not in vars(model.optimizer)  # the optimizer is as it was before the fit
    assert os.path.exists(callback.alert.weights_path)


def test_with_steps_per_execution_the_healthy_weights_are_those_of_an_execution_end(tmp_path):
    """Three steps run per call of the train function; the weights of step 7
    and 8 are never in the model between calls, those of step 6 are."""
    x, y = _data()
    model = _model(steps_per_execution=3)
    spy = _WeightsByStep()
    callback = tb_weightnorm.WeightHealthCallback(tmp_path, every_n_steps=1, stop_on="critical")
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[callback, _InfBeforeStep(7), spy])
    alert = callback.alert
    assert (alert.finding.first_step, alert.step, alert.healthy_step) == (7, 9, 6)
    assert int(model.optimizer.iterations.numpy()) == 9
    _assert_same_weights(_saved_weights(alert.weights_path), spy.at[6])


def test_a_healthy_model_trains_untouched_and_early_stopping_still_decides(tmp_path):
    x, y = _data()

    def fit(callbacks, epochs=4):
        model = _model()
        history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
        return model, history

    watched = tb_weightnorm.WeightHealthCallback(tmp_path / "a", every_n_steps=1, stop_on="warning")
    model, history = fit([watched])
    plain, _ = fit([])
    assert history.epoch == [0, 1, 2, 3] and watched.alert is None and watched.findings == []
    for a, b in zip(model.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)

    # An EarlyStopping that gives up after one epoch without a huge improvement.
    def early():
        return keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=1)

    alone, watched_early = early(), early()
    _, history_alone = fit([alone], epochs=6)
    _, history_watched = fit(
        [watched_early, tb_weightnorm.WeightHealthCallback(tmp_path / "b", every_n_steps=1, stop_on="warning")],
        epochs=6,
    )
    assert history_watched.epoch == history_alone.epoch == [0, 1]
    assert watched_early.stopped_epoch == alone.stopped_epoch == 1


@pytest.mark.parametrize(
    "stop_on, floors",
    [
        ("critical", {rule: "critical" for rule in diagnosis.RULES}),
        (["nonfinite", "exploding_gradients:critical"], {"nonfinite": "info", "exploding_gradients": "critical"}),
    ],
)
def test_stop_on_reads_a_severity_or_rules(stop_on, floors):
    assert dict(AlertPolicy.parse(stop_on).floors) == floors


def _finding(rule="nonfinite", severity="critical", ongoing=True, first_step=3):
    return diagnosis.Finding(rule, severity, "dense", "", first_step, 5, 1.0, 0.0, "message", ongoing)


def test_an_alert_needs_a_new_finding_that_counts_and_still_holds():
    policy = AlertPolicy.parse(["nonfinite", "dead_units:critical"])
    assert policy.new_alert([_finding(), _finding("dead_units")], set()) == _finding()
    assert policy.new_alert([_finding("dead_units", "warning"), _finding("stagnant_layer")], set()) is None
    assert policy.new_alert([_finding(ongoing=False)], set()) is None
    assert policy.new_alert([_finding()], {("nonfinite", "dense", "", 3)}) is None
    assert policy.holds([_finding()]) and not policy.holds([_finding(ongoing=False)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stop_on": "error"}, "stop_on must be a severity \\(info, warning, critical\\)"),
        ({"stop_on": ["exploding"]}, "unknown rule 'exploding'; the rules are nonfinite, exploding_gradients"),
        ({"stop_on": ["nonfinite:fatal"]}, "unknown severity"),
        ({"stop_on": []}, "non-empty list"),
        ({"stop_on": "critical", "on_alert": "ignore"}, "on_alert must be one of stop, raise"),
        ({"stop_on": "critical", "healthy_weights_path": "w.h5"}, "must end in '.weights.h5'"),
    ],
)
def test_bad_alert_options_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb_weightnorm.WeightHealthCallback(tmp_path, **kwargs)
