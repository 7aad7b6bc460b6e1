import numpy as np
import pytest
import tensorflow as tf

from conftest import numpy_stats
from tb_weightnorm import stats


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
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 10)
    rng = np.random.default_rng(1)
    _check([rng.normal(size=n).astype(np.float32) for n in [3, 4, 25, 2, 9, 1]])


def test_norm_table_marks_missing_gradients_and_updates():
    w = [tf.constant([3.0, 4.0]), tf.constant([1.0])]
    table = stats.norm_table(w, [None, tf.constant([2.0])], [tf.constant([0.3, 0.4]), None]).numpy()
    assert table.shape == (2, 20)
    assert np.isnan(table[0, 9:18]).all()
    np.testing.assert_allclose(table[1, 10], 2.0)
    np.testing.assert_allclose(table[0, 18:20], [0.5, 0.1], rtol=1e-6)
    assert np.isnan(table[1, 18:20]).all()


def test_runs_inside_xla():
    f = tf.function(lambda a, b: stats.norm_table([a], [b], [a - b]), jit_compile=True)
    table = f(tf.constant([1.0, -2.0]), tf.constant([0.5, 0.5])).numpy()
    np.testing.assert_allclose(table[0, 1], np.sqrt(5.0), rtol=1e-6)
