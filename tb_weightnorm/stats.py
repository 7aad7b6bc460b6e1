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

from tb_weightnorm import tf_state
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


class _Segments:
    """Reductions over the n segments of a flat tensor whose segment ids are
    sorted and contiguous (as `segmented_chunks` makes them).

    On CPU the sorted segment kernels are 3 to 4 times faster than the
    unsorted ones, but they have no XLA version and drop trailing empty
    segments; under XLA the unsorted ones are used. The sum of an empty
    segment is 0; its max and min mean nothing (callers look at the count).
    """

    def __init__(self, ids: tf.Tensor, n: int):
        self.ids, self.n = ids, n
        self.xla = tf_state.compiling_with_xla()

    def _reduce(self, sorted_op, unsorted_op, x: tf.Tensor) -> tf.Tensor:
        if self.xla:
            return unsorted_op(x, self.ids, self.n)
        out = sorted_op(x, self.ids)
        out = tf.pad(out, [[0, self.n - tf.shape(out)[0]]])
        return tf.reshape(out, [self.n])

    def sum(self, x):
        return self._reduce(tf.math.segment_sum, tf.math.unsorted_segment_sum, x)

    def max(self, x):
        return self._reduce(tf.math.segment_max, tf.math.unsorted_segment_max, x)

    def min(self, x):
        return self._reduce(tf.math.segment_min, tf.math.unsorted_segment_min, x)


# Below this largest magnitude, squares fall into float32's subnormal range
# (or to 0) and an unscaled sum of squares loses the norm.
_TINY_LINF = 1e-18


def _segment_l2(x, segments: _Segments, linf: tf.Tensor) -> tf.Tensor:
    """The l2 norm of each segment of finite `x`, whose magnitudes are at most
    a small multiple of `linf`.

    A plain sum of squares overflows float32 above ~1.8e19 and underflows
    below ~1e-19, which is exactly when a norm matters most (exploding or
    vanishing gradients). Only segments in those ranges are summed again,
    scaled by their linf, so the common case costs one pass.
    """
    plain = tf.sqrt(segments.sum(x * x))
    needs_scaling = tf.math.is_inf(plain) | ((linf < _TINY_LINF) & (linf > 0))

    def scaled():
        safe_linf = tf.where(linf > 0, linf, 1.0)
        y = x / tf.gather(safe_linf, segments.ids)
        return tf.where(needs_scaling, linf * tf.sqrt(segments.sum(y * y)), plain)

    return tf.cond(tf.reduce_any(needs_scaling), scaled, lambda: plain)


def _segment_stats(flat: tf.Tensor, ids: tf.Tensor, n: int, sizes: tf.Tensor) -> tf.Tensor:
    """The TENSOR_STATS of n segments of `flat` (segment i holds sizes[i]
    values), as a [n, 9] float32 tensor.

    Every stat but the counts is over the finite values only, so one NaN does
    not hide the scale of the rest; a segment with no finite value gets NaN.
    Most steps have no NaN or Inf at all: they take a path without masks.
    """
    segments = _Segments(ids, n)
    finite = tf.math.is_finite(flat)

    def stats_of(x, count, nan_count, inf_count, lo, hi, mask):
        defined = count > 0
        # max |x| is the larger magnitude of the min and the max.
        linf = tf.where(defined, tf.maximum(tf.abs(lo), tf.abs(hi)), 0.0)
        l1 = segments.sum(tf.abs(x))
        l2 = _segment_l2(x, segments, linf)
        safe_count = tf.maximum(count, 1.0)
        mean = segments.sum(x) / safe_count
        centered = x - tf.gather(mean, ids)
        if mask is not None:
            centered = tf.where(mask, centered, 0.0)
        # |x - mean| <= 2 linf: the same rescaling keeps tiny and huge spreads.
        std = _segment_l2(centered, segments, linf) / tf.sqrt(safe_count)
        return _stat_columns(l1, l2, linf, mean, std, lo, hi, nan_count, inf_count, defined, axis=1)

    def all_finite():
        zeros = tf.zeros([n])
        return stats_of(flat, sizes, zeros, zeros, segments.min(flat), segments.max(flat), None)

    def some_not_finite():
        big = tf.constant(float("inf"))
        nan_count = segments.sum(tf.cast(tf.math.is_nan(flat), tf.float32))
        inf_count = segments.sum(tf.cast(tf.math.is_inf(flat), tf.float32))
        lo = segments.min(tf.where(finite, flat, big))
        hi = segments.max(tf.where(finite, flat, -big))
        x = tf.where(finite, flat, 0.0)
        return stats_of(x, sizes - nan_count - inf_count, nan_count, inf_count, lo, hi, finite)

    return tf.cond(tf.reduce_all(finite), all_finite, some_not_finite)


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


def l2_norms(tensors: Sequence) -> tf.Tensor:
    """The l2 norm of each tensor over its finite values, as a [len(tensors)]
    float32 tensor: `tensor_stats(tensors)[:, 1]` at a fraction of the cost,
    for the update and the distance from the initial weights.

    Example:

    >>> float(l2_norms([tf.constant([3.0, float("nan"), -4.0])])[0])
    5.0
    """
    if not tensors:
        return tf.zeros([0], tf.float32)
    if any(isinstance(t, tf.IndexedSlices) for t in tensors):
        return tensor_stats(tensors)[:, 1]
    flats = [tf.reshape(_as_float32(t), [-1]) for t in tensors]
    parts = []
    for group, flat, ids in segmented_chunks(flats):
        segments = _Segments(ids, len(group))
        finite = tf.math.is_finite(flat)
        x = tf.cond(tf.reduce_all(finite), lambda: flat, lambda: tf.where(finite, flat, 0.0))
        linf = segments.max(tf.abs(x))
        parts.append(_segment_l2(x, segments, linf))
    return tf.concat(parts, axis=0)


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
            ids = _segment_ids(lengths, tf.size(flat, out_type=tf.int32))
        yield group, flat, ids


def _segment_ids(lengths: tf.Tensor, total: tf.Tensor) -> tf.Tensor:
    """[total] ids: i repeated lengths[i] times.

    tf.repeat does this on CPU, but under XLA it pads every segment to the
    longest one, so a large kernel beside a small bias makes ids longer than
    the data, which the segment ops reject. There a cumulative sum of ones
    placed at each segment's start gives the same ids in one pass.
    """
    if not tf_state.compiling_with_xla():
        return tf.repeat(tf.range(tf.size(lengths), dtype=tf.int32), lengths)
    starts = tf.cumsum(lengths, exclusive=True)[1:]
    marks = tf.tensor_scatter_nd_add(
        tf.zeros([total], tf.int32), starts[:, None], tf.ones_like(starts)
    )
    return tf.cumsum(marks)


def _dense_stats(tensors: Sequence) -> tf.Tensor:
    flats = [tf.reshape(_as_float32(t), [-1]) for t in tensors]
    parts = [
        _segment_stats(flat, ids, len(group), _sizes([flats[i] for i in group]))
        for group, flat, ids in segmented_chunks(flats)
    ]
    return tf.concat(parts, axis=0)


def _sizes(flats: Sequence[tf.Tensor]) -> tf.Tensor:
    static = [f.shape[0] for f in flats]
    if all(s is not None for s in static):
        return tf.constant(static, tf.float32)
    return tf.cast(tf.stack([tf.size(f) for f in flats]), tf.float32)


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
    l2 = l2_norms(updates)
    ratio = tf.math.divide_no_nan(l2, weight_l2)
    ratio = tf.where(tf.math.is_finite(l2), ratio, l2)
    return tf.stack([l2, ratio], axis=1)

