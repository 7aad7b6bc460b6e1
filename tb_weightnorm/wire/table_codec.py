"""How the values of norm and histogram tables are stored in event files:
compact, lossless, and readable without TensorFlow.

A table is float32. Stored as it is, a norm table costs 4 bytes per stat per
variable per step, which for a 1,000-variable model logged every step is most
of what a run writes. Two things make it smaller without losing a bit:

- Columns that can be computed exactly from other columns are not stored
  (`linf` from `min` and `max`; `update/ratio` from the two l2 norms). The
  reader computes them with the same float32 arithmetic as the writer.
- The rest is byte-shuffled column by column (the sign and exponent bytes of
  one stat across all variables sit together and repeat a lot; counts of NaN
  are mostly zeros) and deflated.

Pure numpy and zlib: no TensorFlow, no I/O.
"""

from __future__ import annotations

import zlib
from typing import Dict, Sequence, Tuple

import numpy as np

# The first byte of an encoded table says how the rest is laid out.
SHUFFLED_DEFLATE = 1
# Deflate level: 1 is several times faster than the default 6 and, on
# byte-shuffled tables, within a few percent of its size.
_LEVEL = 1
_FLOAT32 = np.dtype("<f4")

# A derived column and the stored columns it is computed from. A writer
# derives a column only when all of them are stored.
DERIVATIONS: Dict[str, Tuple[str, ...]] = {
    "weight/linf": ("weight/min", "weight/max", "weight/nan_count"),
    "gradient/linf": ("gradient/min", "gradient/max", "gradient/nan_count"),
    "update/ratio": ("update/l2", "weight/l2"),
}


class CorruptTable(ValueError):
    """Bytes that are not an encoded table of the expected shape."""


def encode(values) -> bytes:
    """A float32 array of any shape (last axis: columns) as compact bytes.

    Example:

    >>> blob = encode(np.ones((3, 2), np.float32))
    >>> decode(blob, (3, 2)).tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    array = np.asarray(values)
    if array.dtype != _FLOAT32:
        array = array.astype(_FLOAT32)
    by_column = np.ascontiguousarray(np.moveaxis(array, -1, 0)) if array.ndim else array.reshape(1)
    planes = by_column.view(np.uint8).reshape(-1, 4).T
    return bytes([SHUFFLED_DEFLATE]) + zlib.compress(np.ascontiguousarray(planes).tobytes(), _LEVEL)


def decode(blob: bytes, shape: Sequence[int]) -> np.ndarray:
    """The float32 array of `shape` that `encode` turned into `blob`.

    Raises:
        CorruptTable: if `blob` is not an encoded table of that shape (it
            never inflates more than the table's size, whatever the bytes).
    """
    shape = tuple(int(d) for d in shape)
    if not blob or blob[0] != SHUFFLED_DEFLATE:
        first = blob[0] if blob else "nothing"
        raise CorruptTable(f"unknown table encoding {first} (this version reads {SHUFFLED_DEFLATE})")
    size = 4 * int(np.prod(shape, dtype=np.int64))
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob[1:], size + 1)
    except zlib.error as exc:
        raise CorruptTable(f"table bytes do not inflate: {exc}") from None
    if len(raw) != size:
        raise CorruptTable(f"table holds {'more than ' if len(raw) > size else ''}{len(raw)} bytes, expected {size}")
    if not inflater.eof:
        raise CorruptTable("table bytes end before their deflate stream does (cut short)")
    planes = np.frombuffer(raw, np.uint8).reshape(4, -1)
    # One plane at a time into its byte of each float: about 4 times faster
    # than a contiguous copy of the transpose.
    interleaved = np.empty((planes.shape[1], 4), np.uint8)
    for byte in range(4):
        interleaved[:, byte] = planes[byte]
    by_column = interleaved.view(_FLOAT32).reshape(-1)
    if not shape:
        return by_column.reshape(())
    return np.moveaxis(by_column.reshape((shape[-1],) + shape[:-1]), 0, -1).copy()


def split_stats(stats: Sequence[str]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(stored, derived) columns of a table with columns `stats`, each in `stats` order."""
    present = set(stats)
    derived = tuple(s for s in stats if s in DERIVATIONS and present.issuperset(DERIVATIONS[s]))
    return tuple(s for s in stats if s not in derived), derived


def with_derived(stored: np.ndarray, stored_stats: Sequence[str], stats: Sequence[str]) -> np.ndarray:
    """The full table [..., len(stats)] from its stored columns [..., len(stored_stats)].

    Each derived column is computed exactly as `tb_weightnorm.graph.stats` computes
    it in the graph, so it matches what a writer storing it would have stored:

    - `linf` = max(|min|, |max|) over the finite values; 0 when there is no
      finite value (all NaN or Inf, or an empty variable); NaN (not measured)
      where the row was not measured at all (its NaN count is NaN).
    - `update/ratio` = update l2 / weight l2 (0 where the weight's is 0), or
      the update l2 itself when that is NaN or infinite.

    Raises:
        CorruptTable: if a column of `stats` is neither stored nor derivable.
    """
    stored = np.asarray(stored, dtype=np.float32)
    column = {name: stored[..., i] for i, name in enumerate(stored_stats)}
    out = np.empty(stored.shape[:-1] + (len(stats),), np.float32)
    for i, name in enumerate(stats):
        if name in column:
            out[..., i] = column[name]
        elif name in DERIVATIONS and all(source in column for source in DERIVATIONS[name]):
            out[..., i] = _derive(name, column)
        else:
            raise CorruptTable(f"column {name!r} is neither stored nor computable from {', '.join(stored_stats)}")
    return out


def _derive(name: str, column: Dict[str, np.ndarray]) -> np.ndarray:
    kind = name.partition("/")[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "update/ratio":
            update, weight = column["update/l2"], column["weight/l2"]
            ratio = np.where(weight == 0, np.float32(0), update / np.where(weight == 0, np.float32(1), weight))
            return np.where(np.isfinite(update), ratio, update)
        low, high = column[f"{kind}/min"], column[f"{kind}/max"]
        largest = np.fmax(np.abs(low), np.abs(high))
        largest = np.where(np.isnan(largest), np.float32(0), largest)
        return np.where(np.isnan(column[f"{kind}/nan_count"]), np.float32(np.nan), largest)
