"""A norm table's rows combined into one row per layer: the one layer view
that the tab's layers × steps overview, the diagnosis' layer rules and the
report's layer table all read.

Pure numpy (no TensorFlow, no TensorBoard, no protobuf), so the diagnosis
built on it stays a pure function of the numbers. A table holds one
row per variable (or per gate of an LSTM/GRU variable); a layer's value of a
stat at a logged step is combined from its rows' values at that step, by the
stat's name:

- `*/l2`, `weight/dist_init`: the l2 norm of the layer's variables
  concatenated, sqrt of the sum of squares (exact);
- `*/l1`, `*/nan_count`, `*/inf_count`: the sum (exact);
- `*/linf`, `*/max`, `gradient/dead_fraction`: the largest;
- `*/min`: the smallest;
- `update/ratio`: the layer's `update/l2` over its `weight/l2`, both combined
  as above over the rows whose update was measured (the main weight's ratio
  when the table lacks either column);
- `*/mean`, `*/std` and anything else: the value of the layer's main weight,
  its row with the largest `weight/l2` at that step among the rows that
  measured the stat (a mean of means would need the element counts, which a
  table does not hold).

NaN in a table means "not measured" (the stats themselves are taken over the
finite values; a NaN weight shows in `nan_count`): a row that did not measure
a stat is left out, and a layer where no row measured it gets NaN. An
infinite value of any row makes the layer's value infinite, whatever the
rule, so an overflow never disappears into a layer.
"""

from __future__ import annotations

import dataclasses
from typing import Collection, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm import schema
from tb_weightnorm.read.history import NormHistory

# How a layer combines its rows' values, by rule name (see the module docstring).
NORM, SUM, MAX, MIN, RATIO, MAIN = "norm", "sum", "max", "min", "ratio", "main"

_WEIGHT_L2 = "weight/l2"
_UPDATE_L2 = "update/l2"


@dataclasses.dataclass(frozen=True)
class LayerRows:
    """The rows of a norm table that make up one layer.

    Attributes:
        layer: the layer's name.
        rows: indices of its rows in the table, in model order.
        variables: the names of those rows.
    """

    layer: str
    rows: Tuple[int, ...]
    variables: Tuple[str, ...]


def _whole_variable(name: str) -> Optional[str]:
    """The variable a gate row (`lstm/lstm_cell/kernel[forget]`) is part of;
    None for a row that is a whole variable."""
    if not name.endswith("]") or "[" not in name:
        return None
    return name[: name.rindex("[")]


def layer_rows(
    variables: Sequence[str],
    layers: Sequence[str],
    *,
    skip: Collection[str] = (),
    rows: Optional[Iterable[int]] = None,
) -> List[LayerRows]:
    """The layers of a norm table in model order (of their first row), each
    with its rows.

    A gate row is left out when the table also holds its whole variable, so
    no value counts twice (tables written by tb_weightnorm hold one or the
    other, never both).

    Args:
        variables: the table's row names.
        layers: the layer of each row.
        skip: row names that belong to no layer (the `(global)` row).
        rows: only these rows, in this order (a layer comes where its first
            one does); every row when None.

    Example:

    >>> [(g.layer, g.rows) for g in layer_rows(["d/kernel", "d/bias", "o/kernel"], ["d", "d", "o"])]
    [('d', (0, 1)), ('o', (2,))]
    >>> [(g.layer, g.rows) for g in layer_rows(["d/kernel", "d/bias", "o/kernel"], ["d", "d", "o"], rows=[2, 1])]
    [('o', (2,)), ('d', (1,))]
    """
    present = set(variables)
    grouped: Dict[str, List[int]] = {}
    for i in range(len(variables)) if rows is None else rows:
        variable = variables[i]
        if variable in skip or _whole_variable(variable) in present:
            continue
        grouped.setdefault(layers[i], []).append(i)
    return [
        LayerRows(layer, tuple(rows), tuple(variables[i] for i in rows)) for layer, rows in grouped.items()
    ]


def run_layers(history: NormHistory) -> List[LayerRows]:
    """The layers of a run's norm tables in model order, without the
    whole-model `(global)` row: what the tab, the report and the diagnosis
    call the run's layers.

    Args:
        history: the run's logged norm tables.

    Example:

    >>> [g.layer for g in run_layers(history)]  # doctest: +SKIP
    ['hidden', 'out']
    """
    return layer_rows(history.variables, history.layers, skip=(schema.GLOBAL_ROW,))


def combine_rule(stat: str) -> str:
    """How a layer combines its rows' values of `stat`: one of NORM, SUM,
    MAX, MIN, RATIO, MAIN (see the module docstring)."""
    name = stat.rpartition("/")[2]
    if name == "l2" or stat == "weight/dist_init":
        return NORM
    if name in ("l1", "nan_count", "inf_count"):
        return SUM
    if name in ("linf", "max", "dead_fraction"):
        return MAX
    if name == "min":
        return MIN
    if stat == "update/ratio":
        return RATIO
    return MAIN


# Every helper below works on all layers at once: `members` is [steps, rows]
# with each layer's rows side by side, and `starts` says where each layer's
# rows start (numpy's `reduceat` segments), so a model of hundreds of layers
# costs a few array operations rather than a Python loop over its layers.


def _any(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.logical_or.reduceat(mask, starts, axis=1)


def _norm(members: np.ndarray, starts: np.ndarray) -> np.ndarray:
    # Table values are float32, whose squares fit in float64: no overflow here.
    measured = ~np.isnan(members)
    if measured.all():  # the usual case, at half the cost
        return np.sqrt(np.add.reduceat(members * members, starts, axis=1))
    squares = np.add.reduceat(np.where(measured, members * members, 0.0), starts, axis=1)
    return np.where(_any(measured, starts), np.sqrt(squares), np.nan)


def _sum(members: np.ndarray, starts: np.ndarray) -> np.ndarray:
    measured = ~np.isnan(members)
    sums = np.add.reduceat(np.where(measured, members, 0.0), starts, axis=1)
    return np.where(_any(measured, starts), sums, np.nan)


def _main(members: np.ndarray, weight_l2: Optional[np.ndarray], starts: np.ndarray) -> np.ndarray:
    """Each step's value of the row with the largest weight l2 among those that
    measured it (the first such row without a weight/l2 column)."""
    measured = ~np.isnan(members)
    size = np.zeros(members.shape) if weight_l2 is None else np.where(np.isnan(weight_l2), -1.0, weight_l2)
    # Rows that did not measure the stat rank below every row that did.
    rank = np.where(measured, size, -np.inf)
    lengths = np.diff(np.append(starts, members.shape[1]))
    largest = np.repeat(np.maximum.reduceat(rank, starts, axis=1), lengths, axis=1)
    # The first row of each layer holding its largest rank, as argmax picks it.
    position = np.broadcast_to(np.arange(members.shape[1]), members.shape)
    main = np.minimum.reduceat(np.where(rank == largest, position, members.shape[1]), starts, axis=1)
    return np.take_along_axis(members, main, axis=1)


def _ratio(update_l2: np.ndarray, weight_l2: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Update l2 over weight l2 of the rows whose update was measured, as
    `stats.update_stats` divides per row: 0 for a zero weight, the update
    norm itself where that is infinite or not measured."""
    updated = ~np.isnan(update_l2)
    update, weight = _norm(update_l2, starts), _norm(np.where(updated, weight_l2, np.nan), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(weight > 0, update / weight, 0.0)
    return np.where(np.isfinite(update), ratio, update)


def _keep_overflow(combined: np.ndarray, members: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """`combined`, infinite wherever a row is infinite: a rule that picks one
    row (the main weight) or the smallest would otherwise hide an overflow."""
    if not np.isinf(members).any():
        return combined
    shown = np.isinf(combined)
    positive = _any(members == np.inf, starts)
    negative = _any(members == -np.inf, starts)
    out = np.where(~shown & negative, -np.inf, combined)
    return np.where(~shown & positive, np.inf, out)


def _side_by_side(groups: Sequence[Sequence[int]]) -> Tuple[np.ndarray, np.ndarray]:
    """(the groups' rows one group after another, where each group starts in them)."""
    order = np.array([row for rows in groups for row in rows], dtype=np.intp)
    starts = np.cumsum([0] + [len(rows) for rows in groups[:-1]])
    return order, starts


def combine(column: np.ndarray, groups: Sequence[Sequence[int]], rule: str) -> np.ndarray:
    """Each group of rows of `column` combined into one value per step by a
    rule that needs no other stat: NORM, SUM, MAX or MIN (see the module
    docstring). NaN where no row of the group was measured.

    Args:
        column: float [steps, rows], NaN where not measured.
        groups: the rows of each group (each layer's `LayerRows.rows`, or any
            rows to take together, such as every trainable variable).
        rule: NORM, SUM, MAX or MIN.

    Returns:
        float64 [steps, len(groups)].

    Example:

    >>> combine(np.array([[3.0, 4.0, np.nan]]), [(0, 1), (2,)], NORM).tolist()
    [[5.0, nan]]
    """
    if rule not in (NORM, SUM, MAX, MIN):
        raise ValueError(f"rule must be one of {NORM}, {SUM}, {MAX}, {MIN}; got {rule!r}")
    if not groups:
        return np.full((len(column), 0), np.nan)
    order, starts = _side_by_side(groups)
    members = np.asarray(column, dtype=np.float64)[:, order]
    return _combine(rule, members, None, None, starts)


def sum_by_layer(column: np.ndarray, groups: Sequence[LayerRows]) -> np.ndarray:
    """Each layer's sum over its rows of `column` ([steps, rows], every
    value measured, e.g. counts with NaN read as 0): [steps, len(groups)]."""
    if not groups:
        return np.zeros((len(column), 0))
    order, starts = _side_by_side([group.rows for group in groups])
    return np.add.reduceat(column[:, order], starts, axis=1)


def layer_column(
    values: np.ndarray, stats: Sequence[str], stat: str, groups: Sequence[LayerRows]
) -> np.ndarray:
    """Stat `stat` of each layer at each logged step, from the full-precision
    values of its rows at that step.

    Args:
        values: a run's norm tables, float [steps, rows, stats]
            (`NormHistory.values`); NaN where not measured.
        stats: the name of each stat column.
        stat: the stat to combine; must be one of `stats`.
        groups: the layers, from `layer_rows`.

    Returns:
        float64 [steps, len(groups)]: NaN where no row of the layer measured
        the stat, ±inf where a row was infinite.

    Example:

    >>> table = np.array([[[3.0], [4.0], [1.0]]])  # 1 step, 3 rows, stat weight/l2
    >>> groups = layer_rows(["d/kernel", "d/bias", "o/kernel"], ["d", "d", "o"])
    >>> layer_column(table, ["weight/l2"], "weight/l2", groups).tolist()
    [[5.0, 1.0]]
    """
    names = list(stats)
    if stat not in names:
        raise ValueError(f"stat {stat!r} is not one of the table's stats: {', '.join(stats)}")
    if not groups:
        return np.full((len(values), 0), np.nan)
    order, starts = _side_by_side([group.rows for group in groups])

    def column(name: str) -> Optional[np.ndarray]:
        # Only the columns the rule reads, in float64: a long run's whole
        # table in float64 would be hundreds of MB.
        return np.asarray(values[:, order, names.index(name)], dtype=np.float64) if name in names else None

    members = column(stat)
    rule = combine_rule(stat)
    needs = {RATIO: (_WEIGHT_L2, _UPDATE_L2), MAIN: (_WEIGHT_L2,)}.get(rule, ())
    weight_l2 = column(_WEIGHT_L2) if _WEIGHT_L2 in needs else None
    update_l2 = column(_UPDATE_L2) if _UPDATE_L2 in needs else None
    return _keep_overflow(_combine(rule, members, weight_l2, update_l2, starts), members, starts)


def _combine(
    rule: str,
    members: np.ndarray,
    weight_l2: Optional[np.ndarray],
    update_l2: Optional[np.ndarray],
    starts: np.ndarray,
) -> np.ndarray:
    """Every layer's value at each step from its rows' values [steps, rows]."""
    if rule == NORM:
        return _norm(members, starts)
    if rule == SUM:
        return _sum(members, starts)
    if rule == MAX:
        return np.fmax.reduceat(members, starts, axis=1)  # fmax/fmin skip NaN: not measured
    if rule == MIN:
        return np.fmin.reduceat(members, starts, axis=1)
    if rule == RATIO and weight_l2 is not None and update_l2 is not None:
        return _ratio(update_l2, weight_l2, starts)
    return _main(members, weight_l2, starts)
