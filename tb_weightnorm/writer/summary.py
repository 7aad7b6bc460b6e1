"""Writes the plugin's summaries, shaped like `tf.summary.*`.

`log()` is the API for custom training loops; the Keras callback writes through
the same functions, so both produce the same wire format.
"""

from __future__ import annotations

import itertools
import json
import weakref
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import summary_ops_v2

from tb_weightnorm import schema
from tb_weightnorm.graph import kernel_grid, model_variables, stats, table, tf_state
from tb_weightnorm.graph.tf_state import plain_variable
from tb_weightnorm.wire import metadata, table_codec
from tb_weightnorm.writer.options import LogOptions, every


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


def _require_writer(what: str):
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
    _require_writer("write_norm_tables")
    stored, derived = table_codec.split_stats(names.stats)
    columns = [names.stats.index(s) for s in stored]

    def encode(values) -> bytes:
        values = np.asarray(values, np.float32)
        return table_codec.encode(values[:, columns] if derived else values)

    _write_records(metadata.norm_table_tag(names), records, encode, lambda: metadata.norm_table_metadata(names))


def write_histogram_tables(names: schema.NormTableNames, bins: int, records) -> None:
    """Writes (step, histogram table) records (see `write_histograms`) to the
    default summary writer, eagerly, a batch in one call."""
    _require_writer("write_histogram_tables")
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
    writer = _require_writer("sent_series_writers")
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
    _require_writer("write_norm_table")
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
    _require_writer("write_histograms")
    kinds = ("weight", "gradient")
    return _write_names_once(
        metadata.histogram_tag(names, bins),
        lambda: _encoded(values() if callable(values) else values),
        step,
        lambda: metadata.histogram_metadata(names, kinds, bins),
    )


def _grid_blobs(kernel: np.ndarray, kind: str, max_filters: int, rgb_input: bool) -> np.ndarray:
    grid = kernel_grid.kernel_grid(np.asarray(kernel), kind=kind, max_filters=max_filters, rgb_input=rgb_input)
    png = tf.io.encode_png(grid.image).numpy()
    info = json.dumps({"scale": grid.scale, "filters_shown": grid.filters_shown}).encode()
    height, width = grid.image.shape[:2]
    return np.array([str(width).encode(), str(height).encode(), png, info], dtype=object)


def _filters_total(kind: str, shape) -> int:
    """Output units of a conv kernel (Keras layouts, channels last)."""
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        return int(shape[-2]) * int(shape[-1])  # each input channel x depth multiplier
    if kind == "Conv2DTranspose":
        return int(shape[-2])  # [kh, kw, out, in]
    return int(shape[-1])


def write_kernel_grid(conv: model_variables.ConvKernel, step, *, max_filters: int = 64) -> tf.Tensor:
    """Writes the grid image of one conv kernel's filters (a BLOB_SEQUENCE).

    Works eagerly and inside `tf.function` (the image is drawn on the host).
    """
    _require_writer("write_kernel_grid")
    kernel = tf.convert_to_tensor(conv.variable)
    mode = "rgb" if conv.rgb_input else "diverging"

    def blobs():
        return tf.numpy_function(
            lambda k: _grid_blobs(k, conv.kind, max_filters, conv.rgb_input), [kernel], tf.string, stateful=False
        )

    md = metadata.kernel_grid_metadata(conv.layer, conv.path, mode, _filters_total(conv.kind, kernel.shape))
    return tf.summary.write(metadata.kernel_grid_tag(conv.path), lambda: tf.reshape(blobs(), [4]), step=step, metadata=md)


class _WeightCopies:
    """Copies of variables logged with `log()`, kept between calls: W_0 (taken
    the first time a variable is logged) or W at the previous call."""

    def __init__(self, name: str):
        self._name = name
        # Keyed by id: Keras variables are not hashable. An entry goes when its
        # variable does.
        self._copies = {}

    def of(self, variables) -> dict:
        """id(variable) -> (copy, seen flag), both tf.Variables, made on first use."""
        out = {}
        for variable in variables:
            key = id(variable)
            entry = self._copies.get(key)
            if entry is None:
                with tf.init_scope():
                    value = tf.convert_to_tensor(variable)
                copy = plain_variable(value, self._name)
                seen = plain_variable(False, self._name + "_seen")
                entry = self._copies[key] = (copy, seen)
                weakref.finalize(variable, self._copies.pop, key, None)
            out[key] = entry
        return out


_initial_weights = _WeightCopies("initial")
_previous_weights = _WeightCopies("previous")


def _due(step, every_n: int):
    return tf.equal(tf.math.floormod(tf.cast(step, tf.int64), every_n), 0)


# Only Python conditions on Python values inside: AutoGraph, which converts
# what a user's tf.function calls, would rewrite nothing here, and converting
# this module and those it calls took seconds of the first trace.
@tf.autograph.experimental.do_not_convert
def log(
    model_or_variables,
    *,
    gradients: Optional[Sequence] = None,
    step=None,
    histogram_every_n_steps: int = 0,
    kernel_grid_every_n_steps: int = 0,
    options: Optional[LogOptions] = None,
    **option_kwargs,
) -> tf.Tensor:
    """Logs the health of a model's weights (and gradients) at one step.

    Writes to the default `tf.summary` writer, the way `tf.summary.scalar`
    does; works eagerly and inside `tf.function`. For `model.fit`, use
    `WeightHealthCallback`: it also logs the update each step applied.

    Args:
        model_or_variables: a built `keras.Model` (its variables are logged,
            LSTM/GRU ones per gate) or a list of variables.
        gradients: optional gradients, one per trainable variable in the order
            of `model.trainable_variables` (or of the list given), as
            `tape.gradient` returns them; None entries are logged as "no
            gradient"; `tf.IndexedSlices` are read without densifying.
        step: the step to log at; defaults to
            `tf.summary.experimental.get_step()` (inside `tf.function`, set it
            to a variable, as for `tf.summary.scalar`).
        histogram_every_n_steps: also write weight (and gradient) histograms
            when `step` is a multiple of this; 0 never.
        kernel_grid_every_n_steps: also write conv kernel grid images when
            `step` is a multiple of this; 0 never.
        options: a `LogOptions`; or pass its fields as keywords (`include`,
            `exclude`, `trainable_only`, `stats`, `split_gates`,
            `histogram_bins`, `max_kernel_filters`, `keep_initial_weights`).

    Returns:
        True if the norm table was written, False if the writer is not
        recording right now.

    Raises:
        RuntimeError: with no default summary writer.
        ValueError: with no step, or gradients that do not match the variables.
        TypeError: for arguments of the wrong type.

    Example:

    ```python
    writer = tf.summary.create_file_writer("logs/run1")

    @tf.function
    def train_step(x, y, step):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, step=step, histogram_every_n_steps=100)
    ```
    """
    options = LogOptions.resolve(options, option_kwargs, "tb_weightnorm.log")
    every("histogram_every_n_steps", histogram_every_n_steps)
    every("kernel_grid_every_n_steps", kernel_grid_every_n_steps)
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError(
                "tb_weightnorm.log: no step. Pass `step=...` or set one with "
                "`tf.summary.experimental.set_step(step)`."
            )
    _check_step(step)
    _require_writer("log")
    rows = model_variables.rows_for(model_or_variables, options)
    trainable = _trainable_in_gradient_order(model_or_variables)
    by_variable = None
    if gradients is not None:
        gradients = _checked_gradients(gradients, trainable)
        replicas = tf_state.replicas_in_sync()
        if replicas > 1:
            # Keras applies the replicas' gradients summed: log those. Every
            # replica joins the sum; only replica 0 of the chief writes.
            gradients = tf_state.sum_over_replicas(gradients)
        by_variable = {id(v): g for v, g in zip(trainable, gradients) if g is not None}
    if not (tf_state.is_first_replica() and tf_state.is_chief()):
        return tf.constant(False)
    unique = list(table.unique_variables(rows).values())
    keep_initial = options.keeps_initial_weights(table.element_count(rows))
    # The same budget decides the copy for the update (W now - W at the
    # previous call: with log() every step, exactly that step's update).
    spec = table.make_spec(
        rows,
        gradients=gradients is not None,
        updates=keep_initial,
        dist_init=keep_initial,
        stats=options.stats,
        gradient_note=(
            f"summed over {tf_state.replicas_in_sync()} replicas, as applied"
            if gradients is not None and tf_state.replicas_in_sync() > 1
            else ""
        ),
    )
    initial = {k: c for k, (c, _) in _initial_weights.of(unique).items()} if keep_initial else {}
    previous = _previous_weights.of(unique) if keep_initial else {}
    weights = {id(v): stats.value_of(v) for v in unique}
    values = table.compute(
        spec,
        weights=weights,
        gradients=by_variable,
        initial={k: tf.convert_to_tensor(c) for k, c in initial.items()},
        before={k: tf.convert_to_tensor(c) for k, (c, _) in previous.items()},
        all_gradients=gradients or (),
        all_variables=trainable,
    )
    if previous:
        # No update on the first call: there is no previous weight yet.
        had_previous = tf.reduce_all(tf.stack([seen.read_value() for _, seen in previous.values()]))
        update_columns = tf.constant([s.startswith("update/") for s in spec.stats])
        values = tf.where(tf.logical_and(update_columns, tf.logical_not(had_previous)), float("nan"), values)
    written = write_norm_table(spec.names(), values, step)
    with tf.control_dependencies([values]):
        for variable in unique:
            if id(variable) in previous:
                copy, seen = previous[id(variable)]
                copy.assign(weights[id(variable)])
                seen.assign(True)
    if histogram_every_n_steps:
        hist_names = table.make_spec(rows, gradients=False, updates=False, dist_init=False).names()

        def write_hist():
            value = table.histogram_values(rows, weights, by_variable, options.histogram_bins)
            return write_histograms(hist_names, options.histogram_bins, value, step)

        tf.cond(_due(step, histogram_every_n_steps), write_hist, lambda: tf.constant(False))
    if kernel_grid_every_n_steps:
        convs = model_variables.conv_kernels(model_or_variables, include=options.include, exclude=options.exclude)

        def write_grids():
            for conv in convs:
                write_kernel_grid(conv, step, max_filters=options.max_kernel_filters)
            return tf.constant(True)

        if convs:
            tf.cond(_due(step, kernel_grid_every_n_steps), write_grids, lambda: tf.constant(False))
    return written


def _check_step(step) -> None:
    """A step is an integer: tf.summary would fail on anything else with a
    message about tensor conversion."""
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        return
    dtype = getattr(step, "dtype", None)
    if dtype is not None and tf.as_dtype(dtype).is_integer:
        return
    what = f"a {tf.as_dtype(dtype).name} tensor" if dtype is not None else f"{type(step).__name__} {step!r}"
    raise TypeError(
        f"tb_weightnorm.log: step must be an integer: a Python int, or an integer tensor or variable "
        f"(e.g. tf.Variable(0, dtype=tf.int64) or optimizer.iterations); got {what}."
        + (" Cast it with tf.cast(step, tf.int64)." if dtype is not None else "")
    )


def _checked_gradients(gradients, trainable: list) -> list:
    """The gradients as tensors (None and IndexedSlices kept), after checking
    that they are one per trainable variable, of its shape."""
    if isinstance(gradients, (dict, str, bytes)) or not isinstance(gradients, (list, tuple)):
        raise TypeError(
            "tb_weightnorm.log: gradients must be a list with one gradient (or None) per trainable "
            "variable, in the order of `model.trainable_variables`, as `tape.gradient(loss, "
            f"model.trainable_variables)` returns it; got a {type(gradients).__name__}."
        )
    if len(gradients) != len(trainable):
        raise ValueError(
            f"tb_weightnorm.log: got {len(gradients)} gradients for {len(trainable)} trainable "
            "variables. Pass the gradients of `model.trainable_variables`, in that order, as "
            "`tape.gradient(loss, model.trainable_variables)` returns them."
        )
    checked = []
    for i, (gradient, variable) in enumerate(zip(gradients, trainable)):
        name = getattr(variable, "path", None) or getattr(variable, "name", "?")
        if gradient is None or isinstance(gradient, tf.IndexedSlices):
            checked.append(gradient)
            continue
        try:
            tensor = tf.convert_to_tensor(gradient)
        except (TypeError, ValueError):
            tensor = None
        if tensor is None or not (tensor.dtype.is_floating or tensor.dtype.is_integer):
            raise TypeError(
                f"tb_weightnorm.log: gradient {i} (of {name}) is {type(gradient).__name__} "
                f"{str(gradient)[:80]!r}, not a tensor of numbers. Pass what tape.gradient returns."
            )
        if not tensor.shape.is_compatible_with(tf.TensorShape(variable.shape)):
            raise ValueError(
                f"tb_weightnorm.log: gradient {i} has shape {tuple(tensor.shape)} but its variable {name} "
                f"has shape {tuple(variable.shape)}. Pass the gradients in the order of "
                "`model.trainable_variables` (or of the variables given)."
            )
        checked.append(tensor)
    return checked


def _trainable_in_gradient_order(model_or_variables) -> list:
    if isinstance(model_or_variables, (list, tuple)):
        return list(model_or_variables)  # gradients follow the list given
    return list(getattr(model_or_variables, "trainable_variables", []))
