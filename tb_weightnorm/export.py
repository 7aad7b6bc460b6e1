"""Reads a log directory into pandas, through the same reader as the plugin."""

from __future__ import annotations

import os
import warnings
from typing import Iterator

import numpy as np

from tb_weightnorm import event_files, metadata, reader

COLUMNS = ["run", "step", "wall_time", "layer", "variable", "kind", "stat", "value"]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "tb_weightnorm.load returns a pandas DataFrame, and pandas is not installed. "
            "Install it with: pip install 'tb_weightnorm[pandas]' (or pip install pandas)."
        ) from None
    return pandas


def _data_provider(logdir: str):
    # TensorBoard's Python loader, told to keep every step of our plugin: the
    # same data the plugin would serve.
    from tensorboard.backend.event_processing import data_provider as provider_lib
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return provider_lib.MultiplexerDataProvider(multiplexer, logdir)


def histories(logdir: str) -> Iterator[reader.NormHistory]:
    """The norm history of every run under `logdir` that has one, by run name."""
    if not os.path.isdir(logdir):
        raise FileNotFoundError(
            f"No log directory at {logdir!r}: pass the folder given to "
            "WeightHealthCallback or to tf.summary.create_file_writer."
        )
    from tensorboard import context

    provider = _data_provider(logdir)
    _warn_about_incomplete_records(logdir)
    ctx = context.RequestContext()
    for run in sorted(reader.list_norm_series(provider, ctx, "")):
        history = reader.read_norm_history(provider, ctx, "", run)
        if history is not None:
            yield history


def _warn_about_incomplete_records(logdir: str) -> None:
    """TensorBoard's loader stops at an incomplete last record without a
    word; a run whose writer was killed mid-write ends in one."""
    for tail in event_files.incomplete_records(logdir):
        size = f"{tail.present} of {tail.expected} bytes" if tail.expected else f"{tail.present} bytes"
        warnings.warn(
            f"tb_weightnorm: {tail.path} ends in an incomplete record ({size} at offset {tail.offset}): "
            "its writer was killed while writing it, or is still writing it. Everything before it was "
            "read; the incomplete record was skipped.",
            stacklevel=3,
        )


def load(logdir: str):
    """Loads every logged norm table under `logdir` as a long pandas DataFrame.

    One row per run, step, variable and stat, with columns `run, step,
    wall_time, layer, variable, kind, stat, value`: `kind` is `weight`,
    `gradient` or `update` and `stat` is e.g. `l2` or `nan_count`. Stats that
    were not measured (a variable that got no gradient) are left out.

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).

    Returns:
        A `pandas.DataFrame`.

    Example:

    ```python
    df = tb_weightnorm.load("logs")
    grads = df[(df.kind == "gradient") & (df.stat == "l2")]
    grads.pivot_table(index="step", columns="layer", values="value", aggfunc="max")
    ```
    """
    pandas = _pandas()
    frames = [_frame(pandas, h) for h in histories(logdir)]
    if not frames:
        return pandas.DataFrame({c: pandas.Series(dtype=_dtype(c)) for c in COLUMNS})
    return pandas.concat(frames, ignore_index=True)


def _dtype(column: str) -> str:
    return {"step": "int64", "wall_time": "float64", "value": "float64"}.get(column, "object")


def _frame(pandas, history: reader.NormHistory):
    n_steps, n_vars, n_stats = history.values.shape
    step_idx, var_idx, stat_idx = np.meshgrid(
        np.arange(n_steps), np.arange(n_vars), np.arange(n_stats), indexing="ij"
    )
    values = history.values.astype(np.float64).ravel()
    measured = ~np.isnan(values)
    kinds, stats = zip(*(metadata.split_stat_name(s) for s in history.stats))
    step_idx, var_idx, stat_idx = (a.ravel()[measured] for a in (step_idx, var_idx, stat_idx))
    return pandas.DataFrame(
        {
            "run": history.run,
            "step": history.steps[step_idx],
            "wall_time": history.wall_times[step_idx],
            "layer": np.asarray(history.layers, dtype=object)[var_idx],
            "variable": np.asarray(history.variables, dtype=object)[var_idx],
            "kind": np.asarray(kinds, dtype=object)[stat_idx],
            "stat": np.asarray(stats, dtype=object)[stat_idx],
            "value": values[measured],
        },
        columns=COLUMNS,
    )
