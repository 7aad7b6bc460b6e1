"""A run's logged norm tables as one array: what diagnosis, export and the
plugin's routes work on.

numpy only (no TensorFlow, no TensorBoard), so the diagnosis built on it stays
a pure function of the numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from tb_weightnorm import schema


@dataclasses.dataclass(frozen=True)
class NormHistory:
    """All logged norm tables of one run.

    `values[s, v, k]` is stat `stats[k]` of variable `variables[v]` at
    `steps[s]`; NaN where it was not measured. Variables are in model order;
    the whole-model row `(global)`, when logged, is among them.
    """

    run: str
    steps: np.ndarray
    wall_times: np.ndarray
    variables: Tuple[str, ...]
    layers: Tuple[str, ...]
    stats: Tuple[str, ...]
    values: np.ndarray
    gradient_note: str = ""

    def step_index(self, step: int) -> Optional[int]:
        i = int(np.searchsorted(self.steps, step))
        return i if i < len(self.steps) and self.steps[i] == step else None

    def column(self, stat: str) -> Optional[np.ndarray]:
        """Stat `stat` of every variable over steps, float64 [steps, variables];
        None if the run did not log it."""
        if stat not in self.stats:
            return None
        return self.values[:, :, self.stats.index(stat)].astype(np.float64)

    def global_index(self) -> Optional[int]:
        try:
            return self.variables.index(schema.GLOBAL_ROW)
        except ValueError:
            return None

    def head(self, n: int) -> "NormHistory":
        """The first `n` logged steps: the run as it was when step n was logged."""
        return dataclasses.replace(
            self, steps=self.steps[:n], wall_times=self.wall_times[:n], values=self.values[:n]
        )


class HistoryBuffer:
    """Norm tables as training logs them, kept in memory to diagnose on the fly.

    Holds at most `max_steps` logged steps: the first quarter of them (the
    baselines the rules compare with) and the latest ones (where a new problem
    shows). Steps in between are let go, so a finding's `first_step` is exact
    for problems that start in the kept steps.

    Args:
        names: the table's row and column names.
        max_steps: how many logged steps to keep at most.
    """

    def __init__(self, names: schema.NormTableNames, max_steps: int = 2000):
        if max_steps < 4:
            raise ValueError(f"max_steps must be at least 4; got {max_steps}")
        self.names = names
        self.max_steps = max_steps
        self._steps: list = []
        self._wall_times: list = []
        self._values: list = []

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def nbytes(self) -> int:
        """Bytes of the tables held."""
        return sum(v.nbytes for v in self._values)

    def append(self, step: int, wall_time: float, values: np.ndarray) -> None:
        self._steps.append(int(step))
        self._wall_times.append(float(wall_time))
        self._values.append(np.asarray(values, np.float32))
        if len(self._steps) > self.max_steps:
            drop = self.max_steps // 4
            del self._steps[drop], self._wall_times[drop], self._values[drop]

    def renamed(self, names: schema.NormTableNames) -> "HistoryBuffer":
        """A buffer of tables named `names` holding these tables too: rows and
        columns matched by name, NaN (not measured) where they had none. A
        later fit's table may have other rows (fine-tuning unfreezes layers)."""
        out = HistoryBuffer(names, self.max_steps)
        rows = [self.names.variables.index(v) if v in self.names.variables else -1 for v in names.variables]
        stats = [self.names.stats.index(c) if c in self.names.stats else -1 for c in names.stats]
        for step, wall_time, values in zip(self._steps, self._wall_times, self._values):
            mapped = np.full((len(rows), len(stats)), np.nan, np.float32)
            for i, r in enumerate(rows):
                if r >= 0:
                    mapped[i] = [values[r, c] if c >= 0 else np.nan for c in stats]
            out.append(step, wall_time, mapped)
        return out

    def history(self, run: str = "") -> NormHistory:
        n_rows, n_stats = len(self.names.variables), len(self.names.stats)
        values = np.stack(self._values) if self._values else np.zeros((0, n_rows, n_stats), np.float32)
        return NormHistory(
            run=run,
            steps=np.asarray(self._steps, np.int64),
            wall_times=np.asarray(self._wall_times, np.float64),
            variables=self.names.variables,
            layers=self.names.layers,
            stats=self.names.stats,
            values=values,
            gradient_note=self.names.gradient_note,
        )
