"""How TensorBoard event files end.

A writer killed in the middle of a record (kill -9, out of memory, a lost
machine) leaves an incomplete last record. TensorBoard's loaders read up to
it and then wait, without a word, for the rest that will never come; the
reader says so instead. Everything before the record is intact: each record
carries its own length and checksums.
"""

from __future__ import annotations

import os
import struct
from typing import Iterator, List, NamedTuple, Optional

from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

# A TFRecord: uint64 length, uint32 masked CRC-32C of the length, the data,
# uint32 masked CRC-32C of the data.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4


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
            header = f.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                return IncompleteRecord(path, offset, size - offset, None)
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                return None
            end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
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
