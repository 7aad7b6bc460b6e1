"""Takes statistics inside the optimizer's own update, where the gradient it
applies and the update it makes both exist.

Keras' train step computes gradients and hands them to `optimizer.apply`. The
recorder wraps that method on the optimizer instance, so on a logged step the
statistics are taken from exactly the gradients that were applied and the
change they made, with no second forward or backward pass. Summary ops cannot
live in an XLA-compiled train step, so the statistics go into a small ring
buffer of variables; the Keras callback drains it after each execution of the
train function (one execution may run several steps: `steps_per_execution`).
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm import metadata, stats
from tb_weightnorm.model_variables import TrackedVariable

logger = logging.getLogger(__name__)


def innermost_optimizer(optimizer):
    """The optimizer that applies the gradients. A LossScaleOptimizer (mixed
    precision) hands the unscaled gradients to its inner optimizer."""
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


class AppliedUpdateRecorder:
    """Records a norm table of the applied gradients and updates every N steps.

    The table's columns are `metadata.all_stat_names()`: weight, gradient and
    update stats. Keeping W_before for the update costs one copy of the tracked
    weights (created once, refreshed only on logged steps).

    Args:
        optimizer: the model's optimizer (possibly a LossScaleOptimizer).
        tracked: the variables to record, in row order.
        every_n_steps: record the steps whose 0-based index is a multiple of it.
        capacity: how many logged steps the buffer holds between drains.
    """

    def __init__(
        self,
        optimizer,
        tracked: Sequence[TrackedVariable],
        *,
        every_n_steps: int,
        capacity: int,
    ):
        self._optimizer = innermost_optimizer(optimizer)
        self._tracked = list(tracked)
        self._rows = {id(t.variable): i for i, t in enumerate(self._tracked)}
        self._every_n_steps = int(every_n_steps)
        self._capacity = int(capacity)
        self.stat_names = metadata.all_stat_names()
        n, k = len(self._tracked), len(self.stat_names)
        with tf.init_scope():
            self._tables = tf.Variable(tf.zeros([self._capacity, n, k]), trainable=False, name="tables")
            self._steps = tf.Variable(tf.zeros([self._capacity], tf.int64), trainable=False, name="steps")
            self._count = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="count")
            self._before = [
                tf.Variable(tf.zeros(t.variable.shape, t.variable.dtype), trainable=False, name="before")
                for t in self._tracked
            ]
        self._lost_warned = False
        self._installed = False

    # -- in the train step -------------------------------------------------

    def _snapshot(self):
        assigns = [b.assign(tf.convert_to_tensor(t.variable)) for b, t in zip(self._before, self._tracked)]
        with tf.control_dependencies(assigns):
            return tf.constant(True)

    def _record(self, step, gradients):
        weights = [tf.convert_to_tensor(t.variable) for t in self._tracked]
        updates = [w - tf.convert_to_tensor(b) for w, b in zip(weights, self._before)]
        table = stats.norm_table(weights, gradients, updates)
        slot = tf.math.floormod(self._count.read_value(), self._capacity)
        writes = [
            self._tables.scatter_update(tf.IndexedSlices(table[None], slot[None])),
            self._steps.scatter_update(tf.IndexedSlices(step[None], slot[None])),
        ]
        with tf.control_dependencies(writes):
            self._count.assign_add(1)
            return tf.constant(True)

    def _gradients_by_row(self, grads, variables) -> List[Optional[tf.Tensor]]:
        by_row: List[Optional[tf.Tensor]] = [None] * len(self._tracked)
        for grad, variable in zip(grads, variables):
            row = self._rows.get(id(variable))
            if row is not None:
                by_row[row] = grad
        return by_row

    def install(self) -> None:
        """Wraps `apply` on the optimizer instance (not its class)."""
        if self._installed:
            return
        optimizer = self._optimizer
        if "apply" in vars(optimizer):
            raise RuntimeError(
                "tb_weightnorm: this optimizer already has a WeightHealthCallback attached. "
                "Use one WeightHealthCallback per model.fit."
            )
        original = optimizer.apply
        recorder = self

        def apply(grads, trainable_variables=None):
            variables = (
                list(trainable_variables)
                if trainable_variables is not None
                else list(optimizer._trainable_variables)  # pylint: disable=protected-access
            )
            grads = list(grads)
            # Read before `apply` increments it: the index of this update.
            iteration = tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)
            due = tf.equal(tf.math.floormod(iteration, recorder._every_n_steps), 0)
            tf.cond(due, recorder._snapshot, lambda: tf.constant(False))
            result = original(grads, trainable_variables)
            by_row = recorder._gradients_by_row(grads, variables)
            tf.cond(due, lambda: recorder._record(iteration + 1, by_row), lambda: tf.constant(False))
            return result

        optimizer.apply = apply
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            del self._optimizer.apply
            self._installed = False

    # -- after the train step ----------------------------------------------

    def drain(self) -> List[Tuple[int, np.ndarray]]:
        """The (step, table) pairs recorded since the last drain, oldest first."""
        count = int(self._count.numpy())
        if count == 0:
            return []
        steps = self._steps.numpy()
        tables = self._tables.numpy()
        self._count.assign(0)
        kept = min(count, self._capacity)
        if count > kept and not self._lost_warned:
            logger.warning(
                "tb_weightnorm: %d logged steps were overwritten before they were written; "
                "raise every_n_steps or lower steps_per_execution.", count - kept
            )
            self._lost_warned = True
        slots = [(count - kept + i) % self._capacity for i in range(kept)]
        return [(int(steps[s]), tables[s]) for s in slots]
