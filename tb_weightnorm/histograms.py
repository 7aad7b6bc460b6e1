"""In-graph histograms of weights, gradients and updates.

Pure TensorFlow functions: no I/O, no summaries, no Python state, so they run
eagerly, inside `tf.function` and inside XLA-compiled train steps alike. Every
tensor is bucketed where it lives and all the histograms come back as ONE small
[n, bins + 5] table, so logging a model with hundreds of variables costs one
device-to-host copy instead of hundreds.

Like `stats.tensor_stats`, many small variables are bucketed together with
segment ops over concatenated chunks, and a variable larger than
`stats._CHUNK_ELEMENTS` is bucketed alone so nothing is ever concatenated into a
second copy of a huge tensor. The chunk size is read by `stats._chunks` at call
time (it is deliberately not imported by name here, which would freeze it).

Bucket edges. Bucket b of a tensor holds the finite values x with
``edge(b) <= x < edge(b + 1)`` (the last bucket also holds the max), where
``edge(k) = min + (max - min) * k / bins`` is evaluated in float32. This is the
rule of `np.histogram(finite, bins)`; the two agree exactly whenever an edge is
representable (integer or dyadic grids, the cases where values sit exactly on
edges), and otherwise differ at most for a value within a float32 rounding of
an edge.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from tb_weightnorm.stats import _as_float32, segmented_chunks

# Columns after the buckets, in this order, in the counts table of a chunk.
_NON_FINITE = ("nan_count", "neg_inf_count", "pos_inf_count")


def _check_bins(bins) -> int:
    # bool is an int in Python, but `bins=True` is a bug, not a request for 1 bucket.
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise ValueError(f"bins must be a positive int (the number of buckets); got {bins!r}.")
    return int(bins)


def histogram_columns(bins: int) -> Tuple[str, ...]:
    """The column names of a `histograms(tensors, bins)` table.

    Args:
        bins: the number of buckets, a positive int.

    Returns:
        ("min", "max", "bin_0", ..., "bin_{bins-1}", "nan_count",
        "neg_inf_count", "pos_inf_count"): bins + 5 names.

    Example:

    >>> histogram_columns(2)
    ('min', 'max', 'bin_0', 'bin_1', 'nan_count', 'neg_inf_count', 'pos_inf_count')
    """
    bins = _check_bins(bins)
    return ("min", "max") + tuple(f"bin_{i}" for i in range(bins)) + _NON_FINITE


def histograms(tensors: Sequence, bins: int) -> tf.Tensor:
    """Histograms of many tensors at once, as a [len(tensors), bins + 5] float32 tensor.

    Columns, in the order of `histogram_columns(bins)`: the min and max of the
    finite values, `bins` counts of the finite values in equal-width buckets
    spanning [min, max] (see the module docstring for the edges; the max is in
    the last bucket), then the NaN, -Inf and +Inf counts. Non-finite values are
    counted there and never put into a bucket, nor used for min and max.

    Special cases:

    * No finite value (all NaN/Inf, or zero size): min = max = NaN, all bucket
      counts 0, the non-finite counts still exact.
    * All finite values equal (min == max): they are all counted in the middle
      bucket, `bins // 2`, so a constant tensor (a freshly zero-initialised
      bias, say) shows as one centred bar rather than a bar glued to an edge.
      `np.histogram` centres it the same way by widening a zero range to
      [v - 0.5, v + 0.5] (in float32 that can round v into bucket bins // 2 - 1
      for an even `bins`; here the bucket is exact).

    Counts are accumulated in integers and cast to float32 once at the end: a
    float32 running count stops growing at 2**24 (2**24 + 1 rounds back to
    2**24), which a single embedding table easily exceeds, whereas a cast
    integer is exact up to 2**24 and within float32 rounding (a relative 6e-8)
    above. The integer per tensor is int32 for the values it stores (as in
    `stats`, a tensor is limited to 2**31 elements) and int64 for the implicit
    zeros of `tf.IndexedSlices`, which may stand for far larger tables.

    Args:
        tensors: tensors of any shape and real dtype (float16, bfloat16,
            integers and booleans are read as float32). A `tf.IndexedSlices`
            (the sparse gradient of an Embedding table) is read as the dense
            tensor it stands for, without building it: its rows are summed
            per unique index, and the zeros of the rows it does not list are
            added to the bucket holding 0 ([min, max] is widened to include
            0 when there are any). It needs a `dense_shape`.
        bins: the number of buckets, a positive int (a Python value: it sets
            the shape of the result).

    Returns:
        A float32 tensor of shape [len(tensors), bins + 5].

    Raises:
        ValueError: if `bins` is not a positive int, or an IndexedSlices has
            no dense_shape.

    Example:

    >>> table = histograms([tf.constant([0.0, 1.0, 1.5, 4.0, float("nan")])], bins=2)
    >>> table.numpy().tolist()
    [[0.0, 4.0, 3.0, 1.0, 1.0, 0.0, 0.0]]
    """
    bins = _check_bins(bins)
    if not tensors:
        return tf.zeros([0, bins + 5], tf.float32)
    flats: List[tf.Tensor] = []
    implicit: List[Optional[tf.Tensor]] = []
    for t in tensors:
        flat, zeros = _flatten(t)
        flats.append(flat)
        implicit.append(zeros)
    # Deduplicated IndexedSlices have a data-dependent size, unknown to
    # _static_size inside a graph, so they are bucketed alone there; that also
    # keeps XLA from having to concatenate dynamically shaped pieces.
    parts = []
    for group, flat, ids in segmented_chunks(flats):
        zeros = None
        if any(implicit[i] is not None for i in group):
            zeros = tf.stack(
                [implicit[i] if implicit[i] is not None else tf.constant(0, tf.int64) for i in group]
            )
        parts.append(_segment_histograms(flat, ids, len(group), bins, zeros))
    return tf.concat(parts, axis=0)


def _flatten(t) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """The stored values of `t` as a flat float32 tensor, and for IndexedSlices
    the int64 number of zeros it stands for but does not store (else None)."""
    if not isinstance(t, tf.IndexedSlices):
        return tf.reshape(_as_float32(t), [-1]), None
    if t.dense_shape is None:
        raise ValueError(
            "An IndexedSlices without dense_shape does not say how many implicit "
            "zeros it stands for, so its histogram is undefined; give it a dense_shape."
        )
    values = t.values
    if values.dtype == tf.bool:
        values = tf.cast(values, tf.int32)
    # Summed in the values' own dtype and in the order of `indices`, exactly as
    # tf.convert_to_tensor(slices) does, so the result equals the dense histogram.
    unique, positions = tf.unique(t.indices)
    rows = tf.math.unsorted_segment_sum(values, positions, tf.size(unique))
    flat = tf.reshape(_as_float32(rows), [-1])
    total = tf.reduce_prod(tf.cast(t.dense_shape, tf.int64))
    return flat, total - tf.size(flat, out_type=tf.int64)


def _bucket(x: tf.Tensor, lo: tf.Tensor, span: tf.Tensor, bins: int) -> tf.Tensor:
    """The int32 bucket of each x in [lo, lo + span] (broadcast), span >= 0.

    The same op sequence buckets stored values and the implicit zero of an
    IndexedSlices, so both land where the dense tensor's values would.
    """
    has_span = span > 0
    safe_span = tf.where(has_span, span, 1.0)
    # Divide before multiplying, in numpy's order: (x - lo) / span is at most 1,
    # so nothing overflows even for a span close to the float32 max.
    guess = tf.floor((x - lo) / safe_span * bins)
    # Clip in float: casting an out-of-range float to int is undefined.
    b = tf.cast(tf.clip_by_value(guess, 0.0, bins - 1.0), tf.int32)
    # The guess can be one bucket off for a value within a rounding of an edge
    # (1 / 41 * 41 < 1 in float32). Checking it against the edges themselves
    # makes membership exactly edge(b) <= x < edge(b + 1), as in np.histogram.
    # span * k is computed before the division so edges on integer and dyadic
    # grids are exact.
    b_float = tf.cast(b, tf.float32)
    lower = lo + span * b_float / bins
    upper = lo + span * (b_float + 1.0) / bins
    b = b - tf.cast(x < lower, tf.int32) + tf.cast((x >= upper) & (b < bins - 1), tf.int32)
    return tf.where(has_span, b, bins // 2)


def _segment_histograms(
    flat: tf.Tensor, ids: tf.Tensor, n: int, bins: int, implicit_zeros: Optional[tf.Tensor]
) -> tf.Tensor:
    """The histograms of n segments of `flat`, as a [n, bins + 5] float32 tensor.

    `implicit_zeros` ([n] int64 or None) are zeros each segment stands for but
    does not store (those of an IndexedSlices).
    """
    finite = tf.math.is_finite(flat)
    big = tf.constant(float("inf"))
    seg_min = tf.math.unsorted_segment_min(tf.where(finite, flat, big), ids, n)
    seg_max = tf.math.unsorted_segment_max(tf.where(finite, flat, -big), ids, n)
    if implicit_zeros is not None:
        has_zeros = implicit_zeros > 0
        seg_min = tf.where(has_zeros, tf.minimum(seg_min, 0.0), seg_min)
        seg_max = tf.where(has_zeros, tf.maximum(seg_max, 0.0), seg_max)
    # A segment with no finite value keeps the identities of min and max
    # (+/-inf, or the float32 extremes for an empty segment), so min > max.
    has_values = seg_min <= seg_max
    lo = tf.where(has_values, seg_min, 0.0)
    hi = tf.where(has_values, seg_max, 0.0)
    # max - min overflows when the values span more than the float32 range
    # (exploding weights, exactly when the histogram matters), and so may
    # span * bins in the edges. Scaling such a segment by a power of two is
    # exact and keeps every intermediate finite: the span is below twice the
    # float32 max, and dividing it by 4 * 2**ceil(log2(bins)) >= 4 * bins keeps
    # span * (b + 1) <= span * bins under half the max, rounding included.
    shrink = 2.0 ** -(math.ceil(math.log2(bins)) + 2)
    scale = tf.where(tf.math.is_finite((hi - lo) * bins), 1.0, shrink)
    lo_s = lo * scale
    span_s = hi * scale - lo_s

    # Non-finite values get the segment's min as a stand-in so the bucket
    # arithmetic stays finite; their column is chosen below.
    x = tf.where(finite, flat * tf.gather(scale, ids), tf.gather(lo_s, ids))
    b = _bucket(x, tf.gather(lo_s, ids), tf.gather(span_s, ids), bins)
    column = tf.where(
        finite,
        b,
        tf.where(tf.math.is_nan(flat), bins, tf.where(flat < 0, bins + 1, bins + 2)),
    )
    # One segment sum counts every bucket and every non-finite kind of every
    # segment at once: segment id * (bins + 3) + column.
    width = bins + 3
    segments = ids * width + column
    counts = tf.math.unsorted_segment_sum(tf.ones_like(segments), segments, n * width)
    counts = tf.reshape(counts, [n, width])
    if implicit_zeros is not None:
        zero_bucket = _bucket(tf.zeros_like(lo_s), lo_s, span_s, bins)
        counts = tf.cast(counts, tf.int64) + tf.one_hot(
            zero_bucket, width, dtype=tf.int64
        ) * implicit_zeros[:, None]
    counts = tf.cast(counts, tf.float32)
    nan = tf.fill([n], float("nan"))
    extremes = tf.stack([tf.where(has_values, seg_min, nan), tf.where(has_values, seg_max, nan)], axis=1)
    return tf.concat([extremes, counts], axis=1)
