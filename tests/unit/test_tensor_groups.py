"""The grouping `stats` and `histograms` share (graph/tensor_groups.py), and
the boundaries between modules: no private names across them, and the host
side of the writer free of TensorFlow."""

import ast
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import tb_weightnorm
from tb_weightnorm.graph import tensor_groups

PACKAGE = pathlib.Path(tb_weightnorm.__file__).parent


def test_chunks_hold_at_most_a_chunk_and_a_large_tensor_alone(monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 10)
    assert tensor_groups.chunks([3, 4, 25, 2, 9, 1, 0, 5]) == [[0, 1], [2], [3], [4, 5, 6], [7]]
    assert tensor_groups.chunks([]) == []
    # Read when called, not when imported.
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 100)
    assert tensor_groups.chunks([3, 4, 25, 2, 9, 1, 0, 5]) == [[0, 1, 2, 3, 4, 5, 6, 7]]


def test_a_size_unknown_when_tracing_is_a_chunk_of_its_own():
    sizes = []

    @tf.function(input_signature=[tf.TensorSpec([None])])
    def size_of(flat):
        sizes.append(tensor_groups.static_size(flat))
        return flat

    size_of(tf.zeros([3]))
    assert sizes == [tensor_groups.CHUNK_ELEMENTS]
    assert tensor_groups.static_size(tf.zeros([3])) == 3


def test_same_shape_batches_take_two_or_more_of_one_key_in_chunks(monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 50)
    tensors = [tf.zeros([4, 5]), tf.zeros([7]), tf.zeros([4, 5]), tf.zeros([4, 5], tf.float16),
               tf.zeros([4, 5]), tf.zeros([4, 5]), tf.zeros([9]), tf.zeros([200])]
    keys = [tensor_groups.batch_key(t) for t in tensors]
    # A large tensor is never batched.
    assert keys[7] is None
    batches, rest = tensor_groups.same_shape_batches(keys)
    assert batches == [[0, 2], [4, 5]]
    assert rest == [1, 3, 6, 7]
    assert tensor_groups.batch_members(batches) == [0, 2, 4, 5]


def test_pairs_batch_only_when_both_sides_share_a_dtype():
    now = [tf.zeros([3]), tf.zeros([3]), tf.zeros([3])]
    before = [tf.zeros([3]), tf.zeros([3], tf.float16), tf.zeros([3])]
    batches, rest = tensor_groups.same_shape_batches([tensor_groups.pair_key(n, b) for n, b in zip(now, before)])
    assert batches == [[0, 2]] and rest == [1]


def test_rows_come_back_in_the_callers_order():
    parts = [tf.constant([[2.0], [0.0]]), tf.constant([[1.0]])]
    np.testing.assert_array_equal(tensor_groups.in_order(parts, [2, 0, 1]).numpy(), [[0.0], [1.0], [2.0]])
    np.testing.assert_array_equal(tensor_groups.in_order(parts[:1], [0, 1]).numpy(), [[2.0], [0.0]])


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_segments_of_a_chunk_keep_their_trailing_empty_ones(mode, monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)
    values = [np.array([1.0, -2.0], np.float32), np.array([5.0], np.float32), np.zeros([0], np.float32)]

    def reduce(*flats):
        (group, flat, segments), = tensor_groups.segmented_chunks(list(flats))
        assert group == [0, 1, 2]
        return segments.sum(flat), segments.max(flat), segments.min(flat)

    run = reduce if mode == "eager" else tf.function(reduce, jit_compile=(mode == "xla"))
    total, hi, lo = (x.numpy() for x in run(*[tf.constant(v) for v in values]))
    np.testing.assert_array_equal(total, [-1.0, 5.0, 0.0])
    np.testing.assert_array_equal(hi[:2], [1.0, 5.0])
    np.testing.assert_array_equal(lo[:2], [-2.0, 5.0])


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_pieces_cover_a_large_tensor_and_a_variable_row_by_row(mode, monkeypatch):
    monkeypatch.setattr(tensor_groups, "CHUNK_ELEMENTS", 64)  # pieces of 4 values
    x = np.arange(30, dtype=np.float32).reshape(15, 2)
    variable = tf.Variable(x)
    assert tensor_groups.is_large(tf.zeros([65])) and not tensor_groups.is_large(tf.zeros([64]))
    assert tensor_groups.tf_variable(variable) is variable and tensor_groups.tf_variable(tf.constant(x)) is None

    def sums(source):
        return tensor_groups.in_pieces([source], lambda rows: tf.reduce_sum(rows, axis=0), [2])

    run = sums if mode == "eager" else tf.function(sums)
    for source in (tf.constant(x), variable):
        per_piece = run(source).numpy()
        # 2 rows a piece: 7 full pieces and a tail of one row.
        assert per_piece.shape == (8, 2)
        np.testing.assert_array_equal(per_piece.sum(axis=0), x.sum(axis=0))


def test_float32_casts_and_stacks():
    assert tensor_groups.as_float32(tf.constant([1, 2])).dtype == tf.float32
    assert tensor_groups.flat_float32(tf.ones([2, 3], tf.float16)).shape == [6]
    stacked = tensor_groups.stacked([tf.ones([2, 2]), tf.zeros([2, 2])])
    np.testing.assert_array_equal(stacked.numpy(), [[1.0] * 4, [0.0] * 4])


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _imported_modules(tree):
    """Local name -> tb_weightnorm module, for each module a file imports."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tb_weightnorm"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tb_weightnorm"):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name
    return names


def test_no_module_uses_a_private_name_of_another():
    """What two modules share is public: a private name (one underscore) of a
    tb_weightnorm module is used by that module only."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        modules = _imported_modules(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tb_weightnorm"):
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert found == []


@pytest.mark.parametrize("name", ["update_recorder", "train_function", "model_optimizers"])
def test_the_host_side_of_the_writer_does_not_import_tensorflow(name):
    """The seam a Keras backend other than TensorFlow needs: the host side
    drains and hands numbers on with numpy; what runs in the TensorFlow step
    is in graph/ and writer/optimizer_hook.py."""
    tree = ast.parse((PACKAGE / "writer" / f"{name}.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m == "tensorflow" or m.startswith("tensorflow.")}
