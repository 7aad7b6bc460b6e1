"""Conv kernel grid images: writing one (`write_kernel_grid`, for `log()` and
the callback) and when the callback draws them (`KernelGrids`).

A grid is drawn on the host (`graph.kernel_grid`, numpy) from the kernel's
current values, so its cost is a fixed time per drawing, paid at epoch ends.
"""

from __future__ import annotations

import json
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import kernel_grid, model_variables
from tb_weightnorm.wire import metadata
from tb_weightnorm.writer import cost_budget
from tb_weightnorm.writer.logged_steps import LoggedSteps
from tb_weightnorm.writer.options import LogOptions, every
from tb_weightnorm.writer.summary import require_writer


def _grid_blobs(kernel: np.ndarray, kind: str, max_filters: int, rgb_input: bool) -> np.ndarray:
    grid = kernel_grid.kernel_grid(np.asarray(kernel), kind=kind, max_filters=max_filters, rgb_input=rgb_input)
    png = tf.io.encode_png(grid.image).numpy()
    info = json.dumps({"scale": grid.scale, "filters_shown": grid.filters_shown}).encode()
    height, width = grid.image.shape[:2]
    return np.array([str(width).encode(), str(height).encode(), png, info], dtype=object)


def _filters_total(kind: str, shape) -> int:
    """Output units of a conv kernel (Keras layouts, channels last)."""
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        return int(shape[-2]) * int(shape[-1])  # each input channel x depth multiplier
    if kind == "Conv2DTranspose":
        return int(shape[-2])  # [kh, kw, out, in]
    return int(shape[-1])


def write_kernel_grid(conv: model_variables.ConvKernel, step, *, max_filters: int = 64) -> tf.Tensor:
    """Writes the grid image of one conv kernel's filters (a BLOB_SEQUENCE)
    to the default summary writer.

    Works eagerly and inside `tf.function` (the image is drawn on the host).

    Args:
        conv: the kernel, as `model_variables.conv_kernels` finds it.
        step: the step to write it at.
        max_filters: the most filters the grid shows.

    Returns:
        True if written, False if no summary is recorded right now.
    """
    require_writer("write_kernel_grid")
    kernel = tf.convert_to_tensor(conv.variable)
    mode = "rgb" if conv.rgb_input else "diverging"

    def blobs():
        return tf.numpy_function(
            lambda k: _grid_blobs(k, conv.kind, max_filters, conv.rgb_input), [kernel], tf.string, stateful=False
        )

    md = metadata.kernel_grid_metadata(conv.layer, conv.path, mode, _filters_total(conv.kind, kernel.shape))
    return tf.summary.write(metadata.kernel_grid_tag(conv.path), lambda: tf.reshape(blobs(), [4]), step=step, metadata=md)


class KernelGrids:
    """The callback's kernel grids: drawn at the start of training, then at
    epoch ends, every K epochs or, by default, once enough time has passed
    that drawing them again costs at most the cost budget (`cost_budget.grids_due`).

    Args:
        every_n_epochs: K; 0 never; None the automatic timing.
        options: which kernels (`include`, `exclude`) and how many filters.
        clock: what the drawings and the time between them are timed with.

    Example:

    ```python
    grids = KernelGrids(None, LogOptions(), time.perf_counter)
    grids.train_began(model, steps)        # draws the starting kernels
    grids.epoch_ended(epoch, model, steps)
    grids.train_ended(model, steps)
    ```
    """

    def __init__(self, every_n_epochs: Optional[int], options: LogOptions, clock: Callable[[], float]):
        self.automatic = every_n_epochs is None
        self.every_n_epochs = 1 if every_n_epochs is None else every("kernel_grid_every_n_epochs", every_n_epochs)
        self._options = options
        self._clock = clock
        self._convs = None
        # (seconds the last drawing took, when it ended), for the automatic timing.
        self._last: Optional[Tuple[float, float]] = None
        self._step: Optional[int] = None  # the step the last grids show

    def train_began(self, model, steps: LoggedSteps) -> None:
        self._convs = None  # a fit may have added layers
        self._draw(model, steps)

    def epoch_ended(self, epoch: int, model, steps: LoggedSteps) -> None:
        if self.automatic:
            if self._due():
                self._draw(model, steps)
        elif self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._draw(model, steps)

    def train_ended(self, model, steps: LoggedSteps) -> None:
        if self.automatic and self._step != steps.step(model) and self._due():
            self._draw(model, steps)  # the kernels training ended with

    def _due(self) -> bool:
        if not self.automatic or self._last is None:
            return True
        cost, ended = self._last
        return cost_budget.grids_due(cost, self._clock() - ended)

    def _draw(self, model, steps: LoggedSteps) -> None:
        if not self.every_n_epochs or not steps.chief:
            return
        started = self._clock()
        if self._convs is None or not model.built:
            if not model.variables:
                return  # built in its first call: the first grids come at epoch end
            # Looked for again while the model is not marked built: it may
            # still create layers' variables (or, without `call`, never be).
            options = self._options
            self._convs = model_variables.conv_kernels(model, include=options.include, exclude=options.exclude)
        step = steps.step(model)
        with steps.writer.as_default():
            for conv in self._convs:
                write_kernel_grid(conv, step, max_filters=self._options.max_kernel_filters)
        ended = self._clock()
        self._last = (ended - started, ended)
        self._step = step
