"""The callback's weight snapshots: when it saves them (at the start of
training and every N epochs, on the chief). What a snapshot holds and its
file are `tb_weightnorm.snapshots`'."""

from __future__ import annotations

import logging
from typing import Sequence, Union

from tb_weightnorm import snapshots
from tb_weightnorm.writer.logged_steps import LoggedSteps
from tb_weightnorm.writer.options import every

logger = logging.getLogger("tb_weightnorm")


class EpochSnapshots:
    """Saves the weights of `layers` at the start of training and every
    `every_n_epochs` epochs, as files beside the run's event files.

    Args:
        every_n_epochs: N; 0 never.
        layers: which weights a snapshot holds (as `tb_weightnorm.snapshots.save`
            takes them); a bad choice fails here, not after an epoch.

    Example:

    ```python
    saving = EpochSnapshots(5, "trainable")
    saving.train_began(steps)
    saving.epoch_began(epoch, model, steps)
    saving.epoch_ended(epoch, model, steps, weights_are_the_epochs=True)
    ```
    """

    def __init__(self, every_n_epochs: int, layers: Union[str, Sequence[str]]):
        self.every_n_epochs = every("snapshot_every_n_epochs", every_n_epochs)
        snapshots.selection(layers)
        self.layers = layers
        self._at_start = False

    def train_began(self, steps: LoggedSteps) -> None:
        self._at_start = bool(self.every_n_epochs) and steps.chief

    def epoch_began(self, epoch: int, model, steps: LoggedSteps) -> None:
        """Saves the weights training starts from, at the first epoch's start
        (once the model has weights)."""
        if self._at_start:
            self._at_start = False
            if model.weights:
                self._save(model, steps, epoch)

    def epoch_ended(self, epoch: int, model, steps: LoggedSteps, *, weights_are_the_epochs: bool) -> None:
        """Saves the epoch's weights when due; not if training stopped
        mid-epoch (`weights_are_the_epochs` False): those are not the epoch's."""
        if (
            self.every_n_epochs
            and steps.chief
            and weights_are_the_epochs
            and (epoch + 1) % self.every_n_epochs == 0
        ):
            self._save(model, steps, epoch + 1)

    def _save(self, model, steps: LoggedSteps, epochs_trained: int) -> None:
        path = snapshots.save(
            model, steps.run_dir, epoch=epochs_trained, step=steps.step(model), layers=self.layers
        )
        logger.debug("tb_weightnorm: saved the weight snapshot of epoch %d to %s", epochs_trained, path)
