"""Statistics of weights, gradients and updates: norms, moments, non-finite
counts, dead units.

In the training step (TensorFlow): pure functions of tensors, no I/O, no
summaries, no Python state, so they run eagerly, inside `tf.function` and
inside XLA-compiled train steps alike. Values are reduced where the tensors
live; only the small tables leave the device.

The tensors are reduced in groups (`tensor_groups`: same-shape batches,
chunks of small tensors, large tensors piece by piece): a few large ops
instead of a dozen small ones per variable, which matters for models with
hundreds of layers, whose logged step is mostly per-op cost. Sums are taken
in float64 (see `_sums`), which needs no rescaling pass and no conditional
for huge or tiny values: each op left out is one less to trace and to run.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from tb_weightnorm.graph.tensor_groups import (
    Rows,
    Segments,
    as_float32,
    batch_key,
    batch_members,
    flat_float32,
    in_order,
    in_pieces,
    is_large,
    pair_key,
    piece_elements,
    same_shape_batches,
    segmented_chunks,
    stacked,
    tf_variable,
)
from tb_weightnorm.schema import TENSOR_STATS


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
    """The TENSOR_STATS of the n segments of `flat` (`Segments` of a flat
    tensor, or `Rows` of a stacked one; segment i holds sizes[i] values), as
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
    return in_order(parts, dense + sparse + large)


def value_of(variable):
    """What to take a variable's statistics of: its value, or for a large
    variable the variable itself, which the statistics read a piece at a
    time (see `in_pieces`)."""
    return variable if is_large(variable) else tf.convert_to_tensor(variable)


def _large_stats(tensor) -> tf.Tensor:
    """The [1, 9] TENSOR_STATS of a large dense tensor or variable, from those
    of its pieces."""

    def piece_stats(piece):
        flat = flat_float32(piece)
        size = float(flat.shape[0])
        return tf.concat([_segment_stats(flat, Segments(None, 1), tf.constant([size]))[0], [size]], axis=0)

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
    batches, rest = same_shape_batches([batch_key(t) for t in tensors])
    large = [i for i in rest if is_large(tensors[i])]
    dense = [i for i in rest if i not in large]
    parts = [_finite_l2(stacked([tensors[i] for i in batch]), Rows(len(batch))) for batch in batches]
    if dense:
        flats = [tf.reshape(as_float32(tensors[i]), [-1]) for i in dense]
        for _, flat, segments in segmented_chunks(flats):
            parts.append(_finite_l2(flat, segments))
    parts += [_l2_in_pieces([tensors[i]], flat_float32) for i in large]
    return in_order(parts, batch_members(batches) + dense + large)


def _l2_in_pieces(sources: Sequence, flat_of) -> tf.Tensor:
    """The [1] l2 norm over the finite values of `flat_of(*pieces)` (1-D
    float32), piece by piece of `sources` (see in_pieces)."""
    per_piece = in_pieces(sources, lambda *pieces: _finite_l2(flat_of(*pieces), Segments(None, 1))[0], [])
    return combined_l2(per_piece)[None]


def _finite_l2(flat: tf.Tensor, segments: Segments) -> tf.Tensor:
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
    batches, rest = same_shape_batches([pair_key(now, before) for now, before in pairs])
    large = [i for i in rest if is_large(pairs[i][0])]
    dense = [i for i in rest if i not in large]
    parts = []
    for batch in batches:
        now, before = (tf.stack([tf.convert_to_tensor(pairs[i][side]) for i in batch]) for side in (0, 1))
        difference = tf.reshape(_difference(now, before), [len(batch), now.shape[1:].num_elements()])
        parts.append(_finite_l2(difference, Rows(len(batch))))
    if dense:
        parts.append(l2_norms([_difference(*pairs[i]) for i in dense]))
    parts += [_l2_in_pieces(list(pairs[i]), lambda a, b: tf.reshape(_difference(a, b), [-1])) for i in large]
    return in_order(parts, batch_members(batches) + dense + large)


def _dense_stats(tensors: Sequence) -> tf.Tensor:
    batches, rest = same_shape_batches([batch_key(t) for t in tensors])
    parts = []
    for batch in batches:
        batch_values = stacked([tensors[i] for i in batch])
        sizes = tf.fill([len(batch)], float(batch_values.shape[1]))
        parts.append(_segment_stats(batch_values, Rows(len(batch)), sizes))
    flats = [tf.reshape(as_float32(tensors[i]), [-1]) for i in rest]
    for group, flat, segments in segmented_chunks(flats):
        sizes = _sizes([flats[i] for i in group])
        parts.append(_segment_stats(flat, segments, sizes))
    return in_order(parts, batch_members(batches) + rest)


def _sizes(flats: Sequence[tf.Tensor]) -> tf.Tensor:
    static = [f.shape[0] for f in flats]
    if all(s is not None for s in static):
        return tf.constant(static, tf.float32)
    return tf.cast(tf.stack([tf.size(f) for f in flats]), tf.float32)


def _indexed_slices_stats(slices: tf.IndexedSlices) -> tf.Tensor:
    """Stats of the dense tensor an IndexedSlices stands for: its listed rows
    (duplicates summed, as densifying would) plus the implicit zeros."""
    unique, position = tf.unique(tf.reshape(slices.indices, [-1]))
    values = as_float32(slices.values)
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
        batch_key(g) if g is not None and len(g.shape) >= 2 and g.shape[-1] else None for g in gradients
    ]
    batches, rest = same_shape_batches(keys)
    parts = []
    for batch in batches:
        batch_gradients = tf.stack([tf.convert_to_tensor(gradients[i]) for i in batch])
        units = batch_gradients.shape[-1]
        columns = tf.reshape(batch_gradients, [len(batch), batch_gradients.shape[1:].num_elements() // units, units])
        dead = tf.reduce_all(tf.equal(columns, tf.zeros([], batch_gradients.dtype)), axis=1)
        parts.append(tf.cast(tf.math.count_nonzero(dead, axis=1), tf.float32) / float(units))
    parts += [
        (tf.constant(float("nan")) if gradients[i] is None else dead_unit_fraction(gradients[i]))[None]
        for i in rest
    ]
    return in_order(parts, batch_members(batches) + rest)


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
