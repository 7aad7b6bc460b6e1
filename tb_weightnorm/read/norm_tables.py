"""Reads the plugin's norm tables back through a TensorBoard data provider.

The plugin's routes and `tb_weightnorm.load` both read through this module, so
they see the same data: whatever TensorBoard's loader kept, decoded one way.
The listing and checked-reading helpers here serve the histogram reader too.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Hashable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

import numpy as np
from tensorboard.data import provider as provider_lib

from tb_weightnorm import schema
from tb_weightnorm.read.history import NormHistory
from tb_weightnorm.wire import metadata, table_codec

logger = logging.getLogger(__name__)

# Steps to ask the data provider for: every one it kept.
ALL_STEPS = 1_000_000

T = TypeVar("T")
N = TypeVar("N")


def list_plugin_tensors(
    data_provider, ctx, experiment_id: str, runs: Optional[Sequence[str]] = None
) -> Dict[str, Dict[str, provider_lib.TensorTimeSeries]]:
    """Every tensor time series of the plugin (norm tables and histograms),
    by run and tag; of the given runs only, if any. A listing: no tensor is read."""
    run_tag_filter = provider_lib.RunTagFilter(runs=list(runs)) if runs is not None else None
    return data_provider.list_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name=metadata.PLUGIN_NAME,
        run_tag_filter=run_tag_filter,
    )


def with_prefix(series: Mapping[str, T], prefix: str) -> Dict[str, T]:
    """The time series of `series` ({tag: series}) whose tag starts with `prefix`."""
    return {tag: s for tag, s in series.items() if tag.startswith(prefix)}


def list_norm_series(
    data_provider, ctx, experiment_id: str, run: Optional[str] = None
) -> Dict[str, Dict[str, provider_lib.TensorTimeSeries]]:
    """The norm-table time series of each run (or of one run)."""
    listing = list_plugin_tensors(data_provider, ctx, experiment_id, None if run is None else [run])
    norms = {r: with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX) for r, tags in listing.items()}
    return {r: tags for r, tags in norms.items() if tags}


def warn_once(key: Hashable, message: str, *args) -> None:
    """Logs a warning about the data the first time `key` is seen: the tab
    asks for the same run every few seconds, and one warning per problem
    (per time series, not per step or request) is enough."""
    if key in _warned:
        return
    if len(_warned) >= _MAX_WARNED:
        # Past this many problems, the log has made the point.
        logger.debug(message, *args)
        return
    _warned.add(key)
    logger.warning(message, *args)


_warned: set = set()
_MAX_WARNED = 10_000
# Steps named in the one warning about a series' unreadable steps.
_EXAMPLES = 3


def warn_skipped_steps(run: str, tag: str, skipped: Sequence[Tuple[int, str]], total: int) -> None:
    """The one warning about the unreadable steps of time series `tag`:
    how many were skipped of `total`, and why, for the first few."""
    if not skipped:
        return
    reasons = "; ".join(f"step {step}: {reason}" for step, reason in skipped[:_EXAMPLES])
    if len(skipped) > _EXAMPLES:
        reasons += f"; and {len(skipped) - _EXAMPLES} more"
    warn_once(
        ("steps", run, tag),
        "tb_weightnorm: skipping %d of the %d steps of %s in run %r, which cannot be read (%s); "
        "the other steps are shown",
        len(skipped),
        total,
        tag,
        run,
        reasons,
    )


def readable_names(
    run: str, series: Mapping[str, provider_lib.TensorTimeSeries], parse: Callable[[bytes], Optional[N]]
) -> Dict[str, N]:
    """The names of each time series of `series` ({tag: series}), read from
    its metadata by `parse`. A series whose metadata is unreadable, or whose
    first event (the one naming the rows) was lost, is skipped with a warning.
    """
    named: Dict[str, N] = {}
    for tag, s in series.items():
        try:
            names = parse(s.plugin_content)
        except metadata.UnreadableMetadata as exc:
            warn_once(("names", run, tag), "tb_weightnorm: skipping %s of run %r: %s", tag, run, exc)
            continue
        if names is None:
            warn_once(
                ("names", run, tag),
                "tb_weightnorm: skipping %s of run %r: its first event, which names the rows, "
                "is missing",
                tag,
                run,
            )
            continue
        named[tag] = names
    return named


def norm_table_names(
    run: str, series: Mapping[str, provider_lib.TensorTimeSeries]
) -> Dict[str, schema.NormTableNames]:
    """The names of each norm table series of `series` ({tag: series}) that
    can be read: as `readable_names`, and skipping (with a warning) a table
    with a column that is neither stored nor computable from those stored."""
    named = {}
    for tag, names in readable_names(run, series, metadata.norm_table_names).items():
        try:
            table_codec.with_derived(np.zeros((0, len(names.stored_stats)), np.float32), names.stored_stats, names.stats)
        except table_codec.CorruptTable as exc:
            warn_once(("names", run, tag), "tb_weightnorm: skipping %s of run %r: %s", tag, run, exc)
            continue
        named[tag] = names
    return named


class TableDatum(NamedTuple):
    """One logged step of a table, decoded."""

    step: int
    wall_time: float
    values: np.ndarray  # float32


def read_checked(
    data_provider,
    ctx,
    experiment_id: str,
    run: str,
    named: Mapping[str, N],
    shape_of: Callable[[N], Tuple[int, ...]],
    complete: Optional[Callable[[N, np.ndarray], np.ndarray]] = None,
) -> List[Tuple[N, List[TableDatum]]]:
    """Every kept step of the time series `named` ({tag: names}), each with
    its names, decoded to float32 arrays; steps that do not decode to the
    shape `shape_of(names)` are skipped (one warning per series), and series
    left with no step are left out.

    Args:
        shape_of: the shape a step's stored values have.
        complete: turns the stored values into the table (adds the columns
            computed on reading); None keeps them as they are.
    """
    if not named:
        return []
    data = _read_tensors(data_provider, ctx, experiment_id, run, list(named))
    out = []
    for tag, names in named.items():
        expected = tuple(shape_of(names))
        datums, skipped = [], []
        for datum in data.get(tag, []):
            try:
                values = decoded_values(datum.numpy, expected)
                if complete is not None:
                    values = complete(names, values)
            except table_codec.CorruptTable as exc:
                skipped.append((int(datum.step), str(exc)))
                continue
            datums.append(TableDatum(int(datum.step), wall_time(datum.wall_time), values))
        warn_skipped_steps(run, tag, skipped, len(datums) + len(skipped))
        if datums:
            out.append((names, datums))
    return out


def wall_time(value: float) -> float:
    """An event's wall time; NaN (JSON null) for one that is not a time."""
    value = float(value)
    return value if np.isfinite(value) else float("nan")


def _read_tensors(data_provider, ctx, experiment_id: str, run: str, tags: List[str]) -> Dict[str, list]:
    """The kept steps of `tags` of `run`, by tag. TensorBoard's data
    providers decode every step's tensor and fail at the first they cannot
    (a tensor whose bytes do not fill its shape, or of an unknown dtype):
    then each series is read alone, and only those that fail are skipped,
    with a warning. Other failures (the data server gone) are raised."""

    def read(wanted: List[str]):
        return data_provider.read_tensors(
            ctx,
            experiment_id=experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=ALL_STEPS,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=wanted),
        ).get(run, {})

    try:
        return read(tags)
    except (ValueError, TypeError) as exc:  # what decoding a malformed tensor raises
        if len(tags) == 1:
            _warn_undecodable(run, tags[0], exc)
            return {}
    data = {}
    for tag in tags:
        try:
            data.update(read([tag]))
        except (ValueError, TypeError) as exc:
            _warn_undecodable(run, tag, exc)
    return data


def _warn_undecodable(run: str, tag: str, exc: Exception) -> None:
    logger.debug("tb_weightnorm: reading %s of run %r failed", tag, run, exc_info=exc)
    warn_once(
        ("tensors", run, tag),
        "tb_weightnorm: skipping %s of run %r: TensorBoard's data provider cannot decode its tensors "
        "(%s: %s); the run's other time series are shown",
        tag,
        run,
        type(exc).__name__,
        exc,
    )


def decoded_values(array: np.ndarray, expected: Tuple[int, ...]) -> np.ndarray:
    """A step's tensor as float32 of shape `expected`: the bytes of
    `table_codec` (format 2), or the numbers themselves (format 1)."""
    if array.dtype.kind in "SO" and array.size == 1:
        blob = array.reshape(()).item()
        if isinstance(blob, str):
            blob = blob.encode("latin-1")
        if not isinstance(blob, bytes):
            raise table_codec.CorruptTable(f"a {type(blob).__name__} where table bytes belong")
        return table_codec.decode(blob, expected)
    if array.shape != expected or array.dtype.kind not in "fiub":
        raise table_codec.CorruptTable(
            f"a {array.dtype} tensor of shape {array.shape}, expected numbers of shape {expected}"
        )
    return np.asarray(array, dtype=np.float32)


def read_norm_history(
    data_provider,
    ctx,
    experiment_id: str,
    run: str,
    series: Optional[Mapping[str, provider_lib.TensorTimeSeries]] = None,
) -> Optional[NormHistory]:
    """Every norm table TensorBoard kept for `run`, merged; None if it has none.

    A run may hold several tables per step (two models logged to one writer,
    or a model whose variables changed); their rows are merged. Tables whose
    shape does not match their names are skipped with a warning.

    Args:
        series: the run's norm-table time series, if already listed.
    """
    if series is None:
        series = list_norm_series(data_provider, ctx, experiment_id, run).get(run, {})
    # The columns computed on reading are computed in `_merge`, once for all
    # the steps rather than once per step.
    tables = read_checked(
        data_provider,
        ctx,
        experiment_id,
        run,
        norm_table_names(run, series),
        lambda n: (len(n.variables), len(n.stored_stats)),
    )
    if not tables:
        return None
    return _merge(run, tables)


def with_derived_columns(names: schema.NormTableNames, stored: np.ndarray) -> np.ndarray:
    if not names.derived_stats:
        return stored
    return table_codec.with_derived(stored, names.stored_stats, names.stats)


def _merge(run: str, tables) -> NormHistory:
    """One history of the tables' stored columns ([variables, stored stats]
    per step), their derived columns added."""
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
    # Laid out stat by stat: the routes and the diagnosis read one stat of
    # every variable over the steps, which is then one contiguous block
    # instead of a read strided across the whole history.
    values = np.empty((len(stats), len(steps), len(variables)), np.float32).transpose(1, 2, 0)
    first = tables[0][0]
    if not (len(tables) == 1 and len(first.variables) == len(variables) and len(tables[0][1]) == len(steps)):
        values.fill(np.nan)  # something is not measured somewhere
    # NaN (null in JSON) for a step whose events all carry no usable time.
    wall_times = np.full(len(steps), np.nan)
    for names, datums in tables:
        rows = np.array([variables[v] for v in names.variables], dtype=np.intp)
        every_row = np.array_equal(rows, np.arange(len(variables)))
        stored = np.array([stats[s] for s in names.stored_stats], dtype=np.intp)
        positions = np.array([step_pos[d.step] for d in datums], dtype=np.intp)
        # Later events win: a run restarted from a checkpoint logs a step again.
        for datum, s in zip(datums, positions):
            if every_row:
                values[s][:, stored] = datum.values
            else:
                values[s][np.ix_(rows, stored)] = datum.values
            wall_times[s] = np.fmax(wall_times[s], datum.wall_time)
        _derive_columns(values, stats, names, np.unique(positions), rows)
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


def _derive_columns(
    values: np.ndarray, stats: Mapping[str, int], names: schema.NormTableNames, positions: np.ndarray, rows: np.ndarray
) -> None:
    """Fills the columns of `names` computed on reading, at the steps
    `positions` and rows `rows` of `values`, from the columns stored there."""
    whole = len(positions) == values.shape[0] and np.array_equal(rows, np.arange(values.shape[1]))
    for name in names.derived_stats:
        sources = table_codec.DERIVATIONS[name]
        if whole:
            block = np.stack([values[:, :, stats[source]] for source in sources], axis=-1)
        else:
            block = np.stack([values[np.ix_(positions, rows, [stats[source]])][..., 0] for source in sources], axis=-1)
        derived = table_codec.with_derived(block, sources, (name,))[..., 0]
        if whole:
            values[:, :, stats[name]] = derived
        else:
            values[np.ix_(positions, rows, [stats[name]])] = derived[..., None]
