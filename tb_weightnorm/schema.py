"""The vocabulary of tb_weightnorm: kinds, stats, a norm table's names.

What the writer computes, the wire format stores and the reader, the
diagnosis and the tab speak of. Plain Python: importing it needs neither
TensorFlow nor TensorBoard nor protobuf, so the diagnosis does not either.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from typing import Optional, Sequence

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
