"""The model's weights at the last step found healthy, kept for when an alert
stops training.

The copy lives on the model's device (one copy of `model.weights`, refreshed
at each healthy logged step) and is written out only when an alert fires.
A tensor read from a variable never changes afterwards (TensorFlow copies a
variable's buffer before writing to it while a read of it is alive), so the
copy is not disturbed by the steps that follow.
"""

from __future__ import annotations

import os
from typing import List, Optional

import tensorflow as tf


class HealthyWeights:
    """A copy of a model's weights at one step."""

    def __init__(self):
        self.step: Optional[int] = None
        self._variables: List = []
        self._copies: List[tf.Tensor] = []

    @property
    def nbytes(self) -> int:
        return sum(int(t.shape.num_elements()) * t.dtype.size for t in self._copies)

    def keep(self, model, step: int) -> bool:
        """Copies `model.weights` as the weights of `step`, unless one of them
        holds a NaN or an infinity (a variable the norm table does not log
        can break too). Returns whether it kept them."""
        variables = list(model.weights)
        copies = [tf.identity(v.value) for v in variables]
        floats = [tf.reduce_all(tf.math.is_finite(c)) for c in copies if c.dtype.is_floating]
        if floats and not bool(tf.reduce_all(tf.stack(floats))):
            return False
        self.step, self._variables, self._copies = int(step), variables, copies
        return True

    def save(self, model, path: str) -> None:
        """Writes the kept weights with `model.save_weights(path)`; the model's
        own weights are put back afterwards."""
        if self.step is None:
            raise RuntimeError("no healthy weights were kept")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        current = [tf.identity(v.value) for v in self._variables]
        try:
            for variable, copy in zip(self._variables, self._copies):
                variable.assign(copy)
            model.save_weights(path)
        finally:
            for variable, value in zip(self._variables, current):
                variable.assign(value)
