"""A run's logged norm tables as one array: what diagnosis, export and the
plugin's routes work on.

numpy only (no TensorFlow, no TensorBoard), so the diagnosis built on it stays
a pure function of the numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from tb_weightnorm import metadata


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
            return self.variables.index(metadata.GLOBAL_ROW)
        except ValueError:
            return None

    def head(self, n: int) -> "NormHistory":
        """The first `n` logged steps: the run as it was when step n was logged."""
        return dataclasses.replace(
            self, steps=self.steps[:n], wall_times=self.wall_times[:n], values=self.values[:n]
        )
