"""Assembles a norm table in the graph: which rows and columns, and their values.

Pure TensorFlow, no I/O: the optimizer hook calls it inside the train step,
and `log()` inside the user's loop.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm import schema
from tb_weightnorm.graph import histograms, stats
from tb_weightnorm.graph.model_variables import TrackedVariable, names_of

_NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What a norm table holds.

    Attributes:
        rows: one per variable or gate, in model order; a `(global)` row
            follows them when `global_row` is set.
        computed: every column computed, in `schema.table_stat_names` order.
        stats: the columns stored (a subset of `computed`, same order).
        global_row: whether the table ends with the whole-model row.
        gradient_note: what the gradients are, where it matters.
    """

    rows: Tuple[TrackedVariable, ...]
    computed: Tuple[str, ...]
    stats: Tuple[str, ...]
    global_row: bool
    gradient_note: str = ""

    @property
    def with_gradients(self) -> bool:
        return "gradient/l2" in self.computed

    @property
    def with_updates(self) -> bool:
        return "update/l2" in self.computed

    @property
    def with_dist_init(self) -> bool:
        return "weight/dist_init" in self.computed

    def names(self) -> schema.NormTableNames:
        variables, layers = names_of(self.rows)
        if self.global_row:
            variables += (schema.GLOBAL_ROW,)
            layers += (schema.GLOBAL_LAYER,)
        return schema.NormTableNames(variables, layers, self.stats, self.gradient_note)

    def histogram_names(self) -> schema.NormTableNames:
        """The names of the histogram table of these rows: no whole-model row
        (a histogram is of one tensor), the weight stats."""
        return make_spec(self.rows, gradients=False, updates=False, dist_init=False).names()


def make_spec(
    rows: Sequence[TrackedVariable],
    *,
    gradients: bool,
    updates: bool,
    dist_init: bool,
    stats: Optional[Sequence[str]] = None,
    gradient_note: str = "",
) -> TableSpec:
    """A table spec; `stats` are glob patterns choosing the stored columns.

    The update and the distance from the initial weights each cost a copy of
    the logged weights: they are computed only if a stored column needs them.
    """
    available = schema.table_stat_names(gradients=gradients, updates=updates, dist_init=dist_init)
    chosen = schema.select_stats(available, stats)
    computed = schema.table_stat_names(
        gradients=gradients,
        updates=updates and any(s.startswith("update/") for s in chosen),
        dist_init=dist_init and "weight/dist_init" in chosen,
    )
    return TableSpec(tuple(rows), computed, chosen, global_row=gradients, gradient_note=gradient_note)


def spec_for(
    rows: Sequence[TrackedVariable],
    options,
    *,
    gradients: bool,
    updates_need_a_copy: bool,
    gradient_note: str = "",
) -> TableSpec:
    """The norm table `options` ask for: what `log()` and the callback both log.

    Keeping the initial weights (for `weight/dist_init`) costs a copy of the
    logged weights; `options.keeps_initial_weights` decides it by their size.

    Args:
        rows: the table's rows, `model_variables.rows_for(model, options)`.
        options: a `tb_weightnorm.LogOptions`: `stats` choose the stored
            columns, `keep_initial_weights` whether to keep the initial weights.
        gradients: whether the gradients applied come with the weights (their
            columns and the whole-model row).
        updates_need_a_copy: whether the update needs a copy of the weights of
            its own, as `log()`'s does (W now minus W at the previous call):
            then the same budget as the initial weights' decides it. The
            callback reads the weights before the update inside the
            optimizer's step, so its updates need no copy.
        gradient_note: what the gradients are, where it matters.

    Example:

    ```python
    options = tb_weightnorm.LogOptions(exclude=["*/bias"])
    rows = model_variables.rows_for(model, options)
    spec = spec_for(rows, options, gradients=True, updates_need_a_copy=False)
    ```
    """
    keep_copies = options.keeps_initial_weights(element_count(rows))
    return make_spec(
        rows,
        gradients=gradients,
        updates=keep_copies or not updates_need_a_copy,
        dist_init=keep_copies,
        stats=options.stats,
        gradient_note=gradient_note,
    )


def unique_variables(rows: Sequence[TrackedVariable]) -> Dict[int, object]:
    """id(variable) -> variable, once per variable (gate rows share one)."""
    out: Dict[int, object] = {}
    for row in rows:
        out.setdefault(id(row.variable), row.variable)
    return out


def element_count(rows: Sequence[TrackedVariable]) -> int:
    """How many values the rows' variables hold: the size of one weight copy."""
    return sum(int(np.prod(v.shape)) for v in unique_variables(rows).values())


def histogram_values(
    rows: Sequence[TrackedVariable],
    weights: Mapping[int, tf.Tensor],
    gradients: Optional[Mapping[int, object]],
    bins: int,
) -> tf.Tensor:
    """The histogram table of the rows: [2 (weight, gradient), rows, bins + 5].
    A row with no gradient gets an empty gradient histogram (all counts 0)."""
    w = [row.slice_of(weights[id(row.variable)]) for row in rows]
    g = _by_row(rows, gradients or {}, keep=lambda row: row.trainable)
    g = [gi if gi is not None else tf.zeros([0]) for gi in g]
    return tf.stack([histograms.histograms(w, bins), histograms.histograms(g, bins)])


def _by_row(rows, values: Mapping[int, object], keep=lambda row: True):
    out = []
    for row in rows:
        value = values.get(id(row.variable))
        out.append(row.slice_of(value) if value is not None and keep(row) else None)
    return out


def compute(
    spec: TableSpec,
    *,
    weights: Mapping[int, tf.Tensor],
    gradients: Optional[Mapping[int, object]] = None,
    before: Optional[Mapping[int, tf.Tensor]] = None,
    initial: Optional[Mapping[int, tf.Tensor]] = None,
    all_gradients: Sequence = (),
    all_variables: Sequence = (),
) -> tf.Tensor:
    """The table's values, float32 [rows (+1), len(spec.stats)].

    Args:
        spec: what to compute.
        weights: id(variable) -> its current value (or, for a large
            variable, the variable itself: see `stats.value_of`).
        gradients: id(variable) -> the gradient applied (None or absent: none).
        before: id(variable) -> its value before this step's update.
        initial: id(variable) -> its value when logging started.
        all_gradients, all_variables: every gradient and variable the
            optimizer got (also those not logged), for the global row; the
            gradients in the variables' order (empty: none).
    """
    rows = spec.rows
    n = len(rows)
    w = [row.slice_of(weights[id(row.variable)]) for row in rows]
    weight_stats = stats.tensor_stats(w)
    columns = [weight_stats]
    if spec.with_dist_init:
        start = _by_row(rows, initial or {})
        pairs = [None if s is None else (wi, s) for wi, s in zip(w, start)]
        columns.append(_present_rows(pairs, n, 1, lambda ps: stats.difference_l2_norms(ps)[:, None]))
    if spec.with_gradients:
        g = _by_row(rows, gradients or {}, keep=lambda row: row.trainable)
        gradient_stats = _present_rows(g, n, len(schema.TENSOR_STATS), stats.tensor_stats)
        columns.append(gradient_stats)
        with_units = [gi if row.has_units else None for gi, row in zip(g, rows)]
        columns.append(tf.reshape(stats.dead_unit_fractions(with_units), [n, 1]))
    if spec.with_updates:
        b = _by_row(rows, before or {}, keep=lambda row: row.trainable)
        updates = [None if bi is None else (wi, bi) for wi, bi in zip(w, b)]
        weight_l2 = weight_stats[:, 1]
        present = [i for i, u in enumerate(updates) if u is not None]
        columns.append(
            _present_rows(
                updates, n, len(schema.UPDATE_STATS),
                lambda us: stats.update_stats(stats.difference_l2_norms(us), tf.gather(weight_l2, present)),
            )
        )
    table = tf.concat(columns, axis=1)
    if spec.global_row:
        row_l2 = {"weight/l2": weight_stats[:, 1]}
        if spec.with_gradients:
            row_l2["gradient/l2"] = gradient_stats[:, 1]
        table = tf.concat([table, _global_row(spec, row_l2, all_variables, all_gradients)], axis=0)
    if spec.stats != spec.computed:
        table = tf.gather(table, [spec.computed.index(s) for s in spec.stats], axis=1)
    return table


def _global_row(spec: TableSpec, row_l2: Mapping[str, tf.Tensor], all_variables, all_gradients) -> tf.Tensor:
    variables = list(all_variables)
    gradients = list(all_gradients) or [None] * len(variables)
    values = {
        "weight/l2": _global_l2(spec.rows, row_l2["weight/l2"], zip(variables, map(stats.value_of, variables))),
        "gradient/l2": _global_l2(spec.rows, row_l2.get("gradient/l2"), zip(variables, gradients)),
    }
    return tf.reshape(
        tf.stack([values.get(name, tf.constant(_NAN)) for name in spec.computed]), [1, len(spec.computed)]
    )


def _global_l2(rows: Sequence[TrackedVariable], row_l2: Optional[tf.Tensor], pairs) -> tf.Tensor:
    """`stats.global_norm` of the tensors of (variable, tensor) pairs, taking
    the l2 norm of a variable logged whole from its row: reading and reducing
    hundreds of variables again costs a model of hundreds of layers
    milliseconds per logged step. (A sparse gradient is left to global_norm,
    which counts its listed values, as clipping does.)"""
    row_of = {id(row.variable): i for i, row in enumerate(rows) if row.part is None and row.trainable}
    known, rest = [], []
    for variable, tensor in pairs:
        if tensor is None:
            continue
        if row_l2 is not None and id(variable) in row_of and not isinstance(tensor, tf.IndexedSlices):
            known.append(row_of[id(variable)])
        else:
            rest.append(tensor)
    parts = [tf.gather(row_l2, known)] if known else []
    if rest:
        parts.append(stats.global_norm(rest)[None])
    if not parts:
        return tf.constant(_NAN)
    norms = tf.concat(parts, axis=0)
    # One norm is returned as it is: combined_l2 would turn an infinite one into NaN.
    return norms[0] if norms.shape[0] == 1 else stats.combined_l2(norms)


def _present_rows(values: Sequence, n: int, width: int, compute_fn) -> tf.Tensor:
    present = [i for i, v in enumerate(values) if v is not None]
    if len(present) == n:
        return compute_fn(list(values))
    missing = tf.fill([n, width], _NAN)
    if not present:
        return missing
    computed = compute_fn([values[i] for i in present])
    return tf.tensor_scatter_nd_update(missing, [[i] for i in present], computed)
