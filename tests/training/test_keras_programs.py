"""The applied gradient in the programs people write: training programs
adapted from the public Keras examples and guides (keras_programs.py), each
run for real with the callback (or `log()`) added as a user would add it.

For each: every variable that trained has rows, the logged steps are the
program's, with plain SGD the logged update is the learning rate times the
logged gradient (so the gradient is the one applied), the last logged
weights are the model's, and a healthy run raises no warning.
"""

import collections
import logging
import os
import re

import keras
import numpy as np
import pytest

from support import keras_programs
from support.events import read_events
import tb_weightnorm
from tb_weightnorm import diagnosis, schema
from tb_weightnorm.read import export
from tb_weightnorm.wire import metadata

LR = keras_programs.LR
PROGRAMS = sorted(keras_programs.PROGRAMS)


def _sgd(**kwargs):
    return keras.optimizers.SGD(LR, **kwargs)


def _logged(log_dir):
    """The wide table of the run in `log_dir` (a row per step and variable, a
    column per stat), without the (global) rows, and the global rows."""
    frame = tb_weightnorm.load(str(log_dir), layout="wide")
    is_global = frame.variable == schema.GLOBAL_ROW
    return frame[~is_global], frame[is_global]


def _tables_per_step(trained):
    """step -> how many norm tables the event files hold for it (load()
    keeps the last of a step, which would hide a second)."""
    run_dir = trained.log_dir if trained.callback is None else os.path.join(trained.log_dir, "train")
    counts = collections.Counter(
        step for step, _, tag, _, _ in read_events(run_dir) if tag.startswith(metadata.NORM_TABLE_TAG_PREFIX)
    )
    return dict(counts)


def _run(program, tmp_path, caplog, **kwargs):
    with caplog.at_level(logging.WARNING, logger="tb_weightnorm"):
        trained = keras_programs.PROGRAMS[program](str(tmp_path / program), **kwargs)
    warnings = [r.getMessage() for r in caplog.records if r.name == "tb_weightnorm" and r.levelno >= logging.WARNING]
    return trained, warnings


@pytest.mark.parametrize("program", PROGRAMS)
def test_with_plain_sgd_the_logged_gradient_is_the_applied_one(program, tmp_path, caplog):
    trained, warnings = _run(program, tmp_path, caplog, optimizer=_sgd)
    # Findings are the diagnosis' business (plain SGD need not suit these
    # models); what the callback says of itself (nothing logged, an
    # optimizer it cannot see) would be a failure here.
    assert not [w for w in warnings if w.startswith("tb_weightnorm:")], warnings
    rows, _ = _logged(trained.log_dir)
    # The program's steps, each once: a WGAN's critic, updated 3 times a
    # step, gets one table per step; a fine-tuning fit goes on after the first.
    assert sorted(rows.step.unique()) == trained.steps
    assert _tables_per_step(trained) == {step: 1 for step in trained.steps}
    # Coverage: every variable the program trains has rows with a gradient.
    paths = {v.path for v in trained.trained}
    with_gradient = set(rows[rows["gradient/l2"].notna()].variable.str.split("[").str[0])
    assert paths <= with_gradient, paths - with_gradient
    # The applied-gradient identity, row by row, step by step: W_after -
    # W_before is taken in float32, so it carries a rounding of a few ulps
    # of the weights themselves whatever the update's size.
    measured = rows[rows["gradient/l2"].notna()]
    # log() takes the update from its previous call: none at the first.
    first = trained.steps[0] if trained.callback is None else None
    assert measured[measured.step != first]["update/l2"].notna().all()
    measured = measured[measured["update/l2"].notna()]
    error = (measured["update/l2"] - LR * measured["gradient/l2"]).abs()
    bound = 0.01 * LR * measured["gradient/l2"] + 8 * np.finfo(np.float32).eps * measured["weight/l2"]
    assert (error <= bound).all(), measured[error > bound][["step", "variable", "gradient/l2", "update/l2"]]
    # The last logged weights are the model's, within float32's rounding of
    # a sum of millions of squares (ResNet50's kernels hold 2 M values).
    last = rows[rows.step == trained.steps[-1]].set_index("variable")["weight/l2"]
    for variable in trained.trained:
        if variable.path in last.index:
            np.testing.assert_allclose(
                last[variable.path], np.linalg.norm(np.asarray(variable.numpy(), np.float64)), rtol=2e-6,
                err_msg=variable.path,
            )


@pytest.mark.parametrize("program", ["vae", "gan", "wgan_gp", "fine_tuning", "accumulation", "transformer"])
def test_a_healthy_run_with_its_own_optimizer_raises_no_warning(program, tmp_path, caplog):
    keras.utils.set_random_seed(0)
    trained, warnings = _run(program, tmp_path, caplog)
    assert not warnings, warnings
    [history] = list(export.histories(str(tmp_path / program)))
    serious = [f for f in diagnosis.diagnose(history) if f.severity != "info"]
    assert not serious, [f.message for f in serious]


@pytest.mark.parametrize("new_callback", [False, True])
def test_fine_tuning_goes_on_after_the_first_fit(new_callback, tmp_path):
    # The second compile brings a new optimizer, counting from 0: its steps
    # must follow the first fit's, with the same callback or a new one.
    trained = keras_programs.fine_tuning(str(tmp_path), new_callback=new_callback)
    rows, _ = _logged(tmp_path)
    assert sorted(rows.step.unique()) == trained.steps  # 1 .. 16
    assert _tables_per_step(trained) == {step: 1 for step in trained.steps}  # nothing logged twice
    # The base, frozen in the first fit, gets rows (and gradients) in the second only.
    base = rows[rows.layer.str.startswith("base/")]
    assert base.step.min() == trained.steps[len(trained.steps) // 2]
    assert base["gradient/l2"].notna().all()


def test_accumulated_gradients_are_logged_once_per_update_as_their_mean(tmp_path, caplog):
    trained, _ = _run("accumulation", tmp_path, caplog, optimizer=_sgd)
    rows, _ = _logged(trained.log_dir)
    # One table per applied update, none per micro-batch (update = lr x the
    # logged gradient, checked above, holds only for the mean).
    assert sorted(rows.step.unique()) == trained.steps
    assert _tables_per_step(trained) == {step: 1 for step in trained.steps}
    [history] = list(export.histories(trained.log_dir))
    assert f"mean over {keras_programs.ACCUMULATED} accumulated micro-batches" in history.gradient_note


def test_two_optimizers_each_variable_from_the_one_that_updated_it(tmp_path, caplog):
    trained, _ = _run("gan", tmp_path, caplog, optimizer=_sgd)
    rows, global_rows = _logged(trained.log_dir)
    assert rows.layer.str.startswith("generator").any() and rows.layer.str.startswith("discriminator").any()
    assert rows["gradient/l2"].notna().all() and rows["update/l2"].gt(0).all()
    # The global gradient norm is over both optimizers' gradients.
    combined = rows.groupby("step")["gradient/l2"].apply(lambda g: np.sqrt((g.astype(np.float64) ** 2).sum()))
    np.testing.assert_allclose(global_rows.set_index("step")["gradient/l2"], combined, rtol=1e-5)
    [history] = list(export.histories(trained.log_dir))
    assert "d_optimizer" in history.gradient_note and "g_optimizer" in history.gradient_note


@pytest.mark.parametrize("settings", [{"steps_per_execution": 3}, {"run_eagerly": True}])
def test_two_optimizers_step_by_step_in_any_execution(settings, tmp_path, caplog):
    # 8 steps in executions of 3 (the last of each epoch cut short), or eagerly.
    trained, warnings = _run("gan", tmp_path, caplog, optimizer=_sgd, **settings)
    assert not [w for w in warnings if w.startswith("tb_weightnorm:")], warnings
    rows, _ = _logged(trained.log_dir)
    assert sorted(rows.step.unique()) == trained.steps
    assert _tables_per_step(trained) == {step: 1 for step in trained.steps}
    error = (rows["update/l2"] - LR * rows["gradient/l2"]).abs()
    assert (error <= 0.01 * LR * rows["gradient/l2"] + 8 * np.finfo(np.float32).eps * rows["weight/l2"]).all()


def test_rows_of_a_custom_layer_are_named_by_its_parts(tmp_path, caplog):
    trained, _ = _run("transformer", tmp_path, caplog)
    rows, _ = _logged(trained.log_dir)
    layers = set(rows.layer)
    block = [layer for layer in layers if re.match(r"transformer_block(_\d+)?/", layer)]
    # Attention, feed-forward and normalisation apart (Keras numbers repeated names).
    for part in (r"multi_head_attention(_\d+)?/query", r"sequential(_\d+)?/dense(_\d+)?", r"layer_normalization(_\d+)?"):
        assert any(re.search("/" + part + "$", layer) for layer in block), (part, block)


def _fit_one_dense(model_class, tmp_path, caplog, level, **compile_kwargs):
    """Fits a `model_class` (a keras.Model with its own train_step) of one
    Dense layer for 8 steps, logged every step; returns what the
    tb_weightnorm logger said at `level` and above."""
    inputs = keras.Input((3,))
    model = model_class(inputs, keras.layers.Dense(1)(inputs))
    model.compile(**compile_kwargs)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    with caplog.at_level(level, logger="tb_weightnorm"):
        model.fit(x, y, epochs=2, batch_size=8, verbose=0,
                  callbacks=[tb_weightnorm.WeightHealthCallback(str(tmp_path), every_n_steps=1)])
    return [r.getMessage() for r in caplog.records if r.name == "tb_weightnorm"]


def test_an_optimizer_kept_outside_the_model_is_found_and_hooked(tmp_path, caplog):
    # Made outside the model and used in train_step: model.optimizer (the
    # default compile() brings) never applies. The first logged step shows
    # it; from the next one on its updates are logged like any other.
    outside = keras.optimizers.SGD(LR)

    class Outside(keras.Model):
        def train_step(self, data):
            import tensorflow as tf

            x, y = data
            with tf.GradientTape() as tape:
                loss = keras.ops.mean((self(x) - y) ** 2)
            grads = tape.gradient(loss, self.trainable_variables)
            outside.apply(grads, self.trainable_variables)
            return {"loss": loss}

    said = _fit_one_dense(Outside, tmp_path, caplog, logging.INFO)
    assert [m for m in said if "without being model.optimizer" in m and "SGD" in m and "from step 2" in m], said
    assert not [r for r in caplog.records if r.name == "tb_weightnorm" and r.levelno >= logging.WARNING]
    rows, _ = _logged(tmp_path)
    assert sorted(rows.step.unique()) == list(range(2, 9))
    assert rows["gradient/l2"].notna().all()
    error = (rows["update/l2"] - LR * rows["gradient/l2"]).abs()
    assert (error <= 1e-4 * LR * rows["gradient/l2"] + 8 * np.finfo(np.float32).eps * rows["weight/l2"]).all()


def test_no_optimizer_applying_anything_is_said_once(tmp_path, caplog):
    # A train_step that writes the weights itself (as a third-party optimizer
    # bypassing apply would): nothing to log, and the callback says so.
    class ByHand(keras.Model):
        def train_step(self, data):
            import tensorflow as tf

            x, y = data
            with tf.GradientTape() as tape:
                loss = keras.ops.mean((self(x) - y) ** 2)
            for variable, grad in zip(self.trainable_variables, tape.gradient(loss, self.trainable_variables)):
                variable.assign_sub(LR * grad)
            return {"loss": loss}

    said = _fit_one_dense(ByHand, tmp_path, caplog, logging.WARNING, optimizer="sgd")
    assert len([m for m in said if "called apply()" in m]) == 1, said
