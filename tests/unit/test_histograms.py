import numpy as np
import pytest
import tensorflow as tf

from tb_weightnorm.graph import histograms as hist_module, tensor_groups
from tb_weightnorm.graph.histograms import histogram_columns, histograms


def numpy_histogram(x, bins):
    """Reference row: min, max, np.histogram counts of the finite values, NaN/-Inf/+Inf counts."""
    x = np.asarray(x).ravel()
    finite = x[np.isfinite(x)]
    if finite.size and finite.min() == finite.max():
        # The documented choice for a constant: the middle bucket. (np.histogram
        # widens a zero range to [v - 0.5, v + 0.5], which centres v the same way
        # but, in float32, can round v just below the middle edge.)
        counts = np.zeros(bins)
        counts[bins // 2] = finite.size
        extremes = [finite.min(), finite.max()]
    elif finite.size:
        # np.histogram's default range is (finite.min(), finite.max()).
        counts, _ = np.histogram(finite, bins)
        extremes = [finite.min(), finite.max()]
    else:
        counts, extremes = np.zeros(bins), [np.nan, np.nan]
    tail = [np.isnan(x).sum(), np.isneginf(x).sum(), np.isposinf(x).sum()]
    return np.concatenate([np.asarray(extremes, np.float64), counts, tail]).astype(np.float64)


def _check(arrays, bins, got=None):
    if got is None:
        got = histograms([tf.constant(a) for a in arrays], bins).numpy()
    assert got.shape == (len(arrays), bins + 5)
    for row, a in zip(got, arrays):
        np.testing.assert_array_equal(row, numpy_histogram(a, bins))


def test_columns():
    assert histogram_columns(3) == (
        "min", "max", "bin_0", "bin_1", "bin_2", "nan_count", "neg_inf_count", "pos_inf_count"
    )
    assert len(histogram_columns(64)) == 69


@pytest.mark.parametrize("bins", [1, 7, 30, 64])
def test_matches_numpy_on_random_tensors(bins):
    rng = np.random.default_rng(bins)
    arrays = [
        rng.normal(size=(3, 4)),
        rng.normal(size=(7,)),
        rng.uniform(-5, 20, size=(2, 3, 4, 5)),
        rng.normal(size=(1,)),
        rng.standard_cauchy(size=(1000,)),
        rng.exponential(size=(50, 20)) * 1e-3,
    ]
    _check([a.astype(np.float32) for a in arrays], bins)


@pytest.mark.parametrize("bins", [1, 2, 3, 4, 5, 7, 8, 10, 16, 30, 41, 64])
def test_values_on_edges_match_numpy(bins):
    # Integer and dyadic grids put values exactly on bucket edges (and 1/41*41 < 1
    # in float32): each must land in the same bucket as in np.histogram, and the
    # max in the last bucket.
    arrays = [np.arange(lo, lo + n, dtype=np.float32) for lo in (-5, 0, 3) for n in (2, 9, 17, 42, 65)]
    arrays += [np.arange(-8, 9, dtype=np.float32) * 0.125, np.array([-3.0, 5.0, 5.0, 1.0], np.float32)]
    _check(arrays, bins)


def test_max_is_in_the_last_bucket_and_min_in_the_first():
    x = np.array([0.1, 0.7, 0.3, 0.9], np.float32)
    row = histograms([tf.constant(x)], 3).numpy()[0]
    np.testing.assert_array_equal(row[:2], [x.min(), x.max()])
    np.testing.assert_array_equal(row[2:5], [2, 0, 2])


def test_non_finite_values_are_counted_not_bucketed():
    x = np.array([1.0, np.nan, -3.0, np.inf, -np.inf, 2.0, -np.inf, np.nan, np.nan], np.float32)
    row = histograms([tf.constant(x)], 5).numpy()[0]
    np.testing.assert_array_equal(row, numpy_histogram(x, 5))
    assert row[0] == -3.0 and row[1] == 2.0
    assert row[2:7].sum() == 3
    np.testing.assert_array_equal(row[7:], [3, 2, 1])


def test_empty_and_all_non_finite_tensors():
    arrays = [
        np.zeros([0, 3], np.float32),
        np.array([np.nan, np.nan], np.float32),
        np.array([np.inf, -np.inf, np.nan, np.inf], np.float32),
        np.array([1.0, 2.0], np.float32),
    ]
    got = histograms([tf.constant(a) for a in arrays], 4).numpy()
    _check(arrays, 4, got)
    assert np.isnan(got[:3, :2]).all()
    assert (got[:3, 2:6] == 0).all()
    np.testing.assert_array_equal(got[2, 6:], [1, 1, 2])


def test_no_tensors():
    got = histograms([], 7)
    assert got.shape == (0, 12) and got.dtype == tf.float32


@pytest.mark.parametrize("bins", [1, 2, 7, 30, 64])
def test_constant_tensor_goes_to_the_middle_bucket(bins):
    arrays = [
        np.full([10], 2.5, np.float32),
        np.array([-1.0, np.nan, -1.0, np.inf], np.float32),
        np.zeros([3, 3], np.float32),
        np.array([7.0], np.float32),
    ]
    got = histograms([tf.constant(a) for a in arrays], bins).numpy()
    _check(arrays, bins, got)
    assert got[0, 2 + bins // 2] == 10 and got[0, 2 : 2 + bins].sum() == 10
    np.testing.assert_array_equal(got[1, :2], [-1.0, -1.0])
    assert got[1, 2 + bins // 2] == 2 and got[1, -3:].tolist() == [1, 0, 1]


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.int32, tf.float64, tf.bool])
def test_other_dtypes_are_read_as_float32(dtype):
    x = tf.cast(tf.constant(np.arange(-5, 7).astype(np.float32) * 0.5), dtype)
    got = histograms([x], 6).numpy()[0]
    np.testing.assert_array_equal(got, numpy_histogram(tf.cast(x, tf.float32).numpy(), 6))


def test_huge_values_do_not_overflow():
    x = np.array([-3e38, 3e38, 0.0, 1.4e38, -np.inf], np.float32)
    got = histograms([tf.constant(x)], 4).numpy()[0]
    # float32 max - min overflows, so the reference works in float64.
    np.testing.assert_array_equal(got, numpy_histogram(x.astype(np.float64), 4))
    np.testing.assert_array_equal(got[2:6], [1, 0, 2, 1])


def test_many_variables_split_into_chunks(monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 10)
    groups = []
    chunks = tensor_groups.chunks

    def recording_chunks(sizes):
        result = chunks(sizes)
        groups.append(result)
        return result

    monkeypatch.setattr(tensor_groups, "chunks", recording_chunks)
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=n).astype(np.float32) for n in [3, 4, 25, 2, 9, 1, 0, 5]]
    arrays[3][1] = np.nan
    arrays[5][0] = np.inf
    _check(arrays, 7)
    # The chunk size was read at call time: small tensors were grouped, the
    # 25-element one was bucketed alone.
    assert groups == [[[0, 1], [2], [3], [4, 5, 6], [7]]]


def test_counts_are_exact_beyond_float32_integer_range():
    # A float32 running count would stop at 2**24; 2**24 + 2 is representable.
    n = 2**24 + 2
    got = histograms([tf.zeros([n])], 3).numpy()[0]
    np.testing.assert_array_equal(got, [0, 0, 0, n, 0, 0, 0, 0])


def _slices(values, indices, dense_shape):
    return tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant(dense_shape, tf.int64))


def _slices_cases():
    rng = np.random.default_rng(2)
    return [
        # Duplicate indices, mixed signs, implicit zeros inside [min, max].
        _slices(rng.normal(size=(6, 4)).astype(np.float32), [7, 2, 7, 0, 2, 7], [10, 4]),
        # All positive: the implicit zeros extend min to 0.
        _slices(rng.uniform(1, 2, size=(3, 5)).astype(np.float32), [4, 1, 4], [6, 5]),
        # Every row listed: no implicit zeros, min/max not extended.
        _slices(rng.uniform(1, 2, size=(4, 2)).astype(np.float32), [3, 1, 0, 2], [4, 2]),
        # Non-finite values in the rows.
        _slices(np.array([[np.nan, 1.0], [2.0, np.inf], [-np.inf, 3.0]], np.float32), [0, 5, 0], [8, 2]),
        # No rows at all: all zeros, min == max == 0.
        _slices(np.zeros([0, 3], np.float32), np.zeros([0], np.int64), [5, 3]),
        # Rows that sum to zero, and a rank-1 slices object.
        _slices(np.array([1.5, -1.5, 4.0], np.float32), [2, 2, 9], [12]),
        # float16 rows are summed in float16, as the dense conversion does.
        _slices(rng.normal(size=(3, 3)).astype(np.float16), [1, 1, 2], [4, 3]),
    ]


@pytest.mark.parametrize("bins", [1, 7, 30])
def test_indexed_slices_equal_their_dense_tensor(bins):
    cases = _slices_cases()
    dense = [tf.convert_to_tensor(s) for s in cases]
    # Mixed with dense tensors, so slices share chunks with them when eager.
    got = histograms(cases + [tf.constant([1.0, -2.0])], bins).numpy()
    want = histograms(dense + [tf.constant([1.0, -2.0])], bins).numpy()
    np.testing.assert_array_equal(got, want)
    for row, d in zip(got, dense):
        np.testing.assert_array_equal(row, numpy_histogram(tf.cast(d, tf.float32).numpy(), bins))


def test_indexed_slices_are_not_densified(monkeypatch):
    read = hist_module.as_float32

    def refuse_slices(x):
        assert not isinstance(x, tf.IndexedSlices), "IndexedSlices were densified"
        return read(x)

    monkeypatch.setattr(hist_module, "as_float32", refuse_slices)
    # Dense, this would be 3e9 floats (12 GB); its zero count needs more than int32.
    big = tf.IndexedSlices(tf.ones([2, 3]), tf.constant([5, 5]), tf.constant([10**9, 3], tf.int64))
    got = histograms([big], 4).numpy()[0]
    np.testing.assert_array_equal(got[:2], [0.0, 2.0])
    np.testing.assert_array_equal(got[2:6], np.array([3 * 10**9 - 3, 0, 0, 3], np.float32))


def test_indexed_slices_without_dense_shape_raise():
    with pytest.raises(ValueError, match="dense_shape"):
        histograms([tf.IndexedSlices(tf.ones([1, 2]), tf.constant([0]))], 4)


def test_runs_inside_tf_function_and_xla():
    rng = np.random.default_rng(3)
    dense = [
        rng.normal(size=(5, 4)).astype(np.float32),
        np.array([np.nan, 1.0, -np.inf, 1.0], np.float32),
        np.arange(0, 42, dtype=np.float32),
    ]
    values = rng.normal(size=(4, 3)).astype(np.float32)
    indices = np.array([3, 0, 3, 6], np.int32)

    def compute(a, b, c, v, i):
        slices = tf.IndexedSlices(v, i, tf.constant([8, 3], tf.int64))
        return histograms([a, slices, b, c], 41)

    args = [tf.constant(a) for a in dense] + [tf.constant(values), tf.constant(indices)]
    eager = compute(*args).numpy()
    want = [
        numpy_histogram(dense[0], 41),
        numpy_histogram(tf.convert_to_tensor(tf.IndexedSlices(*args[3:], [8, 3])).numpy(), 41),
        numpy_histogram(dense[1], 41),
        numpy_histogram(dense[2], 41),
    ]
    np.testing.assert_array_equal(eager, want)
    np.testing.assert_array_equal(tf.function(compute)(*args).numpy(), want)
    np.testing.assert_array_equal(tf.function(compute, jit_compile=True)(*args).numpy(), want)


@pytest.mark.parametrize("bins", [0, -3, 2.5, 7.0, True, "7", None])
def test_bad_bins_raise(bins):
    with pytest.raises(ValueError, match="bins must be a positive int"):
        histograms([tf.constant([1.0])], bins)
    with pytest.raises(ValueError, match="bins must be a positive int"):
        histogram_columns(bins)


def test_numpy_integer_bins_are_accepted():
    assert histograms([tf.constant([1.0, 2.0])], np.int64(3)).shape == (1, 8)


def _in_every_mode(compute, args):
    """compute(*args) eagerly, in a tf.function and compiled by XLA."""
    return [
        compute(*args).numpy(),
        tf.function(compute)(*args).numpy(),
        tf.function(compute, jit_compile=True)(*args).numpy(),
    ]


@pytest.mark.parametrize("bins", [3, 10, 30, 100])
def test_edges_are_exact_in_every_mode(bins):
    # Grappler and XLA turn x / bins into x * (1 / bins), which moved values
    # sitting on an integer or dyadic grid's edges into the next bucket.
    arrays = [np.arange(-5, 95, dtype=np.float32), np.arange(0, 65, dtype=np.float32) * 0.125 - 5]
    arrays += [np.arange(-7.25, 9.75, dtype=np.float32), np.arange(0, 1001, dtype=np.float32) * 0.25]
    for got in _in_every_mode(lambda *a: histograms(list(a), bins), [tf.constant(a) for a in arrays]):
        _check(arrays, bins, got)


def _many_tensors(with_nan):
    rng = np.random.default_rng(4)
    arrays = []
    for i in range(12):
        # Interleaved sizes (they are bucketed grouped by size, then put back
        # in order), empty tensors inside and at the end of the chunk.
        arrays.append(rng.normal(size=(8, 4)).astype(np.float32) * (i + 1))
        arrays.append(rng.uniform(-1, 3, size=(4,)).astype(np.float32))
        if i % 5 == 0:
            arrays.append(np.zeros([0], np.float32))
    arrays[5] = np.full([4], 2.5, np.float32)
    arrays[7] = np.arange(-16, 16, dtype=np.float32)
    if with_nan:
        arrays[3] = np.full([4], np.nan, np.float32)
        arrays[9][1] = -np.inf
    return arrays + [np.zeros([0], np.float32), np.zeros([0, 2], np.float32)]


@pytest.mark.parametrize("with_nan", [False, True])
def test_many_tensors_in_one_chunk_in_every_mode(with_nan):
    arrays = _many_tensors(with_nan)
    for got in _in_every_mode(lambda *a: histograms(list(a), 7), [tf.constant(a) for a in arrays]):
        _check(arrays, 7, got)


def test_huge_finite_values_among_other_tensors():
    # No NaN or Inf, but a span past the float32 max (and a sum that
    # overflows): the chunk takes the path that rescales.
    arrays = [
        np.array([-3e38, 3e38, 0.0, 1.4e38], np.float32),
        np.array([3e38, 3e38, 2e38], np.float32),
        np.arange(-3, 4, dtype=np.float32),
    ]
    for got in _in_every_mode(lambda *a: histograms(list(a), 4), [tf.constant(a) for a in arrays]):
        for row, a in zip(got, arrays):
            np.testing.assert_array_equal(row, numpy_histogram(a.astype(np.float64), 4))


def test_indexed_slices_between_empty_tensors_in_every_mode():
    # Inside a graph the slices' rows have an unknown size, so they share a
    # chunk only with the empty tensors around them.
    values = np.array([[1.0, -2.0], [np.nan, 4.0], [0.5, 0.5]], np.float32)
    indices = np.array([3, 1, 3], np.int32)
    dense = np.zeros([6, 2], np.float32)
    np.add.at(dense, indices, values)
    empty = np.zeros([0], np.float32)

    def compute(e, v, i, d):
        return histograms([e, tf.IndexedSlices(v, i, tf.constant([6, 2], tf.int64)), e, d], 5)

    args = [tf.constant(empty), tf.constant(values), tf.constant(indices), tf.constant([1.0, 2.0, 3.0])]
    for got in _in_every_mode(compute, args):
        _check([empty, dense, empty, np.array([1.0, 2.0, 3.0], np.float32)], 5, got)


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_large_tensors_and_variables_are_bucketed_piece_by_piece(monkeypatch, mode):
    """Past a chunk of 64 values, a tensor is bucketed a piece of 4 values at
    a time, in two passes (range, then counts); a variable updated sparsely
    (an embedding table) is read a piece at a time too. Same counts."""
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)
    rng = np.random.default_rng(11)
    with_nan = rng.normal(size=(20, 5)).astype(np.float32)
    with_nan[3, 1], with_nan[7, 4], with_nan[19, 0] = np.nan, np.inf, -np.inf
    arrays = [
        with_nan,
        np.arange(130, dtype=np.float32),  # values on the edges of an integer grid
        np.full([70], -2.0, np.float32),
        np.float32([3e38, -3e38] * 40),  # a span beyond the float32 range
        rng.normal(size=(3, 40)).astype(np.float16),
        rng.normal(size=(2, 3)).astype(np.float32),
    ]
    variables = [tf.Variable(a) for a in arrays]
    variables[0].scatter_update(tf.IndexedSlices(tf.constant(with_nan[:1]), tf.constant([0])))
    compute = lambda *ts: histograms(list(ts), 9)  # noqa: E731
    if mode != "eager":
        compute = tf.function(compute, jit_compile=(mode == "xla"))
    got = compute(*variables, *[tf.constant(a) for a in arrays]).numpy()
    for row, a in zip(got, arrays * 2):
        np.testing.assert_array_equal(row, numpy_histogram(a.astype(np.float64), 9))
