"""Reads a log directory into pandas, through the same reader as the plugin:
the norm tables (`load`), the histograms (`load_histograms`) and the findings
of the diagnosis (`load_findings`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from tb_weightnorm import diagnosis, schema
from tb_weightnorm.read import histogram_tables, norm_tables
from tb_weightnorm.read.history import NormHistory
from tb_weightnorm.wire import event_files, metadata

COLUMNS = ["run", "step", "wall_time", "layer", "variable", "kind", "stat", "value"]
KEYS = ["run", "step", "wall_time", "layer", "variable"]
HISTOGRAM_COLUMNS = KEYS + ["kind", "lower", "upper", "count"]
FINDING_COLUMNS = ["run"] + [f.name for f in dataclasses.fields(diagnosis.Finding)]
LAYOUTS = ("long", "wide")

_NUMBER_COLUMNS = {
    "step": "int64", "wall_time": "float64", "value": "float64", "lower": "float64",
    "upper": "float64", "count": "int64", "first_step": "int64", "last_step": "int64",
    "threshold": "float64", "ongoing": "bool",
}


class NoWeightHealthData(ValueError):
    """A log directory, or the runs chosen in it, without the Weight Health
    data asked for. The message says what to do."""


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


class LogDir:
    """A log directory, loaded once, and its runs with Weight Health data.

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).

    Raises:
        FileNotFoundError: if `logdir` is not a directory.

    Example:

    ```python
    logs = LogDir("logs")
    for run in logs.runs(["baseline*"]):
        print(run, logs.norms(run).steps[-1])
    ```
    """

    def __init__(self, logdir: str):
        logdir = os.fspath(logdir)
        if not os.path.isdir(logdir):
            raise FileNotFoundError(
                f"No log directory at {logdir!r}: pass the folder given to "
                "WeightHealthCallback or to tf.summary.create_file_writer."
            )
        from tensorboard import context

        self.path = logdir
        self._provider = _data_provider(logdir)
        _warn_about_incomplete_records(logdir)
        self._ctx = context.RequestContext()
        self._listing = norm_tables.list_plugin_tensors(self._provider, self._ctx, "")

    def runs(self, patterns: Optional[Sequence[str]] = None, *, required: bool = False) -> List[str]:
        """The runs with a norm table, sorted; only those whose name matches
        one of the glob `patterns`, if any.

        Args:
            required: raise `NoWeightHealthData` rather than return no run.
        """
        found = sorted(r for r, tags in self._listing.items() if norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX))
        chosen = [r for r in found if not patterns or any(fnmatch.fnmatchcase(r, p) for p in patterns)]
        if required and not found:
            raise NoWeightHealthData(
                f"No Weight Health data under {self.path!r}. Log it during training with "
                "tb_weightnorm.WeightHealthCallback(LOGDIR) in model.fit, or "
                "tb_weightnorm.log(model, gradients=..., step=...) in a custom training loop, "
                "then point this command at the same LOGDIR."
            )
        if required and not chosen:
            raise NoWeightHealthData(
                f"no run under {self.path!r} matches --run {' '.join(patterns)}; runs with "
                f"Weight Health data: {', '.join(found)}"
            )
        return chosen

    def norms(self, run: str) -> Optional[NormHistory]:
        """Every norm table of `run`, merged; None if none is readable."""
        series = norm_tables.with_prefix(self._listing.get(run, {}), metadata.NORM_TABLE_TAG_PREFIX)
        return norm_tables.read_norm_history(self._provider, self._ctx, "", run, series)

    def histograms(self, run: str) -> Optional[histogram_tables.HistogramHistory]:
        """Every histogram table of `run`; None if it has none."""
        series = norm_tables.with_prefix(self._listing.get(run, {}), metadata.HISTOGRAM_TAG_PREFIX)
        if not series:
            return None
        return histogram_tables.read_histogram_history(self._provider, self._ctx, "", run, series)


def histories(logdir: str, runs: Optional[Sequence[str]] = None) -> Iterator[NormHistory]:
    """The norm history of every run under `logdir` that has one, by run name;
    of the runs matching one of the glob patterns `runs`, if given."""
    logs = LogDir(logdir)
    for run in logs.runs(runs):
        history = logs.norms(run)
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


def load(logdir: str, runs: Optional[Sequence[str]] = None, *, layout: str = "long"):
    """Loads every logged norm table under `logdir` as a pandas DataFrame.

    In the `long` layout (the default), one row per run, step, variable and
    stat, with columns `run, step, wall_time, layer, variable, kind, stat,
    value`: `kind` is `weight`, `gradient` or `update` and `stat` is e.g. `l2`
    or `nan_count`. Stats that were not measured (a variable that got no
    gradient) are left out.

    In the `wide` layout, one row per run, step and variable, with columns
    `run, step, wall_time, layer, variable` and then one per stat, named
    `kind/stat` (`weight/l2`, `gradient/dead_fraction`, ...); NaN where a
    stat was not measured.

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).
        runs: glob patterns of the run names to load (`["baseline*"]`); all
            runs when None.
        layout: `"long"` or `"wide"`.

    Returns:
        A `pandas.DataFrame`.

    Example:

    ```python
    df = tb_weightnorm.load("logs")
    grads = df[(df.kind == "gradient") & (df.stat == "l2")]
    grads.pivot_table(index="step", columns="layer", values="value", aggfunc="max")
    wide = tb_weightnorm.load("logs", layout="wide")
    wide.pivot_table(index="step", columns="variable", values="weight/l2")
    ```
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    return norms_frame(list(histories(logdir, runs)), layout)


def norms_frame(runs: Sequence[NormHistory], layout: str = "long"):
    """The norm tables of `runs` as `load` returns them."""
    pandas = _pandas()
    frame = _long_frame if layout == "long" else _wide_frame
    frames = [frame(pandas, h) for h in runs]
    if frames:
        return pandas.concat(frames, ignore_index=True)
    columns = COLUMNS if layout == "long" else KEYS
    return _empty(pandas, columns)


def _empty(pandas, columns: Sequence[str]):
    return pandas.DataFrame({c: pandas.Series(dtype=_NUMBER_COLUMNS.get(c, "object")) for c in columns})


def _long_frame(pandas, history: NormHistory):
    n_steps, n_vars, n_stats = history.values.shape
    step_idx, var_idx, stat_idx = np.meshgrid(
        np.arange(n_steps), np.arange(n_vars), np.arange(n_stats), indexing="ij"
    )
    values = history.values.astype(np.float64).ravel()
    measured = ~np.isnan(values)
    kinds, stats = zip(*(schema.split_stat_name(s) for s in history.stats))
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


def _wide_frame(pandas, history: NormHistory):
    n_steps, n_vars, n_stats = history.values.shape
    values = history.values.astype(np.float64).reshape(n_steps * n_vars, n_stats)
    # A variable absent from a step (two tables merged) has no row there.
    logged = ~np.isnan(values).all(axis=1)
    step_idx, var_idx = (a.ravel()[logged] for a in np.meshgrid(np.arange(n_steps), np.arange(n_vars), indexing="ij"))
    columns: Dict[str, object] = {
        "run": history.run,
        "step": history.steps[step_idx],
        "wall_time": history.wall_times[step_idx],
        "layer": np.asarray(history.layers, dtype=object)[var_idx],
        "variable": np.asarray(history.variables, dtype=object)[var_idx],
    }
    columns.update(zip(history.stats, values[logged].T))
    return pandas.DataFrame(columns, columns=KEYS + list(history.stats))


def load_histograms(logdir: str, runs: Optional[Sequence[str]] = None):
    """Loads every logged weight and gradient histogram under `logdir` as a
    long pandas DataFrame.

    One row per run, step, variable, kind and bucket, with columns `run, step,
    wall_time, layer, variable, kind, lower, upper, count`. A finite bucket
    holds the values in [lower, upper) (the last one also its upper edge;
    a tensor whose finite values are all equal has them in its middle bucket,
    whose edges are then all that value). The NaN, −Inf and +Inf values of a
    histogram are counted in three rows of their own, with lower = upper =
    NaN, −inf and +inf; a histogram without any finite value has only those.
    The counts of a histogram add up to its tensor's size.

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).
        runs: glob patterns of the run names to load; all runs when None.

    Returns:
        A `pandas.DataFrame`.

    Example:

    ```python
    h = tb_weightnorm.load_histograms("logs")
    kernel = h[(h.variable == "model/dense/kernel") & (h.kind == "gradient")]
    kernel[~np.isfinite(kernel.lower)].groupby("step")["count"].sum()  # NaN/Inf per step
    ```
    """
    logs = LogDir(logdir)
    return histograms_frame([h for h in map(logs.histograms, logs.runs(runs)) if h is not None])


def histograms_frame(runs: Sequence[histogram_tables.HistogramHistory]):
    """The histograms of `runs` as `load_histograms` returns them."""
    pandas = _pandas()
    frames = [_histogram_frame(pandas, h.run, t) for h in runs for t in h.tables]
    if frames:
        return pandas.concat(frames, ignore_index=True)
    return _empty(pandas, HISTOGRAM_COLUMNS)


# The edges of the rows of non-finite counts, in the order a histogram row stores them.
_NON_FINITE_EDGES = np.array([np.nan, -np.inf, np.inf])


def _histogram_frame(pandas, run: str, table: histogram_tables.HistogramTable):
    names = table.names
    bins = names.bins
    steps, kinds, variables = table.values.shape[:3]
    rows = table.values.reshape(steps * kinds * variables, -1)
    low, high = rows[:, 0].astype(np.float32), rows[:, 1].astype(np.float32)
    # The edges as the histograms were bucketed: min + (max - min) * k / bins in float32.
    k = np.arange(bins + 1, dtype=np.float32)
    edges = (low[:, None] + (high - low)[:, None] * k / np.float32(bins)).astype(np.float64)
    lower = np.concatenate([edges[:, :-1], np.broadcast_to(_NON_FINITE_EDGES, (len(rows), 3))], axis=1)
    upper = np.concatenate([edges[:, 1:], np.broadcast_to(_NON_FINITE_EDGES, (len(rows), 3))], axis=1)
    counts = rows[:, 2:].astype(np.float64)
    # Buckets of a histogram with no finite value have no edges: leave them out,
    # so that a NaN edge always means the row of NaN counts.
    kept = np.ones(counts.shape, bool)
    kept[:, :bins] = np.isfinite(low)[:, None]
    step_idx, kind_idx, var_idx = np.meshgrid(np.arange(steps), np.arange(kinds), np.arange(variables), indexing="ij")
    repeat = kept.sum(axis=1)
    step_idx, kind_idx, var_idx = (np.repeat(a.ravel(), repeat) for a in (step_idx, kind_idx, var_idx))
    return pandas.DataFrame(
        {
            "run": run,
            "step": table.steps[step_idx],
            "wall_time": table.wall_times[step_idx],
            "layer": np.asarray(names.layers, dtype=object)[var_idx],
            "variable": np.asarray(names.variables, dtype=object)[var_idx],
            "kind": np.asarray(names.kinds, dtype=object)[kind_idx],
            "lower": lower[kept],
            "upper": upper[kept],
            "count": counts[kept].astype(np.int64),
        },
        columns=HISTOGRAM_COLUMNS,
    )


def load_findings(
    logdir: str,
    runs: Optional[Sequence[str]] = None,
    thresholds: Optional[diagnosis.Thresholds] = None,
):
    """The findings of the diagnosis of every run under `logdir` (what the tab
    and `tb-weightnorm report` show) as a pandas DataFrame.

    One row per finding, most severe first within a run, with columns `run`
    and the fields of `tb_weightnorm.diagnosis.Finding`: `rule, severity,
    layer, variable, first_step, last_step, value, threshold, message,
    ongoing`.

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).
        runs: glob patterns of the run names to diagnose; all runs when None.
        thresholds: the diagnosis thresholds; the defaults when None.

    Returns:
        A `pandas.DataFrame`.

    Example:

    ```python
    f = tb_weightnorm.load_findings("logs")
    f[f.severity == "critical"][["run", "rule", "layer", "first_step"]]
    ```
    """
    return findings_frame(list(histories(logdir, runs)), thresholds)


def findings_frame(runs: Sequence[NormHistory], thresholds: Optional[diagnosis.Thresholds] = None):
    """The findings of `runs` as `load_findings` returns them."""
    pandas = _pandas()
    rows = [{"run": h.run, **f.to_dict()} for h in runs for f in diagnosis.diagnose(h, thresholds)]
    if not rows:
        return _empty(pandas, FINDING_COLUMNS)
    frame = pandas.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.astype({"value": "float64", "threshold": "float64"})
