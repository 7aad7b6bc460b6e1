"""The columns of a run's history the rules read, by variable and by layer.

The layers are those of `read.layer_view`, the same the tab and the report
show, and a layer's norm is combined the way they combine it.
"""

from __future__ import annotations

import collections
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from tb_weightnorm.diagnosis.thresholds import Thresholds
from tb_weightnorm.read import layer_view
from tb_weightnorm.read.history import NormHistory

# Columns a `RunView` keeps: each is float64 [steps, variables], 16 MB for
# 1,000 variables over 2,000 logged steps.
_RECENT_COLUMNS = 4


class RunView:
    """The columns of a history that the rules read, by variable and by layer.

    Rows are the variables (and gates) of the run's layers in model order;
    the `(global)` row is kept apart. Arrays are float64 [steps, rows]; NaN
    where not measured.

    Args:
        history: the run's logged norm tables.
    """

    def __init__(self, history: NormHistory):
        self.history = history
        self.steps = history.steps
        groups = layer_view.run_layers(history)
        self.rows = sorted(r for group in groups for r in group.rows)
        self.variables = [history.variables[i] for i in self.rows]
        self.row_layers = [history.layers[i] for i in self.rows]
        position = {table_row: r for r, table_row in enumerate(self.rows)}
        # Layers in model order (the order their first variable was logged in).
        self.layers: Dict[str, List[int]] = {
            group.layer: [position[i] for i in group.rows] for group in groups
        }
        self._global = history.global_index()
        self._judged: Optional[np.ndarray] = None
        # The rules read the same few columns over and over (a layer's norm
        # per layer): the latest ones stay at hand. Callers never write to them.
        self._recent: "collections.OrderedDict[str, Optional[np.ndarray]]" = collections.OrderedDict()

    def col(self, stat: str) -> Optional[np.ndarray]:
        """Stat `stat` of every row, [steps, rows]; None if the run did not log it."""
        if stat in self._recent:
            self._recent.move_to_end(stat)
            return self._recent[stat]
        column = self.history.column(stat)
        found = self._recent[stat] = None if column is None else column[:, self.rows]
        if len(self._recent) > _RECENT_COLUMNS:
            self._recent.popitem(last=False)
        return found

    def global_col(self, stat: str) -> Optional[np.ndarray]:
        """Stat `stat` of the `(global)` row per step; None without one."""
        if self._global is None or stat not in self.history.stats:
            return None
        return self.history.values[:, self._global, self.history.stats.index(stat)].astype(np.float64)

    def layer_norm(self, stat: str, rows: Sequence[int]) -> Optional[np.ndarray]:
        """The l2 norm of several rows together per step, as a layer's is
        combined (`layer_view.NORM`); None if the run did not log `stat`."""
        column = self.col(stat)
        if column is None:
            return None
        if len(rows) == 0:
            return np.full(len(self.steps), np.nan)
        return layer_view.combine(column, [rows], layer_view.NORM)[:, 0]

    def judged(self, thresholds: Thresholds) -> np.ndarray:
        """[steps, rows] bool: rows whose weight norm is a fair yardstick at that
        step (see `Thresholds.judged_share`)."""
        if self._judged is None:
            weight = self.col("weight/l2")
            judged = np.zeros((len(self.steps), len(self.rows)), bool)
            if weight is not None:
                for rows in self.layers.values():
                    part = weight[:, rows]
                    with np.errstate(invalid="ignore"):
                        largest = np.nanmax(np.where(np.isnan(part), -np.inf, part), axis=1)
                        judged[:, rows] = (part > 0) & (part >= thresholds.judged_share * largest[:, None])
            self._judged = judged
        return self._judged

    def step(self, index: int) -> int:
        """The logged step at index `index`."""
        return int(self.steps[index])


def trainable_rows(view: RunView) -> List[int]:
    """Rows the optimizer updates: those with a measured update or gradient."""
    for stat in ("update/l2", "gradient/l2"):
        column = view.col(stat)
        if column is not None:
            return [r for r in range(len(view.rows)) if not np.isnan(column[:, r]).all()]
    return []


def rows_by_layer(view: RunView, rows: Iterable[int]) -> Dict[str, List[int]]:
    """`rows` grouped by layer, each layer where its first row comes."""
    return {
        group.layer: list(group.rows)
        for group in layer_view.layer_rows(view.variables, view.row_layers, rows=rows)
    }


def judged_series(view: RunView, stat: str, t: Thresholds, rows: Iterable[int]) -> Dict[int, np.ndarray]:
    """Each row's `stat` per step, NaN where the row is not judged (`RunView.judged`)."""
    column = view.col(stat)
    if column is None:
        return {}
    judged = view.judged(t)
    return {r: np.where(judged[:, r], column[:, r], np.nan) for r in rows}
