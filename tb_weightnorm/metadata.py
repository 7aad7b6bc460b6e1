"""The wire format of the `weight_health` plugin: names, tags and metadata.

Every summary the plugin writes carries `SummaryMetadata` whose `plugin_data`
content is a serialized `WeightHealthPluginData` (see proto/plugin_data.proto),
and an explicit `data_class`: without it TensorBoard's default (fast) loader
drops third-party plugin data without a word.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional, Sequence

from tensorboard.compat.proto import summary_pb2

from tb_weightnorm.proto import plugin_data_pb2

PLUGIN_NAME = "weight_health"

# Version of the plugin data. Readers skip data from a newer version.
PROTO_VERSION = 1

# Tags of norm tables are NORM_TABLE_TAG_PREFIX + a fingerprint of the names, so
# that a model whose variables change starts a new time series.
NORM_TABLE_TAG_PREFIX = "weight_health/norms/"

_DESCRIPTION = "Weight Health norm table: rows are variables, columns are stats."

KINDS = ("weight", "gradient", "update")
TENSOR_STATS = ("l1", "l2", "linf", "mean", "std", "min", "max", "nan_count", "inf_count")
UPDATE_STATS = ("l2", "ratio")


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

    def __post_init__(self):
        if len(self.variables) != len(self.layers):
            raise ValueError(
                f"{len(self.variables)} variable names but {len(self.layers)} layer names; "
                "each variable needs the name of its layer."
            )

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
    else:
        table.names_omitted = True
    content = plugin_data_pb2.WeightHealthPluginData(version=PROTO_VERSION, norm_table=table)
    return summary_pb2.SummaryMetadata(
        summary_description=_DESCRIPTION if include_names else "",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content.SerializeToString()
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


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
        return NormTableNames(tuple(table.variables), tuple(table.layers), tuple(table.stats))
    except ValueError as exc:
        raise UnreadableMetadata(str(exc)) from exc


def all_stat_names(kinds: Sequence[str] = KINDS) -> tuple[str, ...]:
    """Every column a full norm table has, in the order they are written."""
    names = []
    for kind in kinds:
        stats = UPDATE_STATS if kind == "update" else TENSOR_STATS
        names.extend(stat_name(kind, s) for s in stats)
    return tuple(names)
