"""The Keras callback: weight, gradient and update health during `model.fit`.

The callback keeps Keras' hooks thin: each calls the features it drives, one
a module, in the order their effects must happen.

- `logged_steps`: the logging step in the model, its tables and histograms
  written to the event file (what runs inside the step is `model_optimizers`
  and `optimizer_hook`, on TensorFlow; the rest is host side);
- `cost_budget`: times the steps and logs less often where logging is dear;
- `kernel_grids`: when to draw the conv kernels, drawing and writing them;
- `snapshots`: the weight snapshots every N epochs;
- `report`: the diagnosis of the logged steps and its findings reported;
- `alert_watch`: alerts at logged steps, and the last healthy weights.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import keras

from tb_weightnorm import diagnosis
from tb_weightnorm.writer.alert_watch import AlertWatch
from tb_weightnorm.writer.alerts import Alert, WeightHealthAlert
from tb_weightnorm.writer.cost_budget import StepTimes
from tb_weightnorm.writer.kernel_grids import KernelGrids
from tb_weightnorm.writer.logged_steps import LoggedSteps
from tb_weightnorm.writer.options import LogOptions, every
from tb_weightnorm.writer.report import Report
from tb_weightnorm.writer.snapshots import EpochSnapshots

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
        self.options = options
        # What the cost budget times steps and drawings with; a test gives
        # the callback a clock of its own, so no decision depends on how
        # busy the machine is.
        self._clock: Callable[[], float] = time.perf_counter
        self._steps = LoggedSteps(
            self.log_dir,
            options,
            every_n_steps=DEFAULT_EVERY_N_STEPS if every_n_steps is None else every_n_steps,
            histogram_every_n_steps=(
                DEFAULT_HISTOGRAM_EVERY_N_STEPS
                if histogram_every_n_steps is None
                else every("histogram_every_n_steps", histogram_every_n_steps)
            ),
        )
        self._step_times = StepTimes((every_n_steps is None, histogram_every_n_steps is None), self._now)
        self._grids = KernelGrids(kernel_grid_every_n_epochs, options, self._now)
        self._report = Report(report, thresholds, self.log_dir)
        self._snapshots = EpochSnapshots(snapshot_every_n_epochs, snapshot_layers)
        self._alerts = AlertWatch(stop_on, on_alert, healthy_weights_path, self.log_dir)
        # What the device held at the end of the last fit (see held_bytes).
        self._held_on_device: Dict[str, int] = {}
        # Keras need not turn the logs into numpy for us: we never read them.
        self._supports_tf_logs = True

    def _now(self) -> float:
        return self._clock()

    # -- what the constructor was given (the intervals as they are now) -----

    @property
    def every_n_steps(self) -> int:
        return self._steps.every_n_steps

    @property
    def histogram_every_n_steps(self) -> int:
        return self._steps.histogram_every_n_steps

    @property
    def kernel_grid_every_n_epochs(self) -> int:
        return self._grids.every_n_epochs

    @property
    def report(self) -> Optional[str]:
        return self._report.severity

    @property
    def thresholds(self) -> diagnosis.Thresholds:
        return self._report.thresholds

    @property
    def findings(self) -> List[diagnosis.Finding]:
        """The findings of the steps logged so far, most severe first."""
        return self._report.findings

    @property
    def snapshot_every_n_epochs(self) -> int:
        return self._snapshots.every_n_epochs

    @property
    def snapshot_layers(self) -> Union[str, Sequence[str]]:
        return self._snapshots.layers

    @property
    def on_alert(self) -> str:
        return self._alerts.on_alert

    @property
    def healthy_weights_path(self) -> str:
        return self._alerts.healthy_weights_path

    @property
    def alert(self) -> Optional[Alert]:
        """The alert of the last fit; None if none was raised."""
        return self._alerts.alert

    # -- Keras' hooks ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                "WeightHealthCallback needs a compiled model with an optimizer: call "
                "`model.compile(optimizer=..., loss=...)` before `model.fit`."
            )
        self._steps.begin(model)
        self._step_times.restart()
        self._grids.train_began(model, self._steps)
        self._alerts.train_began(model, self._steps)
        self._snapshots.train_began(self._steps)

    def _write_recorded(self) -> Optional[str]:
        """Writes what the train step recorded and hands the tables to the
        diagnosis; returns what the last execution logged: "plain", "norms"
        or "histograms" (None outside a fit)."""
        kind, names, tables = self._steps.write_recorded()
        if names is not None:
            self._report.add_tables(names, tables)
        if tables:
            self._alerts.logged(tables[-1][0])
        return kind

    def on_train_batch_end(self, batch, logs=None):
        kind = self._write_recorded()
        self._steps.after_execution(self.model)
        # Inside the measured time: watching for alerts is part of what logging costs.
        self._watch()
        self._step_times.step_ended(kind, self._steps)

    def on_epoch_begin(self, epoch, logs=None):
        self._step_times.restart()
        self._snapshots.epoch_began(epoch, self.model, self._steps)

    def on_epoch_end(self, epoch, logs=None):
        self._write_recorded()
        self._steps.after_first_execution()
        self._watch()
        self._grids.epoch_ended(epoch, self.model, self._steps)
        self._snapshots.epoch_ended(
            epoch, self.model, self._steps, weights_are_the_epochs=not self._alerts.stopped_mid_epoch
        )
        self._steps.flush()
        self._report.say_new_findings()

    def on_train_end(self, logs=None):
        self._write_recorded()
        self._grids.train_ended(self.model, self._steps)
        self._steps.flush()
        self._report.say_new_findings()
        self._end_fit()

    def _watch(self) -> None:
        alert = self._alerts.look(self.model, self._steps, self._report)
        if alert is not None and alert.action == "raise":
            self._end_fit()
            raise WeightHealthAlert(alert)

    def _end_fit(self) -> None:
        """Flushes what was logged, takes the hook out of the optimizer and
        lets go of the healthy weights' copy."""
        if self._steps.fitting:
            self._held_on_device = self._live_held_on_device()
            self._alerts.let_go()
        self._steps.end(self.model)

    def _live_held_on_device(self) -> Dict[str, int]:
        held = self._steps.held_on_device()
        held[_HEALTHY_BYTES] = self._alerts.healthy_nbytes
        return held

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
        if self._steps.fitting:
            held = self._live_held_on_device()
        else:
            held = dict(self._held_on_device)
        held["tables kept for the diagnosis (host)"] = self._report.nbytes
        return held
