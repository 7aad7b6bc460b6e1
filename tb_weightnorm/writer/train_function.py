"""The model's train function while a callback logs, and which of its
executions log.

Host side, backend-neutral: Keras' `make_train_function` and Python. The
function it makes runs the hooked optimizers' updates (`optimizer_hook`),
whose recordings are TensorFlow code in the step.
"""

from __future__ import annotations

import contextlib

from tb_weightnorm.writer.optimizer_hook import applied_steps


class LoggingTrainFunction:
    """The model's train function while a callback logs: one function, traced
    once with the hooks in, whose logging conditionals skip the statistics
    (and the reads of the weights before the update) on the steps not logged.

    It is made once per model and what is logged (`ModelRecorders.for_model`
    keeps it), so a later `fit` of the same model traces nothing, as Keras'
    own function does not.

    Args:
        model: a compiled Keras model whose optimizers hold the recorders' hooks.
        recorders: the installed `AppliedUpdateRecorder`s, one per optimizer.
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
            model.train_step = counter.wrap(model.train_step, [r.recordings for r in self._recorders])
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
