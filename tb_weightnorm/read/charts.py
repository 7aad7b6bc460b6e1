"""What the tab's charts show of a run, computed from its `NormHistory`.

A long run's logged steps are thinned into columns (buckets of contiguous
logged steps, each reduced to one value), the rows a chart compares are
chosen, and the NaN and Inf elements behind each heatmap cell are counted.
The plugin's routes turn these arrays into JSON (`plugin/bodies.py`).

numpy only (no TensorFlow, no TensorBoard, no HTTP): every function works on
whole arrays at once, so a chart of a long run costs a few array operations
rather than a Python loop per value.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm.read import layer_view
from tb_weightnorm.read.history import NormHistory

# How a bucket of logged steps becomes one column.
REDUCES = ("max", "min", "mean", "last")


def bucket_starts(n_steps: int, max_columns: int) -> np.ndarray:
    """Where each column's bucket of logged steps starts (indices into the steps).

    At most `max_columns` buckets of contiguous logged steps, their sizes
    differing by at most one; one bucket per step when the run is short
    enough.
    """
    if max_columns < 1:
        raise ValueError(f"max_columns must be at least 1; got {max_columns}")
    k = min(n_steps, max_columns)
    return (np.arange(k, dtype=np.int64) * n_steps) // max(k, 1)


def bucket_steps(steps: np.ndarray, starts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(first, last) logged step of each bucket."""
    steps = np.asarray(steps)
    if len(starts) == 0:
        return steps[:0], steps[:0]
    ends = np.append(starts[1:], len(steps))
    return steps[starts], steps[ends - 1]


def reduce_buckets(values: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    """Reduces each bucket of rows (axis 0) of `values` to one row.

    NaN means "not measured" and is skipped: a bucket with no measured value
    is NaN. Infinities are values like any other (an overflowing norm must
    not vanish from a thinned view): `max` keeps +inf, `mean` becomes
    infinite. `last` is the last measured value of the bucket.

    Args:
        values: float [steps, ...].
        starts: from `bucket_starts`.
        how: one of `REDUCES`.
    """
    if how not in REDUCES:
        raise ValueError(f"how must be one of {', '.join(REDUCES)}; got {how!r}")
    v = np.asarray(values, dtype=np.float64)
    if len(starts) == 0:
        return v[:0]
    measured = ~np.isnan(v)
    if how == "max":
        return np.fmax.reduceat(v, starts, axis=0)
    if how == "min":
        return np.fmin.reduceat(v, starts, axis=0)
    if how == "mean":
        sums = np.add.reduceat(np.where(measured, v, 0.0), starts, axis=0)
        counts = np.add.reduceat(measured.astype(np.int64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    index = np.arange(len(v)).reshape((-1,) + (1,) * (v.ndim - 1))
    last = np.maximum.reduceat(np.where(measured, index, -1), starts, axis=0)
    picked = np.take_along_axis(v, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, picked, np.nan)


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most `k` indices into `n` items, evenly spaced, always with the last
    (and with the first when k > 1)."""
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        return np.array([n - 1], dtype=np.int64)
    # n > k, so the spacing exceeds 1 and rounding never repeats an index.
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Thinned:
    """Values over a run's logged steps, thinned into columns.

    `values[i]` stands for the logged steps `first_steps[i]` to `steps[i]`
    (equal when not thinned), reduced by `reduce`; `wall_times[i]` is the
    wall time of `steps[i]`.
    """

    values: np.ndarray
    reduce: str
    logged_steps: int
    steps: np.ndarray
    first_steps: np.ndarray
    wall_times: np.ndarray


def thin(history: NormHistory, values: np.ndarray, max_columns: Optional[int], how: str) -> Thinned:
    """`values` ([steps, ...], one per logged step of `history`) in at most
    `max_columns` columns.

    Args:
        history: the run the values are of (its steps and wall times).
        values: float [steps, ...].
        max_columns: at most this many columns; every logged step its own
            column when None.
        how: one of `REDUCES`.

    Example:
        >>> h = NormHistory("run", np.array([0, 10, 20]), np.zeros(3), ("w",), ("l",), ("weight/l2",),
        ...                 np.array([[[1.0]], [[3.0]], [[2.0]]]))
        >>> t = thin(h, h.column("weight/l2"), 2, "max")
        >>> t.values.tolist(), t.first_steps.tolist(), t.steps.tolist()
        ([[1.0], [3.0]], [0, 10], [0, 20])
    """
    n = len(history.steps)
    starts = bucket_starts(n, max_columns or max(n, 1))
    first, last = bucket_steps(history.steps, starts)
    _, wall_times = bucket_steps(history.wall_times, starts)
    return Thinned(reduce_buckets(values, starts, how), how, n, last, first, wall_times)


def chosen_rows(history: NormHistory, variables: Sequence[str], layers: Sequence[str]) -> List[int]:
    """The rows of `variables` (in the order given, unknown ones left out),
    then those of each of `layers` not already chosen (in model order).

    Args:
        history: the run.
        variables: variable names.
        layers: layer names.
    """
    position = {v: i for i, v in enumerate(history.variables)}
    rows = [position[v] for v in variables if v in position]
    for layer in layers:
        rows += [i for i, l in enumerate(history.layers) if l == layer and i not in rows]
    return rows


def thin_rows(
    history: NormHistory, stat: str, rows: Sequence[int], max_columns: Optional[int], how: str
) -> Thinned:
    """Stat `stat` of the variables at `rows`, thinned as `thin` does; no
    columns of values when `rows` is empty (whether the run logged `stat` or not).

    Args:
        history: the run.
        stat: a stat the run logged, unless `rows` is empty.
        rows: indices into `history.variables`.
        max_columns: as for `thin`.
        how: one of `REDUCES`.
    """
    rows = list(rows)
    values = history.column(stat)[:, rows] if rows else np.zeros((len(history.steps), 0))
    return thin(history, values, max_columns, how)


def nonfinite_counts(history: NormHistory, stat: str, by: str) -> Optional[np.ndarray]:
    """NaN + Inf elements behind each heatmap cell ([steps, rows], rows as the
    heatmap's), of the tensor the stat is about (an update is measured from
    the weights); None when there are none, or the run did not count them.

    The stats are taken over the finite elements, so after a NaN a norm reads
    small or 0; without these counts the heatmap would paint the broken cells
    in the calmest colour.

    Args:
        history: the run.
        stat: the heatmap's stat.
        by: "variable" (a row per variable) or "layer" (a row per layer, and
            the whole-model row last when the run logged it).
    """
    kind = "weight" if stat.startswith("update/") else stat.split("/", 1)[0]
    names = [f"{kind}/nan_count", f"{kind}/inf_count"]
    if not all(n in history.stats for n in names):
        return None
    per_row = sum(np.nan_to_num(history.column(n)) for n in names)
    g = history.global_index()
    if g is not None:
        # The whole model has every variable's non-finite elements.
        per_row[:, g] = 0
        whole = per_row.sum(axis=1)
    if not per_row.any():
        return None
    if by == "layer":
        groups = layer_view.run_layers(history)
        per_row = layer_view.sum_by_layer(per_row, groups)
        return per_row if g is None else np.concatenate([per_row, whole[:, None]], axis=1)
    if g is not None:
        per_row[:, g] = whole
    return per_row


def thinned_nonfinite_counts(
    history: NormHistory, stat: str, by: str, max_columns: Optional[int]
) -> Optional[np.ndarray]:
    """`nonfinite_counts` in the heatmap's columns ([columns, rows]): the
    largest count of each bucket, so that one broken step marks its column.

    Args:
        history: the run.
        stat: the heatmap's stat.
        by: as for `nonfinite_counts`.
        max_columns: as for `thin`.
    """
    counts = nonfinite_counts(history, stat, by)
    return None if counts is None else thin(history, counts, max_columns, "max").values
