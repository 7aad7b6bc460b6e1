"""The host side of logging an optimizer's updates: when they are due, and
the records read back from the step.

Backend-neutral: Python and numpy on the host, and Keras' own optimizer API.
What runs inside the training step on TensorFlow is elsewhere: the hook into
the optimizer's `apply` (`optimizer_hook`), the statistics it records and the
buffers it writes them into (`graph.update_recordings`,
`graph.record_buffers`). An `AppliedUpdateRecorder` holds those, decides
which executions of the train function log (`due_in_next`), and drains what
they recorded as (step, numpy array) records.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from tb_weightnorm.graph import record_buffers, table, tf_state
from tb_weightnorm.graph.update_recordings import TrainStepCounter, UpdateRecordings
from tb_weightnorm.writer import optimizer_hook
from tb_weightnorm.writer.optimizer_hook import BEFORE_UPDATE, accumulation_steps, applied_steps, innermost_optimizer

logger = logging.getLogger(__name__)

Records = List[Tuple[int, np.ndarray]]


def buffered_records(capacity: int, count: int, steps: np.ndarray, values: np.ndarray) -> Records:
    """The (step, values) records a buffer of `capacity` slots held, read
    after `count` writes, oldest first (the older ones were overwritten).

    Args:
        capacity: the buffer's slots.
        count: the writes since it was last read.
        steps, values: its slots, as read.

    Example:

    >>> [step for step, _ in buffered_records(2, 3, np.array([3, 2]), np.zeros([2, 4]))]
    [2, 3]
    """
    if count == 0:
        return []
    kept = min(count, capacity)
    slots = [(count - kept + i) % capacity for i in range(kept)]
    return [(int(steps[s]), values[s]) for s in slots]


class AppliedUpdateRecorder:
    """Records norm tables (every N steps) and histograms (every M steps) of the
    applied gradients and the updates they make.

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
            (`TrainStepCounter`): tables are logged at its step, the last
            one of a step kept aside until the step's end.
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
        counter: Optional[TrainStepCounter] = None,
        initial_copies: Optional[Dict[int, object]] = None,
    ):
        self._optimizer = innermost_optimizer(optimizer)
        self._make_spec = make_spec
        self._every = int(every_n_steps)
        self._hist_every = int(histogram_every_n_steps)
        self._accumulated = accumulation_steps(optimizer)
        self._steps_per_execution = int(steps_per_execution)
        # What runs in the step, and the variables it keeps.
        self.recordings = UpdateRecordings(
            self._optimizer,
            every_n_steps=self._every,
            histogram_every_n_steps=self._hist_every,
            histogram_bins=int(histogram_bins),
            steps_per_execution=self._steps_per_execution,
            accumulated=self._accumulated,
            counter=counter,
            initial_copies={} if initial_copies is None else initial_copies,
        )
        self._python_intervals = (self._every, max(self._hist_every, 1))
        # Whether the buffers may hold records not drained yet: after an
        # execution with a logged step (see `LoggingTrainFunction`).
        # Draining reads variables from the device: a plain step skips that.
        self.unread = True
        # Whether the optimizer's `apply` ran (or was traced) in the logging function.
        self.applied = False
        # Functions that read and reset the buffers, by the writers they write with (see drain).
        self._takes: Dict[Optional[tuple], Callable] = {}
        # The buffers (by kind) that lost records, said once each.
        self._lost_warned: set = set()
        self._installed = False
        if ready_now:
            self.prepare()

    def prepare(self) -> None:
        """Decides the rows and creates the buffers and weight copies, once."""
        if self.recordings.spec is None:
            self.recordings.prepare(self._make_spec())

    @property
    def spec(self) -> Optional[table.TableSpec]:
        """The norm table recorded, once decided (see `prepare`)."""
        return self.recordings.spec

    @property
    def step_offset(self):
        """The variable added to the optimizer's update count to give the
        logged step (the run's steps before this fit)."""
        return self.recordings.step_offset

    def make_sparser(self, *, norms: Optional[int] = None, histograms: Optional[int] = None) -> None:
        """Logs from now on every `norms` / `histograms` steps. Only larger
        intervals are taken: the ring buffers are sized for the first ones.

        Args:
            norms: the new norm table interval in steps, or None to keep it.
            histograms: the new histogram interval, or None to keep it.
        """
        intervals = self.recordings.intervals
        current = intervals.numpy()
        wanted = [norms or current[0], histograms or current[1]]
        if any(w < c for w, c in zip(wanted, current)):
            raise ValueError(f"intervals only grow: {list(current)} -> {wanted}")
        intervals.assign(wanted)
        self._python_intervals = (int(wanted[0]), int(wanted[1]))

    def start_intervals(self, norms: int, histograms: int) -> None:
        """Logs every `norms` / `histograms` steps from now on, smaller or
        larger than before (a later fit of the model, with its own callback):
        as long as the buffers hold what an execution logs.

        Args:
            norms: the norm table interval in steps.
            histograms: the histogram interval in steps (0 or 1: every step).
        """
        histograms = max(int(histograms), 1)
        buffer = self.recordings.norms
        if buffer is not None and record_buffers.buffer_slots(self._steps_per_execution, norms) > buffer.capacity:
            raise ValueError(f"an interval of {norms} steps needs larger buffers than these")
        self.recordings.intervals.assign([int(norms), histograms])
        self._python_intervals = (int(norms), histograms)

    def restart_initial_weights(self) -> None:
        """Takes the weights now as the initial ones (a new run)."""
        self.recordings.restart_initial_weights()

    def due_in_next(self, steps: int, updates_per_step: float = 1.0) -> str:
        """What is due to be logged among the updates the next `steps`
        training steps can apply (`updates_per_step` each: a WGAN's critic
        makes several): "histograms" (with or without a table), "norms" or
        "" for nothing. Updates a loss scale skips only move the due ones
        later, into a window this is asked about again.

        Args:
            steps: the training steps of the next execution.
            updates_per_step: this optimizer's updates per training step.
        """
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
        if self.recordings.histograms is not None and due(histograms):
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
        norms, histograms = self.recordings.intervals.numpy()
        return int(norms), int(histograms) if self._hist_every else 0

    def held_bytes(self) -> Dict[str, int]:
        """Bytes of what the recorder keeps beside the model (on the model's
        device), by role; all 0 before the rows are decided."""
        recordings = self.recordings

        def buffer(ring: Optional[record_buffers.RecordBuffer], kind: str) -> int:
            if ring is None:
                return 0
            # With several optimizers, the step's table kept aside too.
            return tf_state.variable_bytes([*ring.variables, *recordings.staged.get(kind, ())])

        return {
            BEFORE_UPDATE: tf_state.variable_bytes([recordings.variables[k] for k in recordings.updated]),
            "initial weights": tf_state.variable_bytes(recordings.initial.values()),
            "norm table buffer": buffer(recordings.norms, "norms"),
            "histogram buffer": buffer(recordings.histograms, "histograms"),
        }

    def drain(self, writers: Optional[tuple] = None) -> Tuple[Records, Records]:
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
        if not self.unread or self.recordings.norms is None:
            return [], []
        self.unread = False
        rings = self.recordings.buffers()
        key = writers[0] if writers is not None else None
        if key not in self._takes:
            write = list(writers[1:]) if writers is not None else [None, None]
            self._takes[key] = record_buffers.take_function(rings, write)
        taken = [[t.numpy() for t in ring] for ring in self._takes[key]()]
        drained = []
        for i, (ring, kind, (count, steps, values)) in enumerate(zip(rings, ("norms", "histograms"), taken)):
            self._warn_lost(ring, kind, int(count))
            if i > 0 and writers is not None and writers[2] is not None:
                drained.append([])
            else:
                drained.append(buffered_records(ring.capacity, int(count), steps, values))
        return drained[0], drained[1] if len(drained) > 1 else []

    def _warn_lost(self, ring: record_buffers.RecordBuffer, kind: str, count: int) -> None:
        """Says once per buffer if more was recorded than it holds."""
        if count > ring.capacity and kind not in self._lost_warned:
            logger.warning(
                "tb_weightnorm: %d logged steps were overwritten before they were written; "
                "log less often or lower steps_per_execution.",
                count - ring.capacity,
            )
            self._lost_warned.add(kind)

    def install(self) -> None:
        """Hooks the optimizer's `apply` (see `optimizer_hook.install`), once."""
        if self._installed:
            return
        optimizer_hook.install(self)
        self._installed = True

    def uninstall(self) -> None:
        """Takes the hook off the optimizer."""
        if self._installed:
            optimizer_hook.uninstall(self._optimizer)
            self._installed = False

