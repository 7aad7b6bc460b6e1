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
    return _stat_columns(l1, l2, linf, mean, std, seg_min, seg_max, nan_count, inf_count, count > 0, axis=1)


def _stat_columns(l1, l2, linf, mean, std, lo, hi, nan_count, inf_count, defined, axis):
    """Stacks TENSOR_STATS in order; the moments are NaN where no finite value was."""
    nan = tf.fill(tf.shape(l1), float("nan"))
    moments = [tf.where(defined, m, nan) for m in (mean, std, lo, hi)]
    return tf.stack([l1, l2, linf, *moments, nan_count, inf_count], axis=axis)


def tensor_stats(tensors: Sequence) -> tf.Tensor:
    """Statistics of each tensor, as a [len(tensors), 9] float32 tensor.

    Columns, in the order of `metadata.TENSOR_STATS`: l1, l2, linf, mean, std,
    min, max (all over the finite values), nan_count, inf_count.

    Args:
        tensors: tensors of any shape and real dtype (float16, bfloat16,
            integers and booleans are read as float32). A `tf.IndexedSlices`
            (the sparse gradient of an embedding table) is read as the dense
            tensor it stands for, without building that tensor.

    Example:

    >>> stats = tensor_stats([tf.constant([3.0, -4.0])])
    >>> float(stats[0, 1])  # l2
    5.0
    """
    if not tensors:
        return tf.zeros([0, len(TENSOR_STATS)], tf.float32)
    sparse = [i for i, t in enumerate(tensors) if isinstance(t, tf.IndexedSlices)]
    if sparse:
        dense = [i for i in range(len(tensors)) if i not in set(sparse)]
        parts = [_dense_stats([tensors[i] for i in dense])] if dense else []
        parts += [_indexed_slices_stats(tensors[i]) for i in sparse]
        order = dense + sparse
        inverse = [order.index(i) for i in range(len(tensors))]
        return tf.gather(tf.concat(parts, axis=0), inverse)
    return _dense_stats(tensors)


def segmented_chunks(flats: Sequence[tf.Tensor]):
    """Yields (indices, flat, segment ids) for chunks of 1-D tensors: small ones
    concatenated so a few large ops serve them all, a large one alone."""
    for group in _chunks([_static_size(f) for f in flats]):
        members = [flats[i] for i in group]
        if len(members) == 1:
            flat = members[0]
            ids = tf.zeros(tf.shape(flat), tf.int32)
        else:
            flat = tf.concat(members, axis=0)
            lengths = tf.stack([tf.size(m, out_type=tf.int32) for m in members])
            ids = tf.repeat(tf.range(len(members), dtype=tf.int32), lengths)
        yield group, flat, ids


def _dense_stats(tensors: Sequence) -> tf.Tensor:
    flats = [tf.reshape(_as_float32(t), [-1]) for t in tensors]
    parts = [_segment_stats(flat, ids, len(group)) for group, flat, ids in segmented_chunks(flats)]
    return tf.concat(parts, axis=0)


def _indexed_slices_stats(slices: tf.IndexedSlices) -> tf.Tensor:
    """Stats of the dense tensor an IndexedSlices stands for: its listed rows
    (duplicates summed, as densifying would) plus the implicit zeros."""
    unique, position = tf.unique(tf.reshape(slices.indices, [-1]))
    values = _as_float32(slices.values)
    rows = tf.math.unsorted_segment_sum(values, position, tf.size(unique))
    row_stats = _dense_stats([rows])[0]
    listed = tf.cast(tf.size(rows), tf.float32)
    total = tf.cast(tf.reduce_prod(slices.dense_shape), tf.float32)
    zeros = total - listed
    l1, l2, linf, mean, std, lo, hi, nan_count, inf_count = tf.unstack(row_stats)
    finite = listed - nan_count - inf_count
    # Moments of the finite listed values, then with the zeros added in.
    total_sum = tf.where(finite > 0, mean * finite, 0.0)
    total_sq = tf.where(finite > 0, (std * std + mean * mean) * finite, 0.0)
    count = finite + zeros
    safe = tf.maximum(count, 1.0)
    new_mean = total_sum / safe
    new_std = tf.sqrt(tf.maximum(total_sq / safe - new_mean * new_mean, 0.0))
    has_zeros = zeros > 0
    no_values = tf.equal(finite, 0.0)
    new_min = tf.where(has_zeros, tf.where(no_values, 0.0, tf.minimum(lo, 0.0)), lo)
    new_max = tf.where(has_zeros, tf.where(no_values, 0.0, tf.maximum(hi, 0.0)), hi)
    return _stat_columns(
        l1, l2, linf, new_mean, new_std, new_min, new_max, nan_count, inf_count, count > 0, axis=0
    )[None]


def dead_unit_fraction(gradient) -> tf.Tensor:
    """The fraction of output units (the last axis) whose incoming weights all
    got a gradient of exactly zero: a dead ReLU shows up this way without
    recording activations. NaN for a gradient with no units or a sparse one.

    Example:

    >>> g = tf.constant([[0.0, 1.0], [0.0, 2.0]])  # unit 0 got nothing
    >>> float(dead_unit_fraction(g))
    0.5
    """
    if isinstance(gradient, tf.IndexedSlices) or gradient.shape.rank is None or gradient.shape.rank < 2:
        return tf.constant(float("nan"))
    g = tf.convert_to_tensor(gradient)
    units = tf.shape(g)[-1]
    columns = tf.reshape(g, [-1, units])
    dead = tf.reduce_all(tf.equal(columns, tf.zeros([], g.dtype)), axis=0)
    return tf.cast(tf.math.count_nonzero(dead), tf.float32) / tf.cast(tf.maximum(units, 1), tf.float32)


def global_norm(tensors: Sequence) -> tf.Tensor:
    """The l2 norm of all tensors together, as gradient clipping computes it
    (`tf.clip_by_global_norm`: an IndexedSlices counts its listed values)."""
    present = [t for t in tensors if t is not None]
    if not present:
        return tf.constant(float("nan"))
    values = [t.values if isinstance(t, tf.IndexedSlices) else t for t in present]
    return tf.linalg.global_norm([tf.cast(v, tf.float32) for v in values])


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

