"""An event's wall time, step and tags from its first bytes, decoded by hand.

The index reads the first few hundred bytes of each record; parsing the
whole record with protobuf would read it all (a norm table is ~100 KB).
Protobuf does not promise field order, so nothing here relies on it: when
the bytes at hand cannot tell (a step written after a large summary, or a
step of 0, which proto3 leaves out, before a summary the prefix cuts), the
answer is "parse the whole record".
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

_DOUBLE = struct.Struct("<d")
# Event's `what` oneof members other than `summary` (5): such an event has
# no summary values, wherever its step is.
_NOT_SUMMARY = frozenset({3, 4, 6, 7, 8, 9})
_LENGTH_DELIMITED_FIELD_1 = 1 << 3 | 2  # Summary.value and Value.tag


def peek(prefix: bytes, complete: bool) -> Optional[Tuple[float, int, Tuple[str, ...]]]:
    """(wall_time, step, tags of its summary values) of the event whose
    first bytes are `prefix`; None when they do not tell and the whole
    record must be parsed.

    An event that is not a summary has no tags. Only an event with one
    summary value is answered; several values go to the parser, which
    tells them all (rare: `tf.summary` writes one value an event).

    Args:
        prefix: the first bytes of the event's serialization.
        complete: whether `prefix` is the whole serialization.

    Example: `peek(event.SerializeToString()[:256], complete=False)`.
    """
    wall_time, step = 0.0, 0
    seen_wall_time = seen_step = False
    tags: Optional[Tuple[str, ...]] = None
    pos, n = 0, len(prefix)
    try:
        while pos < n:
            key, pos = _varint(prefix, pos)
            field, wire = key >> 3, key & 7
            if field == 1 and wire == 1:
                (wall_time,) = _DOUBLE.unpack_from(prefix, pos)
                pos += 8
                seen_wall_time = True
            elif field == 2 and wire == 0:
                step, pos = _varint(prefix, pos)
                if step >= 1 << 63:
                    step -= 1 << 64
                seen_step = True
            elif field == 5 and wire == 2:
                if tags is not None:
                    return None  # a second summary field merges into the first
                size, pos = _varint(prefix, pos)
                tags = _single_tag(prefix, pos, pos + size)
                if tags is None:
                    return None
                pos += size
            elif field in _NOT_SUMMARY:
                return wall_time, step, ()
            else:
                pos = _skip(prefix, pos, wire)
            if tags is not None and seen_wall_time and seen_step:
                return wall_time, step, tags
        if complete and pos == n:
            return wall_time, step, tags or ()
        return None
    except (IndexError, ValueError, struct.error):
        return None  # ran past the prefix, or not protobuf: the parser decides


def _single_tag(buf: bytes, pos: int, end: int) -> Optional[Tuple[str, ...]]:
    """The tag of a Summary's only Value, () for a Summary without values,
    None when the bytes do not tell (several values, no tag first)."""
    if pos == end:
        return ()
    key, pos = _varint(buf, pos)
    if key != _LENGTH_DELIMITED_FIELD_1:
        return None
    size, pos = _varint(buf, pos)
    if pos + size != end:
        return None  # more values follow (or a malformed summary)
    key, pos = _varint(buf, pos)
    if key != _LENGTH_DELIMITED_FIELD_1:
        return None  # the tag is not first: unusual, let the parser decide
    size, pos = _varint(buf, pos)
    if pos + size > len(buf):
        return None
    try:
        return (buf[pos : pos + size].decode("utf-8"),)
    except UnicodeDecodeError:
        return None


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]  # IndexError past the prefix: the caller falls back
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        size, pos = _varint(buf, pos)
        return pos + size
    if wire == 5:
        return pos + 4
    raise ValueError("group or unknown wire type")
