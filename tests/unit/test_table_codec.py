"""The on-disk form of tables: lossless, compact, and derived columns equal
to what the graph computes, bit for bit."""

import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tb_weightnorm import schema
from tb_weightnorm.graph import model_variables, table
from tb_weightnorm.read import norm_tables
from tb_weightnorm.wire import table_codec
from tb_weightnorm.writer.options import LogOptions


def _awkward_values(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype(np.float32)
    flat = x.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, -1e-42, 3.4e38], np.float32)
    flat[: min(len(specials), flat.size)] = specials[: flat.size]
    return x


@pytest.mark.parametrize("shape", [(7, 19), (1, 1), (0, 19), (2, 5, 37), (300, 22)])
def test_round_trip_is_bit_exact(shape):
    x = _awkward_values(shape)
    back = table_codec.decode(table_codec.encode(x), shape)
    assert back.dtype == np.float32 and back.shape == shape
    np.testing.assert_array_equal(back.view(np.uint32), x.view(np.uint32))


def test_tables_get_smaller_than_their_float32_bytes():
    # A plausible norm table: similar magnitudes per column, mostly zero counts.
    rng = np.random.default_rng(1)
    values = (rng.uniform(0.5, 2.0, (500, 19)) * 10.0 ** rng.integers(-4, 2, 19)).astype(np.float32)
    values[:, [7, 8, 15, 16]] = 0
    assert len(table_codec.encode(values)) < 0.8 * values.nbytes


@pytest.mark.parametrize(
    "blob, problem",
    [
        (b"", "unknown table encoding"),
        (b"\x07" + zlib.compress(b"\0" * 24), "unknown table encoding 7"),
        (b"\x01not deflate at all", "do not inflate"),
        (b"\x01" + zlib.compress(b"\0" * 20), "holds 20 bytes, expected 24"),
        (b"\x01" + zlib.compress(b"\0" * 28), "more than"),
        (b"\x01" + zlib.compress(b"\0" * 24)[:-3], "cut short"),
    ],
)
def test_bytes_that_are_not_a_table_of_that_shape_are_refused(blob, problem):
    with pytest.raises(table_codec.CorruptTable, match=problem):
        table_codec.decode(blob, (2, 3))


def test_a_deflate_bomb_is_refused_without_inflating_it():
    bomb = b"\x01" + zlib.compress(b"\0" * (512 << 20), 9)  # 512 MB of zeros in ~500 KB
    with pytest.raises(table_codec.CorruptTable, match="more than 25"):
        table_codec.decode(bomb, (2, 3))


def test_derived_only_when_their_sources_are_stored():
    stats = schema.table_stat_names()
    stored, derived = table_codec.split_stats(stats)
    assert derived == ("weight/linf", "gradient/linf", "update/ratio")
    assert set(stored) | set(derived) == set(stats) and len(stored) == len(stats) - 3
    assert table_codec.split_stats(("weight/linf", "weight/min", "weight/max")) == (
        ("weight/linf", "weight/min", "weight/max"),
        (),
    )
    with pytest.raises(table_codec.CorruptTable, match="'weight/linf' is neither stored"):
        table_codec.with_derived(np.zeros((1, 1), np.float32), ("weight/min",), ("weight/min", "weight/linf"))


def _table_with_every_kind_of_row():
    """A real norm table computed by the graph, with rows that exercise every
    branch of the derivations: NaN and Inf, an empty variable, an all-NaN
    gradient, a missing gradient, a zero weight, a sparse gradient, and the
    (global) row."""
    embedding = keras.layers.Embedding(50, 4, name="embed")
    model = keras.Sequential([keras.Input((3,), dtype="int32"), embedding, keras.layers.Flatten(),
                              keras.layers.Dense(5, name="dense")])
    rng = np.random.default_rng(2)
    values = {}
    for v in model.trainable_variables:
        w = rng.normal(size=v.shape).astype(np.float32)
        if v.path.endswith("dense/bias"):
            w[:] = 0  # update ratio divides by a zero weight norm
        if v.path.endswith("dense/kernel"):
            w[0, 0], w[1, 1] = np.nan, np.inf
        v.assign(w)
        values[v.path] = w
    empty = keras.Variable(np.zeros((0, 3), np.float32), name="empty")
    variables = list(model.trainable_variables) + [empty]
    rows = model_variables.rows_for(variables, LogOptions())
    spec = table.make_spec(rows, gradients=True, updates=True, dist_init=True)
    by_name = {v.path.split("/", 1)[-1] if "/" in v.path else v.path: v for v in variables}
    gradients = {
        id(by_name[p]): g
        for p, g in {
            "embed/embeddings": tf.IndexedSlices(tf.constant(rng.normal(size=(2, 4)), tf.float32),
                                                 tf.constant([3, 3]), tf.constant([50, 4])),
            "dense/kernel": tf.fill([12, 5], float("nan")),
            # dense/bias gets no gradient
            "empty": tf.zeros([0, 3]),
        }.items()
    }
    weights = {id(v): tf.convert_to_tensor(v) for v in variables}
    before = {k: w * 0.999 for k, w in weights.items()}
    computed = table.compute(
        spec, weights=weights, gradients=gradients, before=before, initial=before,
        all_gradients=[gradients.get(id(v)) for v in variables], all_variables=variables,
    ).numpy()
    return spec, computed


def test_derived_columns_equal_the_graphs_bit_for_bit():
    spec, full = _table_with_every_kind_of_row()
    names = spec.names()
    stored, derived = table_codec.split_stats(names.stats)
    kept = full[:, [names.stats.index(s) for s in stored]]
    rebuilt = table_codec.with_derived(table_codec.decode(table_codec.encode(kept), kept.shape), stored, names.stats)
    for name in derived:
        column = names.stats.index(name)
        np.testing.assert_array_equal(rebuilt[:, column].view(np.uint32), full[:, column].view(np.uint32), err_msg=name)
    # The table does hold the cases the test is about.
    gradient_linf = full[:, names.stats.index("gradient/linf")]
    assert np.isnan(gradient_linf).any() and (gradient_linf == 0).any() and (gradient_linf > 0).any()
    assert (full[:, names.stats.index("update/ratio")] == 0).any()


def test_format_1_tables_still_read():
    old = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(norm_tables.decoded_values(old, (2, 3)), old)
    with pytest.raises(table_codec.CorruptTable, match="shape"):
        norm_tables.decoded_values(old, (3, 2))
