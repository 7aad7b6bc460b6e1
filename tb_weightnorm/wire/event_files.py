"""How TensorBoard event files end, and their records' framing.

A writer killed in the middle of a record (kill -9, out of memory, a lost
machine) leaves an incomplete last record. TensorBoard's loaders read up to
it and then wait, without a word, for the rest that will never come; the
reader says so instead. Everything before the record is intact: each record
carries its own length and checksums.
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Iterator, List, NamedTuple, Optional

import numpy as np
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as _slow_masked_crc32c

# A TFRecord: uint64 length, uint32 masked CRC-32C of the length, the data,
# uint32 masked CRC-32C of the data.
HEADER_BYTES = 12
FOOTER_BYTES = 4


def record_length(header: bytes) -> Optional[int]:
    """The data length a record's 12-byte header gives; None if the header's
    checksum does not match it (a corrupt record, not a cut one)."""
    length, length_crc = struct.unpack_from("<QI", header)
    if _slow_masked_crc32c(header[:8]) != length_crc:
        return None
    return length


class IncompleteRecord(NamedTuple):
    """The incomplete record at the end of an event file."""

    path: str
    offset: int  # where it starts
    present: int  # its bytes in the file
    expected: Optional[int]  # the bytes a complete record has; None if its length is cut off too


def incomplete_last_record(path: str) -> Optional[IncompleteRecord]:
    """The incomplete record an event file ends in, or None if it ends after a
    whole record (or its framing is broken earlier: a corrupt record, not a
    cut, which the loaders report themselves).

    Only the records' 12-byte headers are read.

    Example:

    ```python
    tail = incomplete_last_record("logs/run1/train/events.out.tfevents.1700000000.host.1.v2")
    if tail is not None:
        print(f"{tail.present} bytes of a record cut off at offset {tail.offset}")
    ```
    """
    size = os.path.getsize(path)
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                return IncompleteRecord(path, offset, size - offset, None)
            length = record_length(header)
            if length is None:
                return None
            end = offset + HEADER_BYTES + length + FOOTER_BYTES
            if end > size:
                return IncompleteRecord(path, offset, size - offset, end - offset)
            offset = end
    return None


def event_files(logdir: str) -> Iterator[str]:
    """Every event file under `logdir` (local), named as TensorBoard finds them."""
    for root, _, names in sorted(os.walk(logdir)):
        for name in sorted(names):
            if "tfevents" in name:
                yield os.path.join(root, name)


def incomplete_records(logdir: str) -> List[IncompleteRecord]:
    """The event files under `logdir` that end in an incomplete record."""
    found = []
    for path in event_files(logdir):
        try:
            tail = incomplete_last_record(path)
        except OSError:
            continue  # removed or unreadable meanwhile: the loaders say so
        if tail is not None:
            found.append(tail)
    return found


def last_step_with_tag(run_dir: str, tag_prefix: str) -> Optional[int]:
    """The largest step of a summary whose tag starts with `tag_prefix` in the
    event files directly in `run_dir`, or None if there is none.

    Files are read newest first (their names start with the time they were
    opened) and reading stops at the first that has such a summary: a run's
    steps grow from one writer to the next. A record cut off at the end is
    left out, as the loaders leave it.
    """
    from tensorboard.backend.event_processing import event_file_loader

    try:
        names = sorted((n for n in os.listdir(run_dir) if "tfevents" in n), reverse=True)
    except OSError:
        return None
    for name in names:
        last = None
        try:
            for event in event_file_loader.EventFileLoader(os.path.join(run_dir, name)).Load():
                if any(value.tag.startswith(tag_prefix) for value in event.summary.value):
                    last = event.step if last is None else max(last, event.step)
        except OSError:
            continue
        if last is not None:
            return int(last)
    return None


# TensorBoard's masked_crc32c is pure Python (~13 ms for a 100 KB table): it
# would cost more than decoding. CRC-32C is linear over GF(2), so the data is
# cut into lanes, each lane's CRC computed by numpy for all lanes at once,
# and the lanes combined pairwise by shifting the first through as many zero
# bytes as the second has (a 32x32 bit matrix, applied by byte tables).
_POLY = 0x82F63B78
_LANE = 32  # bytes per lane; a power of two
_FAST_FROM = 4096  # below this the Python loop is as fast


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _byte_table()


@functools.lru_cache(maxsize=None)
def _zeros_tables(log2_bytes: int) -> np.ndarray:
    """[4, 256] tables applying the CRC register's shift through 2**log2_bytes zero bytes."""
    if log2_bytes == 0:
        columns = np.array([_TABLE[(1 << i) & 0xFF] ^ np.uint32((1 << i) >> 8) for i in range(32)], np.uint32)
    else:
        half = _zeros_tables(log2_bytes - 1)
        basis = np.array([1 << i for i in range(32)], np.uint32)
        columns = _apply(half, _apply(half, basis))
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for bit in range(8):
            tables[k] ^= np.where((values >> bit) & 1, columns[8 * k + bit], 0).astype(np.uint32)
    return tables


def _apply(tables: np.ndarray, c: np.ndarray) -> np.ndarray:
    return tables[0][c & 0xFF] ^ tables[1][(c >> 8) & 0xFF] ^ tables[2][(c >> 16) & 0xFF] ^ tables[3][c >> 24]


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`, equal to TensorBoard's."""
    n = len(data)
    if n < _FAST_FROM:
        return _slow_masked_crc32c(data)
    lanes = 1 << int(np.ceil(np.log2(-(-n // _LANE))))
    padded = np.zeros(lanes * _LANE, np.uint8)
    # Leading zeros leave a zero register as it is; the all-ones initial
    # register is the same as flipping the first four data bytes.
    padded[-n:] = np.frombuffer(data, np.uint8)
    padded[-n : -n + 4] ^= 0xFF
    columns = padded.reshape(lanes, _LANE).T.copy()
    crc = np.zeros(lanes, np.uint32)
    for column in columns:
        crc = _TABLE[(crc ^ column) & 0xFF] ^ (crc >> 8)
    level = int(np.log2(_LANE))
    while len(crc) > 1:
        crc = _apply(_zeros_tables(level), crc[0::2]) ^ crc[1::2]
        level += 1
    x = int(crc[0]) ^ 0xFFFFFFFF
    return ((x >> 15) | (x << 17 & 0xFFFFFFFF)) + 0xA282EAD8 & 0xFFFFFFFF
