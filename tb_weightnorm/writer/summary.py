"""Writes the plugin's norm tables and histograms, shaped like `tf.summary.*`.

`log()` (custom training loops) and the Keras callback both write through
these functions, so both produce the same wire format: one event at a time
(`write_norm_table`, `write_histograms`, also inside `tf.function`), or the
series of many logged steps in one call (`write_norm_tables`,
`write_histogram_tables`, `sent_series_writers`). Kernel grids are written by
`writer.kernel_grids`.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import summary_ops_v2

from tb_weightnorm import schema
from tb_weightnorm.graph import tf_state
from tb_weightnorm.graph.tf_state import plain_variable
from tb_weightnorm.wire import metadata, table_codec


class _NamesSent:
    """Remembers, per writer and tag, whether the first event (the one carrying
    the row names) was written. A tf.Variable, so that the choice between full
    and light metadata also happens inside a `tf.function` traced once."""

    def __init__(self):
        self._flags = weakref.WeakKeyDictionary()
        # (writer, tag) pairs known sent on the host: an eager write (the
        # callback's, every logged step) then reads no variable.
        self._known = weakref.WeakKeyDictionary()

    def flag(self, writer, tag: str) -> tf.Variable:
        per_writer = self._flags.setdefault(writer, {})
        if tag not in per_writer:
            per_writer[tag] = plain_variable(False, "names_sent")
        return per_writer[tag]

    def known_sent(self, writer, tag: str) -> bool:
        known = self._known.setdefault(writer, set())
        if tag not in known and bool(self.flag(writer, tag).numpy()):
            known.add(tag)
        return tag in known

    def mark_sent(self, writer, tag: str) -> None:
        self.flag(writer, tag).assign(True)
        self._known.setdefault(writer, set()).add(tag)


_names_sent = _NamesSent()


def _default_writer():
    return summary_ops_v2._summary_state.writer  # pylint: disable=protected-access


def require_writer(what: str):
    """The default summary writer; `what` (the caller) names it in the error
    if there is none."""
    writer = _default_writer()
    if writer is None:
        raise RuntimeError(
            f"tb_weightnorm.{what}: no default summary writer. Wrap the call in "
            "`with tf.summary.create_file_writer(logdir).as_default():`."
        )
    return writer


def _encoded(values) -> tf.Tensor:
    """The table as the string scalar the event file stores (see table_codec),
    encoded on the host: directly when running eagerly (the Keras callback
    writes numpy tables), through a numpy_function inside a tf.function."""
    if tf.executing_eagerly():
        return tf.constant(table_codec.encode(np.asarray(values, np.float32)))
    blob = tf.numpy_function(table_codec.encode, [tf.cast(values, tf.float32)], tf.string, stateful=False)
    return tf.reshape(blob, [])


def _write_names_once(tag: str, value, step, full) -> tf.Tensor:
    """Writes with `full` metadata (a callable making it) the first time per
    writer and tag, then with none: both TensorBoard loaders keep a time
    series' first metadata and ignore the rest, and it would cost more bytes
    than a small table."""
    writer = _default_writer()
    if tf.executing_eagerly():  # no cond to build: a few ms less per logged step
        if _names_sent.known_sent(writer, tag):
            return tf.summary.write(tag, value, step=step)
        written = tf.summary.write(tag, value, step=step, metadata=full())
        if bool(written):
            _names_sent.mark_sent(writer, tag)
        return written
    sent = _names_sent.flag(writer, tag)
    full = full()

    def first():
        with tf.control_dependencies([tf.summary.write(tag, value, step=step, metadata=full)]):
            return sent.assign(True).read_value()

    def later():
        return tf.summary.write(tag, value, step=step)

    return tf.cond(sent.read_value(), later, first)


class _SeriesWriters:
    """Per summary writer, a function that writes many values of one tag in
    one call: each eager `tf.summary.write` is several op calls, and the
    callback writes the logged steps of up to a few dozen steps at once."""

    def __init__(self):
        self._functions = weakref.WeakKeyDictionary()

    def write(self, tag: str, steps: Sequence[int], blobs: Sequence[bytes]) -> None:
        writer = _default_writer()
        function = self._functions.get(writer)
        if function is None:
            # Traced with this writer the default: its resource is captured.
            spec = [tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.string)]
            function = self._functions[writer] = tf_state.own_function(_write_series, input_signature=spec)
        function(tf.constant(tag), tf.constant(list(steps), tf.int64), tf.constant(list(blobs)))


def _write_series(tag, steps, blobs):
    def body(i):
        with tf.control_dependencies([tf.summary.write(tag, blobs[i], step=steps[i])]):
            return i + 1

    return tf.while_loop(lambda i: i < tf.shape(steps)[0], body, [tf.constant(0)])


_series_writers = _SeriesWriters()


def _write_records(tag: str, records, encode, full) -> None:
    """Writes (step, values) records of one tag eagerly, the first with `full`
    metadata (a callable making it) if the writer has none for the tag yet."""
    records = list(records)
    writer = _default_writer()
    if records and not _names_sent.known_sent(writer, tag):
        step, values = records.pop(0)
        _write_names_once(tag, tf.constant(encode(values)), step, full)
    if len(records) == 1:
        tf.summary.write(tag, tf.constant(encode(records[0][1])), step=records[0][0])
    elif records:
        _series_writers.write(tag, [step for step, _ in records], [encode(values) for _, values in records])


def write_norm_tables(names: schema.NormTableNames, records) -> None:
    """Writes (step, table) records (numpy tables, see `write_norm_table`) to
    the default summary writer, eagerly, a batch in one call."""
    require_writer("write_norm_tables")
    stored, derived = table_codec.split_stats(names.stats)
    columns = [names.stats.index(s) for s in stored]

    def encode(values) -> bytes:
        values = np.asarray(values, np.float32)
        return table_codec.encode(values[:, columns] if derived else values)

    _write_records(metadata.norm_table_tag(names), records, encode, lambda: metadata.norm_table_metadata(names))


def write_histogram_tables(names: schema.NormTableNames, bins: int, records) -> None:
    """Writes (step, histogram table) records (see `write_histograms`) to the
    default summary writer, eagerly, a batch in one call."""
    require_writer("write_histogram_tables")
    kinds = ("weight", "gradient")
    _write_records(
        metadata.histogram_tag(names, bins),
        records,
        lambda values: table_codec.encode(np.asarray(values, np.float32)),
        lambda: metadata.histogram_metadata(names, kinds, bins),
    )


_tokens = weakref.WeakKeyDictionary()
_next_token = itertools.count()


def _writer_token(writer) -> int:
    """A number for each summary writer, never given to another one (an id
    can be: a later writer may get a closed one's)."""
    if writer not in _tokens:
        _tokens[writer] = next(_next_token)
    return _tokens[writer]


def series_writer(tag: str, columns: Optional[Sequence[int]] = None):
    """A function that writes (steps [k], values [k, ...]) of one tag from
    inside a `tf.function`, to the summary writer that is the default when
    that function is traced: the callback reads its buffers and writes what
    they held in one call. `columns` are those of the last axis to store."""

    def write(steps, values):
        if columns is not None:
            values = tf.gather(values, list(columns), axis=-1)

        def body(i):
            blob = tf.numpy_function(table_codec.encode, [values[i]], tf.string, stateful=False)
            with tf.control_dependencies([tf.summary.write(tag, tf.reshape(blob, []), step=steps[i])]):
                return i + 1

        return tf.while_loop(lambda i: i < tf.shape(steps)[0], body, [tf.constant(0)])

    return write


def sent_series_writers(names: schema.NormTableNames, histogram_names: schema.NormTableNames, bins: int):
    """(key, norm table writer, histogram writer) of `series_writer`s for the
    default summary writer, once it holds the first event (with the names)
    of both series; else None, and the first ones go through
    `write_norm_tables` and `write_histogram_tables`."""
    writer = require_writer("sent_series_writers")
    table_tag, histogram_tag = metadata.norm_table_tag(names), metadata.histogram_tag(histogram_names, bins)
    if not _names_sent.known_sent(writer, table_tag):
        return None
    stored, derived = table_codec.split_stats(names.stats)
    columns = [names.stats.index(s) for s in stored] if derived else None
    histograms = series_writer(histogram_tag) if _names_sent.known_sent(writer, histogram_tag) else None
    key = (_writer_token(writer), table_tag, histogram_tag if histograms is not None else None)
    return key, series_writer(table_tag, columns), histograms


def write_norm_table(names: schema.NormTableNames, values, step) -> tf.Tensor:
    """Writes one norm table to the default summary writer.

    Args:
        names: the table's rows, layers and stats.
        values: a [len(names.variables), len(names.stats)] float32 tensor (or
            a callable returning it, evaluated only if the writer records).
        step: the step to write it at.

    Returns:
        True if written, False if no summary is recorded right now.
    """
    require_writer("write_norm_table")
    stored, derived = table_codec.split_stats(names.stats)
    columns = [names.stats.index(s) for s in stored]

    def stored_values():
        table_values = values() if callable(values) else values
        if derived:
            if isinstance(table_values, np.ndarray):
                table_values = table_values[:, columns]
            else:
                table_values = tf.gather(table_values, columns, axis=1)
        return _encoded(table_values)

    return _write_names_once(
        metadata.norm_table_tag(names),
        stored_values,
        step,
        lambda: metadata.norm_table_metadata(names),
    )


def write_histograms(names: schema.NormTableNames, bins: int, values, step) -> tf.Tensor:
    """Writes one histogram table ([2 kinds, rows, bins + 5]) to the default writer.

    `names` are those of the norm table without its global row.
    """
    require_writer("write_histograms")
    kinds = ("weight", "gradient")
    return _write_names_once(
        metadata.histogram_tag(names, bins),
        lambda: _encoded(values() if callable(values) else values),
        step,
        lambda: metadata.histogram_metadata(names, kinds, bins),
    )
