"""Weight snapshots: the weights of chosen layers saved beside a run's event
files, and read back as numpy arrays.

A run's snapshots are files in `<run folder>/tb_weightnorm/snapshots/`, one
per snapshot, named by the number of epochs trained when it was taken
(`epoch-000005.wsnap`); their format is in `snapshot_format`. TensorBoard
treats only event files as runs, so the folder changes nothing in its run
list. `WeightHealthCallback(snapshot_every_n_epochs=N)` saves them during
`model.fit`; `save` does it by hand (a custom training loop); `load` reads
them back.

Reading needs numpy only; saving imports Keras.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tb_weightnorm.snapshots import file_format
from tb_weightnorm.snapshots.file_format import SnapshotError, StoredVariable

__all__ = ["Snapshot", "Snapshots", "SnapshotError", "load", "save", "folder_of"]

# Where a run's snapshots go, under the run's folder (beside its event files).
FOLDER = os.path.join("tb_weightnorm", "snapshots")
# What `layers=` takes besides patterns.
SELECTIONS = ("all", "trainable")

Layers = Union[str, Sequence[str]]


def folder_of(run_dir: str) -> str:
    """The folder holding the snapshots of the run whose event files are in `run_dir`."""
    return os.path.join(os.fspath(run_dir), FOLDER)


class Snapshot:
    """One saved snapshot: when it was taken and which variables it holds.

    The values are read from the file when asked for, so listing a run's
    snapshots costs only their indexes.

    Attributes:
        path: the snapshot file.
        epoch: epochs trained when it was taken (0: before training).
        step: optimizer steps applied when it was taken.
        wall_time: when it was taken (seconds since the epoch).
        model: the model's name.
        variables: the variable paths it holds, in model order.
    """

    def __init__(self, path: str, index: file_format.SnapshotIndex):
        self.path = path
        self.epoch = index.epoch
        self.step = index.step
        self.wall_time = index.wall_time
        self.model = index.model
        self._stored: Dict[str, StoredVariable] = {v.path: v for v in index.variables}
        self.variables: Tuple[str, ...] = tuple(self._stored)

    def __repr__(self) -> str:
        return f"Snapshot(epoch={self.epoch}, step={self.step}, variables={len(self.variables)})"

    @property
    def layers(self) -> Dict[str, str]:
        """The layer of each variable, by variable path."""
        return {path: v.layer for path, v in self._stored.items()}

    def info(self, variable: str) -> StoredVariable:
        """Where `variable` is stored: its layer, dtype, shape, offset and size."""
        return self._stored[self._known(variable)]

    def __getitem__(self, variable: str) -> np.ndarray:
        """The weights of one variable, by its path."""
        return file_format.read_values(self.path, [self.info(variable)])[variable]

    def weights(self, layer: Optional[str] = None) -> Dict[str, np.ndarray]:
        """The weights of every variable (or of `layer`'s), by variable path, in model order.

        Args:
            layer: a layer name, as in `layers`; None for every variable.

        Raises:
            KeyError: for a layer the snapshot does not hold.
        """
        stored = list(self._stored.values())
        if layer is not None:
            stored = [v for v in stored if v.layer == layer]
            if not stored:
                known = ", ".join(dict.fromkeys(v.layer for v in self._stored.values()))
                raise KeyError(f"the snapshot of epoch {self.epoch} has no layer {layer!r}; it has {known}")
        return file_format.read_values(self.path, stored)

    def _known(self, variable: str) -> str:
        if variable not in self._stored:
            raise KeyError(
                f"the snapshot of epoch {self.epoch} has no variable {variable!r}; "
                f"it has {', '.join(self.variables)}"
            )
        return variable


class Snapshots(Mapping[int, Snapshot]):
    """The snapshots of one run, by epoch (a read-only mapping).

    Attributes:
        folder: where the snapshot files are.
        epochs: the epochs that have a snapshot, in order.
        unreadable: (file, reason) of the files that could not be read,
            when loaded with `skip_unreadable=True`.
    """

    def __init__(self, folder: str, snapshots: Sequence[Snapshot], unreadable: Sequence[Tuple[str, str]] = ()):
        self.folder = folder
        self._by_epoch = {s.epoch: s for s in snapshots}
        self.epochs: Tuple[int, ...] = tuple(sorted(self._by_epoch))
        self.unreadable: Tuple[Tuple[str, str], ...] = tuple(unreadable)

    def __getitem__(self, epoch: int) -> Snapshot:
        try:
            return self._by_epoch[epoch]
        except KeyError:
            known = ", ".join(map(str, self.epochs)) or "none"
            raise KeyError(f"no snapshot of epoch {epoch!r} in {self.folder}; epochs with one: {known}") from None

    def __iter__(self) -> Iterator[int]:
        return iter(self.epochs)

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        return f"Snapshots({self.folder!r}, epochs={list(self.epochs)})"


def read(folder: str, *, skip_unreadable: bool = False) -> Snapshots:
    """The snapshots in `folder` itself (no looking elsewhere); empty if it
    does not exist. With `skip_unreadable`, a file that cannot be read is
    listed in `unreadable` instead of raising."""
    snapshots, unreadable = [], []
    for epoch, path in file_format.list_files(folder):
        try:
            index = file_format.read_index(path)
        except (SnapshotError, OSError) as exc:
            if not skip_unreadable:
                raise
            unreadable.append((path, str(exc)))
            continue
        if index.epoch != epoch:
            problem = f"{path} holds the snapshot of epoch {index.epoch}, not {epoch} (renamed?)"
            if not skip_unreadable:
                raise SnapshotError(problem)
            unreadable.append((path, problem))
            continue
        snapshots.append(Snapshot(path, index))
    return Snapshots(folder, snapshots, unreadable)


def load(run_dir: str, *, skip_unreadable: bool = False) -> Snapshots:
    """The weight snapshots of a run.

    Args:
        run_dir: the run's folder (where its event files are, e.g.
            `logs/run1/train`), or the `log_dir` given to
            `WeightHealthCallback` (its snapshots are in `log_dir/train`).
        skip_unreadable: list files that cannot be read in `unreadable`
            instead of raising.

    Returns:
        `Snapshots`: a mapping from epoch to `Snapshot`.

    Raises:
        FileNotFoundError: the run has no snapshots.
        SnapshotError: a snapshot file is corrupt (unless `skip_unreadable`).

    Example:

    ```python
    snapshots = tb_weightnorm.snapshots.load("logs/run1")
    first, last = snapshots[snapshots.epochs[0]], snapshots[snapshots.epochs[-1]]
    kernel = "sequential/dense/kernel"
    print(np.linalg.norm(last[kernel] - first[kernel]))
    ```
    """
    run_dir = os.fspath(run_dir)
    candidates = [folder_of(run_dir), folder_of(os.path.join(run_dir, "train"))]
    for folder in candidates:
        if file_format.list_files(folder):
            return read(folder, skip_unreadable=skip_unreadable)
    raise FileNotFoundError(
        f"no weight snapshots in {run_dir} (looked in {' and '.join(candidates)}). Save them with "
        "WeightHealthCallback(log_dir, snapshot_every_n_epochs=N) or tb_weightnorm.snapshots.save(model, run_dir, epoch=...)."
    )


def selection(layers: Layers) -> Tuple[bool, Tuple[str, ...]]:
    """(trainable only, glob patterns) of a `layers=` choice; raises a clear
    error for anything else."""
    if isinstance(layers, str):
        if layers == "trainable":
            return True, ()
        return (False, ()) if layers == "all" else (False, (layers,))
    try:
        patterns = tuple(layers)
    except TypeError:
        patterns = None
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(
            "layers must be 'all', 'trainable', or a list of layer names or glob patterns on layer "
            f"names and variable paths (e.g. ['dense*', '*/kernel']); got {layers!r}"
        )
    return False, patterns


def _stored_values(variable) -> np.ndarray:
    values = np.asarray(variable.numpy())
    if values.dtype.kind not in "biuf":
        # bfloat16 and other types numpy does not know are kept as float32.
        values = values.astype(np.float32)
    return values


def save(model, run_dir: str, *, epoch: int, step: Optional[int] = None, layers: Layers = "all") -> str:
    """Saves the weights of a model's layers as the snapshot of `epoch` of the run in `run_dir`.

    The file is written to a temporary name and renamed into place, so a run
    killed meanwhile leaves no half snapshot. A snapshot of the same epoch is
    replaced.

    Args:
        model: a built Keras model.
        run_dir: the run's folder (where its event files are; for a custom
            loop, the folder of its `tf.summary` writer).
        epoch: epochs trained (0: before training).
        step: optimizer steps applied; by default read from the model's optimizer (0 without one).
        layers: `"all"` (every float variable, BatchNormalization's moving
            statistics included), `"trainable"`, or a list of layer names or
            glob patterns on layer names and variable paths (`["conv*", "*/kernel"]`).

    Returns:
        The path of the snapshot file.

    Example:

    ```python
    for epoch in range(epochs):
        train_one_epoch()
        tb_weightnorm.snapshots.save(model, "logs/run2", epoch=epoch + 1, layers=["dense*"])
    ```
    """
    from tb_weightnorm.graph import model_variables  # imports Keras

    trainable_only, patterns = selection(layers)
    run_dir = os.fspath(run_dir)
    if "://" in run_dir:
        raise ValueError(f"weight snapshots are saved to local folders only; got {run_dir!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a whole number of epochs, 0 or more; got {epoch!r}")
    try:
        rows = model_variables.tracked_variables(
            model, trainable_only=trainable_only, include=patterns, split_gates=False
        )
    except ValueError as exc:
        if not patterns:
            raise
        raise ValueError(
            f"layers={list(patterns)} matches no float variable of model {getattr(model, 'name', '')!r}: "
            "give layer names or glob patterns on layer names and variable paths "
            f"(its layers: {', '.join(l.name for l in getattr(model, 'layers', []))})"
        ) from exc
    if step is None:
        optimizer = getattr(model, "optimizer", None)
        step = int(optimizer.iterations.numpy()) if optimizer is not None else 0
    names, layer_names = model_variables.names_of(rows)
    folder = folder_of(run_dir)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_format.file_name(int(epoch)))
    file_format.write(
        path,
        epoch=int(epoch),
        step=int(step),
        wall_time=time.time(),
        model=getattr(model, "name", ""),
        variables=[
            (name, layer, row.trainable, _stored_values(row.variable))
            for name, layer, row in zip(names, layer_names, rows)
        ],
    )
    return path

