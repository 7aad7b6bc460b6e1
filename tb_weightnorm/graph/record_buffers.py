"""The buffers that hold a logged step's tables until the host reads them.

In the training step (TensorFlow). Summary ops cannot live in an
XLA-compiled train step, so the tables a logged step computes are written
into small ring buffers of variables, in the graph; after an execution of
the train function (which may run several steps: `steps_per_execution`) one
call reads and resets them all (`take_function`). The host turns what it
read into (step, values) records (`writer.update_recorder`).
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from tb_weightnorm.graph import tf_state
from tb_weightnorm.graph.tf_state import plain_variable


def buffer_slots(steps_per_execution: int, every: int) -> int:
    """Slots a ring buffer needs for what one execution logs every `every` steps.

    Args:
        steps_per_execution: training steps between two reads of the buffer.
        every: the logging interval, in steps.

    Example:

    >>> buffer_slots(10, 4)
    4
    """
    return math.ceil(steps_per_execution / every) + 1


class RecordBuffer:
    """A few [shape] float32 slots, written in the graph, read on the host.

    Args:
        capacity: the number of slots; a write past it overwrites the oldest.
        shape: the shape of one record (a norm table, or the histograms).
        name: the name of its variables.
    """

    def __init__(self, capacity: int, shape: Sequence[int], name: str):
        self.capacity = capacity
        self.values = plain_variable(tf.zeros([capacity, *shape]), name)
        self.steps = plain_variable(tf.zeros([capacity], tf.int64), name + "_steps")
        self.count = plain_variable(tf.constant(0, tf.int64), name + "_count")

    @property
    def variables(self) -> List[tf.Variable]:
        """The variables that hold the buffer (what it keeps on the device)."""
        return [self.values, self.steps, self.count]

    def write(self, step, value) -> tf.Tensor:
        """In the graph: writes `value` as the record of `step`."""
        slot = tf.math.floormod(self.count.read_value(), self.capacity)
        writes = [
            self.values.scatter_update(tf.IndexedSlices(value[None], slot[None])),
            self.steps.scatter_update(tf.IndexedSlices(step[None], slot[None])),
        ]
        with tf.control_dependencies(writes):
            self.count.assign_add(1)
            return tf.constant(True)

    def take(self) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(count, steps, values), and the count reset: in the graph of one
        function that takes every buffer of a recorder at once (each eager
        read would be a call of its own, every logged step)."""
        count = self.count.read_value()
        steps, values = self.steps.read_value(), self.values.read_value()
        with tf.control_dependencies([count, steps, values]):
            self.count.assign(0)
        return count, steps, values

    def ordered(self, count, steps, values) -> Tuple[tf.Tensor, tf.Tensor]:
        """In the graph, the (steps, values) `take` returned that were not
        overwritten, oldest first."""
        kept = tf.minimum(count, self.capacity)
        slots = tf.math.floormod(tf.range(count - kept, count), self.capacity)
        return tf.gather(steps, slots), tf.gather(values, slots)


def take_function(buffers: Sequence[RecordBuffer], writers: Sequence[Optional[Callable]]) -> Callable:
    """A function (traced once) that takes every buffer at once and returns
    what each held, as [(count, steps, values), ...]; a buffer with a writer
    is also written in the same call, with writer(steps, values) in step
    order, and comes back with no values (they need not come to the host).

    Args:
        buffers: the buffers, the norm tables' first.
        writers: one per buffer: a function that writes (steps, values)
            inside a graph (see `summary.series_writer`), or None. The first
            buffer's values come back even when written.
    """

    def take():
        taken = [ring.take() for ring in buffers]
        written = [w(*ring.ordered(*t)) for ring, t, w in zip(buffers, taken, writers) if w is not None]
        with tf.control_dependencies(written):
            # Histograms written here need not come to the host.
            return [taken[0]] + [
                (t[0], t[1][:0], t[2][:0]) if w is not None else t for t, w in zip(taken[1:], writers[1:])
            ]

    return tf_state.own_function(take)
