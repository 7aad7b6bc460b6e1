"""A clock for `WeightHealthCallback`'s cost budget that moves only when a
test says so: step times, drawing times and time between epochs become
numbers the test chose, whatever else the machine is doing."""

from __future__ import annotations

import keras


class ManualClock:
    """Reads as `now`; `advance(seconds)` moves it on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Timed(keras.callbacks.Callback):
    """Makes each training step take `step_seconds` and each epoch begin
    `epoch_seconds` later, on `clock`. Put it before the WeightHealthCallback
    so that a step's time has passed when the latter looks."""

    def __init__(self, clock: ManualClock, step_seconds: float = 0.0, epoch_seconds: float = 0.0):
        super().__init__()
        self.clock, self.step_seconds, self.epoch_seconds = clock, step_seconds, epoch_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.advance(self.epoch_seconds)

    def on_train_batch_begin(self, batch, logs=None):
        self.clock.advance(self.step_seconds)


def timed_callback(callback, step_seconds: float = 0.0, epoch_seconds: float = 0.0):
    """Gives `callback` (a WeightHealthCallback) a ManualClock; returns the
    clock and the Keras callback that moves it, to list before `callback`."""
    clock = ManualClock()
    callback._clock = clock
    return clock, Timed(clock, step_seconds, epoch_seconds)
