"""The Keras callback: weight, gradient and update health during `model.fit`."""

from __future__ import annotations

import math
import os
from typing import Optional

import keras
import tensorflow as tf

from tb_weightnorm import metadata, model_variables, summary
from tb_weightnorm.optimizer_hook import AppliedUpdateRecorder


class WeightHealthCallback(keras.callbacks.Callback):
    """Logs the health of a model's weights, gradients and updates for TensorBoard.

    Every `every_n_steps` training steps it logs, per variable, the norms and
    moments of the weight, of the gradient the optimizer applied in that step
    (taken inside the optimizer's update: no second pass, no extra data), and of
    the update it made (‖W_after − W_before‖ and its ratio to ‖W‖). Open the
    "Weight Health" tab of `tensorboard --logdir LOG_DIR` to see them.

    It works with `jit_compile=True` and `steps_per_execution > 1`. Data goes to
    `LOG_DIR/train`, beside what Keras' own TensorBoard callback writes there.

    Args:
        log_dir: the TensorBoard log directory of this run.
        every_n_steps: log every N optimizer steps (the first step is always
            logged). Each logged step costs a few passes over the weights and
            keeps one copy of the trainable weights for the update.

    Example:

    ```python
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=5,
              callbacks=[tb_weightnorm.WeightHealthCallback("logs/run1")])
    # then: tensorboard --logdir logs
    ```
    """

    def __init__(self, log_dir: str, *, every_n_steps: int = 10):
        super().__init__()
        if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer; got {every_n_steps!r}.")
        self.log_dir = os.fspath(log_dir)
        self.every_n_steps = every_n_steps
        self._writer: Optional[tf.summary.SummaryWriter] = None
        self._recorder: Optional[AppliedUpdateRecorder] = None
        self._names: Optional[metadata.NormTableNames] = None
        # Keras need not turn the logs into numpy for us: we never read them.
        self._supports_tf_logs = True

    def on_train_begin(self, logs=None):
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                "WeightHealthCallback needs a compiled model with an optimizer: call "
                "`model.compile(optimizer=..., loss=...)` before `model.fit`."
            )
        tracked = model_variables.tracked_variables(model)
        steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        recorder = AppliedUpdateRecorder(
            model.optimizer,
            tracked,
            every_n_steps=self.every_n_steps,
            capacity=math.ceil(steps_per_execution / self.every_n_steps) + 1,
        )
        variables, layers = model_variables.names_of(tracked)
        self._names = metadata.NormTableNames(variables, layers, recorder.stat_names)
        recorder.install()
        self._recorder = recorder
        # The train function may have been traced before the hook existed (an
        # earlier fit): trace it again so the hook is in it.
        model.make_train_function(force=True)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))

    def _write_recorded(self) -> None:
        if self._recorder is None:
            return
        recorded = self._recorder.drain()
        if not recorded:
            return
        with self._writer.as_default():
            for step, table in recorded:
                summary.write_norm_table(self._names, table, step)

    def on_train_batch_end(self, batch, logs=None):
        self._write_recorded()

    def on_epoch_end(self, epoch, logs=None):
        self._write_recorded()
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._write_recorded()
        if self._writer is not None:
            self._writer.flush()
        if self._recorder is not None:
            self._recorder.uninstall()
            self._recorder = None
            # Drop the traced function that holds the hook; the next fit traces anew.
            self.model.train_function = None
