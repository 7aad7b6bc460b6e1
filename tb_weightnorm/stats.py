"""In-graph statistics of weights, gradients and updates.

Pure TensorFlow functions: no I/O, no summaries, no Python state, so they run
eagerly, inside `tf.function` and inside XLA-compiled train steps alike. Values
are reduced where the tensors live; only the small tables leave the device.

Many small variables are reduced together with segment ops (a few large ops
instead of a dozen small ones per variable, which matters for models with
hundreds of layers); a variable larger than `_CHUNK_ELEMENTS` is reduced alone so
nothing is ever concatenated into a second copy of a huge tensor.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import tensorflow as tf

from tb_weightnorm.metadata import TENSOR_STATS, UPDATE_STATS

_CHUNK_ELEMENTS = 1 << 22


def _as_float32(x) -> tf.Tensor:
    if isinstance(x, tf.IndexedSlices):
        x = tf.convert_to_tensor(x)
    x = tf.convert_to_tensor(x)
    if x.dtype != tf.float32:
        x = tf.cast(x, tf.float32)
    return x


def _chunks(sizes: Sequence[int]) -> List[List[int]]:
    """Groups tensor indices so each group holds at most _CHUNK_ELEMENTS values
    (a larger tensor is a group of its own)."""
    groups: List[List[int]] = []
    current: List[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > _CHUNK_ELEMENTS:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups


def _segment_stats(flat: tf.Tensor, ids: tf.Tensor, n: int) -> tf.Tensor:
    """The TENSOR_STATS of n segments of `flat`, as a [n, 9] float32 tensor.

    Every stat but the counts is over the finite values only, so one NaN does
    not hide the scale of the rest; a segment with no finite value gets NaN.
    """
    finite = tf.math.is_finite(flat)
    finite_f = tf.cast(finite, tf.float32)

    def seg_sum(x):
        return tf.math.unsorted_segment_sum(x, ids, n)

    count = seg_sum(finite_f)
    nan_count = seg_sum(tf.cast(tf.math.is_nan(flat), tf.float32))
    inf_count = seg_sum(tf.cast(tf.math.is_inf(flat), tf.float32))
    x = tf.where(finite, flat, 0.0)
    big = tf.constant(float("inf"))
    seg_max = tf.math.unsorted_segment_max(tf.where(finite, flat, -big), ids, n)
    seg_min = tf.math.unsorted_segment_min(tf.where(finite, flat, big), ids, n)
    abs_x = tf.abs(x)
    l1 = seg_sum(abs_x)
    # An empty segment's max is the lowest float; its norms are those of nothing: 0.
    linf = tf.maximum(tf.math.unsorted_segment_max(abs_x, ids, n), 0.0)
    # Squares overflow float32 above ~1.8e19, which is exactly when a norm
    # matters most (exploding weights): scale each segment by its linf first.
    safe_linf = tf.where(linf > 0, linf, 1.0)
    scaled = x / tf.gather(safe_linf, ids)
    l2 = linf * tf.sqrt(seg_sum(scaled * scaled))
    safe_count = tf.maximum(count, 1.0)
    mean = seg_sum(x) / safe_count
    centered = (x - tf.gather(mean, ids)) * finite_f
    std = tf.sqrt(seg_sum(centered * centered) / safe_count)
    has_values = count > 0
    nan = tf.fill(tf.shape(count), float("nan"))
    columns = [
        l1,
        l2,
        linf,
        tf.where(has_values, mean, nan),
        tf.where(has_values, std, nan),
        tf.where(has_values, seg_min, nan),
        tf.where(has_values, seg_max, nan),
        nan_count,
        inf_count,
    ]
    return tf.stack(columns, axis=1)


def tensor_stats(tensors: Sequence) -> tf.Tensor:
    """Statistics of each tensor, as a [len(tensors), 9] float32 tensor.

    Columns, in the order of `metadata.TENSOR_STATS`: l1, l2, linf, mean, std,
    min, max (all over the finite values), nan_count, inf_count.

    Args:
        tensors: tensors of any shape and real dtype (float16, bfloat16,
            integers and booleans are read as float32); `tf.IndexedSlices`
            are read as the dense tensor they stand for.

    Example:

    >>> stats = tensor_stats([tf.constant([3.0, -4.0])])
    >>> float(stats[0, 1])  # l2
    5.0
    """
    if not tensors:
        return tf.zeros([0, len(TENSOR_STATS)], tf.float32)
    flats = [tf.reshape(_as_float32(t), [-1]) for t in tensors]
    sizes = [_static_size(f) for f in flats]
    parts = []
    for group in _chunks(sizes):
        members = [flats[i] for i in group]
        if len(members) == 1:
            flat = members[0]
            ids = tf.zeros(tf.shape(flat), tf.int32)
        else:
            flat = tf.concat(members, axis=0)
            lengths = tf.stack([tf.size(m, out_type=tf.int32) for m in members])
            ids = tf.repeat(tf.range(len(members), dtype=tf.int32), lengths)
        parts.append(_segment_stats(flat, ids, len(members)))
    return tf.concat(parts, axis=0)


def _static_size(flat: tf.Tensor) -> int:
    size = flat.shape[0]
    return int(size) if size is not None else _CHUNK_ELEMENTS


def update_stats(updates: Sequence, weight_l2: tf.Tensor) -> tf.Tensor:
    """Statistics of the updates W_after - W_before, as a [n, 2] tensor.

    Columns, in the order of `metadata.UPDATE_STATS`: l2 of the update, and its
    ratio to the weight's l2 (`weight_l2`, a [n] tensor; around 1e-3 is healthy).
    """
    l2 = tensor_stats(updates)[:, 1]
    ratio = tf.math.divide_no_nan(l2, weight_l2)
    ratio = tf.where(tf.math.is_finite(l2), ratio, l2)
    return tf.stack([l2, ratio], axis=1)


def norm_table(
    weights: Sequence,
    gradients: Optional[Sequence] = None,
    updates: Optional[Sequence] = None,
) -> tf.Tensor:
    """The norm table of a set of variables: one row per weight.

    Columns: the weight's TENSOR_STATS, then, if `gradients` is given, the
    gradient's, then, if `updates` is given, the UPDATE_STATS. A row whose
    gradient or update is None gets NaN there ("not measured").

    Args:
        weights: the variables' current values.
        gradients: one gradient (or None) per weight.
        updates: one W_after - W_before (or None) per weight.
    """
    n = len(weights)
    weight_stats = tensor_stats(weights)
    columns = [weight_stats]
    if gradients is not None:
        columns.append(_rows_where_present(gradients, n, len(TENSOR_STATS), tensor_stats))
    if updates is not None:
        weight_l2 = weight_stats[:, 1]
        present = [i for i, u in enumerate(updates) if u is not None]
        columns.append(
            _rows_where_present(
                updates,
                n,
                len(UPDATE_STATS),
                lambda us: update_stats(us, tf.gather(weight_l2, present)),
            )
        )
    return tf.concat(columns, axis=1)


def _rows_where_present(values: Sequence, n: int, width: int, compute) -> tf.Tensor:
    if len(values) != n:
        raise ValueError(f"Expected {n} values, one per weight; got {len(values)}.")
    present = [i for i, v in enumerate(values) if v is not None]
    if len(present) == n:
        return compute(list(values))
    missing = tf.fill([n, width], float("nan"))
    if not present:
        return missing
    rows = compute([values[i] for i in present])
    return tf.tensor_scatter_nd_update(missing, [[i] for i in present], rows)
