import numpy as np
import pytest
import tensorflow as tf

from support.events import numpy_stats
from tb_weightnorm.graph import stats, tensor_groups


def _check(tensors, rtol=1e-5):
    got = stats.tensor_stats([tf.constant(t) for t in tensors]).numpy()
    for row, t in zip(got, tensors):
        np.testing.assert_allclose(row, numpy_stats(t), rtol=rtol, atol=1e-6, equal_nan=True)


def test_matches_numpy_on_random_tensors():
    rng = np.random.default_rng(0)
    _check([rng.normal(size=s).astype(np.float32) for s in [(3, 4), (7,), (2, 3, 4, 5), (1,)]])


def test_non_finite_values_are_counted_and_the_rest_stays_meaningful():
    x = np.array([1.0, np.nan, -3.0, np.inf, -np.inf, 2.0], np.float32)
    got = stats.tensor_stats([tf.constant(x)]).numpy()[0]
    np.testing.assert_allclose(got, numpy_stats(x), rtol=1e-6)
    assert got[7] == 1 and got[8] == 2  # nan_count, inf_count
    assert got[5] == -3.0 and got[6] == 2.0


def test_all_non_finite_and_empty_tensors():
    got = stats.tensor_stats([tf.constant([np.nan, np.nan]), tf.zeros([0, 3])]).numpy()
    assert got[0, 7] == 2 and np.isnan(got[0, 3])
    np.testing.assert_array_equal(got[1, :3], [0, 0, 0])
    assert np.isnan(got[1, 3:7]).all()


def test_huge_values_do_not_overflow_the_l2():
    x = np.full([1000], 1e30, np.float32)
    got = stats.tensor_stats([tf.constant(x)]).numpy()[0]
    np.testing.assert_allclose(got[1], 1e30 * np.sqrt(1000), rtol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.int32, tf.float64])
def test_other_dtypes_are_read_as_float32(dtype):
    x = np.arange(-5, 7).astype(np.float32)
    got = stats.tensor_stats([tf.cast(tf.constant(x), dtype)]).numpy()[0]
    np.testing.assert_allclose(got, numpy_stats(x), rtol=1e-2)


def test_many_variables_split_into_chunks(monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 10)
    rng = np.random.default_rng(1)
    _check([rng.normal(size=n).astype(np.float32) for n in [3, 4, 25, 2, 9, 1]])


def test_sparse_gradient_is_read_as_its_dense_tensor_without_densifying():
    slices = tf.IndexedSlices(
        tf.constant([[1.0, -2.0], [3.0, np.nan], [1.0, 1.0]]), tf.constant([2, 0, 2]), tf.constant([50, 2])
    )
    dense = tf.convert_to_tensor(slices).numpy()
    got = stats.tensor_stats([tf.constant([1.0]), slices]).numpy()
    np.testing.assert_allclose(got[1], numpy_stats(dense), rtol=1e-5)
    np.testing.assert_allclose(got[0, 1], 1.0)


def test_dead_unit_fraction_and_global_norm():
    grad = tf.constant([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    assert float(stats.dead_unit_fraction(grad)) == pytest.approx(2 / 3)
    assert np.isnan(float(stats.dead_unit_fraction(tf.constant([0.0, 1.0]))))
    assert float(stats.global_norm([tf.constant([3.0]), None, tf.constant([4.0], tf.float16)])) == pytest.approx(5.0)


def test_runs_inside_xla():
    f = tf.function(lambda a, b: stats.tensor_stats([a, b]), jit_compile=True)
    got = f(tf.constant([1.0, -2.0]), tf.constant([0.5, 0.5])).numpy()
    np.testing.assert_allclose(got[0, 1], np.sqrt(5.0), rtol=1e-6)


def test_xla_chunk_of_a_large_kernel_beside_a_small_bias():
    # Under XLA, tf.repeat pads every segment to the longest, so ids made
    # with it came out longer than the chunk and the segment ops failed.
    rng = np.random.default_rng(5)
    tensors = [rng.normal(size=(600, 1000)).astype(np.float32), rng.normal(size=64).astype(np.float32)]
    tensors += [rng.normal(size=(64, 64)).astype(np.float32) for _ in range(3)]
    compute = tf.function(lambda *ts: stats.tensor_stats(list(ts)), jit_compile=True)
    got = compute(*[tf.constant(t) for t in tensors]).numpy()
    for row, t in zip(got, tensors):
        np.testing.assert_allclose(row, numpy_stats(t), rtol=2e-4, atol=1e-6)


def _awkward_tensors():
    """Tensors for every path of the segment reductions: NaN and Inf among
    finite values, all NaN, empty ones (also last, which sorted segment
    reductions would drop), values whose squares underflow or overflow."""
    rng = np.random.default_rng(3)
    return [
        rng.normal(size=(4, 5)).astype(np.float32),
        np.zeros([0], np.float32),
        np.array([1.0, np.nan, -3.0, np.inf, 2.0], np.float32),
        np.full([3], np.nan, np.float32),
        (rng.normal(size=50) * 1e-30).astype(np.float32),
        (rng.normal(size=50) * 1e25).astype(np.float32),
        np.array([0.0, 0.0], np.float32),
        np.zeros([2, 0], np.float32),
    ]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_every_path_matches_numpy(mode):
    tensors = _awkward_tensors()
    compute = lambda *ts: (stats.tensor_stats(list(ts)), stats.l2_norms(list(ts)))  # noqa: E731
    if mode != "eager":
        compute = tf.function(compute, jit_compile=(mode == "xla"))
    table, l2 = compute(*[tf.constant(t) for t in tensors])
    for row, norm, t in zip(table.numpy(), l2.numpy(), tensors):
        want = numpy_stats(t)
        np.testing.assert_allclose(row, want, rtol=2e-5, atol=0, equal_nan=True)
        np.testing.assert_allclose(norm, want[1], rtol=2e-5, atol=0)


def test_l2_norms_of_values_in_no_other_order_of_magnitude():
    # A chunk mixing tiny, huge and ordinary tensors: only those that need it
    # are rescaled, and the others keep their plain sum of squares.
    tensors = [np.float32([3e-25, 4e-25]), np.float32([3e20, 4e20]), np.float32([3.0, 4.0])]
    np.testing.assert_allclose(stats.l2_norms([tf.constant(t) for t in tensors]).numpy(), [5e-25, 5e20, 5.0], rtol=1e-6)


def _large_cases():
    """Tensors past a chunk of 64 values (pieces of 4): rows of 5 values cut
    row by row, rows longer than a piece cut as 1-D, a tail piece, NaN and
    Inf, a constant, pieces of very different means, and values whose
    squares overflow."""
    rng = np.random.default_rng(7)
    with_nan = rng.normal(size=(20, 5)).astype(np.float32)
    with_nan[3, 1], with_nan[7, 4], with_nan[19, 0] = np.nan, np.inf, -np.inf
    return [
        with_nan,
        rng.normal(size=(3, 40)).astype(np.float32),
        rng.normal(size=130).astype(np.float32),
        np.full([70], 3.0, np.float32),
        np.concatenate([np.full(40, 1e6), rng.normal(size=40) * 1e-3]).astype(np.float32),
        (rng.normal(size=(33, 3)) * 1e25).astype(np.float32),
        np.full([66], np.nan, np.float32),
        rng.normal(size=(2, 3)).astype(np.float32),  # a small one among them
    ]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_large_tensors_and_variables_are_reduced_piece_by_piece(monkeypatch, mode):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)
    # Under XLA, the ways of cutting only (compiling is slow; the arithmetic
    # is the same in every mode).
    cases = _large_cases()[: 3 if mode == "xla" else None]
    # The first three as variables too (rows cut, long rows cut as 1-D, a
    # tail), updated sparsely first: they are read a piece at a time.
    variables = [tf.Variable(c) for c in cases[:3]]
    for v, c in zip(variables, cases):
        v.scatter_update(tf.IndexedSlices(tf.constant(c[:1]), tf.constant([0])))
    inputs = variables + [tf.constant(c) for c in cases]
    cases = cases[:3] + cases
    halves = [tf.constant(c * 0.5) for c in cases]

    def compute(*tensors):
        return (stats.tensor_stats(list(tensors)), stats.l2_norms(list(tensors)),
                stats.difference_l2_norms(list(zip(tensors, halves))), stats.global_norm(list(tensors)))

    run = compute if mode == "eager" else tf.function(compute, jit_compile=(mode == "xla"))
    table, l2, difference, total = run(*inputs)
    for i, c in enumerate(cases):
        want = numpy_stats(c)
        np.testing.assert_allclose(table[i].numpy(), want, rtol=2e-5, atol=1e-30, equal_nan=True, err_msg=str(i))
        np.testing.assert_allclose(l2[i].numpy(), want[1], rtol=2e-5, err_msg=str(i))
        np.testing.assert_allclose(difference[i].numpy(), want[1] / 2, rtol=2e-5, err_msg=str(i))
    everything = np.sqrt(sum(numpy_stats(c)[1] ** 2 for c in cases))
    np.testing.assert_allclose(total.numpy(), everything, rtol=2e-5)


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_dead_units_of_a_large_gradient(monkeypatch, mode):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)
    g = np.zeros([30, 6], np.float32)
    g[:, 1] = 1.0
    g[29, 4] = np.nan  # a NaN is not a zero: unit 4 is alive
    run = stats.dead_unit_fraction if mode == "eager" else tf.function(stats.dead_unit_fraction, jit_compile=(mode == "xla"))
    assert float(run(tf.constant(g))) == pytest.approx(4 / 6)


def _shared_shape_tensors():
    """Tensors that share shapes (stacked and reduced together), with every
    awkward value in some batch, beside tensors of shapes of their own."""
    rng = np.random.default_rng(3)
    kernel = lambda scale=1.0: (rng.normal(size=(4, 5)) * scale).astype(np.float32)  # noqa: E731
    with_nan, with_inf, all_nan = kernel(), kernel(), np.full((4, 5), np.nan, np.float32)
    with_nan[1, 2], with_inf[0, 0] = np.nan, -np.inf
    dead = kernel()
    dead[:, 3] = 0.0
    return [
        kernel(), with_nan, rng.normal(size=7).astype(np.float32), kernel(1e-30), with_inf,
        kernel(1e25), all_nan, np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32),
        np.ones(3, np.float32), dead, np.ones(3, np.float32) * 2,
    ]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_tensors_of_one_shape_are_reduced_together_with_the_same_results(mode, monkeypatch):
    # A chunk of 50 values: the seven 4x5 tensors are stacked 2 + 2 + 2 + 1.
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 50)
    tensors = _shared_shape_tensors()
    batches, _ = tensor_groups.same_shape_batches([tensor_groups.batch_key(tf.constant(t)) for t in tensors])
    assert sorted(len(b) for b in batches) == [1, 2, 2, 2, 2, 2]

    def compute(*ts):
        ts = list(ts)
        befores = [tf.zeros_like(t) + 1.0 for t in ts]
        return (
            stats.tensor_stats(ts), stats.l2_norms(ts), stats.difference_l2_norms(list(zip(ts, befores))),
            stats.dead_unit_fractions(ts[:4] + [None] + ts[5:]),
        )

    if mode != "eager":
        compute = tf.function(compute, jit_compile=(mode == "xla"))
    table, l2, moved, dead = (x.numpy() for x in compute(*[tf.constant(t) for t in tensors]))
    for i, t in enumerate(tensors):
        want = numpy_stats(t)
        np.testing.assert_allclose(table[i], want, rtol=2e-5, atol=0, equal_nan=True)
        np.testing.assert_allclose(l2[i], want[1], rtol=2e-5, atol=0)
        np.testing.assert_allclose(moved[i], numpy_stats(t - 1.0)[1], rtol=2e-5, atol=0)
        alone = np.nan if i == 4 else float(stats.dead_unit_fraction(tf.constant(t)))
        np.testing.assert_allclose(dead[i], alone, equal_nan=True)
    assert dead[10] == pytest.approx(0.2)  # one of five units of `dead`


@pytest.mark.parametrize("mode", ["function", "xla"])
def test_sums_of_millions_of_values_stay_accurate(mode):
    # Segment kernels add a segment's values one by one in float32: a 2 M
    # value kernel beside its bias read 5e-4 off (ResNet50's conv5 kernels).
    # Every segment is summed in short runs, so each stat is within ~1e-6 of
    # float64 whatever the size: alone, concatenated with others, of one
    # shape with another.
    rng = np.random.default_rng(0)
    shapes = [(2_000_000,), (1_000_000, 2), (512,), (300_001,), (3, 3, 512, 512), (3, 3, 512, 512), (7,)]
    values = [(rng.normal(size=s) * 0.02 + 0.01).astype(np.float32) for s in shapes]
    compute = tf.function(lambda ts: (stats.tensor_stats(ts), stats.l2_norms(ts)), jit_compile=mode == "xla")
    table, l2 = (t.numpy() for t in compute([tf.constant(v) for v in values]))
    for got, l2_alone, v in zip(table, l2, values):
        want = numpy_stats(v)
        np.testing.assert_allclose(got[:7], want[:7], rtol=3e-6)
        np.testing.assert_allclose(l2_alone, want[1], rtol=3e-6)
