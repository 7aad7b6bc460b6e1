"""The variables tb_weightnorm keeps for itself (buffers, weight copies, flags),
and what the training step asks of TensorFlow (replicas, XLA, conditionals).

In the training step (TensorFlow).

They are plain resource variables on the host that made them, never mirrored:
created while a `tf.distribute` strategy is tracing a replica function, a
`tf.Variable` would become a distributed variable, and assigning one from a
single replica (only replica 0 records) would wait forever for the others.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops


def plain_variable(initial_value, name: str) -> tf.Variable:
    """A non-trainable variable made outside any graph being traced, bypassing
    the variable creators that distribution strategies install."""
    with tf.init_scope():
        return resource_variable_ops.ResourceVariable(initial_value, trainable=False, name=name)


def variable_bytes(variables: Iterable) -> int:
    """The bytes the values of `variables` take (on their device).

    Args:
        variables: tf or Keras variables (or tensors).

    Example:

    >>> variable_bytes([tf.Variable(tf.zeros([2, 3]))])
    24
    """
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def replicas_in_sync() -> int:
    """How many replicas run this code together (1 outside tf.distribute)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def is_first_replica() -> bool:
    """Whether this is replica 0, the one that records; decided when tracing."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return True
    replica = tf.get_static_value(context.replica_id_in_sync_group)
    return replica is None or int(replica) == 0


def is_chief(strategy=None) -> bool:
    """Whether this worker writes: Keras' convention, the one that checkpoints."""
    strategy = strategy or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def sum_over_replicas(values):
    """The values summed over replicas, as Keras sums gradients before applying
    them; None entries stay None. Call it outside conditionals (a merge point)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(values)
    present = [i for i, v in enumerate(values) if v is not None]
    reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, [values[i] for i in present])
    out = list(values)
    for i, r in zip(present, reduced):
        out[i] = r
    return out


def compiling_with_xla() -> bool:
    """Whether the code being traced will be compiled by XLA (`jit_compile`):
    some fast CPU kernels (sorted segment reductions) have no XLA version."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
    except (ImportError, AttributeError):  # the private API moved: take the portable ops
        return True


def run_if(pred, fn) -> tf.Tensor:
    """Runs `fn` (which returns a bool tensor) only when `pred` is true, as a
    function call the executor skips entirely otherwise.

    `tf.cond` in a `tf.function` is lowered to Switch and Merge ops: the branch
    not taken is still walked op by op, propagating "dead" tensors, and for a
    table of every variable that walk costs about as much as a plain step of a
    small model, every step. A Case op kept whole costs one branch call.
    """
    if tf.executing_eagerly():  # a train step run eagerly: nothing to skip but the Python call
        return fn() if bool(pred) else tf.constant(False)
    try:
        from tensorflow.python.ops import cond_v2

        index = tf.cast(pred, tf.int32)
        return cond_v2.indexed_case(index, [lambda: tf.constant(False), fn], lower_using_switch_merge=False)
    except (ImportError, AttributeError, TypeError):  # the private API moved: the portable cond
        return tf.cond(pred, fn, lambda: tf.constant(False))


def values_if(pred, fn, otherwise):
    """fn() when `pred` is true, else otherwise(): lists of tensors, of the
    same length and dtypes but any shapes (the results' static shapes are
    lost: the caller restores them where it knows `pred` held).

    Like `run_if`, a function call the executor skips when not taken: a
    variable read before `pred` is known would keep the read alive across the
    optimizer's write to it, which then copies the whole variable, every step.
    """
    if tf.executing_eagerly():
        return list(fn() if bool(pred) else otherwise())
    try:
        from tensorflow.python.ops import cond_v2

        index = tf.cast(pred, tf.int32)
        return list(cond_v2.indexed_case(index, [otherwise, fn], lower_using_switch_merge=False))
    except (ImportError, AttributeError, TypeError):  # the private API moved: the portable cond
        return list(tf.cond(pred, fn, otherwise))


def own_function(python_function, **kwargs):
    """`tf.function(python_function, autograph=False, **kwargs)`, for one of
    the functions each recorder or summary writer makes of the same code.

    TensorFlow counts traces by code, not by function: a sweep that trains
    many models in one process would trace that code once per model and read
    "triggered tf.function retracing" warnings about work that is traced
    once per model by design.
    """
    function = tf.function(python_function, autograph=False, **kwargs)
    if hasattr(function, "_omit_frequent_tracing_warning"):
        function._omit_frequent_tracing_warning = True  # pylint: disable=protected-access
    return function
