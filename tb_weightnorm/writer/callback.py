"""The Keras callback: weight, gradient and update health during `model.fit`."""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

from tb_weightnorm import diagnosis, snapshots
from tb_weightnorm.graph import model_variables, record_buffers, table, tf_state
from tb_weightnorm.read.history import HistoryBuffer
from tb_weightnorm.wire import event_files, metadata
from tb_weightnorm.writer import alerts, cost_budget, summary
from tb_weightnorm.writer.alerts import Alert, AlertPolicy, WeightHealthAlert
from tb_weightnorm.writer.healthy_weights import HealthyWeights
from tb_weightnorm.writer.model_optimizers import ModelRecorders
from tb_weightnorm.writer.optimizer_hook import applied_steps
from tb_weightnorm.writer.options import LogOptions, every

logger = logging.getLogger("tb_weightnorm")

# Where the automatic intervals start (see `cost_budget`).
DEFAULT_EVERY_N_STEPS = 10
DEFAULT_HISTOGRAM_EVERY_N_STEPS = 100
_HEALTHY_BYTES = "last healthy weights (alerts)"


class WeightHealthCallback(keras.callbacks.Callback):
    """Logs the health of a model's weights, gradients and updates for TensorBoard.

    Every `every_n_steps` training steps it logs, per variable (LSTM and GRU
    variables per gate), the norms and moments of the weight, of the gradient
    the optimizer applied in that step (taken inside the optimizer's update: no
    second pass, no extra data; unscaled under mixed precision, summed over
    replicas under `tf.distribute`, before clipping if the optimizer clips),
    and of the update it made (‖W_after − W_before‖ and its ratio to ‖W‖), the
    fraction of dead units, the distance from the initial weights, and the
    global gradient norm. Weight and gradient histograms and conv kernel grids
    come at their own, rarer, frequencies. Open the "Weight Health" tab of
    `tensorboard --logdir LOG_DIR` to see them.

    It works with `jit_compile=True` and `steps_per_execution > 1`. Data goes to
    `LOG_DIR/train`, beside what Keras' own TensorBoard callback writes there.
    Under multi-worker training only the chief writes.

    Args:
        log_dir: the TensorBoard log directory of this run.
        every_n_steps: log the norm table every N optimizer steps (the first
            step is always logged). None (the default) starts at every 10
            steps and logs less often if that would slow training by more
            than about half a percent (see `tb_weightnorm.writer.cost_budget`): a
            200-layer MLP with 8 ms steps ends up logging every 1,000 steps,
            a CNN with 100 ms steps every 10.
        histogram_every_n_steps: log weight and gradient histograms every M
            steps; 0 never; None (the default) starts at every 100 steps
            and, like the tables, logs less often if they cost more than
            about half a percent.
        kernel_grid_every_n_epochs: log conv kernel grid images at the start
            and every K epochs; 0 never. None (the default) draws them at the
            start, then at an epoch end (and at the end of training) once
            enough time has passed that drawing them again adds at most
            about half a percent: every epoch for epochs of a few minutes,
            less often for short ones.
        report: at each epoch end, diagnose the steps logged so far (the same
            rules as the tab and `tb-weightnorm report`) and write each new
            finding of at least this severity (`"info"`, `"warning"`,
            `"critical"`) to the `tb_weightnorm` logger; None to stay quiet.
            The findings are in `callback.findings` either way.
        thresholds: a `tb_weightnorm.diagnosis.Thresholds` for the diagnosis.
        snapshot_every_n_epochs: save the weights of `snapshot_layers` at the
            start of training and every N epochs, as files beside the run's
            event files (`LOG_DIR/train/tb_weightnorm/snapshots/`, one per
            snapshot, named by the epochs trained); 0 never. Read them with
            `tb_weightnorm.snapshots.load(LOG_DIR)`; the tab shows how far
            each layer moved between any two.
        snapshot_layers: which weights a snapshot holds: `"all"` (every
            float variable, BatchNormalization's moving statistics included),
            `"trainable"`, or a list of layer names or glob patterns on layer
            names and variable paths (`["conv*", "*/kernel"]`).
        stop_on: alert when the diagnosis, run at every logged step, finds a
            problem that still holds at that step: a severity (`"critical"`:
            any finding at least that severe), or a list of rules, each
            optionally with the least severity that counts
            (`["nonfinite", "exploding_gradients:critical"]`). None (the
            default) never alerts. The alert is logged (rule, layer, steps,
            what to try) and kept in `callback.alert`.
        on_alert: `"stop"` ends training after the step that raised the
            alert, as `EarlyStopping` does (the epoch's end callbacks still
            run); `"raise"` raises `tb_weightnorm.WeightHealthAlert` from
            `model.fit` at once. Either way what was logged is flushed first.
        healthy_weights_path: where an alert saves the last healthy weights
            (those of the last logged step without a finding that alerts), in
            Keras' format for `model.load_weights`; it must end in
            `.weights.h5`. Default: `LOG_DIR/train/tb_weightnorm/last_healthy.weights.h5`.
            While alerts are on, the callback keeps one copy of the model's
            weights on its device for this.
        options: a `tb_weightnorm.LogOptions`; or pass its fields as keywords
            (`include`, `exclude`, `trainable_only`, `stats`, `split_gates`,
            `histogram_bins`, `max_kernel_filters`, `keep_initial_weights`).

    Example:

    ```python
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=5, callbacks=[
        tb_weightnorm.WeightHealthCallback("logs/run1", every_n_steps=10,
                                           exclude=["*/bias"])])
    # then: tensorboard --logdir logs
    ```

    Stop a run that blows up, keeping the weights from before it did, and
    snapshot the weights every 5 epochs:

    ```python
    callback = tb_weightnorm.WeightHealthCallback(
        "logs/run1", stop_on="critical", snapshot_every_n_epochs=5)
    model.fit(x, y, epochs=50, callbacks=[callback])
    if callback.alert is not None:
        model.load_weights(callback.alert.weights_path)
    ```
    """

    def __init__(
        self,
        log_dir: str,
        *,
        every_n_steps: Optional[int] = None,
        histogram_every_n_steps: Optional[int] = None,
        kernel_grid_every_n_epochs: Optional[int] = None,
        report: Optional[str] = "warning",
        thresholds: Optional[diagnosis.Thresholds] = None,
        snapshot_every_n_epochs: int = 0,
        snapshot_layers: Union[str, Sequence[str]] = "all",
        stop_on: Optional[Union[str, Sequence[str]]] = None,
        on_alert: str = "stop",
        healthy_weights_path: Optional[str] = None,
        options: Optional[LogOptions] = None,
        **option_kwargs,
    ):
        super().__init__()
        options = LogOptions.resolve(options, option_kwargs, "WeightHealthCallback")
        if every_n_steps is not None and every("every_n_steps", every_n_steps) == 0:
            raise ValueError("every_n_steps must be a positive integer or None (automatic); got 0.")
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(
                f"log_dir must be the path of the run's log directory (a str or os.PathLike); got "
                f"{type(log_dir).__name__} {log_dir!r}. Pass e.g. WeightHealthCallback('logs/run1')."
            )
        self.log_dir = os.fspath(log_dir)
        # Which intervals follow the cost budget, and where they start.
        self._adaptive = (every_n_steps is None, histogram_every_n_steps is None)
        self.every_n_steps = DEFAULT_EVERY_N_STEPS if every_n_steps is None else every_n_steps
        self.histogram_every_n_steps = (
            DEFAULT_HISTOGRAM_EVERY_N_STEPS
            if histogram_every_n_steps is None
            else every("histogram_every_n_steps", histogram_every_n_steps)
        )
        # What the cost budget times steps and drawings with; a test gives
        # it a clock of its own, so no decision depends on how busy the
        # machine is.
        self._clock: Callable[[], float] = time.perf_counter
        self._step_times = {kind: collections.deque(maxlen=9) for kind in ("plain", "norms", "histograms")}
        self._step_started: Optional[float] = None
        self._adaptive_grids = kernel_grid_every_n_epochs is None
        self.kernel_grid_every_n_epochs = (
            1 if kernel_grid_every_n_epochs is None else every("kernel_grid_every_n_epochs", kernel_grid_every_n_epochs)
        )
        # (seconds the last drawing took, when it ended), for the automatic timing.
        self._last_grids: Optional[Tuple[float, float]] = None
        if report is not None and report not in diagnosis.SEVERITIES:
            raise ValueError(
                f"report must be one of {', '.join(diagnosis.SEVERITIES)} or None; got {report!r}"
            )
        self.report = report
        self.thresholds = thresholds or diagnosis.Thresholds()
        self.options = options
        self.findings: List[diagnosis.Finding] = []
        self._reported = set()
        self.snapshot_every_n_epochs = every("snapshot_every_n_epochs", snapshot_every_n_epochs)
        snapshots.selection(snapshot_layers)  # a bad choice fails here, not after an epoch
        self.snapshot_layers = snapshot_layers
        self._alert_policy = AlertPolicy.parse(stop_on) if stop_on is not None else None
        if on_alert not in alerts.ON_ALERT:
            raise ValueError(f"on_alert must be one of {', '.join(alerts.ON_ALERT)}; got {on_alert!r}")
        self.on_alert = on_alert
        if healthy_weights_path is None:
            healthy_weights_path = os.path.join(self.log_dir, "train", "tb_weightnorm", "last_healthy.weights.h5")
        healthy_weights_path = os.fspath(healthy_weights_path)
        if not healthy_weights_path.endswith(".weights.h5"):
            raise ValueError(
                "healthy_weights_path must end in '.weights.h5' (Keras' format for model.load_weights); "
                f"got {healthy_weights_path!r}"
            )
        self.healthy_weights_path = healthy_weights_path
        self.alert: Optional[Alert] = None
        self._alerted = set()
        self._healthy: Optional[HealthyWeights] = None
        self._stopped_mid_epoch = False
        self._history: Optional[HistoryBuffer] = None
        self._undiagnosed = False  # tables came in since the last diagnosis
        self._unwatched_step: Optional[int] = None  # the last logged step, until alerts look at it
        self._writer: Optional[tf.summary.SummaryWriter] = None
        self._recorder: Optional[ModelRecorders] = None
        self._held_on_device: Dict[str, int] = {}
        self._convs = None
        self._grids_step: Optional[int] = None  # the step the last grids show
        self._names = None  # (spec, norm table names, histogram names)
        self._chief = True
        self._step_offset = 0
        # The last step this callback logged or trained in its run.
        self._last_step: Optional[int] = None
        # Keras need not turn the logs into numpy for us: we never read them.
        self._supports_tf_logs = True

    def on_train_begin(self, logs=None):
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                "WeightHealthCallback needs a compiled model with an optimizer: call "
                "`model.compile(optimizer=..., loss=...)` before `model.fit`."
            )
        options = self.options
        strategy = model.distribute_strategy
        self._chief = tf_state.is_chief(strategy)

        def make_spec(note: str) -> table.TableSpec:
            rows = model_variables.rows_for(model, options)
            return table.make_spec(
                rows,
                gradients=True,
                updates=True,
                dist_init=options.keeps_initial_weights(table.element_count(rows)),
                stats=options.stats,
                gradient_note=note,
            )

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
        self._recorder = ModelRecorders.for_model(
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
        self._recorder.start(
            offset=self._step_offset,
            norms=self.every_n_steps,
            histograms=self.histogram_every_n_steps,
            new_run=new_run,
        )
        # The logging function: traced on the model's first logged fit, the
        # same one in its later fits.
        model.train_function = self._recorder.install()
        if self._chief and self._writer is None:
            self._writer = tf.summary.create_file_writer(self._run_dir())
        self._convs = None
        self._step_started = None
        self._write_kernel_grids()
        self.alert = None
        self._stopped_mid_epoch = False
        self._unwatched_step = None
        self._snapshot_at_start = bool(self.snapshot_every_n_epochs) and self._chief
        self._healthy = None
        if self._alert_policy is not None and self._chief:
            self._healthy = HealthyWeights()
            if model.weights:
                # Until a logged step is found healthy, the weights the fit started from.
                self._healthy.keep(model, self._step())

    def _step(self) -> int:
        """The run's step: the model's optimizer's updates (with several
        optimizers, the training steps of this fit), after the offset of the
        fits before it."""
        if self._recorder is not None:
            return self._recorder.step()
        return applied_steps(self.model.optimizer) + self._step_offset

    def _continuing_offset(self) -> Tuple[int, bool]:
        """(offset, new run): what to add to the optimizer's update count so
        that this fit's steps come after those already logged into the run (a
        second fit with a new optimizer, fine-tuning after `compile` again,
        counts from 0, and its tables would otherwise land on the first
        fit's steps), and whether the run has no steps yet."""
        last = self._last_step
        if last is None and self._chief:
            # A new callback on a run written before: its last table, histogram or grid.
            last = event_files.last_step_with_tag(self._run_dir(), metadata.PLUGIN_NAME + "/")
        updates = self._recorder.updates()
        if last is None or updates >= last:
            return 0, last is None
        logger.info(
            "tb_weightnorm: %s already holds steps up to %d and the optimizer has made %d updates: "
            "this fit's steps go on from step %d.",
            self._run_dir(), last, updates, last + 1,
        )
        return last - updates, False

    def _run_dir(self) -> str:
        return os.path.join(self.log_dir, "train")

    def _grids_due(self) -> bool:
        if not self._adaptive_grids or self._last_grids is None:
            return True
        cost, ended = self._last_grids
        return cost_budget.grids_due(cost, self._clock() - ended)

    def _write_kernel_grids(self) -> None:
        if not self.kernel_grid_every_n_epochs or not self._chief:
            return
        started = self._clock()
        if self._convs is None or not self.model.built:
            if not self.model.variables:
                return  # built in its first call: the first grids come at epoch end
            # Looked for again while the model is not marked built: it may
            # still create layers' variables (or, without `call`, never be).
            options = self.options
            self._convs = model_variables.conv_kernels(self.model, include=options.include, exclude=options.exclude)
        step = self._step()
        with self._writer.as_default():
            for conv in self._convs:
                summary.write_kernel_grid(conv, step, max_filters=self.options.max_kernel_filters)
        ended = self._clock()
        self._last_grids = (ended - started, ended)
        self._grids_step = step

    def _write_recorded(self) -> Optional[str]:
        """Writes the tables and histograms the train step recorded at once
        (a run killed a step later keeps them); returns what the last
        execution logged: "plain", "norms" or "histograms"."""
        recorder = self._recorder
        if recorder is None:
            return None
        kind = recorder.last_kind
        writers = None
        if self._chief and self._names is not None and self._names[0] is recorder.spec:
            _, names, hist_names = self._names
            with self._writer.as_default():
                writers = recorder.series_writers(names, hist_names, self.options.histogram_bins)
        if writers is not None:
            # Read and written in one call; the tables come back for the diagnosis.
            with self._writer.as_default():
                norms, hists = recorder.drain(writers)
        else:
            norms, hists = recorder.drain()
        if not self._chief or not (norms or hists):
            return kind
        spec = recorder.spec
        if self._names is None or self._names[0] is not spec:
            hist_spec = table.make_spec(spec.rows, gradients=False, updates=False, dist_init=False)
            self._names = (spec, spec.names(), hist_spec.names())
        _, names, hist_names = self._names
        if self._history is None:
            self._history = HistoryBuffer(names)
        elif self._history.names is not names:
            self._history = self._history.renamed(names)  # a later fit, other rows
        now = time.time()
        for step, values in norms:
            self._last_step = max(step, self._last_step or 0)
            self._history.append(step, now, values)
            self._undiagnosed = True
            self._unwatched_step = step
        with self._writer.as_default():
            # What the call that read them did not write (the first of a series).
            if writers is None:
                summary.write_norm_tables(names, norms)
            summary.write_histogram_tables(hist_names, self.options.histogram_bins, hists)
        return kind

    def on_train_batch_end(self, batch, logs=None):
        started = self._clock()
        kind = self._write_recorded()
        if self._recorder is not None:
            taken_in = self._recorder.take_in_others()
            if taken_in is not None:
                self.model.train_function = taken_in
        # Inside the measured time: watching for alerts is part of what logging costs.
        self._watch()
        ended = self._clock()
        if self._step_started is not None and kind is not None:
            # The step (with its in-graph statistics) and writing them out.
            self._step_times[kind].append(ended - self._step_started)
            if kind != "plain":
                self._follow_budget()
        self._step_started = ended

    def on_epoch_begin(self, epoch, logs=None):
        # The first step of an epoch also waits for its data: not a step time.
        self._step_started = None
        if self._snapshot_at_start:
            self._snapshot_at_start = False
            if self.model.weights:
                self._save_snapshot(epoch)

    def _save_snapshot(self, epochs_trained: int) -> None:
        path = snapshots.save(
            self.model, self._run_dir(), epoch=epochs_trained, step=self._step(), layers=self.snapshot_layers
        )
        logger.debug("tb_weightnorm: saved the weight snapshot of epoch %d to %s", epochs_trained, path)

    # -- alerts -------------------------------------------------------------

    def _watch(self) -> None:
        """Diagnoses the run after new logged steps and raises an alert for a
        new finding that counts; otherwise keeps the weights of the last
        logged step as the healthy ones."""
        last_logged, self._unwatched_step = self._unwatched_step, None
        if self._alert_policy is None or last_logged is None:
            return
        self._refresh_findings()
        finding = self._alert_policy.new_alert(self.findings, self._alerted)
        if finding is not None:
            self._raise_alert(finding, last_logged)
        elif not self._alert_policy.holds(self.findings) and last_logged == self._step():
            # With steps_per_execution > 1, only a logged step that ends an
            # execution has its weights still in the model.
            self._healthy.keep(self.model, last_logged)

    def _raise_alert(self, finding: diagnosis.Finding, step: int) -> None:
        self._alerted.add(alerts.key(finding))
        # Said once, as an alert, not again by the epoch's report.
        self._reported.add((finding.rule, finding.layer, finding.variable))
        if self._writer is not None:
            self._writer.flush()
        healthy = self._healthy
        path = None
        if healthy is not None and healthy.step is not None:
            healthy.save(self.model, self.healthy_weights_path)
            path = self.healthy_weights_path
        self.alert = Alert(
            finding, step, healthy.step if path is not None else None, path, self.on_alert
        )
        logger.error("%s", self.alert.message())
        if self.on_alert == "stop":
            self.model.stop_training = True
            self._stopped_mid_epoch = True
            return
        self._end_fit()
        raise WeightHealthAlert(self.alert)

    def _follow_budget(self) -> None:
        """Logs less often where logging costs more than its budget."""
        times = self._step_times
        norms, histograms = self._recorder.intervals
        new_norms = new_histograms = None
        if self._adaptive[0]:
            new_norms = cost_budget.interval_for(norms, times["norms"], times["plain"])
        if self._adaptive[1] and histograms:
            # A histogram step also logs a table when both fall on it.
            new_histograms = cost_budget.interval_for(
                histograms, times["histograms"], times["norms"] if len(times["norms"]) else times["plain"]
            )
        if new_norms is None and new_histograms is None:
            return
        new_norms = new_norms or norms
        # Histograms are never more frequent than tables.
        new_histograms = max(new_histograms or histograms, new_norms) if histograms else None
        self._recorder.make_sparser(norms=new_norms, histograms=new_histograms)
        self.every_n_steps, self.histogram_every_n_steps = self._recorder.intervals
        logger.info(
            "tb_weightnorm: logging norm tables every %d steps and histograms every %d, to keep "
            "their cost under %.1f%% of training time.",
            self.every_n_steps, self.histogram_every_n_steps, 100 * cost_budget.BUDGET,
        )

    def on_epoch_end(self, epoch, logs=None):
        self._write_recorded()
        if self._recorder is not None:
            self._recorder.after_first_execution()
        self._watch()
        if self._adaptive_grids:
            if self._grids_due():
                self._write_kernel_grids()
        elif self.kernel_grid_every_n_epochs and (epoch + 1) % self.kernel_grid_every_n_epochs == 0:
            self._write_kernel_grids()
        # An alert that stopped training mid-epoch: these weights are not the epoch's.
        if (
            self.snapshot_every_n_epochs
            and self._chief
            and not self._stopped_mid_epoch
            and (epoch + 1) % self.snapshot_every_n_epochs == 0
        ):
            self._save_snapshot(epoch + 1)
        if self._writer is not None:
            self._writer.flush()
        self._diagnose()

    def _refresh_findings(self) -> None:
        if not self._undiagnosed:
            return
        self._undiagnosed = False
        self.findings = diagnosis.diagnose(self._history.history(self.log_dir), self.thresholds)

    def _diagnose(self) -> None:
        """Diagnoses the steps logged so far and reports the new findings."""
        self._refresh_findings()
        if self.report is None:
            return
        floor = diagnosis.severity_rank(self.report)
        for finding in self.findings:
            key = (finding.rule, finding.layer, finding.variable)
            if diagnosis.severity_rank(finding.severity) >= floor and key not in self._reported:
                self._reported.add(key)
                logger.warning(
                    "Weight Health %s: %s in %s: %s",
                    finding.severity, finding.rule, finding.variable or finding.layer, finding.message,
                )

    def held_bytes(self) -> Dict[str, int]:
        """What the callback holds beside the model, in bytes, by role.

        On the model's device: the copy of the logged weights before the
        update (it exists only while a logged step runs), the copy of the
        initial weights (for `weight/dist_init`), the small buffers the train step writes its
        tables into, and, while alerts are on (`stop_on`), the copy of the
        last healthy weights. On the host: the logged tables kept for the
        diagnosis (at most 2,000 logged steps; older ones are thinned out).
        The device figures are those of the last `fit` once it has ended.

        Example:

        ```python
        callback = tb_weightnorm.WeightHealthCallback("logs/run1")
        model.fit(x, y, callbacks=[callback])
        print(callback.held_bytes())
        ```
        """
        if self._recorder is not None:
            held = dict(self._recorder.held_bytes())
            held[_HEALTHY_BYTES] = self._healthy.nbytes if self._healthy is not None else 0
        else:
            held = dict(self._held_on_device)
        held["tables kept for the diagnosis (host)"] = self._history.nbytes if self._history is not None else 0
        return held

    def on_train_end(self, logs=None):
        self._write_recorded()
        if self._adaptive_grids and self._grids_step != self._step() and self._grids_due():
            self._write_kernel_grids()  # the kernels training ended with
        if self._writer is not None:
            self._writer.flush()
        self._diagnose()
        self._end_fit()

    def _end_fit(self) -> None:
        """Flushes what was logged, takes the hook out of the optimizer and
        lets go of the healthy weights' copy."""
        self._last_step = max(self._step(), self._last_step or 0)
        if self._writer is not None:
            self._writer.flush()
        if self._recorder is not None:
            self._held_on_device = self._recorder.held_bytes()
            self._held_on_device[_HEALTHY_BYTES] = self._healthy.nbytes if self._healthy is not None else 0
            self._healthy = None
            self._recorder.uninstall()
            self._recorder = None
            # Keras' own function back; ours stays with the recorders, for
            # the model's next logged fit.
            train_function = self.model.train_function
            self.model.train_function = getattr(train_function, "plain", None)
