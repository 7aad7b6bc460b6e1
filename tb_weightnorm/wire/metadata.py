"""The wire format of the `weight_health` plugin: names, tags and metadata.

Every summary the plugin writes carries `SummaryMetadata` whose `plugin_data`
content is a serialized `WeightHealthPluginData` (see proto/plugin_data.proto),
and an explicit `data_class`: without it TensorBoard's default (fast) loader
drops third-party plugin data without a word.
"""

from __future__ import annotations

from typing import Optional, Sequence

from tensorboard.compat.proto import summary_pb2

from tb_weightnorm import schema
from tb_weightnorm.wire import table_codec
from tb_weightnorm.wire.proto import plugin_data_pb2

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

def norm_table_metadata(
    names: schema.NormTableNames, *, include_names: bool = True
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


def norm_table_tag(names: schema.NormTableNames) -> str:
    """The tag of a norm table's series: a new model's variables start a new one."""
    return NORM_TABLE_TAG_PREFIX + names.fingerprint()


def histogram_tag(names: schema.NormTableNames, bins: int) -> str:
    return f"{HISTOGRAM_TAG_PREFIX}{names.fingerprint()}/{bins}"


def histogram_metadata(
    names: schema.NormTableNames, kinds: Sequence[str], bins: int, *, include_names: bool = True
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


def norm_table_names(content: bytes) -> Optional[schema.NormTableNames]:
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
        names = schema.NormTableNames(
            tuple(table.variables), tuple(table.layers), tuple(table.stats), table.gradient_note,
            tuple(table.derived_stats),
        )
    except ValueError as exc:
        raise UnreadableMetadata(str(exc)) from exc
    if not set(names.derived_stats) <= set(names.stats):
        raise UnreadableMetadata("derived stats that are not stats of the table")
    return names
