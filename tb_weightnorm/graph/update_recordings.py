"""What a logged step records of an optimizer's update: the norm table and
the histograms of the weights, the gradients applied and the update made.

In the training step (TensorFlow). The optimizer hook
(`writer.optimizer_hook`) calls these inside the optimizer's `apply`; the
results go into record buffers (`record_buffers`), which the host drains
(`writer.update_recorder`). A Keras backend other than TensorFlow would
replace this module, the hook and the buffers, and keep the host side.

The update needs no copy of the weights kept between steps: the logged step
reads them just before the optimizer applies its update, and TensorFlow
copies a variable when it is written while such a read is alive, so
W_before exists only during that step. `spec.with_dist_init` keeps a copy of
the weights when recording started.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from tb_weightnorm.graph import histograms, stats, table, tf_state
from tb_weightnorm.graph.record_buffers import RecordBuffer, buffer_slots
from tb_weightnorm.graph.tf_state import plain_variable


class UpdateRecordings:
    """The recordings of one optimizer's updates, and the variables they
    keep: the record buffers, the initial weights, and with several
    optimizers the step's last table kept aside.

    Args:
        optimizer: the optimizer that applies the gradients (the inner one
            of a LossScaleOptimizer).
        every_n_steps: record norms on updates whose 0-based index is a multiple of it.
        histogram_every_n_steps: the same for histograms; 0 for none.
        histogram_bins: buckets per histogram.
        steps_per_execution: how many steps run between two drains.
        accumulated: micro-batches per applied update (1 without gradient accumulation).
        counter: with several optimizers, the `TrainStepCounter`: tables
            are logged at its step, the last one of a step kept aside until
            the step's end.
        initial_copies: id(variable) -> its initial copy, shared by the
            recordings of one model so the weights are copied once.
    """

    def __init__(
        self,
        optimizer,
        *,
        every_n_steps: int,
        histogram_every_n_steps: int,
        histogram_bins: int,
        steps_per_execution: int,
        accumulated: int,
        counter: Optional["TrainStepCounter"],
        initial_copies: Dict[int, tf.Variable],
    ):
        self.optimizer = optimizer
        self.counter = counter
        self._initial_copies = initial_copies
        self._every, self._hist_every = every_n_steps, histogram_every_n_steps
        self._bins = histogram_bins
        self._steps_per_execution = steps_per_execution
        self.accumulated = accumulated
        self.staged: Dict[str, Tuple[tf.Variable, tf.Variable]] = {}
        # (kind, the variables applied) -> the function that records them.
        self._recordings: Dict[tuple, Callable] = {}
        # The intervals are variables, so the callback can make logging
        # sparser while training runs without tracing the step again.
        self.intervals = plain_variable(
            tf.constant([self._every, max(self._hist_every, 1)], tf.int64), "log_intervals"
        )
        # Added to the optimizer's update count to give the logged step, so
        # that a later fit into the same run (fine-tuning, with a new
        # optimizer counting from 0) goes on after the steps already logged.
        self.step_offset = plain_variable(tf.constant(0, tf.int64), "log_step_offset")
        self.spec: Optional[table.TableSpec] = None
        self.norms: Optional[RecordBuffer] = None
        self.histograms: Optional[RecordBuffer] = None
        # Decided by `prepare`: id -> each logged variable, those updated, their initial copies.
        self.variables: Dict[int, object] = {}
        self.updated: List[int] = []
        self.initial: Dict[int, tf.Variable] = {}

    def prepare(self, spec: table.TableSpec) -> None:
        """Creates the buffers and weight copies for the rows of `spec`
        (outside any graph being traced, so they are plain variables made once).

        Args:
            spec: the norm table to record.
        """
        rows = spec.rows
        variables = table.unique_variables(rows)
        n_rows = len(rows) + (1 if spec.global_row else 0)
        with tf.init_scope():
            self.norms = RecordBuffer(
                buffer_slots(self._steps_per_execution, self._every), [n_rows, len(spec.stats)], "norm_tables"
            )
            if self._hist_every:
                self.histograms = RecordBuffer(
                    buffer_slots(self._steps_per_execution, self._hist_every),
                    [2, len(rows), len(histograms.histogram_columns(self._bins))],
                    "histograms",
                )
            trainable = {id(r.variable) for r in rows if r.trainable}
            self.updated = [k for k in variables if k in trainable] if spec.with_updates else []
            self.initial = {}
            if spec.with_dist_init:
                for k, v in variables.items():
                    if k not in self._initial_copies:
                        self._initial_copies[k] = plain_variable(tf.convert_to_tensor(v), "initial")
                    self.initial[k] = self._initial_copies[k]
            if self.counter is not None:
                for kind, ring in (("norms", self.norms), ("histograms", self.histograms)):
                    if ring is not None:
                        shape = ring.values.shape[1:]
                        self.staged[kind] = (
                            plain_variable(tf.zeros(shape), f"staged_{kind}"),
                            plain_variable(tf.constant(False), f"staged_{kind}_due"),
                        )
        self.variables = variables
        self.spec = spec

    def restart_initial_weights(self) -> None:
        """Takes the weights now as the initial ones (a new run)."""
        for k, copy in self.initial.items():
            copy.assign(tf.convert_to_tensor(self.variables[k]))

    def buffers(self) -> List[RecordBuffer]:
        """The buffers, the norm tables' first (none before `prepare`)."""
        return [r for r in (self.norms, self.histograms) if r is not None]

    # -- in the optimizer's update ------------------------------------------

    def _current_weights(self) -> Dict[int, tf.Tensor]:
        return {k: stats.value_of(v) for k, v in self.variables.items()}

    def weights_before(self, updated_here, due) -> Dict[int, tf.Tensor]:
        """The values of the logged variables this update changes, read before
        it, on steps whose table is `due` (else empty tensors): the train
        step orders the reads before the optimizer's writes to the same
        variables, which then copy rather than change what was read. A read
        on every step would make every step copy every variable.

        Under XLA, which has no conditional of shapeless results, the reads
        are plain (XLA orders and aliases the writes itself).

        Args:
            updated_here: the ids of the variables this `apply` updates.
            due: a bool tensor, whether this update's table is logged.
        """
        keys = [k for k in self.updated if k in updated_here]
        if not keys:
            return {}
        variables = [self.variables[k] for k in keys]
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
            shape = tf.TensorShape(self.variables[k].shape)
            out[k] = tf.reshape(value, shape if shape.is_fully_defined() else tf.shape(self.variables[k].value))
        return out

    def applies_now(self) -> Optional[tf.Tensor]:
        """Under gradient accumulation, whether this micro-batch applies the
        update (the last of its k); None without accumulation."""
        if self.accumulated == 1:
            return None
        micro = tf.cast(tf.convert_to_tensor(self.optimizer._iterations), tf.int64)  # pylint: disable=protected-access
        return tf.equal(tf.math.floormod(micro + 1, self.accumulated), 0)

    def accumulators(self, variables: Sequence) -> Dict[int, tf.Tensor]:
        """id(variable) -> what an accumulating optimizer has summed for it so
        far, read before `apply` adds to it or resets it.

        Args:
            variables: the variables this `apply` updates.
        """
        optimizer = self.optimizer
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

    def means(self, gradients: Dict[int, object], accumulated: Dict[int, tf.Tensor]) -> Dict[int, tf.Tensor]:
        """What an accumulating optimizer applies on its update micro-batch,
        as Keras computes it: (this gradient + the accumulated ones) / k.

        Args:
            gradients: id(variable) -> this micro-batch's gradient.
            accumulated: id(variable) -> what `accumulators` read.
        """
        k = float(self.accumulated)
        return {
            key: (tf.convert_to_tensor(g) + tf.cast(accumulated[key], g.dtype)) / k
            for key, g in gradients.items()
        }

    def recording(self, kind: str, variables: Sequence) -> Callable:
        """The function that records a table (`kind` "norms") or histograms
        of an update of `variables`: a `tf.function` of its own, traced once.
        Keras traces the train step twice on its first call; the statistics
        are most of a logging step's graph, and a function called with
        the same tensors' shapes is not traced again.

        Args:
            kind: "norms" or "histograms".
            variables: the variables this `apply` updates, in its order.
        """
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
            initial={k: tf.convert_to_tensor(w0) for k, w0 in self.initial.items()},
            all_gradients=all_grads,
            all_variables=all_vars,
        )
        return self._write("norms", self.norms, step, values)

    def _record_histograms(self, step, gradients: Dict[int, object]):
        value = table.histogram_values(self.spec.rows, self._current_weights(), gradients, self._bins)
        return self._write("histograms", self.histograms, step, value)

    def _write(self, kind: str, ring: RecordBuffer, step, values) -> tf.Tensor:
        if self.counter is None:
            return ring.write(step, values)
        # Kept aside: an optimizer applied twice in one step logs its last update.
        staged, due = self.staged[kind]
        with tf.control_dependencies([staged.assign(values)]):
            due.assign(True)
            return tf.constant(True)

    def flush_staged(self, step) -> None:
        """At the end of a train step (several optimizers): writes what these
        recordings kept aside in it, at `step`."""
        for kind, ring in (("norms", self.norms), ("histograms", self.histograms)):
            if kind not in self.staged:
                continue
            staged, due = self.staged[kind]

            def write(ring=ring, staged=staged, due=due):
                with tf.control_dependencies([ring.write(step, staged.read_value())]):
                    due.assign(False)
                    return tf.constant(True)

            tf_state.run_if(due.read_value(), write)


class TrainStepCounter:
    """The run's training step, counted inside the train step (several
    optimizers: see `writer.model_optimizers`).

    The callback sets it to the run's last step when a fit begins; each
    `train_step` call adds one at its start, and in the logging function
    writes at its end the tables the recordings kept aside in it.
    """

    def __init__(self):
        self.value = plain_variable(tf.constant(0, tf.int64), "log_train_step")

    def wrap(self, train_step: Callable, recordings: Sequence[UpdateRecordings]) -> Callable:
        """`train_step`, counted, with the tables of `recordings` written at its end.

        Args:
            train_step: the model's bound `train_step`.
            recordings: the `UpdateRecordings` of each optimizer.
        """

        def counted_train_step(data):
            first = tf_state.is_first_replica()
            if first:
                self.value.assign_add(1)
            out = train_step(data)
            if first:
                step = self.value.read_value()
                for recording in recordings:
                    recording.flush_staged(step)
            return out

        return counted_train_step
