"""`log()`: the health of a model's weights (and gradients) at one step of a
custom training loop, written to the default `tf.summary` writer.

`WeightHealthCallback` is the same for `model.fit`. `log()` keeps, between
calls, the copies of the weights its update and `weight/dist_init` columns
need (the callback's optimizer hook reads the weights before the update
inside the step instead).
"""

from __future__ import annotations

import weakref
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import model_variables, stats, table, tf_state
from tb_weightnorm.graph.tf_state import plain_variable
from tb_weightnorm.writer import summary
from tb_weightnorm.writer.kernel_grids import write_kernel_grid
from tb_weightnorm.writer.options import LogOptions, every


class _WeightCopies:
    """Copies of variables logged with `log()`, kept between calls: W_0 (taken
    the first time a variable is logged) or W at the previous call."""

    def __init__(self, name: str):
        self._name = name
        # Keyed by id: Keras variables are not hashable. An entry goes when its
        # variable does.
        self._copies = {}

    def of(self, variables) -> dict:
        """id(variable) -> (copy, seen flag), both tf.Variables, made on first use."""
        out = {}
        for variable in variables:
            key = id(variable)
            entry = self._copies.get(key)
            if entry is None:
                with tf.init_scope():
                    value = tf.convert_to_tensor(variable)
                copy = plain_variable(value, self._name)
                seen = plain_variable(False, self._name + "_seen")
                entry = self._copies[key] = (copy, seen)
                weakref.finalize(variable, self._copies.pop, key, None)
            out[key] = entry
        return out


_initial_weights = _WeightCopies("initial")
_previous_weights = _WeightCopies("previous")


def _due(step, every_n: int):
    return tf.equal(tf.math.floormod(tf.cast(step, tf.int64), every_n), 0)


# Only Python conditions on Python values inside: AutoGraph, which converts
# what a user's tf.function calls, would rewrite nothing here, and converting
# this module and those it calls took seconds of the first trace.
@tf.autograph.experimental.do_not_convert
def log(
    model_or_variables,
    *,
    gradients: Optional[Sequence] = None,
    step=None,
    histogram_every_n_steps: int = 0,
    kernel_grid_every_n_steps: int = 0,
    options: Optional[LogOptions] = None,
    **option_kwargs,
) -> tf.Tensor:
    """Logs the health of a model's weights (and gradients) at one step.

    Writes to the default `tf.summary` writer, the way `tf.summary.scalar`
    does; works eagerly and inside `tf.function`. For `model.fit`, use
    `WeightHealthCallback`: it also logs the update each step applied.

    Args:
        model_or_variables: a built `keras.Model` (its variables are logged,
            LSTM/GRU ones per gate) or a list of variables.
        gradients: optional gradients, one per trainable variable in the order
            of `model.trainable_variables` (or of the list given), as
            `tape.gradient` returns them; None entries are logged as "no
            gradient"; `tf.IndexedSlices` are read without densifying.
        step: the step to log at; defaults to
            `tf.summary.experimental.get_step()` (inside `tf.function`, set it
            to a variable, as for `tf.summary.scalar`).
        histogram_every_n_steps: also write weight (and gradient) histograms
            when `step` is a multiple of this; 0 never.
        kernel_grid_every_n_steps: also write conv kernel grid images when
            `step` is a multiple of this; 0 never.
        options: a `LogOptions`; or pass its fields as keywords (`include`,
            `exclude`, `trainable_only`, `stats`, `split_gates`,
            `histogram_bins`, `max_kernel_filters`, `keep_initial_weights`).

    Returns:
        True if the norm table was written, False if the writer is not
        recording right now.

    Raises:
        RuntimeError: with no default summary writer.
        ValueError: with no step, or gradients that do not match the variables.
        TypeError: for arguments of the wrong type.

    Example:

    ```python
    writer = tf.summary.create_file_writer("logs/run1")

    @tf.function
    def train_step(x, y, step):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, step=step, histogram_every_n_steps=100)
    ```
    """
    options = LogOptions.resolve(options, option_kwargs, "tb_weightnorm.log")
    every("histogram_every_n_steps", histogram_every_n_steps)
    every("kernel_grid_every_n_steps", kernel_grid_every_n_steps)
    step = _checked_step(step)
    summary.require_writer("log")
    rows = model_variables.rows_for(model_or_variables, options)
    trainable = _trainable_in_gradient_order(model_or_variables)
    if gradients is not None:
        gradients = _summed_over_replicas(_checked_gradients(gradients, trainable))
    if not (tf_state.is_first_replica() and tf_state.is_chief()):
        return tf.constant(False)
    spec = table.spec_for(
        rows,
        options,
        gradients=gradients is not None,
        updates_need_a_copy=True,
        gradient_note=_gradient_note(gradients),
    )
    variables = table.unique_variables(rows)
    weights = {key: stats.value_of(variable) for key, variable in variables.items()}
    by_variable = None if gradients is None else {id(v): g for v, g in zip(trainable, gradients) if g is not None}
    values, previous = _table_values(spec, variables, weights, by_variable, gradients or (), trainable)
    written = summary.write_norm_table(spec.names(), values, step)
    with tf.control_dependencies([values]):
        for key, (copy, seen) in previous.items():
            copy.assign(weights[key])
            seen.assign(True)
    if histogram_every_n_steps:
        hist_names, bins = spec.histogram_names(), options.histogram_bins

        def write_hist():
            value = table.histogram_values(rows, weights, by_variable, bins)
            return summary.write_histograms(hist_names, bins, value, step)

        tf.cond(_due(step, histogram_every_n_steps), write_hist, lambda: tf.constant(False))
    convs = []
    if kernel_grid_every_n_steps:
        convs = model_variables.conv_kernels(model_or_variables, include=options.include, exclude=options.exclude)
    if convs:

        def write_grids():
            for conv in convs:
                write_kernel_grid(conv, step, max_filters=options.max_kernel_filters)
            return tf.constant(True)

        tf.cond(_due(step, kernel_grid_every_n_steps), write_grids, lambda: tf.constant(False))
    return written


def _summed_over_replicas(gradients: list) -> list:
    """The gradients as Keras applies them: summed over the replicas. Every
    replica joins the sum; only replica 0 of the chief writes."""
    if tf_state.replicas_in_sync() > 1:
        return tf_state.sum_over_replicas(gradients)
    return gradients


def _gradient_note(gradients) -> str:
    if gradients is not None and tf_state.replicas_in_sync() > 1:
        return f"summed over {tf_state.replicas_in_sync()} replicas, as applied"
    return ""


def _table_values(
    spec: table.TableSpec, variables: dict, weights: dict, gradients: Optional[dict], all_gradients, all_variables
):
    """(the norm table's values, the previous weights' copies to refresh once
    they are read): W_0 is kept for `weight/dist_init`, W at the previous call
    for the update (W now - W then: with log() every step, exactly that
    step's update; NaN on the first call, which has no previous weights).
    `variables` and `weights` are by id(variable), once per variable."""
    unique = list(variables.values())
    initial = _initial_weights.of(unique) if spec.with_dist_init else {}
    previous = _previous_weights.of(unique) if spec.with_updates else {}
    values = table.compute(
        spec,
        weights=weights,
        gradients=gradients,
        initial={k: tf.convert_to_tensor(c) for k, (c, _) in initial.items()},
        before={k: tf.convert_to_tensor(c) for k, (c, _) in previous.items()},
        all_gradients=all_gradients,
        all_variables=all_variables,
    )
    if previous:
        had_previous = tf.reduce_all(tf.stack([seen.read_value() for _, seen in previous.values()]))
        update_columns = tf.constant([s.startswith("update/") for s in spec.stats])
        values = tf.where(tf.logical_and(update_columns, tf.logical_not(had_previous)), float("nan"), values)
    return values, previous


def _checked_step(step):
    """The step to log at: `step`, or the default one; an integer (tf.summary
    would fail on anything else with a message about tensor conversion)."""
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError(
                "tb_weightnorm.log: no step. Pass `step=...` or set one with "
                "`tf.summary.experimental.set_step(step)`."
            )
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        return step
    dtype = getattr(step, "dtype", None)
    if dtype is not None and tf.as_dtype(dtype).is_integer:
        return step
    what = f"a {tf.as_dtype(dtype).name} tensor" if dtype is not None else f"{type(step).__name__} {step!r}"
    raise TypeError(
        f"tb_weightnorm.log: step must be an integer: a Python int, or an integer tensor or variable "
        f"(e.g. tf.Variable(0, dtype=tf.int64) or optimizer.iterations); got {what}."
        + (" Cast it with tf.cast(step, tf.int64)." if dtype is not None else "")
    )


def _checked_gradients(gradients, trainable: list) -> list:
    """The gradients as tensors (None and IndexedSlices kept), after checking
    that they are one per trainable variable, of its shape."""
    if isinstance(gradients, (dict, str, bytes)) or not isinstance(gradients, (list, tuple)):
        raise TypeError(
            "tb_weightnorm.log: gradients must be a list with one gradient (or None) per trainable "
            "variable, in the order of `model.trainable_variables`, as `tape.gradient(loss, "
            f"model.trainable_variables)` returns it; got a {type(gradients).__name__}."
        )
    if len(gradients) != len(trainable):
        raise ValueError(
            f"tb_weightnorm.log: got {len(gradients)} gradients for {len(trainable)} trainable "
            "variables. Pass the gradients of `model.trainable_variables`, in that order, as "
            "`tape.gradient(loss, model.trainable_variables)` returns them."
        )
    checked = []
    for i, (gradient, variable) in enumerate(zip(gradients, trainable)):
        name = getattr(variable, "path", None) or getattr(variable, "name", "?")
        if gradient is None or isinstance(gradient, tf.IndexedSlices):
            checked.append(gradient)
            continue
        try:
            tensor = tf.convert_to_tensor(gradient)
        except (TypeError, ValueError):
            tensor = None
        if tensor is None or not (tensor.dtype.is_floating or tensor.dtype.is_integer):
            raise TypeError(
                f"tb_weightnorm.log: gradient {i} (of {name}) is {type(gradient).__name__} "
                f"{str(gradient)[:80]!r}, not a tensor of numbers. Pass what tape.gradient returns."
            )
        if not tensor.shape.is_compatible_with(tf.TensorShape(variable.shape)):
            raise ValueError(
                f"tb_weightnorm.log: gradient {i} has shape {tuple(tensor.shape)} but its variable {name} "
                f"has shape {tuple(variable.shape)}. Pass the gradients in the order of "
                "`model.trainable_variables` (or of the variables given)."
            )
        checked.append(tensor)
    return checked


def _trainable_in_gradient_order(model_or_variables) -> list:
    if isinstance(model_or_variables, (list, tuple)):
        return list(model_or_variables)  # gradients follow the list given
    return list(getattr(model_or_variables, "trainable_variables", []))
