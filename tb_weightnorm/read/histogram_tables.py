"""Reads the plugin's weight and gradient histograms back through a
TensorBoard data provider.

A histogram table is one float32 tensor per logged step of shape
[kinds, variables, bins + 5]: per variable the finite min and max, `bins`
bucket counts, then the NaN, -Inf and +Inf counts (see
`histograms.histogram_columns`). Its names come with the first event of the
time series, as for norm tables.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
from tensorboard.data import provider as provider_lib

from tb_weightnorm.read import norm_tables
from tb_weightnorm.wire import metadata

# The columns of a histogram row around its buckets.
LEADING = ("min", "max")
TRAILING = ("nan_count", "neg_inf_count", "pos_inf_count")


@dataclasses.dataclass(frozen=True)
class HistogramNames:
    """What a histogram table's rows, kinds and buckets are."""

    variables: Tuple[str, ...]
    layers: Tuple[str, ...]
    kinds: Tuple[str, ...]
    bins: int

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (len(self.kinds), len(self.variables), self.bins + len(LEADING) + len(TRAILING))


def histogram_names(content: bytes) -> Optional[HistogramNames]:
    """The names in a histogram table's plugin data; None if they were omitted.

    Raises:
        metadata.UnreadableMetadata: if the data is unreadable, not a histogram
            table, or inconsistent.
    """
    data = metadata.parse_plugin_data(content)
    if data.WhichOneof("content") != "histograms":
        raise metadata.UnreadableMetadata("plugin data is not a histogram table")
    table = data.histograms
    if table.names_omitted:
        return None
    if len(table.variables) != len(table.layers):
        raise metadata.UnreadableMetadata(
            f"{len(table.variables)} variable names but {len(table.layers)} layer names"
        )
    if table.bins < 1:
        raise metadata.UnreadableMetadata(f"histogram table with {table.bins} bins")
    return HistogramNames(tuple(table.variables), tuple(table.layers), tuple(table.kinds), table.bins)


@dataclasses.dataclass(frozen=True)
class HistogramTable:
    """Every logged step of one histogram time series.

    `values[s, k, v]` is the row (min, max, buckets..., nan, -inf, +inf) of
    kind `names.kinds[k]` of variable `names.variables[v]` at `steps[s]`.
    """

    names: HistogramNames
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class VariableHistograms:
    """One variable's histograms of one kind over steps (possibly of several
    tables, so `rows[i]` may differ in length: its own bins + 5)."""

    layer: str
    steps: np.ndarray
    wall_times: np.ndarray
    rows: Tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class HistogramHistory:
    """All histogram tables of one run."""

    run: str
    tables: Tuple[HistogramTable, ...]

    def variables(self) -> List[str]:
        """Every variable with a histogram, in the order of the tables."""
        return list(dict.fromkeys(v for t in self.tables for v in t.names.variables))

    def of(self, variable: str, kind: str) -> Optional[VariableHistograms]:
        """The histograms of `variable` of `kind` ("weight" or "gradient") over
        steps; None if none was logged. A step logged twice keeps its latest."""
        found: Dict[int, Tuple[float, np.ndarray]] = {}
        layer = ""
        for table in self.tables:
            names = table.names
            if variable not in names.variables or kind not in names.kinds:
                continue
            v, k = names.variables.index(variable), names.kinds.index(kind)
            layer = names.layers[v]
            rows = table.values[:, k, v]
            for step, wall_time, row in zip(table.steps.tolist(), table.wall_times.tolist(), rows):
                if step not in found or wall_time >= found[step][0]:
                    found[step] = (wall_time, row)
        if not found:
            return None
        steps = sorted(found)
        return VariableHistograms(
            layer=layer,
            steps=np.asarray(steps, dtype=np.int64),
            wall_times=np.asarray([found[s][0] for s in steps], dtype=np.float64),
            rows=tuple(found[s][1] for s in steps),
        )


def read_histogram_history(
    data_provider,
    ctx,
    experiment_id: str,
    run: str,
    series: Mapping[str, provider_lib.TensorTimeSeries],
) -> Optional[HistogramHistory]:
    """Every histogram table TensorBoard kept for `run`; None if it has none.

    Args:
        series: the run's histogram time series ({tag: series}), as listed.

    Tables and steps whose shape does not match their names are skipped with
    a warning.
    """
    named = norm_tables.readable_names(run, series, histogram_names)
    tables = [
        HistogramTable(
            names=names,
            steps=np.asarray([d.step for d in datums], dtype=np.int64),
            wall_times=np.asarray([d.wall_time for d in datums], dtype=np.float64),
            values=np.stack([d.values for d in datums]),
        )
        for names, datums in norm_tables.read_checked(
            data_provider, ctx, experiment_id, run, named, lambda n: n.shape
        )
    ]
    if not tables:
        return None
    return HistogramHistory(run=run, tables=tuple(tables))
