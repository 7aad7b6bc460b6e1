"""In-graph histograms of weights, gradients and updates.

Pure TensorFlow functions: no I/O, no summaries, no Python state, so they run
eagerly, inside `tf.function` and inside XLA-compiled train steps alike. Every
tensor is bucketed where it lives and all the histograms come back as ONE small
[n, bins + 5] table, so logging a model with hundreds of variables costs one
device-to-host copy instead of hundreds.

In the training step (TensorFlow). Like `stats.tensor_stats`, many small
variables are bucketed together over concatenated chunks, and a variable
larger than `tensor_groups.CHUNK_ELEMENTS` is bucketed alone, piece by piece,
so nothing is ever concatenated into a second copy of a huge tensor (see
`tensor_groups`, whose functions read the chunk size when called).

Bucket edges. Bucket b of a tensor holds the finite values x with
``edge(b) <= x < edge(b + 1)`` (the last bucket also holds the max), where
``edge(k) = min + (max - min) * k / bins`` is evaluated in float32 (the same
eagerly, in a `tf.function` and under XLA). This is the rule of
`np.histogram(finite, bins)`; the two agree exactly whenever an edge is
representable (integer or dyadic grids, the cases where values sit exactly on
edges), and otherwise differ at most for a value within a float32 rounding of
an edge.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import tensor_groups, tf_state
from tb_weightnorm.graph.tensor_groups import as_float32

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


# Only Python loops and conditions on static values inside: AutoGraph would
# rewrite none of them, and converting the helpers costs more trace time
# than building their ops.
@tf.autograph.experimental.do_not_convert
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
        # A large tensor (or variable) is read and cast a piece at a time.
        flat, zeros = (t, None) if tensor_groups.is_large(t) else _flatten(t)
        flats.append(flat)
        implicit.append(zeros)
    # Deduplicated IndexedSlices have a data-dependent size, unknown to
    # tensor_groups.static_size inside a graph, so they are bucketed alone there; that also
    # keeps XLA from having to concatenate dynamically shaped pieces. The
    # chunks are those of tensor_groups.segmented_chunks, laid out by _Layout.
    parts = []
    sizes = [
        tf.TensorShape(f.shape).num_elements() if tensor_groups.is_large(f) else tensor_groups.static_size(f)
        for f in flats
    ]
    for group in tensor_groups.chunks(sizes):
        if len(group) == 1 and tensor_groups.is_large(flats[group[0]]):
            parts.append(_large_histogram(flats[group[0]], bins))
            continue
        zeros = None
        if any(implicit[i] is not None for i in group):
            zeros = tf.stack(
                [implicit[i] if implicit[i] is not None else tf.constant(0, tf.int64) for i in group]
            )
        parts.append(_group_histograms([flats[i] for i in group], bins, zeros))
    return tf.concat(parts, axis=0)


def _flatten(t) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """The stored values of `t` as a flat float32 tensor, and for IndexedSlices
    the int64 number of zeros it stands for but does not store (else None)."""
    if not isinstance(t, tf.IndexedSlices):
        return tf.reshape(as_float32(t), [-1]), None
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
    flat = tf.reshape(as_float32(rows), [-1])
    total = tf.reduce_prod(tf.cast(t.dense_shape, tf.int64))
    return flat, total - tf.size(flat, out_type=tf.int64)


def _group_histograms(
    members: Sequence[tf.Tensor], bins: int, implicit_zeros: Optional[tf.Tensor]
) -> tf.Tensor:
    """The histograms of n flat tensors bucketed together, as a [n, bins + 5]
    float32 tensor.

    `implicit_zeros` ([n] int64 or None) are zeros each tensor stands for but
    does not store (those of an IndexedSlices).
    """
    layout = _Layout(members, bins)
    flat = layout.flat
    if implicit_zeros is not None:
        implicit_zeros = layout.to_sorted(implicit_zeros)
    # Exact when every value is finite, as on almost every step.
    plain = _Ranges(layout.min(flat), layout.max(flat), layout.sizes, implicit_zeros, bins)
    # A NaN or Inf makes the sum non-finite; so may huge finite values, which
    # then take the path with masks, exact too.
    no_masks = tf.math.is_finite(tf.reduce_sum(flat)) & tf.reduce_all(tf.equal(plain.scale, 1.0))

    def all_finite():
        lo = layout.broadcast(plain.lo)
        b = _bucket(flat, lo, layout.broadcast(plain.safe_span), bins, plain.divisor)
        return plain.table(layout.count(b), implicit_zeros)

    def some_not_finite():
        finite = tf.math.is_finite(flat)
        big = tf.constant(float("inf"))
        ranges = _Ranges(
            layout.min(tf.where(finite, flat, big)),
            layout.max(tf.where(finite, flat, -big)),
            layout.sizes,
            implicit_zeros,
            bins,
        )
        # Rare steps: a gather is slower than a broadcast but adds no op per
        # size class to the graph.
        column = _column(
            flat, finite, layout.gather(ranges.lo), layout.gather(ranges.scale),
            layout.gather(ranges.safe_span), ranges.divisor, bins,
        )
        return ranges.table(layout.count(column), implicit_zeros)

    return layout.to_original(tf.cond(no_masks, all_finite, some_not_finite))


def _column(flat, finite, lo, scale, span, divisor, bins: int) -> tf.Tensor:
    """The counted column (see _width) of each value of `flat`: its bucket in
    [lo, lo + span] after scaling (per value, or scalars), or its non-finite
    column."""
    # Non-finite values get their tensor's min as a stand-in so the bucket
    # arithmetic stays finite; their column is chosen below.
    x = tf.where(finite, flat * scale, lo)
    b = _bucket(x, lo, span, bins, divisor)
    nan, neg_inf, pos_inf = (float(bins + k) for k in (1, 2, 3))
    non_finite = tf.where(tf.math.is_nan(flat), nan, tf.where(flat < 0, neg_inf, pos_inf))
    return tf.where(finite, b, non_finite)


def _large_histogram(tensor, bins: int) -> tf.Tensor:
    """The [1, bins + 5] histogram of a large tensor or variable (any real
    dtype), in two passes over its pieces (see `tensor_groups.in_pieces`):
    its range, then its counts. No temporary of its full size is made."""
    big = tf.constant(float("inf"))

    def extremes(piece):
        x = tf.reshape(as_float32(piece), [-1])
        finite = tf.math.is_finite(x)
        return tf.stack([
            tf.reduce_min(tf.where(finite, x, big)),
            tf.reduce_max(tf.where(finite, x, -big)),
            tf.cast(tf.reduce_all(finite), tf.float32),
        ])

    per_piece = tensor_groups.in_pieces([tensor], extremes, [3])
    size = tf.constant([tf.TensorShape(tensor.shape).num_elements()], tf.int32)
    ranges = _Ranges(tf.reduce_min(per_piece[:, 0])[None], tf.reduce_max(per_piece[:, 1])[None], size, None, bins)
    lo, scale, span = ranges.lo[0], ranges.scale[0], ranges.safe_span[0]

    def counts(masks: bool):
        def of_piece(piece):
            x = tf.reshape(as_float32(piece), [-1])
            if masks:
                column = _column(x, tf.math.is_finite(x), lo, scale, span, ranges.divisor, bins)
            else:
                column = _bucket(x, lo, span, bins, ranges.divisor)
            return _Layout([x], bins).count(column)[0]

        return tf.reduce_sum(tensor_groups.in_pieces([tensor], of_piece, [_width(bins)], tf.int32), axis=0)

    # As in _group_histograms: almost always every value is finite and in
    # range, and the buckets need no masks.
    no_masks = tf.reduce_all(per_piece[:, 2] > 0) & tf.equal(scale, 1.0)
    total = tf.cond(no_masks, lambda: counts(False), lambda: counts(True))
    return ranges.table(total[None], None)


def _width(bins: int) -> int:
    """The counted columns of a tensor: the buckets; then column `bins`, for a
    value pushed past the last bucket's upper edge (it belongs to the last
    bucket: folding it in on the [n, bins + 4] counts is cheaper than clipping
    every value); then the NaN, -Inf and +Inf counts."""
    return bins + 4


class _Layout:
    """n flat tensors concatenated into one, ordered by size.

    A per-tensor value reaches that tensor's values by a broadcast per size
    class: on CPU a gather per value, or the tf.repeat that makes the segment
    ids of tensor_groups.segmented_chunks, costs several elementwise passes (and
    under XLA, once a chunk is large, that tf.repeat comes out longer than the
    chunk, which the segment ops reject). Tensors of one size are made
    adjacent; models repeat a few shapes many times, so the graph gets few
    ops. The tensor order is restored on the [n, ...] result.
    """

    def __init__(self, members: Sequence[tf.Tensor], bins: int):
        self.n = n = len(members)
        self.width = _width(bins)
        self.xla = tf_state.compiling_with_xla()
        sizes = [m.shape[0] for m in members]
        static = all(size is not None for size in sizes)
        classes = {}
        for i, size in enumerate(sizes):
            # An unknown size is a class of its own.
            classes.setdefault(size if size is not None else ("unknown", i), []).append(i)
        self.order = [i for group in classes.values() for i in group]
        ordered = [members[i] for i in self.order]
        # (tensor count, static size or None, dynamic size or None) of each class.
        self.classes = []
        for group in classes.values():
            size = sizes[group[0]]
            self.classes.append((len(group), size, tf.size(members[group[0]]) if size is None else None))
        self.flat = ordered[0] if n == 1 else tf.concat(ordered, axis=0)
        if static:
            self.sizes = tf.constant([sizes[i] for i in self.order], tf.int32)
        else:
            self.sizes = tf.stack([tf.size(m, out_type=tf.int32) for m in ordered])
        self.ids = self.offsets = self.segments = None
        if n > 1:
            if static:
                ids = np.repeat(np.arange(n, dtype=np.int32), [sizes[i] for i in self.order])
                self.ids = tf.constant(ids)
                self.offsets = tf.constant(ids * self.width)
            else:
                self.ids = self.broadcast(tf.range(n, dtype=tf.int32))
                self.offsets = self.ids * self.width
            # One sorted segment reduction serves any number of size classes
            # on CPU; XLA has none, and reduces a class (fused) faster than it
            # scatters into unsorted segments, but cannot split off a class
            # of unknown size.
            if not self.xla or not static:
                self.segments = tensor_groups.Segments(self.ids, n)

    def to_sorted(self, values: tf.Tensor) -> tf.Tensor:
        return values if self._identity() else tf.gather(values, self.order)

    def to_original(self, rows: tf.Tensor) -> tf.Tensor:
        if self._identity():
            return rows
        return tf.gather(rows, np.argsort(self.order).astype(np.int32))

    def _identity(self) -> bool:
        return self.order == list(range(self.n))

    def broadcast(self, values: tf.Tensor) -> tf.Tensor:
        """values[i] ([n], in size order) for each value of tensor i: a scalar
        for a single tensor, broadcasting does the rest."""
        if self.n == 1:
            return values[0]
        pieces = tf.split(values, [count for count, _, _ in self.classes])
        out = []
        for piece, (count, size, dynamic) in zip(pieces, self.classes):
            if dynamic is not None:
                out.append(tf.broadcast_to(piece, tf.reshape(dynamic, [1])))
            elif count == 1:
                out.append(tf.broadcast_to(piece, [size]))
            elif size:
                out.append(tf.reshape(tf.broadcast_to(tf.reshape(piece, [count, 1]), [count, size]), [-1]))
        return tf.concat(out, axis=0) if out else tf.zeros([0], values.dtype)

    def min(self, x: tf.Tensor) -> tf.Tensor:
        """The min of each tensor's values in x ([n], in size order): the
        float32 max, 0 or +inf for an empty tensor, depending on the op."""
        return self.segments.min(x) if self.segments is not None else self._per_class(tf.reduce_min, x)

    def max(self, x: tf.Tensor) -> tf.Tensor:
        """The max of each tensor's values in x, as min() does."""
        return self.segments.max(x) if self.segments is not None else self._per_class(tf.reduce_max, x)

    def _per_class(self, reduce, x: tf.Tensor) -> tf.Tensor:
        lengths = [count * size if dynamic is None else dynamic for count, size, dynamic in self.classes]
        pieces = tf.split(x, lengths) if len(self.classes) > 1 else [x]
        out = []
        for piece, (count, size, dynamic) in zip(pieces, self.classes):
            if dynamic is not None:
                out.append(reduce(piece)[None])
            else:
                out.append(reduce(tf.reshape(piece, [count, size]), axis=1))
        return tf.concat(out, axis=0)

    def gather(self, values: tf.Tensor) -> tf.Tensor:
        """The same as broadcast() with one op, several times slower."""
        return values[0] if self.n == 1 else tf.gather(values, self.ids)

    def count(self, column: tf.Tensor) -> tf.Tensor:
        """[n, width] int32 counts of each tensor's values per column (a
        float32 holding an integer in [0, width), see _width)."""
        index = tf.cast(column, tf.int32)
        width = self.width
        if self.n > 1:
            index += self.offsets
        if self.xla:
            # XLA has no DenseBincount for the dynamic sizes of IndexedSlices
            # rows, and its scatter-add is as fast.
            counts = tf.math.unsorted_segment_sum(tf.ones_like(index), index, self.n * width)
        else:
            # On CPU, several times faster than a segment sum of ones;
            # tf.math.bincount would add a pass for the max of its input.
            no_weights = tf.zeros([0], tf.int32)
            counts = tf.raw_ops.DenseBincount(input=index, size=self.n * width, weights=no_weights)
        return tf.reshape(counts, [self.n, width])


class _Ranges:
    """The [min, max] of each of n tensors and the bucket geometry derived from it."""

    def __init__(self, seg_min, seg_max, sizes: tf.Tensor, implicit_zeros: Optional[tf.Tensor], bins: int):
        self.bins = bins
        # An empty tensor has no min and no max, whatever the reduction gave.
        stored = sizes > 0
        seg_min = tf.where(stored, seg_min, float("inf"))
        seg_max = tf.where(stored, seg_max, float("-inf"))
        if implicit_zeros is not None:
            has_zeros = implicit_zeros > 0
            seg_min = tf.where(has_zeros, tf.minimum(seg_min, 0.0), seg_min)
            seg_max = tf.where(has_zeros, tf.maximum(seg_max, 0.0), seg_max)
        # A tensor with no finite value keeps the identities of min and max
        # (+/-inf), so min > max.
        self.has_values = seg_min <= seg_max
        nan = tf.fill(tf.shape(seg_min), float("nan"))
        self.extremes = tf.stack(
            [tf.where(self.has_values, seg_min, nan), tf.where(self.has_values, seg_max, nan)], axis=1
        )
        lo = tf.where(self.has_values, seg_min, 0.0)
        hi = tf.where(self.has_values, seg_max, 0.0)
        # max - min overflows when the values span more than the float32 range
        # (exploding weights, exactly when the histogram matters), and so may
        # span * bins in the edges. Scaling such a tensor by a power of two is
        # exact and keeps every intermediate finite: the span is below twice the
        # float32 max, and dividing it by 4 * 2**ceil(log2(bins)) >= 4 * bins keeps
        # span * (b + 1) <= span * bins under half the max, rounding included.
        shrink = 2.0 ** -(math.ceil(math.log2(bins)) + 2)
        self.scale = tf.where(tf.math.is_finite((hi - lo) * bins), 1.0, shrink)
        self.lo = lo * self.scale
        span = hi * self.scale - self.lo
        self.has_span = span > 0
        # A constant tensor's buckets are rewritten in table(); 1 only keeps
        # its arithmetic finite and in range.
        self.safe_span = tf.where(self.has_span, span, 1.0)
        # Grappler (in a tf.function) and XLA rewrite x / bins into
        # x * (1 / bins), which is not exact unless bins is a power of two:
        # values on the edges of an integer grid landed in the next bucket.
        # max(bins, -|lo|) is bins (lo is finite where it matters) but no
        # compiler can fold it, so the edges are divided for real.
        self.divisor = tf.maximum(float(bins), -tf.reduce_max(tf.abs(self.lo)))

    def table(self, counts: tf.Tensor, implicit_zeros: Optional[tf.Tensor]) -> tf.Tensor:
        """The [n, bins + 5] float32 table from the [n, bins + 4] int32 counts."""
        bins = self.bins
        last = counts[:, bins - 1 : bins] + counts[:, bins : bins + 1]
        buckets = tf.concat([counts[:, : bins - 1], last], axis=1)
        # All the finite values of a constant tensor go to the middle bucket.
        middle = tf.one_hot(bins // 2, bins, dtype=tf.int32) * tf.reduce_sum(buckets, axis=1, keepdims=True)
        counts = tf.concat([tf.where(self.has_span[:, None], buckets, middle), counts[:, bins + 1 :]], axis=1)
        if implicit_zeros is not None:
            zero = _bucket(tf.zeros_like(self.lo), self.lo, self.safe_span, bins, self.divisor)
            zero_bucket = tf.where(self.has_span, tf.cast(tf.minimum(zero, bins - 1.0), tf.int32), bins // 2)
            counts = tf.cast(counts, tf.int64) + tf.one_hot(
                zero_bucket, bins + 3, dtype=tf.int64
            ) * implicit_zeros[:, None]
        return tf.concat([self.extremes, tf.cast(counts, tf.float32)], axis=1)


def _bucket(x: tf.Tensor, lo: tf.Tensor, span: tf.Tensor, bins: int, divisor: tf.Tensor) -> tf.Tensor:
    """The bucket of each x in [lo, lo + span] (broadcast, span > 0), as a
    float32 holding an integer in [0, bins], where bins stands for bins - 1
    (see _width). `divisor` is `bins` as _Ranges.divisor makes it.

    The same op sequence buckets stored values and the implicit zero of an
    IndexedSlices, so both land where the dense tensor's values would.
    """
    # Divide before multiplying, in numpy's order: (x - lo) / span is at most 1,
    # so nothing overflows even for a span close to the float32 max. As x >= lo
    # the guess is in [0, bins]: only its top needs clipping.
    guess = tf.minimum(tf.floor((x - lo) / span * bins), bins - 1.0)
    # The guess can be one bucket off for a value within a rounding of an edge
    # (1 / 41 * 41 < 1 in float32). Checking it against the edges themselves
    # makes membership exactly edge(b) <= x < edge(b + 1), as in np.histogram.
    # span * k is computed before the division so edges on integer and dyadic
    # grids are exact.
    above = guess + 1.0
    lower = lo + span * guess / divisor
    upper = lo + span * above / divisor
    return tf.where(x < lower, guess - 1.0, tf.where(x >= upper, above, guess))
