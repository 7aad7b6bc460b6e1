"""Takes statistics inside the optimizer's own update, where the gradient it
applies and the update it makes both exist.

In the training step (TensorFlow), with `graph.update_recordings`. Keras'
train step computes gradients and hands them to `optimizer.apply`. `install`
wraps that method on the optimizer instance, so on a logged step the
statistics are taken from exactly the gradients that were applied and the
change they made, with no second forward or backward pass. The results go
into record buffers in the graph, which the host side
(`writer.update_recorder`) drains after each execution of the train function.

Under a LossScaleOptimizer (mixed precision) the hook sits on the inner
optimizer, which receives the unscaled gradients. Under `tf.distribute`, each
replica holds its local gradient; Keras sums them (after clipping each) before
applying, and the hook keeps those sums; only replica 0 records.

The functions on the optimizer's counts and settings (`innermost_optimizer`,
`applied_steps`, `accumulation_steps`, `gradient_note`) are Keras' own API,
the same on every backend.
"""

from __future__ import annotations

from typing import Dict, List

import tensorflow as tf

from tb_weightnorm.graph import tf_state

def innermost_optimizer(optimizer):
    """The optimizer that applies the gradients. A LossScaleOptimizer (mixed
    precision) hands the unscaled gradients to its inner optimizer."""
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


def applied_steps(optimizer) -> int:
    """Optimizer updates applied so far (under gradient accumulation, the
    updates, not the micro-batches): the step the tables are logged at,
    before the run's step offset (see `AppliedUpdateRecorder.step_offset`)."""
    return int(innermost_optimizer(optimizer).iterations.numpy())


def accumulation_steps(optimizer) -> int:
    """Micro-batches per applied update (`gradient_accumulation_steps`); 1 without."""
    return int(getattr(innermost_optimizer(optimizer), "gradient_accumulation_steps", None) or 1)


def gradient_note(optimizer, num_replicas: int = 1) -> str:
    """What the logged gradients are, where it is not plainly "the applied one"."""
    inner = innermost_optimizer(optimizer)
    clipping = [
        f"{name}={getattr(inner, name)}"
        for name in ("clipnorm", "clipvalue", "global_clipnorm")
        if getattr(inner, name, None) is not None
    ]
    notes = []
    accumulated = accumulation_steps(inner)
    if accumulated > 1:
        notes.append(f"the mean over {accumulated} accumulated micro-batches, as applied")
    if num_replicas > 1:
        notes.append(f"summed over {num_replicas} replicas, as applied")
        if clipping:
            notes.append(f"each replica's gradient clipped first ({', '.join(clipping)})")
    elif clipping:
        notes.append(f"before clipping ({', '.join(clipping)})")
    return "; ".join(notes)


# What the update costs: a copy of the updated weights, alive only while a
# logged step runs (see `UpdateRecordings.weights_before`).
BEFORE_UPDATE = "weights before the update (during a logged step)"


def install(recorder) -> None:
    """Wraps `apply` on the recorder's optimizer instance (not its class).

    Under tf.distribute it also wraps `_all_reduce_sum_gradients`, to keep
    the summed gradients Keras computes for the update: reducing them again
    inside a conditional is not allowed (a merge_call in control flow), and
    reducing them every step would double the communication.

    Args:
        recorder: the `AppliedUpdateRecorder` whose `recordings` the logged
            updates of `recorder.optimizer` are recorded with.

    Raises:
        RuntimeError: if the optimizer has a hook already.
    """
    optimizer = recorder.optimizer
    if "apply" in vars(optimizer):
        raise RuntimeError(
            "tb_weightnorm: this optimizer already has a WeightHealthCallback attached. "
            "Use one WeightHealthCallback per model.fit."
        )
    original = optimizer.apply
    original_all_reduce = getattr(optimizer, "_all_reduce_sum_gradients", None)
    recordings = recorder.recordings
    reduced: List = []

    def all_reduce_sum_gradients(grads_and_vars):
        out = original_all_reduce(grads_and_vars)
        reduced.append(list(out))
        return out

    def apply(grads, trainable_variables=None):
        recorder.prepare()  # at first trace, for models built in their first call
        recorder.applied = True
        variables = (
            list(trainable_variables)
            if trainable_variables is not None
            else list(optimizer._trainable_variables)  # pylint: disable=protected-access
        )
        grads = list(grads)
        recording = tf_state.is_first_replica()
        # Read before `apply` increments it: the index of this update
        # (under accumulation, of the update this micro-batch joins).
        iteration = tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)
        if recordings.counter is not None:
            step = recordings.counter.value.read_value()
        else:
            step = iteration + 1 + recordings.step_offset.read_value()
        intervals = recordings.intervals.read_value()
        applies = recordings.applies_now()
        due_norms = tf.equal(tf.math.floormod(iteration, intervals[0]), 0)
        if applies is not None:
            due_norms = tf.logical_and(applies, due_norms)
        # Only what this call updates has an update (and, under
        # accumulation, what it applies is the mean of the micro-batches).
        updated_here = {id(v) for v in variables}
        before = recordings.weights_before(updated_here, due_norms) if recording else {}
        accumulated = recordings.accumulators(variables) if recording and applies is not None else {}
        del reduced[:]
        result = original(grads, trainable_variables)
        if not recording:
            return result
        by_variable = {id(v): g for v, g in zip(variables, grads) if g is not None}
        if tf_state.replicas_in_sync() > 1 and reduced:
            # Keras applies the replicas' gradients summed: log those.
            key_of = {id(getattr(v, "value", v)): id(v) for v in variables}
            by_variable = {
                key_of[id(v)]: g for g, v in reduced[-1] if g is not None and id(v) in key_of
            }

        def applied_gradients() -> Dict[int, object]:
            # In a branch: the means cost nothing on the steps not logged.
            return recordings.means(by_variable, accumulated) if accumulated else by_variable

        def norms():
            gradients = applied_gradients()
            # In the variables' order: the global row takes a whole
            # variable's norm from its own row.
            applied = [gradients.get(id(v)) for v in variables]
            return recordings.recording("norms", variables)(step, gradients, before, applied)

        tf_state.run_if(due_norms, norms)
        if recordings.histograms is not None:
            due_histograms = tf.equal(tf.math.floormod(iteration, intervals[1]), 0)
            if applies is not None:
                due_histograms = tf.logical_and(applies, due_histograms)
            record = recordings.recording("histograms", variables)
            tf_state.run_if(due_histograms, lambda: record(step, applied_gradients()))
        return result

    optimizer.apply = apply
    if original_all_reduce is not None:
        optimizer._all_reduce_sum_gradients = all_reduce_sum_gradients


def uninstall(optimizer) -> None:
    """Takes the hook `install` put on `optimizer` off again.

    Args:
        optimizer: the optimizer `install` wrapped (`recorder.optimizer`).
    """
    del optimizer.apply
    vars(optimizer).pop("_all_reduce_sum_gradients", None)
