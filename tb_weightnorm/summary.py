"""Writes the plugin's summaries, shaped like `tf.summary.*`.

`log()` is the API for custom training loops; the Keras callback writes through
`write_norm_table` too, so both produce the same wire format.
"""

from __future__ import annotations

import weakref
from typing import Optional, Sequence

import tensorflow as tf
from tensorflow.python.ops import summary_ops_v2

from tb_weightnorm import metadata, model_variables, stats


class _NamesSent:
    """Remembers, per writer and tag, whether the first event (the one carrying
    the row names) was written. A tf.Variable, so that the choice between full
    and light metadata also happens inside a `tf.function` traced once."""

    def __init__(self):
        self._flags = weakref.WeakKeyDictionary()

    def flag(self, writer, tag: str) -> tf.Variable:
        per_writer = self._flags.setdefault(writer, {})
        if tag not in per_writer:
            with tf.init_scope():
                per_writer[tag] = tf.Variable(False, trainable=False, name="names_sent")
        return per_writer[tag]


_names_sent = _NamesSent()


def _default_writer():
    return summary_ops_v2._summary_state.writer  # pylint: disable=protected-access


def write_norm_table(names: metadata.NormTableNames, table, step) -> tf.Tensor:
    """Writes one norm table to the default summary writer.

    Args:
        names: the table's variables, layers and stats.
        table: a [len(names.variables), len(names.stats)] float32 tensor (or
            a callable returning it, evaluated only if the writer records).
        step: the step to write it at.

    Returns:
        True if written, False if no summary is recorded right now.
    """
    writer = _default_writer()
    if writer is None:
        raise RuntimeError(
            "tb_weightnorm: no default summary writer. Create one and make it the "
            "default, e.g. `with tf.summary.create_file_writer(logdir).as_default():`."
        )
    tag = names.tag()
    sent = _names_sent.flag(writer, tag)
    full = metadata.norm_table_metadata(names, include_names=True)
    light = metadata.norm_table_metadata(names, include_names=False)

    def first():
        with tf.control_dependencies([tf.summary.write(tag, table, step=step, metadata=full)]):
            return sent.assign(True).read_value()

    def later():
        return tf.summary.write(tag, table, step=step, metadata=light)

    return tf.cond(sent.read_value(), later, first)


def log(
    model_or_variables,
    *,
    gradients: Optional[Sequence] = None,
    step=None,
) -> tf.Tensor:
    """Logs the norm table of a model's weights (and gradients) at one step.

    Writes to the default `tf.summary` writer, the way `tf.summary.scalar` does;
    works eagerly and inside `tf.function`. For `model.fit`, use
    `WeightHealthCallback` instead: it also logs the update each step applied.

    Args:
        model_or_variables: a built `keras.Model` (its trainable variables are
            logged) or a list of variables.
        gradients: optional gradients, one per variable in the order of
            `model.trainable_variables` (or of the list given), as
            `tape.gradient` returns them; None entries are logged as "no
            gradient".
        step: the step to log at; defaults to
            `tf.summary.experimental.get_step()`.

    Returns:
        True if written, False if the writer is not recording right now.

    Raises:
        RuntimeError: with no default summary writer.
        ValueError: with no step, or gradients that do not match the variables.

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
            tb_weightnorm.log(model, gradients=grads, step=step)
    ```
    """
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError(
                "tb_weightnorm.log: no step. Pass `step=...` or set one with "
                "`tf.summary.experimental.set_step(step)`."
            )
    if _default_writer() is None:
        raise RuntimeError(
            "tb_weightnorm.log: no default summary writer. Wrap the call in "
            "`with tf.summary.create_file_writer(logdir).as_default():`."
        )
    tracked = model_variables.tracked_variables(model_or_variables)
    if gradients is not None:
        gradients = list(gradients)
        if len(gradients) != len(tracked):
            raise ValueError(
                f"tb_weightnorm.log: got {len(gradients)} gradients for {len(tracked)} "
                "variables. Pass the gradients of `model.trainable_variables`, in that "
                "order, as `tape.gradient(loss, model.trainable_variables)` returns them."
            )
    variables, layers = model_variables.names_of(tracked)
    kinds = ("weight",) if gradients is None else ("weight", "gradient")
    names = metadata.NormTableNames(variables, layers, metadata.all_stat_names(kinds))
    weights = [t.variable for t in tracked]
    return write_norm_table(names, lambda: stats.norm_table(weights, gradients), step)
