"""In-graph statistics of weights, gradients and updates.

Pure TensorFlow functions: no I/O, no summaries, no Python state, so they run
eagerly, inside `tf.function` and inside XLA-compiled train steps alike. Values
are reduced where the tensors live; only the small tables leave the device.

Variables of one shape are stacked and reduced together, row by row (models
repeat a few shapes many times: a 200-layer MLP has 4), and the other small
ones are concatenated and reduced with segment ops: a few large ops instead
of a dozen small ones per variable, which matters for models with hundreds of
layers, whose logged step is mostly per-op cost. Sums are taken in float64
(see `_sums`), which needs no rescaling pass and no conditional for huge or
tiny values: each op left out is one less to trace and to run. A variable larger than
`_CHUNK_ELEMENTS` is reduced alone so nothing is ever concatenated into a
second copy of a huge tensor, and piece by
piece (`piece_elements()` values at a time, in a loop), so the temporaries of
its reductions stay the size of a piece: reducing a 100-million-value
embedding at once would hold several more tensors of its size, on a device
it may fill.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import tf_state
from tb_weightnorm.schema import TENSOR_STATS

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
    sorted and contiguous (as `segmented_chunks` makes them); with ids None,
    over the whole tensor as one segment.

    On CPU the sorted segment kernels are 3 to 4 times faster than the
    unsorted ones, but they have no XLA version and drop trailing empty
    segments; under XLA the unsorted ones are used. A whole tensor takes the
    plain reductions, which run on several threads. The sum of an empty
    segment is 0; its max and min mean nothing (callers look at the count).
    """

    def __init__(self, ids: Optional[tf.Tensor], n: int):
        self.ids, self.n = ids, n
        self.xla = tf_state.compiling_with_xla()

    def _reduce(self, sorted_op, unsorted_op, whole_op, x: tf.Tensor) -> tf.Tensor:
        if self.ids is None:
            return whole_op(x)[None]
        if self.xla:
            return unsorted_op(x, self.ids, self.n)
        out = sorted_op(x, self.ids)
        return tf.reshape(tf.pad(out, [[0, self.n - tf.shape(out)[0]]]), [self.n])

    def sum(self, x):
        return self._reduce(tf.math.segment_sum, tf.math.unsorted_segment_sum, tf.reduce_sum, x)

    def max(self, x):
        return self._reduce(tf.math.segment_max, tf.math.unsorted_segment_max, tf.reduce_max, x)

    def min(self, x):
        return self._reduce(tf.math.segment_min, tf.math.unsorted_segment_min, tf.reduce_min, x)


class _Rows:
    """Reductions over each row of a [n, size] tensor: tensors of one shape
    stacked. The same interface as `_Segments`, at the cost of plain
    reductions (several threads, no segment ids)."""

    def __init__(self, n: int):
        self.n = n

    def sum(self, x):
        return tf.reduce_sum(x, axis=1)

    def max(self, x):
        return tf.reduce_max(x, axis=1)

    def min(self, x):
        return tf.reduce_min(x, axis=1)


def _batch_key(tensor) -> Optional[tuple]:
    """What tensors must share to be stacked: static shape and dtype; None
    for one that is never stacked (sparse, of unknown shape, or large)."""
    if isinstance(tensor, tf.IndexedSlices) or not hasattr(tensor, "shape") or is_large(tensor):
        return None
    shape = tf.TensorShape(tensor.shape)
    if not shape.is_fully_defined():
        return None
    return tuple(shape.as_list()), tf.as_dtype(tensor.dtype)


def _pair_key(now, before) -> Optional[tuple]:
    """The `_batch_key` of a (now, before) pair: both sides must stack."""
    key = _batch_key(now)
    return None if key is None else (*key, before.dtype)


def _same_shape_batches(keys: Sequence[Optional[tuple]]) -> Tuple[List[List[int]], List[int]]:
    """(batches, rest): the indices of two or more tensors of one `_batch_key`
    (the key's first item is the shape), at most `_CHUNK_ELEMENTS` values per
    batch; and the indices of every other tensor, in order."""
    by_key: Dict[tuple, List[int]] = {}
    rest: List[int] = []
    for i, key in enumerate(keys):
        (rest if key is None else by_key.setdefault(key, [])).append(i)
    batches: List[List[int]] = []
    for key, members in by_key.items():
        if len(members) < 2:
            rest.extend(members)
            continue
        size = int(np.prod(key[0]))
        for chunk in _chunks([size] * len(members)):
            batches.append([members[j] for j in chunk])
    return batches, sorted(rest)


def _members(batches: Sequence[Sequence[int]]) -> List[int]:
    """The indices of `batches`, batch after batch: the order of their rows."""
    return [i for batch in batches for i in batch]


def _stacked(tensors: Sequence) -> tf.Tensor:
    """Tensors of one shape and dtype as a float32 [n, size] tensor: one
    stack, one cast, one reshape for the lot."""
    size = tf.TensorShape(tensors[0].shape).num_elements()
    return tf.reshape(_as_float32(tf.stack([tf.convert_to_tensor(t) for t in tensors])), [len(tensors), size])


def _sums(x: tf.Tensor, segments) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(sum, sum of squares, sum of magnitudes) of each segment of float32
    `x`, in float64.

    In float64 the square of any finite float32 is finite and not
    subnormal, and millions of them add up to within ~1e-10: no norm of
    exploding or vanishing values overflows or underflows, no sum of a
    large segment drifts, and a spread comes from E[x^2] - E[x]^2 without
    the cancellation float32 would suffer. A few more bytes per pass, and no
    second pass, rescaling or conditional: fewer ops in every logged step's
    graph, which is what its trace and its run time mostly pay for.
    """
    x64 = tf.cast(x, tf.float64)
    return segments.sum(x64), segments.sum(x64 * x64), segments.sum(tf.abs(x64))


def _segment_stats(flat: tf.Tensor, segments, sizes: tf.Tensor) -> tf.Tensor:
    """The TENSOR_STATS of the n segments of `flat` (`_Segments` of a flat
    tensor, or `_Rows` of a stacked one; segment i holds sizes[i] values), as
    a [n, 9] float32 tensor.

    Every stat but the counts is over the finite values only, so one NaN does
    not hide the scale of the rest; a segment with no finite value gets NaN.
    Most steps have no NaN or Inf at all: the plain sums show it (a sum of
    squares is finite exactly when every value is), and only otherwise are
    the values masked and summed again.
    """
    sums = _sums(flat, segments)
    clean = tf.reduce_all(tf.math.is_finite(sums[1]))

    def all_finite():
        zeros = tf.zeros_like(sizes)
        return (*sums, segments.min(flat), segments.max(flat), zeros, zeros)

    def some_not_finite():
        finite = tf.math.is_finite(flat)
        big = tf.constant(float("inf"))
        return (
            *_sums(tf.where(finite, flat, 0.0), segments),
            segments.min(tf.where(finite, flat, big)),
            segments.max(tf.where(finite, flat, -big)),
            segments.sum(tf.cast(tf.math.is_nan(flat), tf.float32)),
            segments.sum(tf.cast(tf.math.is_inf(flat), tf.float32)),
        )

    total, squares, magnitudes, lo, hi, nan_count, inf_count = tf.cond(clean, all_finite, some_not_finite)
    count = sizes - nan_count - inf_count
    defined = count > 0
    safe_count = tf.cast(tf.maximum(count, 1.0), tf.float64)
    mean = total / safe_count
    variance = tf.maximum(squares / safe_count - mean * mean, 0.0)
    # max |x| is the larger magnitude of the min and the max.
    linf = tf.where(defined, tf.maximum(tf.abs(lo), tf.abs(hi)), 0.0)
    f32 = lambda t: tf.cast(t, tf.float32)  # noqa: E731
    return _stat_columns(
        f32(magnitudes), f32(tf.sqrt(squares)), linf, f32(mean), f32(tf.sqrt(variance)),
        lo, hi, nan_count, inf_count, defined, axis=1,
    )


def _stat_columns(l1, l2, linf, mean, std, lo, hi, nan_count, inf_count, defined, axis):
    """Stacks TENSOR_STATS in order; the moments are NaN where no finite value was."""
    nan = tf.fill(tf.shape(l1), float("nan"))
    moments = [tf.where(defined, m, nan) for m in (mean, std, lo, hi)]
    return tf.stack([l1, l2, linf, *moments, nan_count, inf_count], axis=axis)


def tensor_stats(tensors: Sequence) -> tf.Tensor:
    """Statistics of each tensor, as a [len(tensors), 9] float32 tensor.

    Columns, in the order of `schema.TENSOR_STATS`: l1, l2, linf, mean, std,
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
    large = [i for i, t in enumerate(tensors) if i not in sparse and is_large(t)]
    dense = [i for i in range(len(tensors)) if i not in sparse and i not in large]
    parts = [_dense_stats([tensors[i] for i in dense])] if dense else []
    parts += [_indexed_slices_stats(tensors[i]) for i in sparse]
    parts += [_large_stats(tensors[i]) for i in large]
    return _in_order(parts, dense + sparse + large)


def _in_order(parts: Sequence[tf.Tensor], order: Sequence[int]) -> tf.Tensor:
    """The rows of `parts`, concatenated, put back in the callers' order
    (row k of the concatenation belongs to tensor order[k])."""
    table = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
    if list(order) == list(range(len(order))):
        return table
    return tf.gather(table, [list(order).index(i) for i in range(len(order))])


def is_large(tensor) -> bool:
    """Whether a dense tensor (or a variable) is reduced piece by piece: more
    values than a chunk holds, known when tracing (a size known only when
    running cannot decide how to loop)."""
    if isinstance(tensor, tf.IndexedSlices) or not hasattr(tensor, "shape"):
        return False
    size = tf.TensorShape(tensor.shape).num_elements()
    return size is not None and size > _CHUNK_ELEMENTS


def piece_elements() -> int:
    """About how many values a piece of a large tensor holds: an op on a
    piece makes a temporary of 1 MB (float32), and a piece takes a few dozen
    of them (pieces of this size were also the fastest, as they stay in the
    CPU's caches)."""
    return max(1, _CHUNK_ELEMENTS // 16)


def tf_variable(value) -> Optional[tf.Variable]:
    """The tf.Variable `value` is or wraps (a Keras variable holds one), else None."""
    if isinstance(value, tf.Variable):
        return value
    inner = getattr(value, "value", None)
    return inner if isinstance(inner, tf.Variable) else None


def value_of(variable):
    """What to take a variable's statistics of: its value, or for a large
    variable the variable itself, which the statistics read a piece at a
    time (see `in_pieces`)."""
    return variable if is_large(variable) else tf.convert_to_tensor(variable)


def in_pieces(sources: Sequence, compute, shape: Sequence[int], dtype=tf.float32) -> tf.Tensor:
    """compute(*pieces) of consecutive pieces of `sources`, stacked as a
    [pieces, *shape] tensor.

    A piece is the same whole rows (first axis) of every source, about
    `piece_elements()` values; a source whose rows are longer than that is
    cut as 1-D. The pieces run one at a time in a while loop, so reducing a
    huge tensor holds the temporaries of one piece, not tensors of its full
    size. A variable is read a piece at a time and never whole: a variable
    updated sparsely (an embedding table, by its optimizer) copies itself
    whole on every full read.

    Args:
        sources: tensors or variables of one static shape, of rank >= 1.
        compute: maps the pieces (one per source, each [rows, ...]) to a
            tensor of `shape`.
        shape: the static shape of what `compute` returns.
        dtype: its dtype.
    """
    full_shape = tf.TensorShape(sources[0].shape).as_list()
    inner = 1
    for size in full_shape[1:]:
        inner *= size
    if inner > piece_elements():
        sources = [tf.reshape(tf.convert_to_tensor(s), [-1]) for s in sources]
        full_shape, inner = [full_shape[0] * inner], 1
    rest = full_shape[1:]
    rows = max(1, piece_elements() // inner)
    full, tail = divmod(full_shape[0], rows)

    def piece(source, start, count: int):
        variable = tf_variable(source)
        if variable is not None:
            return variable.sparse_read(tf.range(count) + start)
        return tf.slice(source, [start] + [0] * len(rest), [count] + rest)

    parts = []
    if full:

        def body(i, results):
            return i + 1, results.write(i, compute(*[piece(s, i * rows, rows) for s in sources]))

        results = tf.TensorArray(dtype, size=full, element_shape=list(shape))
        # One piece at a time: parallel iterations would hold several pieces'
        # temporaries at once.
        _, results = tf.while_loop(
            lambda i, _: i < full, body, (tf.constant(0), results), parallel_iterations=1
        )
        parts.append(results.stack())
    if tail:
        parts.append(compute(*[piece(s, full * rows, tail) for s in sources])[None])
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


def _flat_float32(piece) -> tf.Tensor:
    return tf.reshape(_as_float32(piece), [-1])


def _large_stats(tensor) -> tf.Tensor:
    """The [1, 9] TENSOR_STATS of a large dense tensor or variable, from those
    of its pieces."""

    def piece_stats(piece):
        flat = _flat_float32(piece)
        size = float(flat.shape[0])
        return tf.concat([_segment_stats(flat, _Segments(None, 1), tf.constant([size]))[0], [size]], axis=0)

    per_piece = in_pieces([tensor], piece_stats, [len(TENSOR_STATS) + 1])
    return _combined_stats(per_piece[:, :-1], per_piece[:, -1])[None]


def _combined_stats(per_piece: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
    """The [9] TENSOR_STATS of a tensor from the [pieces, 9] ones of its pieces
    (piece p holds sizes[p] values). Means and spreads are combined as weighted
    averages and scaled sums, which neither overflow nor lose a tiny spread."""
    l1, l2, linf, mean, std, lo, hi, nan_count, inf_count = tf.unstack(per_piece, axis=1)
    count = sizes - nan_count - inf_count
    total = tf.reduce_sum(count)
    has = count > 0
    weight = count / tf.maximum(total, 1.0)
    # Averaged as offsets from one piece's mean: exact for pieces of equal
    # means (a constant tensor keeps a spread of 0). Offsets beyond the
    # float32 range fall back to a plain weighted average.
    reference = tf.gather(mean, tf.argmax(tf.cast(has, tf.int32)))
    from_reference = tf.where(has, mean - reference, 0.0)
    mean_all = tf.where(
        tf.reduce_all(tf.math.is_finite(from_reference)),
        reference + tf.reduce_sum(weight * from_reference),
        tf.reduce_sum(tf.where(has, weight * mean, 0.0)),
    )
    # The variance of the whole: the pieces' variances and the spread of their
    # means around the whole's, averaged with the pieces' weights.
    from_mean = tf.where(has, mean - mean_all, 0.0)
    spread = tf.where(has, std, 0.0)
    scale = tf.maximum(tf.reduce_max(tf.abs(from_mean)), tf.reduce_max(spread))
    safe_scale = tf.where(scale > 0, scale, 1.0)
    std_all = scale * tf.sqrt(
        tf.reduce_sum(weight * (tf.square(spread / safe_scale) + tf.square(from_mean / safe_scale)))
    )
    return _stat_columns(
        tf.reduce_sum(l1),
        combined_l2(l2),
        tf.reduce_max(linf),
        mean_all,
        std_all,
        tf.reduce_min(tf.where(has, lo, float("inf"))),
        tf.reduce_max(tf.where(has, hi, float("-inf"))),
        tf.reduce_sum(nan_count),
        tf.reduce_sum(inf_count),
        total > 0,
        axis=0,
    )


def combined_l2(norms: tf.Tensor) -> tf.Tensor:
    """The l2 norm of tensors together from their l2 norms ([n]), scaled by the
    largest so squares of huge or tiny norms neither overflow nor vanish."""
    largest = tf.reduce_max(norms)
    scale = tf.where(largest > 0, largest, 1.0)
    return largest * tf.sqrt(tf.reduce_sum(tf.square(norms / scale)))


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
    batches, rest = _same_shape_batches([_batch_key(t) for t in tensors])
    large = [i for i in rest if is_large(tensors[i])]
    dense = [i for i in rest if i not in large]
    parts = [_finite_l2(_stacked([tensors[i] for i in batch]), _Rows(len(batch))) for batch in batches]
    if dense:
        flats = [tf.reshape(_as_float32(tensors[i]), [-1]) for i in dense]
        for _, flat, segments in segmented_chunks(flats):
            parts.append(_finite_l2(flat, segments))
    parts += [_l2_in_pieces([tensors[i]], _flat_float32) for i in large]
    return _in_order(parts, _members(batches) + dense + large)


def _l2_in_pieces(sources: Sequence, flat_of) -> tf.Tensor:
    """The [1] l2 norm over the finite values of `flat_of(*pieces)` (1-D
    float32), piece by piece of `sources` (see in_pieces)."""
    per_piece = in_pieces(sources, lambda *pieces: _finite_l2(flat_of(*pieces), _Segments(None, 1))[0], [])
    return combined_l2(per_piece)[None]


def _finite_l2(flat: tf.Tensor, segments: _Segments) -> tf.Tensor:
    """The l2 norm of each segment of float32 `flat` over its finite values."""
    squares = _sums(flat, segments)[1]
    squares = tf.cond(
        tf.reduce_all(tf.math.is_finite(squares)),
        lambda: squares,
        lambda: _sums(tf.where(tf.math.is_finite(flat), flat, 0.0), segments)[1],
    )
    return tf.cast(tf.sqrt(squares), tf.float32)


def _difference(now, before) -> tf.Tensor:
    """now - before, in float32 unless both are float64: a boolean has no
    minus, an unsigned integer wraps around below 0, and float16 rounds the
    small differences an update makes."""
    if now.dtype == tf.float64 and before.dtype == tf.float64:
        return now - before
    return tf.cast(now, tf.float32) - tf.cast(before, tf.float32)


def difference_l2_norms(pairs: Sequence) -> tf.Tensor:
    """The l2 norm of `now - before` over its finite values for each (now,
    before) pair of tensors of one shape, as a [len(pairs)] float32 tensor:
    the update a step made, or the distance from the initial weights.

    A large pair is taken piece by piece: no difference of its full size is
    ever held.

    Example:

    >>> float(difference_l2_norms([(tf.constant([4.0, 6.0]), tf.constant([1.0, 2.0]))])[0])
    5.0
    """
    if not pairs:
        return tf.zeros([0], tf.float32)
    # Batched by the shape and dtypes of both sides: one subtraction per batch.
    batches, rest = _same_shape_batches([_pair_key(now, before) for now, before in pairs])
    large = [i for i in rest if is_large(pairs[i][0])]
    dense = [i for i in rest if i not in large]
    parts = []
    for batch in batches:
        now, before = (tf.stack([tf.convert_to_tensor(pairs[i][side]) for i in batch]) for side in (0, 1))
        difference = tf.reshape(_difference(now, before), [len(batch), now.shape[1:].num_elements()])
        parts.append(_finite_l2(difference, _Rows(len(batch))))
    if dense:
        parts.append(l2_norms([_difference(*pairs[i]) for i in dense]))
    parts += [_l2_in_pieces(list(pairs[i]), lambda a, b: tf.reshape(_difference(a, b), [-1])) for i in large]
    return _in_order(parts, _members(batches) + dense + large)


def segmented_chunks(flats: Sequence[tf.Tensor]):
    """Yields (indices, flat, `_Segments`) for chunks of 1-D tensors: small
    ones concatenated so a few large ops serve them all, a large one alone."""
    for group in _chunks([_static_size(f) for f in flats]):
        members = [flats[i] for i in group]
        if len(members) == 1:
            yield group, members[0], _Segments(None, 1)
            continue
        flat = tf.concat(members, axis=0)
        total = tf.size(flat, out_type=tf.int32)
        static = [m.shape[0] for m in members]
        if all(size is not None for size in static):
            yield group, flat, _Segments(_segment_ids(tf.constant([int(n) for n in static], tf.int32), total), len(group))
        else:
            lengths = tf.stack([tf.size(m, out_type=tf.int32) for m in members])
            yield group, flat, _Segments(_segment_ids(lengths, total), len(group))


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
    batches, rest = _same_shape_batches([_batch_key(t) for t in tensors])
    parts = []
    for batch in batches:
        stacked = _stacked([tensors[i] for i in batch])
        sizes = tf.fill([len(batch)], float(stacked.shape[1]))
        parts.append(_segment_stats(stacked, _Rows(len(batch)), sizes))
    flats = [tf.reshape(_as_float32(tensors[i]), [-1]) for i in rest]
    for group, flat, segments in segmented_chunks(flats):
        sizes = _sizes([flats[i] for i in group])
        parts.append(_segment_stats(flat, segments, sizes))
    return _in_order(parts, _members(batches) + rest)


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
    static_units = g.shape[-1]
    if is_large(g) and static_units and static_units <= piece_elements():
        # Row blocks of about a piece each: no [rows, units] mask of its full size.
        live = in_pieces(
            [tf.reshape(g, [-1, static_units])],
            lambda block: tf.reduce_any(tf.not_equal(block, tf.zeros([], g.dtype)), axis=0),
            [static_units],
            tf.bool,
        )
        dead = tf.logical_not(tf.reduce_any(live, axis=0))
    else:
        dead = tf.reduce_all(tf.equal(columns, tf.zeros([], g.dtype)), axis=0)
    return tf.cast(tf.math.count_nonzero(dead), tf.float32) / tf.cast(tf.maximum(units, 1), tf.float32)


def dead_unit_fractions(gradients: Sequence) -> tf.Tensor:
    """`dead_unit_fraction` of each gradient (NaN for None), as a
    [len(gradients)] float32 tensor; gradients of one shape are taken
    together, with one op per shape rather than several per gradient.

    Example:

    >>> g = tf.constant([[0.0, 1.0], [0.0, 2.0]])
    >>> dead_unit_fractions([g, None, g]).numpy().tolist()[::2]
    [0.5, 0.5]
    """
    if not gradients:
        return tf.zeros([0], tf.float32)
    keys = [
        _batch_key(g) if g is not None and len(g.shape) >= 2 and g.shape[-1] else None for g in gradients
    ]
    batches, rest = _same_shape_batches(keys)
    parts = []
    for batch in batches:
        stacked = tf.stack([tf.convert_to_tensor(gradients[i]) for i in batch])
        units = stacked.shape[-1]
        columns = tf.reshape(stacked, [len(batch), stacked.shape[1:].num_elements() // units, units])
        dead = tf.reduce_all(tf.equal(columns, tf.zeros([], stacked.dtype)), axis=1)
        parts.append(tf.cast(tf.math.count_nonzero(dead, axis=1), tf.float32) / float(units))
    parts += [
        (tf.constant(float("nan")) if gradients[i] is None else dead_unit_fraction(gradients[i]))[None]
        for i in rest
    ]
    return _in_order(parts, _members(batches) + rest)


def global_norm(tensors: Sequence) -> tf.Tensor:
    """The l2 norm of all tensors together over their finite values, as
    gradient clipping computes it when every value is finite
    (`tf.clip_by_global_norm`: an IndexedSlices counts its listed values).

    Clipping's own norm turns NaN at the first NaN anywhere, and a NaN in a
    table means "not measured"; like every other norm here, this one keeps
    the scale of the finite values (the NaN and Inf are counted per variable).

    Example:

    >>> float(global_norm([tf.constant([3.0, float("nan")]), tf.constant([4.0])]))
    5.0
    """
    present = [t for t in tensors if t is not None]
    if not present:
        return tf.constant(float("nan"))
    values = [t.values if isinstance(t, tf.IndexedSlices) else t for t in present]
    # A large variable is read a piece at a time (see in_pieces).
    pieces = [v for v in values if is_large(v) and tf_variable(v) is not None]
    whole = [v for v in values if not any(v is p for p in pieces)]
    norms = []
    if whole:
        plain = tf.linalg.global_norm([tf.cast(v, tf.float32) for v in whole])
        # Each tensor's norm over its finite values, safe from overflow.
        norm = tf.cond(tf.math.is_finite(plain), lambda: plain, lambda: combined_l2(l2_norms(whole)))
        if not pieces:
            return norm
        norms.append(norm[None])
    norms.append(l2_norms(pieces))
    return combined_l2(tf.concat(norms, axis=0))


def _static_size(flat: tf.Tensor) -> int:
    size = flat.shape[0]
    return int(size) if size is not None else _CHUNK_ELEMENTS


def update_stats(update_l2: tf.Tensor, weight_l2: tf.Tensor) -> tf.Tensor:
    """Statistics of the updates W_after - W_before from their l2 norms
    (`difference_l2_norms`), as a [n, 2] tensor.

    Columns, in the order of `schema.UPDATE_STATS`: l2 of the update, and its
    ratio to the weight's l2 (`weight_l2`, a [n] tensor; around 1e-3 is healthy).
    """
    l2 = update_l2
    ratio = tf.math.divide_no_nan(l2, weight_l2)
    ratio = tf.where(tf.math.is_finite(l2), ratio, l2)
    return tf.stack([l2, ratio], axis=1)

