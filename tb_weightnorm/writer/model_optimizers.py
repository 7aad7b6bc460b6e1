"""The optimizers of a model and the recorders that log their updates: one
optimizer, as most programs have, or several, as a GAN's discriminator and
generator have.

Host side, backend-neutral (Keras' optimizer API, numpy): what runs in the
step is in `optimizer_hook` and `graph.update_recordings`.

Each optimizer gets a recorder of its own (`update_recorder`), which takes its
table inside that optimizer's update, as for one optimizer. Such a step may
apply one optimizer several times (a WGAN's critic) and the optimizers count
their updates apart, so their tables are logged at the training step (the
number of `train_step` calls, counted in the step by `TrainStepCounter`): a
recorder keeps its last table of the step aside, and the end of the step
writes it. The callback then merges the tables of one step (`merge_tables`):
each variable's row from the optimizer that updated it in that step, and the
rows no optimizer updated from any of them, their gradient and update left
missing, never zero.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tb_weightnorm import schema
from tb_weightnorm.graph import tf_state
from tb_weightnorm.graph.update_recordings import TrainStepCounter
from tb_weightnorm.writer import optimizer_hook, summary
from tb_weightnorm.writer.optimizer_hook import applied_steps
from tb_weightnorm.writer.train_function import LoggingTrainFunction
from tb_weightnorm.writer.update_recorder import AppliedUpdateRecorder

logger = logging.getLogger("tb_weightnorm")


def model_optimizers(model) -> List[Tuple[str, object]]:
    """(name, optimizer) of each optimizer the model holds: `model.optimizer`
    first, then those it holds as attributes (`self.d_optimizer = ...`, or in
    a list or dict attribute), each once.

    Example:

    >>> [name for name, _ in model_optimizers(gan)]   # doctest: +SKIP
    ['optimizer', 'd_optimizer', 'g_optimizer']
    """
    found: List[Tuple[str, object]] = []
    seen = set()

    def add(name, value):
        if not isinstance(value, keras.optimizers.Optimizer):
            return
        # A LossScaleOptimizer and the one inside it are one optimizer.
        key = id(optimizer_hook.innermost_optimizer(value))
        if key not in seen:
            seen.add(key)
            found.append((name, value))

    add("optimizer", getattr(model, "optimizer", None))
    attributes = list(vars(model).items())
    for name, value in attributes:
        add(name, value)
    for name, value in attributes:
        # Keras' own bookkeeping (`_self_...`, `_tracker`) holds the same ones again.
        if name.startswith("_"):
            continue
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                add(f"{name}[{i}]", item)
        elif isinstance(value, dict):
            for key, item in value.items():
                add(f"{name}[{key!r}]", item)
    return found


def _claimed(table: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """Rows with a gradient or an update in a recorder's table: those its
    optimizer updated."""
    columns = [i for i, s in enumerate(stats) if s.startswith(("gradient/", "update/"))]
    if not columns:
        return np.zeros(table.shape[0], bool)
    return ~np.isnan(table[:, columns]).all(axis=1)


def _combined(values: Sequence[float]) -> float:
    """The l2 norm of norms over disjoint sets (NaN: not measured)."""
    known = [v for v in values if not np.isnan(v)]
    if not known:
        return float("nan")
    return float(np.sqrt(np.sum(np.square(np.asarray(known, np.float64)))))


def merge_tables(tables: Sequence[np.ndarray], names: schema.NormTableNames) -> np.ndarray:
    """One norm table of a step from the tables several recorders took in it
    (the same rows, the same columns, in the recorders' order).

    A row comes whole from the last table whose optimizer updated it; a row
    no optimizer updated, from the last table (its weights; its gradient and
    update stay NaN). The `(global)` row's norms combine those of each table,
    whose optimizers update disjoint sets of variables.
    """
    last = np.array(tables[-1], np.float32, copy=True)
    has_global = names.variables and names.variables[-1] == schema.GLOBAL_ROW
    rows = slice(0, -1) if has_global else slice(None)
    merged = last
    for table in tables:
        claimed = _claimed(table[rows], names.stats)
        merged[rows][claimed] = table[rows][claimed]
    if has_global:
        merged[-1] = np.nan
        for column in ("weight/l2", "gradient/l2"):
            if column in names.stats:
                i = names.stats.index(column)
                merged[-1, i] = _combined([t[-1, i] for t in tables])
    return merged


def merge_histograms(tables: Sequence[np.ndarray]) -> np.ndarray:
    """One histogram table ([2: weight, gradient], rows, columns) of a step:
    each row's gradient histogram from the last table that has one (a
    non-empty one), the weight histograms from the last table."""
    merged = np.array(tables[-1], copy=True)
    for table in tables:
        # Columns 2 on are counts (see histograms.histogram_columns).
        has_gradient = np.nansum(table[1, :, 2:], axis=1) > 0
        merged[1, has_gradient] = table[1, has_gradient]
    return merged


def merged_by_step(
    per_recorder: Sequence[Sequence[Tuple[int, np.ndarray]]], merge
) -> List[Tuple[int, np.ndarray]]:
    """(step, table) lists of several recorders, merged step by step with
    `merge(tables)`, in step order."""
    by_step: Dict[int, List[np.ndarray]] = {}
    for records in per_recorder:
        for step, values in records:
            by_step.setdefault(step, []).append(values)
    return [(step, merge(by_step[step])) for step in sorted(by_step)]


class OtherOptimizers:
    """Notices, while the logging function traces (or runs eagerly), an
    optimizer that applies gradients to the model's variables but is not one
    the callback hooked (created outside the model and used in `train_step`,
    or held where the callback does not look): `found` lists them, for the
    recorders to take them in."""

    def __init__(self, model, hooked: Sequence):
        self._variables = {id(v) for v in model.trainable_variables}
        self._hooked = {id(o) for o in hooked}
        self.found: List[object] = []

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        cls = keras.optimizers.Optimizer
        had_own = "apply" in cls.__dict__
        original = cls.apply
        watch = self

        def apply(optimizer, grads, trainable_variables=None):
            if id(optimizer) not in watch._hooked and not hasattr(optimizer, "inner_optimizer"):
                variables = trainable_variables if trainable_variables is not None else getattr(
                    optimizer, "_trainable_variables", []
                )
                if any(id(v) in watch._variables for v in variables) and optimizer not in watch.found:
                    watch.found.append(optimizer)
            return original(optimizer, grads, trainable_variables)

        cls.apply = apply
        try:
            yield
        finally:
            if had_own:
                cls.apply = original
            else:
                del cls.apply


def gradient_note(names: Sequence[str], optimizers: Sequence) -> str:
    """The note of a table whose rows come from several optimizers."""
    described = ", ".join(f"{n} ({type(o).__name__})" for n, o in zip(names, optimizers))
    return f"each variable's from whichever of the model's optimizers updated it in the step ({described})"


def first_prepared(recorders: Sequence) -> Optional[object]:
    """The first recorder whose rows are decided (whose optimizer applied)."""
    return next((r for r in recorders if r.spec is not None), None)


# The model attribute that keeps its ModelRecorders between fits.
_CACHED = "_tb_weightnorm_recorders"


class ModelRecorders:
    """The recorders of every optimizer a model holds, and the one table per
    logged step they make together.

    Args:
        model: a compiled Keras model.
        make_spec: `make_spec(gradient_note)` returns the norm table's spec
            (all recorders log the same rows and columns).
        replicas: replicas in sync (`tf.distribute`).
        **recorder_kwargs: passed to each `AppliedUpdateRecorder`.
    """

    def __init__(self, model, make_spec, replicas: int = 1, **recorder_kwargs):
        self._model = model
        self._make_spec, self._replicas, self._recorder_kwargs = make_spec, replicas, recorder_kwargs
        self._offset = 0
        self._said_nothing_applied = False
        self._watch: Optional[OtherOptimizers] = None
        self._function: Optional[LoggingTrainFunction] = None
        self._key: Optional[tuple] = None
        self._build(model_optimizers(model))

    @classmethod
    def for_model(cls, model, settings: tuple, make_spec, replicas: int = 1, **recorder_kwargs) -> "ModelRecorders":
        """The model's recorders for a fit: those of its last fit, with the
        logging function already traced, if nothing that shapes that
        function changed since (Keras' own train function, remade by
        `compile`; the model's optimizers; `settings`, what the callback
        logs and how); else new ones.

        Args:
            model: a compiled Keras model.
            settings: a hashable summary of everything else the logging
                step is traced for (options, buffer sizes, bins).
            make_spec, replicas, **recorder_kwargs: as for `ModelRecorders`.
        """
        key = (tuple(id(o) for _, o in model_optimizers(model)), replicas, settings)
        cached = vars(model).get(_CACHED, None)
        plain = getattr(model, "train_function", None)
        plain = getattr(plain, "plain", plain)  # ours, left by a fit that failed
        if cached is not None and cached._key == key and cached._plain is plain:
            return cached
        recorders = cls(model, make_spec, replicas, **recorder_kwargs)
        recorders._key, recorders._plain = key, plain
        # Beside Keras' attributes, not through them: Keras tracks what a
        # model's attributes hold, and this is no part of the model.
        object.__setattr__(model, _CACHED, recorders)
        return recorders

    def _build(self, optimizers: List[Tuple[str, object]]) -> None:
        self.optimizers = optimizers
        self.several = len(optimizers) > 1
        self.counter = TrainStepCounter() if self.several else None
        names, instances = zip(*optimizers)
        if self.several:
            note = gradient_note(names, instances)
        else:
            note = optimizer_hook.gradient_note(instances[0], self._replicas)
        self._initial_copies: Dict[int, object] = {}
        make_spec = self._make_spec
        self.recorders = [
            AppliedUpdateRecorder(
                optimizer, lambda: make_spec(note), counter=self.counter, initial_copies=self._initial_copies,
                **self._recorder_kwargs,
            )
            for optimizer in instances
        ]

    def install(self) -> LoggingTrainFunction:
        """Hooks every optimizer; returns the train function for the model
        (traced on its first call, then kept for the model's later fits)."""
        for recorder in self.recorders:
            recorder.install()
        if self._function is None:
            self._watch = OtherOptimizers(self._model, [r.optimizer for r in self.recorders])
            self._function = LoggingTrainFunction(self._model, self.recorders, self.counter, self._watch)
        else:
            self._function.begin_fit()
        return self._function

    def take_in_others(self) -> Optional[LoggingTrainFunction]:
        """After an execution of the logging function (its tables drained):
        if it saw optimizers nobody hooked update the model's variables,
        hooks them too, from the run's current step on, and returns the
        train function to use from now on; else None."""
        if self._watch is None or not self._watch.found:
            return None
        found = list(self._watch.found)
        # The steps they trained so far, if more than the hooked ones counted.
        step = max([self.step()] + [applied_steps(o) + self._offset for o in found])
        logger.info(
            "tb_weightnorm: %s applied gradients to the model's variables without being "
            "model.optimizer or an attribute of the model; its updates are logged from step %d on.",
            ", ".join(f"{type(o).__name__} {o.name!r}" for o in found), step + 1,
        )
        self.uninstall()
        self._build(self.optimizers + [(f"{type(o).__name__} {o.name!r}", o) for o in found])
        self._function = None
        self.set_offset(step)
        return self.install()

    def uninstall(self) -> None:
        for recorder in self.recorders:
            recorder.uninstall()

    def updates(self) -> int:
        """What the logged step counts, before the run's offset: the updates
        of the model's optimizer, or with several, the training steps of this
        fit."""
        if self.several:
            return int(self.counter.value.numpy()) - self._offset
        return applied_steps(self.recorders[0].optimizer)

    def step(self) -> int:
        """The run's step now: the last one trained."""
        return self.updates() + self._offset

    @property
    def spec(self):
        """The table's spec, once a recorder has decided it."""
        recorder = first_prepared(self.recorders)
        return recorder.spec if recorder is not None else None

    def set_offset(self, offset: int) -> None:
        """Starts this fit's steps after `offset`: the run's steps before it."""
        self._offset = offset
        if self.counter is not None:
            self.counter.value.assign(offset)
        for recorder in self.recorders:
            recorder.step_offset.assign(offset)

    def start(self, *, offset: int, norms: int, histograms: int, new_run: bool) -> None:
        """Readies the recorders for a fit: its steps after `offset`, logged
        at these intervals; in a `new_run`, the initial weights (for
        `weight/dist_init`) are the model's weights now."""
        self.set_offset(offset)
        for recorder in self.recorders:
            recorder.start_intervals(norms, histograms)
        if new_run:
            for recorder in self.recorders:
                recorder.restart_initial_weights()

    @property
    def intervals(self) -> Tuple[int, int]:
        return self.recorders[0].intervals

    def make_sparser(self, **intervals) -> None:
        for recorder in self.recorders:
            recorder.make_sparser(**intervals)

    @property
    def last_kind(self) -> str:
        """What the last execution logged: "plain", "norms" or "histograms"."""
        return self._function.last_kind if self._function is not None else "plain"

    def series_writers(self, names, histogram_names, bins: int) -> Optional[tuple]:
        """What `drain(writers)` writes with, for the default summary writer;
        None where the tables must come to the host to be written (the
        first of each series, or several optimizers' tables to merge)."""
        if self.several:
            return None
        return summary.sent_series_writers(names, histogram_names, bins)

    def drain(self, writers: Optional[tuple] = None) -> Tuple[List[Tuple[int, np.ndarray]], List[Tuple[int, np.ndarray]]]:
        """(norm tables, histograms) recorded since the last drain, one per
        logged step, in step order; with `writers` (see `series_writers`),
        also written, and the histograms not returned."""
        if writers is not None:
            return self.recorders[0].drain(writers)
        drained = [r.drain() for r in self.recorders]
        if not self.several:
            return drained[0]
        spec = self.spec
        if spec is None:
            return [], []
        names = spec.names()
        norms = merged_by_step([d[0] for d in drained], lambda tables: merge_tables(tables, names))
        return norms, merged_by_step([d[1] for d in drained], merge_histograms)

    def after_first_execution(self) -> None:
        """Says once if no optimizer of the model applied anything in the
        logging function (once it ran)."""
        if self.executions_logged() and not any(r.applied for r in self.recorders):
            self._say_nothing_applied()

    def executions_logged(self) -> int:
        function = getattr(self._model, "train_function", None)
        return getattr(function, "executions", {}).get("logged", 0)

    def _say_nothing_applied(self) -> None:
        if self._said_nothing_applied:
            return
        self._said_nothing_applied = True
        logger.warning(
            "tb_weightnorm: none of the model's optimizers (%s) called apply() or apply_gradients() "
            "in the logged steps, so no gradient or update is logged. An optimizer that updates the "
            "weights some other way (a third-party one that bypasses apply) is not supported.",
            ", ".join(name for name, _ in self.optimizers),
        )

    def held_bytes(self) -> Dict[str, int]:
        held: Dict[str, int] = {}
        for recorder in self.recorders:
            for role, nbytes in recorder.held_bytes().items():
                if role == optimizer_hook.BEFORE_UPDATE:
                    # Each optimizer's copy lives only during its own update.
                    held[role] = max(held.get(role, 0), nbytes)
                else:
                    held[role] = held.get(role, 0) + nbytes
        # The recorders share one copy of the initial weights.
        held["initial weights"] = tf_state.variable_bytes(self._initial_copies.values())
        return held
