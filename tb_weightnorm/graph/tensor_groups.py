"""How many tensors are reduced together in the training step: the grouping
that `stats` and `histograms` share.

In the training step (TensorFlow). A logged step of a model with hundreds of
variables costs mostly per op, so its statistics are taken over groups of
tensors, a few large ops for all of them:

* same-shape batches (`same_shape_batches`, `stacked`): models repeat a few
  shapes many times (a 200-layer MLP has 4), and tensors of one shape are
  stacked and reduced row by row (`Rows`);
* chunks (`chunks`, `segmented_chunks`): the other small tensors are
  concatenated, at most `CHUNK_ELEMENTS` values at a time, and reduced with
  segment ops (`Segments`);
* large tensors (`is_large`, `in_pieces`): a tensor of more than
  `CHUNK_ELEMENTS` values is reduced alone, so nothing is ever concatenated
  into a second copy of a huge tensor, and piece by piece
  (`piece_elements()` values at a time, in a loop), so the temporaries of
  its reductions stay the size of a piece: reducing a 100-million-value
  embedding at once would hold several more tensors of its size, on a
  device it may fill.

Every function reads `CHUNK_ELEMENTS` when it is called (tests make it small
to reach the large-tensor paths with small tensors): import the module, not
the number.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tb_weightnorm.graph import tf_state

# Values per chunk: tensors up to this size are grouped, larger ones are large.
CHUNK_ELEMENTS = 1 << 22


# -- dtypes ---------------------------------------------------------------


def as_float32(x) -> tf.Tensor:
    """`x` as a dense float32 tensor (any real dtype, a variable, or an
    `tf.IndexedSlices`, which this densifies: callers that must not densify
    read its values instead).

    Args:
        x: a tensor, variable or IndexedSlices.

    Example:

    >>> as_float32(tf.constant([1, 2])).dtype == tf.float32
    True
    """
    if isinstance(x, tf.IndexedSlices):
        x = tf.convert_to_tensor(x)
    x = tf.convert_to_tensor(x)
    if x.dtype != tf.float32:
        x = tf.cast(x, tf.float32)
    return x


def flat_float32(piece) -> tf.Tensor:
    """`as_float32(piece)` as a 1-D tensor.

    Args:
        piece: a tensor or variable of any shape.
    """
    return tf.reshape(as_float32(piece), [-1])


# -- chunks of small tensors ----------------------------------------------


def chunks(sizes: Sequence[int]) -> List[List[int]]:
    """Groups tensor indices so each group holds at most CHUNK_ELEMENTS values
    (a larger tensor is a group of its own).

    Args:
        sizes: the number of values of each tensor, in order.

    Example:

    >>> chunks([3, CHUNK_ELEMENTS, 2, 2])
    [[0], [1], [2, 3]]
    """
    groups: List[List[int]] = []
    current: List[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > CHUNK_ELEMENTS:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups


def static_size(flat: tf.Tensor) -> int:
    """The number of values of a 1-D tensor as `chunks` counts it: a size
    known only when running counts as a whole chunk, so it is grouped alone.

    Args:
        flat: a 1-D tensor.
    """
    size = flat.shape[0]
    return int(size) if size is not None else CHUNK_ELEMENTS


def segmented_chunks(flats: Sequence[tf.Tensor]) -> Iterator[Tuple[List[int], tf.Tensor, "Segments"]]:
    """Yields (indices, flat, `Segments`) for chunks of 1-D tensors: small
    ones concatenated so a few large ops serve them all, a large one alone.

    Args:
        flats: 1-D tensors (float32 for the statistics).
    """
    for group in chunks([static_size(f) for f in flats]):
        members = [flats[i] for i in group]
        if len(members) == 1:
            yield group, members[0], Segments(None, 1)
            continue
        flat = tf.concat(members, axis=0)
        total = tf.size(flat, out_type=tf.int32)
        static = [m.shape[0] for m in members]
        if all(size is not None for size in static):
            yield group, flat, Segments(_segment_ids(tf.constant([int(n) for n in static], tf.int32), total), len(group))
        else:
            lengths = tf.stack([tf.size(m, out_type=tf.int32) for m in members])
            yield group, flat, Segments(_segment_ids(lengths, total), len(group))


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


class Segments:
    """Reductions over the n segments of a flat tensor whose segment ids are
    sorted and contiguous (as `segmented_chunks` makes them); with ids None,
    over the whole tensor as one segment.

    On CPU the sorted segment kernels are 3 to 4 times faster than the
    unsorted ones, but they have no XLA version and drop trailing empty
    segments; under XLA the unsorted ones are used. A whole tensor takes the
    plain reductions, which run on several threads. The sum of an empty
    segment is 0; its max and min mean nothing (callers look at the count).

    Args:
        ids: the [size] segment id of each value, or None for one segment.
        n: the number of segments.
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

    def sum(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] sums of the segments of `x`."""
        return self._reduce(tf.math.segment_sum, tf.math.unsorted_segment_sum, tf.reduce_sum, x)

    def max(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] maxima of the segments of `x`."""
        return self._reduce(tf.math.segment_max, tf.math.unsorted_segment_max, tf.reduce_max, x)

    def min(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] minima of the segments of `x`."""
        return self._reduce(tf.math.segment_min, tf.math.unsorted_segment_min, tf.reduce_min, x)


# -- batches of tensors of one shape --------------------------------------


class Rows:
    """Reductions over each row of a [n, size] tensor: tensors of one shape
    stacked. The same interface as `Segments`, at the cost of plain
    reductions (several threads, no segment ids).

    Args:
        n: the number of rows.
    """

    def __init__(self, n: int):
        self.n = n

    def sum(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] sums of the rows of `x`."""
        return tf.reduce_sum(x, axis=1)

    def max(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] maxima of the rows of `x`."""
        return tf.reduce_max(x, axis=1)

    def min(self, x: tf.Tensor) -> tf.Tensor:
        """The [n] minima of the rows of `x`."""
        return tf.reduce_min(x, axis=1)


def batch_key(tensor) -> Optional[tuple]:
    """What tensors must share to be stacked: static shape and dtype; None
    for one that is never stacked (sparse, of unknown shape, or large).

    Args:
        tensor: a tensor, variable or IndexedSlices.
    """
    if isinstance(tensor, tf.IndexedSlices) or not hasattr(tensor, "shape") or is_large(tensor):
        return None
    shape = tf.TensorShape(tensor.shape)
    if not shape.is_fully_defined():
        return None
    return tuple(shape.as_list()), tf.as_dtype(tensor.dtype)


def pair_key(now, before) -> Optional[tuple]:
    """The `batch_key` of a (now, before) pair: both sides must stack.

    Args:
        now, before: tensors of one shape (a weight after and before its update).
    """
    key = batch_key(now)
    return None if key is None else (*key, before.dtype)


def same_shape_batches(keys: Sequence[Optional[tuple]]) -> Tuple[List[List[int]], List[int]]:
    """(batches, rest): the indices of two or more tensors of one `batch_key`
    (the key's first item is the shape), at most `CHUNK_ELEMENTS` values per
    batch; and the indices of every other tensor, in order.

    Args:
        keys: the `batch_key` (or `pair_key`) of each tensor.

    Example:

    >>> same_shape_batches([((2, 3), tf.float32), None, ((2, 3), tf.float32), ((4,), tf.float32)])
    ([[0, 2]], [1, 3])
    """
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
        for chunk in chunks([size] * len(members)):
            batches.append([members[j] for j in chunk])
    return batches, sorted(rest)


def batch_members(batches: Sequence[Sequence[int]]) -> List[int]:
    """The indices of `batches`, batch after batch: the order of their rows.

    Args:
        batches: lists of tensor indices, as `same_shape_batches` makes them.
    """
    return [i for batch in batches for i in batch]


def stacked(tensors: Sequence) -> tf.Tensor:
    """Tensors of one shape and dtype as a float32 [n, size] tensor: one
    stack, one cast, one reshape for the lot.

    Args:
        tensors: dense tensors or variables of one `batch_key`.
    """
    size = tf.TensorShape(tensors[0].shape).num_elements()
    return tf.reshape(as_float32(tf.stack([tf.convert_to_tensor(t) for t in tensors])), [len(tensors), size])


def in_order(parts: Sequence[tf.Tensor], order: Sequence[int]) -> tf.Tensor:
    """The rows of `parts`, concatenated, put back in the callers' order
    (row k of the concatenation belongs to tensor order[k]).

    Args:
        parts: [rows, ...] tensors of the groups, in the order they were reduced.
        order: the tensor index of each of their rows.
    """
    table = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
    if list(order) == list(range(len(order))):
        return table
    return tf.gather(table, [list(order).index(i) for i in range(len(order))])


# -- large tensors, piece by piece ----------------------------------------


def is_large(tensor) -> bool:
    """Whether a dense tensor (or a variable) is reduced piece by piece: more
    values than a chunk holds, known when tracing (a size known only when
    running cannot decide how to loop).

    Args:
        tensor: a tensor, variable or IndexedSlices (never large).
    """
    if isinstance(tensor, tf.IndexedSlices) or not hasattr(tensor, "shape"):
        return False
    size = tf.TensorShape(tensor.shape).num_elements()
    return size is not None and size > CHUNK_ELEMENTS


def piece_elements() -> int:
    """About how many values a piece of a large tensor holds: an op on a
    piece makes a temporary of 1 MB (float32), and a piece takes a few dozen
    of them (pieces of this size were also the fastest, as they stay in the
    CPU's caches)."""
    return max(1, CHUNK_ELEMENTS // 16)


def tf_variable(value) -> Optional[tf.Variable]:
    """The tf.Variable `value` is or wraps (a Keras variable holds one), else None.

    Args:
        value: a tensor, a tf.Variable or a Keras variable.
    """
    if isinstance(value, tf.Variable):
        return value
    inner = getattr(value, "value", None)
    return inner if isinstance(inner, tf.Variable) else None


def in_pieces(sources: Sequence, compute: Callable[..., tf.Tensor], shape: Sequence[int], dtype=tf.float32) -> tf.Tensor:
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

    Example:

    >>> sums = in_pieces([tf.ones([3, 2])], lambda rows: tf.reduce_sum(rows), [])
    >>> float(tf.reduce_sum(sums))
    6.0
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
