"""The callback's logging itself: the recorders that take the norm tables and
histograms inside the train step, the run's event file they are written to,
and the run's step count.

The statistics are taken on the model's device inside the optimizer's update
(`model_optimizers`, `optimizer_hook`); this module is the host side: it
installs the logging step, reads what it recorded after each execution and
writes it out. The callback's other features ask it for the writer, the step
and whether this worker writes.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from tb_weightnorm import schema
from tb_weightnorm.graph import model_variables, record_buffers, table, tf_state
from tb_weightnorm.wire import event_files, metadata
from tb_weightnorm.writer import summary
from tb_weightnorm.writer.model_optimizers import ModelRecorders
from tb_weightnorm.writer.optimizer_hook import applied_steps
from tb_weightnorm.writer.options import LogOptions

logger = logging.getLogger("tb_weightnorm")

# (step, norm table) records, in step order.
NormTables = List[Tuple[int, object]]


class LoggedSteps:
    """What a run logs at its logged steps, and where.

    Args:
        log_dir: the run's log directory; events go to `LOG_DIR/train`.
        options: which variables and stats to log.
        every_n_steps: the norm tables' starting interval, in steps.
        histogram_every_n_steps: the histograms' starting interval; 0 never.

    Example:

    ```python
    steps = LoggedSteps("logs/run1", LogOptions(), every_n_steps=10, histogram_every_n_steps=100)
    steps.begin(model)              # on_train_begin
    kind, names, tables = steps.write_recorded()  # after each execution
    steps.end(model)                # on_train_end
    ```
    """

    def __init__(self, log_dir: str, options: LogOptions, *, every_n_steps: int, histogram_every_n_steps: int):
        self.log_dir = log_dir
        self.options = options
        self.every_n_steps = every_n_steps
        self.histogram_every_n_steps = histogram_every_n_steps
        self.chief = True
        self.writer: Optional[tf.summary.SummaryWriter] = None
        self.recorder: Optional[ModelRecorders] = None
        self._names = None  # (spec, norm table names, histogram names)
        self._step_offset = 0
        # The last step logged or trained in this run.
        self._last_step: Optional[int] = None

    @property
    def run_dir(self) -> str:
        return os.path.join(self.log_dir, "train")

    @property
    def fitting(self) -> bool:
        """Whether a fit is under way (its logging step installed)."""
        return self.recorder is not None

    def begin(self, model) -> None:
        """Installs the logging step in `model` for a fit and opens the
        run's event file (on the chief)."""
        options = self.options
        strategy = model.distribute_strategy
        self.chief = tf_state.is_chief(strategy)

        def make_spec(note: str) -> table.TableSpec:
            rows = model_variables.rows_for(model, options)
            return table.spec_for(rows, options, gradients=True, updates_need_a_copy=False, gradient_note=note)

        steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        # Everything the logging step is traced for beside the model and its
        # optimizers: a later fit that changes none of it reuses the step.
        settings = (
            repr(options),
            steps_per_execution,
            record_buffers.buffer_slots(steps_per_execution, self.every_n_steps),
            record_buffers.buffer_slots(steps_per_execution, self.histogram_every_n_steps)
            if self.histogram_every_n_steps else 0,
        )
        self.recorder = ModelRecorders.for_model(
            model,
            settings,
            make_spec,
            replicas=strategy.num_replicas_in_sync,
            every_n_steps=self.every_n_steps,
            histogram_every_n_steps=self.histogram_every_n_steps,
            histogram_bins=options.histogram_bins,
            steps_per_execution=steps_per_execution,
            # A subclassed model may create its variables in its first call;
            # one without `call` is never marked built, and its rows are
            # decided when its step is first traced, as theirs are.
            ready_now=bool(model.built and model.variables),
        )
        self._step_offset, new_run = self._continuing_offset()
        self.recorder.start(
            offset=self._step_offset,
            norms=self.every_n_steps,
            histograms=self.histogram_every_n_steps,
            new_run=new_run,
        )
        # The logging function: traced on the model's first logged fit, the
        # same one in its later fits.
        model.train_function = self.recorder.install()
        if self.chief and self.writer is None:
            self.writer = tf.summary.create_file_writer(self.run_dir)

    def step(self, model) -> int:
        """The run's step: the model's optimizer's updates (with several
        optimizers, the training steps of this fit), after the offset of the
        fits before it."""
        if self.recorder is not None:
            return self.recorder.step()
        return applied_steps(model.optimizer) + self._step_offset

    def _continuing_offset(self) -> Tuple[int, bool]:
        """(offset, new run): what to add to the optimizer's update count so
        that this fit's steps come after those already logged into the run (a
        second fit with a new optimizer, fine-tuning after `compile` again,
        counts from 0, and its tables would otherwise land on the first
        fit's steps), and whether the run has no steps yet."""
        last = self._last_step
        if last is None and self.chief:
            # A new callback on a run written before: its last table, histogram or grid.
            last = event_files.last_step_with_tag(self.run_dir, metadata.PLUGIN_NAME + "/")
        updates = self.recorder.updates()
        if last is None or updates >= last:
            return 0, last is None
        logger.info(
            "tb_weightnorm: %s already holds steps up to %d and the optimizer has made %d updates: "
            "this fit's steps go on from step %d.",
            self.run_dir, last, updates, last + 1,
        )
        return last - updates, False

    def write_recorded(self) -> Tuple[Optional[str], Optional[schema.NormTableNames], NormTables]:
        """Writes the tables and histograms the train step recorded at once
        (a run killed a step later keeps them).

        Returns:
            What the last execution logged ("plain", "norms" or
            "histograms"; None outside a fit), the norm tables' names, and
            the tables written (none off the chief), for the diagnosis.
        """
        recorder = self.recorder
        if recorder is None:
            return None, None, []
        kind = recorder.last_kind
        writers = None
        if self.chief and self._names is not None and self._names[0] is recorder.spec:
            _, names, hist_names = self._names
            with self.writer.as_default():
                writers = recorder.series_writers(names, hist_names, self.options.histogram_bins)
        if writers is not None:
            # Read and written in one call; the tables come back for the diagnosis.
            with self.writer.as_default():
                norms, hists = recorder.drain(writers)
        else:
            norms, hists = recorder.drain()
        if not self.chief or not (norms or hists):
            return kind, None, []
        spec = recorder.spec
        if self._names is None or self._names[0] is not spec:
            self._names = (spec, spec.names(), spec.histogram_names())
        _, names, hist_names = self._names
        for step, _ in norms:
            self._last_step = max(step, self._last_step or 0)
        with self.writer.as_default():
            # What the call that read them did not write (the first of a series).
            if writers is None:
                summary.write_norm_tables(names, norms)
            summary.write_histogram_tables(hist_names, self.options.histogram_bins, hists)
        return kind, names, list(norms)

    def after_execution(self, model) -> None:
        """Hooks the optimizers the last execution saw update the model's
        variables unhooked (the logging step found them), from the run's
        current step on."""
        if self.recorder is not None:
            taken_in = self.recorder.take_in_others()
            if taken_in is not None:
                model.train_function = taken_in

    def after_first_execution(self) -> None:
        """Says once if no optimizer of the model applied anything in the
        logging step."""
        if self.recorder is not None:
            self.recorder.after_first_execution()

    @property
    def intervals(self) -> Tuple[int, int]:
        """(norm tables, histograms; 0 for none) in steps, as the train step logs them."""
        return self.recorder.intervals

    def make_sparser(self, *, norms: int, histograms: Optional[int]) -> None:
        """Logs from now on every `norms` / `histograms` steps (only larger
        intervals are taken); later fits start from these."""
        self.recorder.make_sparser(norms=norms, histograms=histograms)
        self.every_n_steps, self.histogram_every_n_steps = self.recorder.intervals

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def held_on_device(self) -> Dict[str, int]:
        """The bytes the logging step holds on the model's device, by role."""
        return dict(self.recorder.held_bytes())

    def end(self, model) -> None:
        """Flushes what was logged and takes the logging step out of `model`."""
        self._last_step = max(self.step(model), self._last_step or 0)
        self.flush()
        if self.recorder is not None:
            self.recorder.uninstall()
            self.recorder = None
            # Keras' own function back; ours stays with the recorders, for
            # the model's next logged fit.
            train_function = model.train_function
            model.train_function = getattr(train_function, "plain", None)
