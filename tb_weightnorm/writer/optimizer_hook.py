"""Takes statistics inside the optimizer's own update, where the gradient it
applies and the update it makes both exist.

Keras' train step computes gradients and hands them to `optimizer.apply`. The
recorder wraps that method on the optimizer instance, so on a logged step the
statistics are taken from exactly the gradients that were applied and the
change they made, with no second forward or backward pass. Summary ops cannot
live in an XLA-compiled train step, so the results go into small ring buffers
of variables; the Keras callback drains them after each execution of the train
function (one execution may run several steps: `steps_per_execution`).

Under a LossScaleOptimizer (mixed precision) the hook sits on the inner
optimizer, which receives the unscaled gradients. Under `tf.distribute`, each
replica holds its local gradient; Keras sums them (after clipping each) before
applying, and the hook keeps those sums; only replica 0 records.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import histograms, stats, table, tf_state
from tb_weightnorm.graph.tf_state import plain_variable

logger = logging.getLogger(__name__)


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
# logged step runs (see AppliedUpdateRecorder).
BEFORE_UPDATE = "weights before the update (during a logged step)"


class _RingBuffer:
    """A few [shape] float32 slots, written in the graph, read on the host."""

    def __init__(self, capacity: int, shape: Sequence[int], name: str):
        self.capacity = capacity
        self.values = plain_variable(tf.zeros([capacity, *shape]), name)
        self.steps = plain_variable(tf.zeros([capacity], tf.int64), name + "_steps")
        self.count = plain_variable(tf.constant(0, tf.int64), name + "_count")
        self._lost_warned = False

    def write(self, step, value) -> tf.Tensor:
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

    def warn_lost(self, count: int) -> None:
        """Says once if more was recorded than the buffer holds."""
        if count > self.capacity and not self._lost_warned:
            logger.warning(
                "tb_weightnorm: %d logged steps were overwritten before they were written; "
                "log less often or lower steps_per_execution.",
                count - self.capacity,
            )
            self._lost_warned = True

    def records(self, count: int, steps: np.ndarray, values: np.ndarray) -> List[Tuple[int, np.ndarray]]:
        """The (step, values) records `take` returned, oldest first."""
        if count == 0:
            return []
        self.warn_lost(count)
        kept = min(count, self.capacity)
        slots = [(count - kept + i) % self.capacity for i in range(kept)]
        return [(int(steps[s]), values[s]) for s in slots]


def buffer_slots(steps_per_execution: int, every: int) -> int:
    """Slots a ring buffer needs for what one execution logs every `every` steps."""
    return math.ceil(steps_per_execution / every) + 1


class AppliedUpdateRecorder:
    """Records norm tables (every N steps) and histograms (every M steps) of the
    applied gradients and the updates they make.

    The update needs no copy of the weights kept between steps: the logged
    step reads them just before the optimizer applies its update, and
    TensorFlow copies a variable when it is written while such a read is
    alive, so W_before exists only during that step. `spec.with_dist_init`
    keeps a copy of the weights when recording started.

    Args:
        optimizer: the model's optimizer (possibly a LossScaleOptimizer).
        make_spec: returns the norm table to record. It is called at once if
            `ready_now`, else when the train step is first traced: a
            subclassed model creates its variables only in its first call.
        every_n_steps: record norms on steps whose 0-based index is a multiple of it.
        histogram_every_n_steps: the same for histograms; 0 for none.
        histogram_bins: buckets per histogram.
        steps_per_execution: how many steps run between two drains.
        ready_now: whether the model's variables exist already.
        counter: with several optimizers, the training step counter
            (`model_optimizers.TrainStepCounter`): tables are logged at its
            step, the last one of a step kept aside until the step's end.
        initial_copies: id(variable) -> its initial copy, shared by the
            recorders of one model so the weights are copied once.
    """

    def __init__(
        self,
        optimizer,
        make_spec: Callable[[], table.TableSpec],
        *,
        every_n_steps: int,
        histogram_every_n_steps: int = 0,
        histogram_bins: int = 32,
        steps_per_execution: int = 1,
        ready_now: bool = True,
        counter=None,
        initial_copies: Optional[Dict[int, tf.Variable]] = None,
    ):
        self._optimizer = innermost_optimizer(optimizer)
        self._counter = counter
        self._initial_copies = {} if initial_copies is None else initial_copies
        self._staged: Dict[str, Tuple[tf.Variable, tf.Variable]] = {}
        # (kind, the variables applied) -> the function that records them.
        self._recordings: Dict[tuple, Callable] = {}
        self._make_spec = make_spec
        self._every = int(every_n_steps)
        self._hist_every = int(histogram_every_n_steps)
        # The intervals are variables, so the callback can make logging
        # sparser while training runs without tracing the step again.
        self._intervals = plain_variable(
            tf.constant([self._every, max(self._hist_every, 1)], tf.int64), "log_intervals"
        )
        # Added to the optimizer's update count to give the logged step, so
        # that a later fit into the same run (fine-tuning, with a new
        # optimizer counting from 0) goes on after the steps already logged.
        self.step_offset = plain_variable(tf.constant(0, tf.int64), "log_step_offset")
        self._bins = int(histogram_bins)
        self._accumulated = accumulation_steps(optimizer)
        self._steps_per_execution = int(steps_per_execution)
        self._python_intervals = (self._every, max(self._hist_every, 1))
        # Whether the buffers may hold records not drained yet: after an
        # execution with a logged step (see `LoggingTrainFunction`).
        # Draining reads variables from the device; a plain step skips that.
        self.unread = True
        self.spec: Optional[table.TableSpec] = None
        # Whether the optimizer's `apply` ran (or was traced) in the logging function.
        self.applied = False
        self.norms: Optional[_RingBuffer] = None
        self.histograms: Optional[_RingBuffer] = None
        # Functions that read and reset the buffers, by the writers they write with (see drain).
        self._takes: Dict[Optional[tuple], Callable] = {}
        self._installed = False
        if ready_now:
            self._prepare()

    def _prepare(self) -> None:
        """Decides the rows and creates the buffers and weight copies (outside
        any graph being traced, so they are plain variables made once)."""
        if self.spec is not None:
            return
        spec = self._make_spec()
        rows = spec.rows
        variables = table.unique_variables(rows)
        n_rows = len(rows) + (1 if spec.global_row else 0)
        with tf.init_scope():
            self.norms = _RingBuffer(
                buffer_slots(self._steps_per_execution, self._every), [n_rows, len(spec.stats)], "norm_tables"
            )
            if self._hist_every:
                self.histograms = _RingBuffer(
                    buffer_slots(self._steps_per_execution, self._hist_every),
                    [2, len(rows), len(histograms.histogram_columns(self._bins))],
                    "histograms",
                )
            trainable = {id(r.variable) for r in rows if r.trainable}
            self._updated = [k for k in variables if k in trainable] if spec.with_updates else []
            self._initial = {}
            if spec.with_dist_init:
                for k, v in variables.items():
                    if k not in self._initial_copies:
                        self._initial_copies[k] = plain_variable(tf.convert_to_tensor(v), "initial")
                    self._initial[k] = self._initial_copies[k]
            if self._counter is not None:
                for kind, ring in (("norms", self.norms), ("histograms", self.histograms)):
                    if ring is not None:
                        shape = ring.values.shape[1:]
                        self._staged[kind] = (
                            plain_variable(tf.zeros(shape), f"staged_{kind}"),
                            plain_variable(tf.constant(False), f"staged_{kind}_due"),
                        )
        self._variables = variables
        self.spec = spec

    def make_sparser(self, *, norms: Optional[int] = None, histograms: Optional[int] = None) -> None:
        """Logs from now on every `norms` / `histograms` steps. Only larger
        intervals are taken: the ring buffers are sized for the first ones."""
        current = self._intervals.numpy()
        wanted = [norms or current[0], histograms or current[1]]
        if any(w < c for w, c in zip(wanted, current)):
            raise ValueError(f"intervals only grow: {list(current)} -> {wanted}")
        self._intervals.assign(wanted)
        self._python_intervals = (int(wanted[0]), int(wanted[1]))

    def start_intervals(self, norms: int, histograms: int) -> None:
        """Logs every `norms` / `histograms` steps from now on, smaller or
        larger than before (a later fit of the model, with its own callback):
        as long as the buffers hold what an execution logs."""
        histograms = max(int(histograms), 1)
        if self.norms is not None and buffer_slots(self._steps_per_execution, norms) > self.norms.capacity:
            raise ValueError(f"an interval of {norms} steps needs larger buffers than these")
        self._intervals.assign([int(norms), histograms])
        self._python_intervals = (int(norms), histograms)

    def restart_initial_weights(self) -> None:
        """Takes the weights now as the initial ones (a new run)."""
        for k, copy in getattr(self, "_initial", {}).items():
            copy.assign(tf.convert_to_tensor(self._variables[k]))

    def due_in_next(self, steps: int, updates_per_step: float = 1.0) -> str:
        """What is due to be logged among the updates the next `steps`
        training steps can apply (`updates_per_step` each: a WGAN's critic
        makes several): "histograms" (with or without a table), "norms" or
        "" for nothing. Updates a loss scale skips only move the due ones
        later, into a window this is asked about again."""
        if self._accumulated == 1:
            first, count = applied_steps(self._optimizer), max(1, math.ceil(updates_per_step * steps))
        else:
            # Micro-batch m applies update m // k when (m + 1) % k == 0.
            micro = int(self._optimizer._iterations.numpy())  # pylint: disable=protected-access
            first = -(-(micro + 1) // self._accumulated) - 1  # the next update to apply
            count = (micro + steps) // self._accumulated - first
            if count <= 0:
                return ""

        def due(every: int) -> bool:
            # The first update index >= first that is a multiple of the interval.
            return -(-first // every) * every < first + count

        norms, histograms = self._python_intervals
        if self.histograms is not None and due(histograms):
            return "histograms"
        return "norms" if due(norms) else ""

    @property
    def optimizer(self):
        """The optimizer whose updates this recorder logs (the inner one of a
        LossScaleOptimizer)."""
        return self._optimizer

    @property
    def intervals(self) -> Tuple[int, int]:
        """(norm table, histogram) intervals in steps."""
        norms, histograms = self._intervals.numpy()
        return int(norms), int(histograms) if self._hist_every else 0

    def held_bytes(self) -> Dict[str, int]:
        """Bytes of what the recorder keeps beside the model (on the model's
        device), by role; all 0 before the rows are decided."""

        def size(variables) -> int:
            return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)

        def buffer(ring: Optional[_RingBuffer], kind: str) -> int:
            if ring is None:
                return 0
            # With several optimizers, the step's table kept aside too.
            return size([ring.values, ring.steps, ring.count, *self._staged.get(kind, ())])

        updated = [self._variables[k] for k in getattr(self, "_updated", [])]
        return {
            BEFORE_UPDATE: size(updated),
            "initial weights": size(getattr(self, "_initial", {}).values()),
            "norm table buffer": buffer(self.norms, "norms"),
            "histogram buffer": buffer(self.histograms, "histograms"),
        }

    def drain(self, writers: Optional[tuple] = None) -> Tuple[List[Tuple[int, np.ndarray]], List[Tuple[int, np.ndarray]]]:
        """(norm tables, histograms) recorded since the last drain, as
        (step, values) in step order.

        Args:
            writers: (key, norm table writer, histogram writer): functions
                that write (steps, values) inside a graph (see
                `summary.series_writer`), called in the same function that
                reads the buffers, so a logged step is read and written in
                one call; the histograms written so are not returned. `key`
                names the writers (their summary writer and tags).
        """
        if not self.unread or self.norms is None:
            return [], []
        self.unread = False
        rings = [r for r in (self.norms, self.histograms) if r is not None]
        key = writers[0] if writers is not None else None
        if key not in self._takes:
            write = list(writers[1:]) if writers is not None else [None, None]

            def take():
                taken = [ring.take() for ring in rings]
                written = [
                    w(*ring.ordered(*t)) for ring, t, w in zip(rings, taken, write) if w is not None
                ]
                with tf.control_dependencies(written):
                    # Histograms written here need not come to the host.
                    return [taken[0]] + [
                        (t[0], t[1][:0], t[2][:0]) if w is not None else t for t, w in zip(taken[1:], write[1:])
                    ]

            self._takes[key] = tf_state.own_function(take)
        taken = [[t.numpy() for t in ring] for ring in self._takes[key]()]
        drained = []
        for i, (ring, (count, steps, values)) in enumerate(zip(rings, taken)):
            if i > 0 and writers is not None and writers[2] is not None:
                ring.warn_lost(int(count))
                drained.append([])
            else:
                drained.append(ring.records(int(count), steps, values))
        return drained[0], drained[1] if len(drained) > 1 else []

    # -- in the train step -------------------------------------------------

    def _current_weights(self) -> Dict[int, tf.Tensor]:
        return {k: stats.value_of(v) for k, v in self._variables.items()}

    def _weights_before(self, updated_here, due) -> Dict[int, tf.Tensor]:
        """The values of the logged variables this update changes, read before
        it, on steps whose table is `due` (else empty tensors): the train
        step orders the reads before the optimizer's writes to the same
        variables, which then copy rather than change what was read. A read
        on every step would make every step copy every variable.

        Under XLA, which has no conditional of shapeless results, the reads
        are plain (XLA orders and aliases the writes itself)."""
        keys = [k for k in self._updated if k in updated_here]
        if not keys:
            return {}
        variables = [self._variables[k] for k in keys]
        if tf_state.compiling_with_xla():
            return {k: tf.convert_to_tensor(v) for k, v in zip(keys, variables)}
        # One empty tensor per dtype serves every variable of that dtype.
        empties = {dtype: tf.zeros([0], dtype) for dtype in {v.dtype for v in variables}}
        values = tf_state.values_if(
            due,
            lambda: [tf.convert_to_tensor(v) for v in variables],
            lambda: [empties[v.dtype] for v in variables],
        )
        return dict(zip(keys, values))

    def _shaped(self, before: Dict[int, tf.Tensor]) -> Dict[int, tf.Tensor]:
        """`before` with its variables' shapes back (read on a due step)."""
        out = {}
        for k, value in before.items():
            shape = tf.TensorShape(self._variables[k].shape)
            out[k] = tf.reshape(value, shape if shape.is_fully_defined() else tf.shape(self._variables[k].value))
        return out

    def _applies_now(self) -> Optional[tf.Tensor]:
        """Under gradient accumulation, whether this micro-batch applies the
        update (the last of its k); None without accumulation."""
        if self._accumulated == 1:
            return None
        micro = tf.cast(tf.convert_to_tensor(self._optimizer._iterations), tf.int64)  # pylint: disable=protected-access
        return tf.equal(tf.math.floormod(micro + 1, self._accumulated), 0)

    def _accumulators(self, variables: Sequence) -> Dict[int, tf.Tensor]:
        """id(variable) -> what an accumulating optimizer has summed for it so
        far, read before `apply` adds to it or resets it."""
        optimizer = self._optimizer
        if not optimizer.built:
            # As `apply` builds it on its first call (the accumulators are
            # its variables), under the same name scope.
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(list(variables))
            optimizer.built = True
        return {
            id(v): tf.convert_to_tensor(
                optimizer._accumulated_gradients[optimizer._get_variable_index(v)]  # pylint: disable=protected-access
            )
            for v in variables
        }

    def _means(self, gradients: Dict[int, object], accumulated: Dict[int, tf.Tensor]) -> Dict[int, tf.Tensor]:
        """What an accumulating optimizer applies on its update micro-batch,
        as Keras computes it: (this gradient + the accumulated ones) / k."""
        k = float(self._accumulated)
        return {
            key: (tf.convert_to_tensor(g) + tf.cast(accumulated[key], g.dtype)) / k
            for key, g in gradients.items()
        }

    def _recording(self, kind: str, variables: Sequence) -> Callable:
        """The function that records a table (`kind` "norms") or histograms
        of an update of `variables`: a `tf.function` of its own, traced once.
        Keras traces the train step twice on its first call; the statistics
        are most of a logging step's graph, and a function called with
        the same tensors' shapes is not traced again."""
        key = (kind, tuple(id(v) for v in variables))
        if key not in self._recordings:
            if kind == "norms":

                def record(step, gradients, before, applied):
                    return self._record_norms(step, gradients, before, applied, variables)

            else:
                record = self._record_histograms
            # A train step run eagerly stays eager.
            self._recordings[key] = record if tf.executing_eagerly() else tf_state.own_function(record)
        return self._recordings[key]

    def _record_norms(self, step, gradients: Dict[int, object], before, all_grads, all_vars):
        values = table.compute(
            self.spec,
            weights=self._current_weights(),
            gradients=gradients,
            before=self._shaped(before),
            initial={k: tf.convert_to_tensor(w0) for k, w0 in self._initial.items()},
            all_gradients=all_grads,
            all_variables=all_vars,
        )
        return self._write("norms", self.norms, step, values)

    def _record_histograms(self, step, gradients: Dict[int, object]):
        value = table.histogram_values(self.spec.rows, self._current_weights(), gradients, self._bins)
        return self._write("histograms", self.histograms, step, value)

    def _write(self, kind: str, ring: _RingBuffer, step, values) -> tf.Tensor:
        if self._counter is None:
            return ring.write(step, values)
        # Kept aside: an optimizer applied twice in one step logs its last update.
        staged, due = self._staged[kind]
        with tf.control_dependencies([staged.assign(values)]):
            due.assign(True)
            return tf.constant(True)

    def flush_staged(self, step) -> None:
        """At the end of a train step (several optimizers): writes what this
        recorder kept aside in it, at `step`."""
        for kind, ring in (("norms", self.norms), ("histograms", self.histograms)):
            if kind not in self._staged:
                continue
            staged, due = self._staged[kind]

            def write(ring=ring, staged=staged, due=due):
                with tf.control_dependencies([ring.write(step, staged.read_value())]):
                    due.assign(False)
                    return tf.constant(True)

            tf_state.run_if(due.read_value(), write)

    def install(self) -> None:
        """Wraps `apply` on the optimizer instance (not its class).

        Under tf.distribute it also wraps `_all_reduce_sum_gradients`, to keep
        the summed gradients Keras computes for the update: reducing them again
        inside a conditional is not allowed (a merge_call in control flow), and
        reducing them every step would double the communication.
        """
        if self._installed:
            return
        optimizer = self._optimizer
        if "apply" in vars(optimizer):
            raise RuntimeError(
                "tb_weightnorm: this optimizer already has a WeightHealthCallback attached. "
                "Use one WeightHealthCallback per model.fit."
            )
        original = optimizer.apply
        original_all_reduce = getattr(optimizer, "_all_reduce_sum_gradients", None)
        recorder = self
        reduced: List = []

        def all_reduce_sum_gradients(grads_and_vars):
            out = original_all_reduce(grads_and_vars)
            reduced.append(list(out))
            return out

        def apply(grads, trainable_variables=None):
            recorder._prepare()  # at first trace, for models built in their first call
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
            if recorder._counter is not None:
                step = recorder._counter.value.read_value()
            else:
                step = iteration + 1 + recorder.step_offset.read_value()
            intervals = recorder._intervals.read_value()
            applies = recorder._applies_now()
            due_norms = tf.equal(tf.math.floormod(iteration, intervals[0]), 0)
            if applies is not None:
                due_norms = tf.logical_and(applies, due_norms)
            # Only what this call updates has an update (and, under
            # accumulation, what it applies is the mean of the micro-batches).
            updated_here = {id(v) for v in variables}
            before = recorder._weights_before(updated_here, due_norms) if recording else {}
            accumulated = recorder._accumulators(variables) if recording and applies is not None else {}
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
                return recorder._means(by_variable, accumulated) if accumulated else by_variable

            def norms():
                gradients = applied_gradients()
                # In the variables' order: the global row takes a whole
                # variable's norm from its own row.
                applied = [gradients.get(id(v)) for v in variables]
                return recorder._recording("norms", variables)(step, gradients, before, applied)

            tf_state.run_if(due_norms, norms)
            if recorder.histograms is not None:
                due_histograms = tf.equal(tf.math.floormod(iteration, intervals[1]), 0)
                if applies is not None:
                    due_histograms = tf.logical_and(applies, due_histograms)
                record = recorder._recording("histograms", variables)
                tf_state.run_if(due_histograms, lambda: record(step, applied_gradients()))
            return result

        optimizer.apply = apply
        if original_all_reduce is not None:
            optimizer._all_reduce_sum_gradients = all_reduce_sum_gradients
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            del self._optimizer.apply
            vars(self._optimizer).pop("_all_reduce_sum_gradients", None)
            self._installed = False



class LoggingTrainFunction:
    """The model's train function while a callback logs: one function, traced
    once with the hooks in, whose logging conditionals skip the statistics
    (and the reads of the weights before the update) on the steps not logged.

    It is made once per model and what is logged (`ModelRecorders.for_model`
    keeps it), so a later `fit` of the same model traces nothing, as Keras'
    own function does not.

    Args:
        model: a compiled Keras model whose optimizers hold the recorders' hooks.
        recorders: the installed recorders, one per optimizer.
        counter: with several optimizers, the `TrainStepCounter` the step
            counts the training steps with.
        watch: with `watch.watching()` around each execution that logs, an
            `OtherOptimizers` notices optimizers nobody hooked.
    """

    def __init__(self, model, recorders, counter=None, watch=None):
        self._recorders = list(recorders)
        self._counter, self._watch = counter, watch
        self._steps = int(getattr(model, "steps_per_execution", 1) or 1)
        # Keras' own function, as fit made it: put back when the fit ends,
        # so a fit without us uses it as it is.
        plain = getattr(model, "train_function", None)
        self.plain = getattr(plain, "plain", plain)  # one of ours, left by a fit that failed
        if counter is None:
            self._function = model.make_train_function(force=True)
        else:
            # Keras binds `train_step` when it makes the function.
            model.train_step = counter.wrap(model.train_step, self._recorders)
            try:
                self._function = model.make_train_function(force=True)
            finally:
                del model.train_step
        self._function = self._function or model.train_function
        # Executions with an update due to be logged, and the others.
        self.executions = {"logged": 0, "plain": 0}
        # What the last execution logged: "plain", "norms" or "histograms".
        self.last_kind = "plain"
        self.begin_fit()

    def begin_fit(self) -> None:
        """Each optimizer's updates and the training steps when a fit begins,
        to learn how many updates it makes per step."""
        self._start = [(applied_steps(r.optimizer), self._trained()) for r in self._recorders]

    def _trained(self) -> int:
        return int(self._counter.value.numpy()) if self._counter is not None else 0

    def _updates_per_step(self, index: int) -> float:
        if self._counter is None:
            return 1.0
        updates, steps = self._start[index]
        trained = self._trained() - steps
        if trained <= 0:
            return 1.0
        return max(1.0, (applied_steps(self._recorders[index].optimizer) - updates) / trained)

    def __call__(self, iterator):
        recorders = self._recorders
        due = {r.due_in_next(self._steps, self._updates_per_step(i)) for i, r in enumerate(recorders)}
        self.last_kind = "histograms" if "histograms" in due else "norms" if "norms" in due else "plain"
        logging = self.last_kind != "plain"
        self.executions["logged" if logging else "plain"] += 1
        for recorder in recorders:
            # Draining reads the buffers from the device: only after a logged step.
            recorder.unread = recorder.unread or logging
        watching = self._watch.watching() if logging and self._watch is not None else contextlib.nullcontext()
        with watching:
            return self._function(iterator)
