"""Reads the plugin's norm tables back through a TensorBoard data provider.

The plugin's routes and `tb_weightnorm.load` both read through this module, so
they see the same data: whatever TensorBoard's loader kept, decoded one way.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

import numpy as np
from tensorboard.data import provider as provider_lib

from tb_weightnorm import metadata
from tb_weightnorm.history import NormHistory

logger = logging.getLogger(__name__)

# Steps to ask the data provider for: every one it kept.
ALL_STEPS = 1_000_000


def list_norm_series(
    data_provider, ctx, experiment_id: str, run: Optional[str] = None
) -> Dict[str, Dict[str, provider_lib.TensorTimeSeries]]:
    """The norm-table time series of each run (or of one run)."""
    run_tag_filter = provider_lib.RunTagFilter(runs=[run]) if run is not None else None
    listing = data_provider.list_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name=metadata.PLUGIN_NAME,
        run_tag_filter=run_tag_filter,
    )
    return {
        r: {t: s for t, s in tags.items() if t.startswith(metadata.NORM_TABLE_TAG_PREFIX)}
        for r, tags in listing.items()
        if any(t.startswith(metadata.NORM_TABLE_TAG_PREFIX) for t in tags)
    }


def _names(run: str, tag: str, series) -> Optional[metadata.NormTableNames]:
    try:
        names = metadata.norm_table_names(series.plugin_content)
    except metadata.UnreadableMetadata as exc:
        logger.warning("tb_weightnorm: skipping %s of run %r: %s", tag, run, exc)
        return None
    if names is None:
        logger.warning(
            "tb_weightnorm: skipping %s of run %r: its first event, which names the rows, "
            "is missing",
            tag,
            run,
        )
    return names


def read_norm_history(data_provider, ctx, experiment_id: str, run: str) -> Optional[NormHistory]:
    """Every norm table TensorBoard kept for `run`, merged; None if it has none.

    A run may hold several tables per step (two models logged to one writer,
    or a model whose variables changed); their rows are merged. Tables whose
    shape does not match their names are skipped with a warning.
    """
    series = list_norm_series(data_provider, ctx, experiment_id, run).get(run, {})
    named = {tag: n for tag, s in series.items() if (n := _names(run, tag, s)) is not None}
    if not named:
        return None
    data = data_provider.read_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name=metadata.PLUGIN_NAME,
        downsample=ALL_STEPS,
        run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=list(named)),
    ).get(run, {})
    tables: List[Tuple[metadata.NormTableNames, list]] = []
    for tag, names in named.items():
        expected = (len(names.variables), len(names.stats))
        datums = []
        for datum in data.get(tag, []):
            array = datum.numpy
            if array.shape != expected:
                logger.warning(
                    "tb_weightnorm: skipping step %d of %s in run %r: table of shape %s, "
                    "expected %s",
                    datum.step,
                    tag,
                    run,
                    array.shape,
                    expected,
                )
                continue
            datums.append(datum)
        if datums:
            tables.append((names, datums))
    if not tables:
        return None
    return _merge(run, tables)


def _merge(run: str, tables) -> NormHistory:
    variables: Dict[str, int] = {}
    layers: List[str] = []
    stats: Dict[str, int] = {}
    for names, _ in tables:
        for variable, layer in zip(names.variables, names.layers):
            if variable not in variables:
                variables[variable] = len(variables)
                layers.append(layer)
        for stat in names.stats:
            stats.setdefault(stat, len(stats))
    steps = sorted({d.step for _, datums in tables for d in datums})
    step_pos = {s: i for i, s in enumerate(steps)}
    values = np.full((len(steps), len(variables), len(stats)), np.nan, np.float32)
    wall_times = np.zeros(len(steps), np.float64)
    for names, datums in tables:
        rows = np.array([variables[v] for v in names.variables], dtype=np.intp)
        cols = np.array([stats[s] for s in names.stats], dtype=np.intp)
        # Later events win: a run restarted from a checkpoint logs a step again.
        for datum in datums:
            s = step_pos[datum.step]
            values[s][np.ix_(rows, cols)] = datum.numpy
            wall_times[s] = max(wall_times[s], datum.wall_time)
    return NormHistory(
        run=run,
        steps=np.asarray(steps, dtype=np.int64),
        wall_times=wall_times,
        variables=tuple(variables),
        layers=tuple(layers),
        stats=tuple(stats),
        values=values,
        gradient_note="; ".join(sorted({n.gradient_note for n, _ in tables if n.gradient_note})),
    )
