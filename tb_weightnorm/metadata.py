"""The wire format of the `weight_health` plugin: names, tags and metadata.

Every summary the plugin writes carries `SummaryMetadata` whose `plugin_data`
content is a serialized `WeightHealthPluginData` (see proto/plugin_data.proto),
and an explicit `data_class`: without it TensorBoard's default (fast) loader
drops third-party plugin data without a word.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from typing import Optional, Sequence

from tensorboard.compat.proto import summary_pb2

from tb_weightnorm import table_codec
from tb_weightnorm.proto import plugin_data_pb2

PLUGIN_NAME = "weight_health"

# Version of the plugin data. Readers skip data from a newer version.
# 2: table values compressed by table_codec, derivable columns not stored.
PROTO_VERSION = 2

# Tags of norm tables are NORM_TABLE_TAG_PREFIX + a fingerprint of the names, so
# that a model whose variables change starts a new time series.
NORM_TABLE_TAG_PREFIX = "weight_health/norms/"
HISTOGRAM_TAG_PREFIX = "weight_health/histograms/"
KERNEL_GRID_TAG_PREFIX = "weight_health/kernels/"

_DESCRIPTION = "Weight Health norm table: rows are variables, columns are stats."

KINDS = ("weight", "gradient", "update")
TENSOR_STATS = ("l1", "l2", "linf", "mean", "std", "min", "max", "nan_count", "inf_count")
# ||W_t - W_0||: needs a copy of the initial weights.
WEIGHT_EXTRA_STATS = ("dist_init",)
# Fraction of output units whose incoming weights all got a zero gradient.
GRADIENT_EXTRA_STATS = ("dead_fraction",)
UPDATE_STATS = ("l2", "ratio")

# The whole-model row of a table: weight/l2 and gradient/l2 over all the
# variables the optimizer updates (the gradient's is the global norm that
# gradient clipping compares with its threshold).
GLOBAL_ROW = "(global)"
GLOBAL_LAYER = "(model)"


def stat_name(kind: str, stat: str) -> str:
    """The column name of a stat: `<kind>/<stat>`, e.g. `gradient/l2`."""
    return f"{kind}/{stat}"


def split_stat_name(name: str) -> tuple[str, str]:
    """Inverse of `stat_name`."""
    kind, _, stat = name.partition("/")
    return kind, stat


@dataclasses.dataclass(frozen=True)
class NormTableNames:
    """The row and column names of a norm table."""

    variables: tuple[str, ...]
    layers: tuple[str, ...]
    stats: tuple[str, ...]
    # What the gradients are where it matters, e.g. "before clipping (clipnorm=1.0)".
    gradient_note: str = ""
    # Columns of `stats` an event file does not store (readers compute them);
    # set when read back, chosen by `table_codec.split_stats` when written.
    derived_stats: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.variables) != len(self.layers):
            raise ValueError(
                f"{len(self.variables)} variable names but {len(self.layers)} layer names; "
                "each variable needs the name of its layer."
            )

    @property
    def stored_stats(self) -> tuple[str, ...]:
        return tuple(s for s in self.stats if s not in self.derived_stats)

    def fingerprint(self) -> str:
        digest = hashlib.sha1()
        for part in (self.variables, self.layers, self.stats):
            digest.update("\x1f".join(part).encode("utf-8"))
            digest.update(b"\x1e")
        return digest.hexdigest()[:12]

    def tag(self) -> str:
        return NORM_TABLE_TAG_PREFIX + self.fingerprint()


def norm_table_metadata(
    names: NormTableNames, *, include_names: bool = True
) -> summary_pb2.SummaryMetadata:
    """Metadata of a norm table summary.

    Args:
        names: the table's row and column names.
        include_names: False for every event after the first of a time series:
            readers keep the first event's metadata, and sending 1,000 names with
            every step would cost far more than the table itself.
    """
    table = plugin_data_pb2.NormTable()
    if include_names:
        table.variables.extend(names.variables)
        table.layers.extend(names.layers)
        table.stats.extend(names.stats)
        table.gradient_note = names.gradient_note
        table.derived_stats.extend(table_codec.split_stats(names.stats)[1])
    else:
        table.names_omitted = True
    content = plugin_data_pb2.WeightHealthPluginData(version=PROTO_VERSION, norm_table=table)
    return _summary_metadata(
        content, _DESCRIPTION if include_names else "", summary_pb2.DATA_CLASS_TENSOR
    )


def _summary_metadata(data, description: str, data_class) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=data.SerializeToString()
        ),
        data_class=data_class,
    )


def histogram_tag(names: NormTableNames, bins: int) -> str:
    return f"{HISTOGRAM_TAG_PREFIX}{names.fingerprint()}/{bins}"


def histogram_metadata(
    names: NormTableNames, kinds: Sequence[str], bins: int, *, include_names: bool = True
) -> summary_pb2.SummaryMetadata:
    """Metadata of a histogram table (names only on the first event, as for norms)."""
    content = plugin_data_pb2.HistogramTable(bins=bins)
    if include_names:
        content.variables.extend(names.variables)
        content.layers.extend(names.layers)
        content.kinds.extend(kinds)
    else:
        content.names_omitted = True
    data = plugin_data_pb2.WeightHealthPluginData(version=PROTO_VERSION, histograms=content)
    return _summary_metadata(
        data,
        "Weight Health histograms: [kinds, variables, min/max/buckets/non-finite counts]." if include_names else "",
        summary_pb2.DATA_CLASS_TENSOR,
    )


def kernel_grid_tag(variable: str) -> str:
    return KERNEL_GRID_TAG_PREFIX + variable


def kernel_grid_metadata(layer: str, variable: str, mode: str, filters_total: int) -> summary_pb2.SummaryMetadata:
    """Metadata of a conv kernel grid image (a BLOB_SEQUENCE summary)."""
    content = plugin_data_pb2.KernelGrid(layer=layer, variable=variable, mode=mode, filters_total=filters_total)
    data = plugin_data_pb2.WeightHealthPluginData(version=PROTO_VERSION, kernel_grid=content)
    return _summary_metadata(data, f"Filters of {layer} ({variable})", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


class UnreadableMetadata(ValueError):
    """Plugin data this version cannot read: corrupt, or from a newer version."""


def parse_plugin_data(content: bytes) -> plugin_data_pb2.WeightHealthPluginData:
    """Parses `plugin_data.content` of a weight_health summary.

    Raises:
        UnreadableMetadata: if the bytes are not plugin data, or are from a
            newer version of tb_weightnorm.
    """
    data = plugin_data_pb2.WeightHealthPluginData()
    try:
        data.ParseFromString(content)
    except Exception as exc:  # protobuf raises DecodeError, or others on some backends
        raise UnreadableMetadata(f"corrupt plugin data: {exc}") from exc
    if data.version > PROTO_VERSION:
        raise UnreadableMetadata(
            f"written by a newer tb_weightnorm (format version {data.version}, this one "
            f"reads up to {PROTO_VERSION}); upgrade tb_weightnorm to read it"
        )
    return data


def norm_table_names(content: bytes) -> Optional[NormTableNames]:
    """The names in a norm table's plugin data; None if they were omitted.

    Raises:
        UnreadableMetadata: as `parse_plugin_data`, or if it is not a norm table.
    """
    data = parse_plugin_data(content)
    if data.WhichOneof("content") != "norm_table":
        raise UnreadableMetadata("plugin data is not a norm table")
    table = data.norm_table
    if table.names_omitted:
        return None
    try:
        names = NormTableNames(
            tuple(table.variables), tuple(table.layers), tuple(table.stats), table.gradient_note,
            tuple(table.derived_stats),
        )
    except ValueError as exc:
        raise UnreadableMetadata(str(exc)) from exc
    if not set(names.derived_stats) <= set(names.stats):
        raise UnreadableMetadata("derived stats that are not stats of the table")
    return names


def table_stat_names(*, gradients: bool = True, updates: bool = True, dist_init: bool = True) -> tuple[str, ...]:
    """The columns a norm table can have, in the order they are computed."""
    names = [stat_name("weight", s) for s in TENSOR_STATS]
    if dist_init:
        names += [stat_name("weight", s) for s in WEIGHT_EXTRA_STATS]
    if gradients:
        names += [stat_name("gradient", s) for s in TENSOR_STATS + GRADIENT_EXTRA_STATS]
    if updates:
        names += [stat_name("update", s) for s in UPDATE_STATS]
    return tuple(names)


def all_stat_names() -> tuple[str, ...]:
    """Every column a norm table can have."""
    return table_stat_names()


def select_stats(available: Sequence[str], patterns: Optional[Sequence[str]]) -> tuple[str, ...]:
    """The columns of `available` that match any glob pattern (all if None).

    Raises:
        ValueError: if a pattern matches no available stat.
    """
    if patterns is None:
        return tuple(available)
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen = []
    for pattern in patterns:
        matched = [s for s in available if fnmatch.fnmatchcase(s, pattern)]
        if not matched:
            raise ValueError(
                f"stats: {pattern!r} matches none of the stats logged here: {', '.join(available)}. "
                "Use names like 'gradient/l2' or patterns like 'update/*'."
            )
        chosen.extend(m for m in matched if m not in chosen)
    return tuple(s for s in available if s in chosen)
