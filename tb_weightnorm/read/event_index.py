"""The plugin's own index of a run's event files (docs/scale.md, step 1).

TensorBoard's data providers cannot answer a long run's norm tables (one
series passes the 256 MiB message limit, and no call takes a step range), so
the plugin finds the records itself: for every weight_health record of the
event files directly in a run folder, where it is (file, offset, length) and
what it is (step, wall time, tag), from each record's 12-byte header and the
first 256 bytes of its data. Nothing is decoded until `read` is asked for
chosen records. The index grows with the files: a refresh reads only what
was appended since the last one.

Files are read through `tensorboard.compat.tf.io.gfile`, as TensorBoard
reads logdirs, so `gs://` and other file systems work unchanged.
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from tensorboard.compat import tf
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_weightnorm.read.norm_tables import warn_once
from tb_weightnorm.wire.event_files import FOOTER_BYTES, HEADER_BYTES, masked_crc32c, record_length

logger = logging.getLogger(__name__)

# Enough for an event's wall time, step and first tag (tags are short);
# anything longer falls back to parsing the whole record.
PREFIX_BYTES = 256
# Bytes read at once while scanning, so that small records (scalars, the
# file version) cost one read per block rather than one per record, and a
# large one only this much beyond its header.
_SCAN_BLOCK = 8192

_DOUBLE = struct.Struct("<d")


class RecordArrays(NamedTuple):
    """Records of one tag, one element per record.

    `file_ids` index `RunIndex.files()`; `offsets` are where each record's
    header starts and `lengths` its data's bytes (header and footer not
    counted). Read-only: they may be views of the index itself.
    """

    steps: np.ndarray  # int64
    wall_times: np.ndarray  # float64
    file_ids: np.ndarray  # int32
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.steps)

    def take(self, which) -> "RecordArrays":
        return RecordArrays(*(a[which] for a in self))


class Record(NamedTuple):
    """One record read back."""

    step: int
    wall_time: float
    value: summary_pb2.Summary.Value


_DTYPES = (np.int64, np.float64, np.int32, np.int64, np.int64)


class _Series:
    """The records of one tag, in arrays grown by doubling: appending is
    amortized O(1) and 100,000 records cost 36 B each."""

    def __init__(self):
        self.arrays = [np.empty(16, d) for d in _DTYPES]
        self.size = 0
        self.unique: Optional[Tuple[int, np.ndarray]] = None  # (size it was computed at, indices)
        self.metadata: Optional[summary_pb2.SummaryMetadata] = None

    def append(self, row) -> None:
        if self.size == len(self.arrays[0]):
            self.arrays = [np.concatenate([a, np.empty_like(a)]) for a in self.arrays]
        for a, v in zip(self.arrays, row):
            a[self.size] = v
        self.size += 1

    def view(self) -> RecordArrays:
        # Later appends write past `size` or into new arrays: a view stays
        # a consistent snapshot without a copy.
        views = []
        for a in self.arrays:
            v = a[: self.size]
            v.flags.writeable = False
            views.append(v)
        return RecordArrays(*views)


class _File:
    def __init__(self, path: str):
        self.path = path
        self.offset = 0  # the next record to scan starts here
        self.size = 0  # at the last refresh
        self.stopped = False  # a corrupt header: nothing after it can be framed


class RunIndex:
    """The index of the records whose tag starts with `tag_prefix` in the
    event files directly in `run_dir` (names containing "tfevents"; subfolders
    are other runs), in file name order.

    Safe to use from several threads: state changes under one lock, and
    reading records back holds it only to look them up.

    Args:
        run_dir: the run's folder: a local path or any URL gfile reads (gs://).
        tag_prefix: the tags to index; records of other tags are passed over.

    Example:

    ```python
    index = RunIndex("logs/run1/train")
    index.refresh()
    for tag in index.tags():
        window = index.in_range(tag, 1000, 2000)
        for record in index.read(window):
            print(record.step, record.value.tag)
    ```
    """

    def __init__(self, run_dir: str, tag_prefix: str = "weight_health/"):
        self.run_dir = run_dir
        self.tag_prefix = tag_prefix
        self._lock = threading.RLock()
        self._files: List[_File] = []
        self._by_path: Dict[str, int] = {}
        self._not_files: set = set()
        self._series: Dict[str, _Series] = {}

    # -- indexing --------------------------------------------------------

    def refresh(self) -> int:
        """Indexes the records appended since the last refresh (new files
        included) and returns how many were added.

        A file that has not changed costs one stat. A record cut off at the
        end of a file (a writer mid-write, or killed) is neither indexed nor
        passed over: the next refresh reads it again from its start. A record
        whose length checksum is wrong stops its file there, with one warning;
        the records before it stay indexed.

        Example:

        ```python
        added = index.refresh()  # e.g. each time a request finds the index older than 5 s
        ```
        """
        with self._lock:
            self._discover()
            added = 0
            for file_id, f in enumerate(self._files):
                if f.stopped:
                    continue
                try:
                    size = tf.io.gfile.stat(f.path).length
                except (OSError, tf.errors.OpError):
                    continue  # removed meanwhile, or a transient error: next refresh
                if size == f.size and size >= f.offset:
                    continue
                f.size = size
                if size < f.offset:
                    warn_once(
                        ("shrunk", f.path),
                        "tb_weightnorm: %s is now shorter (%d bytes) than the %d bytes indexed; "
                        "it is not read further. Restart TensorBoard if it was rewritten.",
                        f.path, size, f.offset,
                    )
                    f.stopped = True
                    continue
                added += self._scan(file_id, f)
            return added

    def _discover(self) -> None:
        try:
            names = tf.io.gfile.listdir(self.run_dir)
        except (OSError, tf.errors.OpError):
            return
        new = []
        for name in names:
            name = name.rstrip("/")  # gfile lists gs:// folders with a slash
            if "tfevents" not in name:
                continue
            path = _join(self.run_dir, name)
            if path in self._by_path or path in self._not_files:
                continue
            if tf.io.gfile.isdir(path):
                self._not_files.add(path)
                continue
            new.append(path)
        for path in sorted(new):
            self._by_path[path] = len(self._files)
            self._files.append(_File(path))

    def _scan(self, file_id: int, f: _File) -> int:
        before = len(self)
        try:
            self._scan_from(file_id, f)
        except (OSError, tf.errors.OpError) as exc:
            # Shortened or gone meanwhile: what was indexed stays, the rest is
            # read again next time.
            logger.debug("tb_weightnorm: scanning %s from %d failed: %s", f.path, f.offset, exc)
            f.size = -1
        return len(self) - before

    def _scan_from(self, file_id: int, f: _File) -> None:
        with tf.io.gfile.GFile(f.path, "rb") as stream:
            block_start, block = f.offset, b""
            offset = f.offset
            while offset + HEADER_BYTES <= f.size:
                at = offset - block_start
                if at < 0 or at + HEADER_BYTES + PREFIX_BYTES > len(block) and block_start + len(block) < f.size:
                    stream.seek(offset)
                    block_start, block = offset, stream.read(min(_SCAN_BLOCK, f.size - offset))
                    at = 0
                if len(block) - at < HEADER_BYTES:
                    break  # the file was cut shorter than its stat said
                length = record_length(block[at : at + HEADER_BYTES])
                if length is None:
                    warn_once(
                        ("length crc", f.path, offset),
                        "tb_weightnorm: the record at offset %d of %s has a corrupt length checksum; "
                        "its records after it are not read (those before it are). Copy the good "
                        "part out, or delete the file if the run does not need it.",
                        offset, f.path,
                    )
                    f.stopped = True
                    break
                end = offset + HEADER_BYTES + length + FOOTER_BYTES
                if end > f.size:
                    break  # incomplete: retried from `offset` next time
                start = at + HEADER_BYTES
                prefix = block[start : start + min(length, PREFIX_BYTES)]
                peeked = _peek(prefix, complete=length <= PREFIX_BYTES)
                if peeked is None:
                    stream.seek(offset + HEADER_BYTES)
                    peeked = self._parsed(stream.read(length), f.path, offset)
                    block = b""  # the stream moved
                if peeked is not None and peeked[2].startswith(self.tag_prefix):
                    wall_time, step, tag = peeked
                    series = self._series.get(tag)
                    if series is None:
                        series = self._series[tag] = _Series()
                    series.append((step, wall_time, file_id, offset, length))
                offset = f.offset = end

    def _parsed(self, data: bytes, path: str, offset: int) -> Optional[Tuple[float, int, str]]:
        try:
            event = event_pb2.Event.FromString(data)
        except Exception as exc:  # DecodeError, or others on some protobuf backends
            warn_once(
                ("undecodable", path, offset),
                "tb_weightnorm: skipping the record at offset %d of %s, which is not an event (%s)",
                offset, path, exc,
            )
            return None
        tag = event.summary.value[0].tag if event.summary.value else ""
        return event.wall_time, event.step, tag

    # -- queries ---------------------------------------------------------

    def files(self) -> List[str]:
        """The event files found, indexed by `RecordArrays.file_ids`.

        Example: `index.files()[records.file_ids[0]]`.
        """
        with self._lock:
            return [f.path for f in self._files]

    def tags(self) -> List[str]:
        """The indexed tags, sorted.

        Example: `[t for t in index.tags() if t.startswith(metadata.NORM_TABLE_TAG_PREFIX)]`.
        """
        with self._lock:
            return sorted(self._series)

    def __len__(self) -> int:
        with self._lock:
            return sum(s.size for s in self._series.values())

    def records(self, tag: str) -> RecordArrays:
        """Every record of `tag` in file order, a re-logged step as often as
        it was logged; empty arrays for an unknown tag.

        Example: `index.records(tag).steps.nbytes`.
        """
        with self._lock:
            series = self._series.get(tag)
            return series.view() if series is not None else _empty()

    def unique(self, tag: str) -> RecordArrays:
        """The records of `tag` by increasing step, one per step: where a step
        was logged more than once (a run resumed from an earlier checkpoint
        logs its steps again) the later record counts, later in file name
        order, then in its file, as TensorBoard shows the latest value.
        Steps logged only before the restart (past the point the resumed run
        reached) are kept.

        Example: `index.unique(tag).steps[-1]` is the last step logged.
        """
        with self._lock:
            series = self._series.get(tag)
            if series is None:
                return _empty()
            view = series.view()
            if series.unique is None or series.unique[0] != series.size:
                series.unique = (series.size, self._last_per_step(view))
            return view.take(series.unique[1])

    def _last_per_step(self, view: RecordArrays) -> np.ndarray:
        ranks = np.argsort(np.argsort([f.path for f in self._files]))
        # lexsort's last key is the primary one; stable within equal keys.
        order = np.lexsort((view.offsets, ranks[view.file_ids], view.steps))
        steps = view.steps[order]
        last = np.ones(len(order), bool)
        last[:-1] = steps[1:] != steps[:-1]
        return order[last]

    def in_range(self, tag: str, first_step: Optional[int] = None, last_step: Optional[int] = None) -> RecordArrays:
        """The records of `tag` with `first_step <= step <= last_step` (None:
        unbounded), one per step as `unique`, found by bisection.

        Args:
            tag: an indexed tag.
            first_step: the first step wanted; None from the first logged.
            last_step: the last step wanted (included); None to the last logged.

        Example: `index.in_range(tag, 5000, 9999)` for a chart's window.
        """
        records = self.unique(tag)
        lo = 0 if first_step is None else int(np.searchsorted(records.steps, first_step, "left"))
        hi = len(records) if last_step is None else int(np.searchsorted(records.steps, last_step, "right"))
        return records.take(slice(lo, hi))

    def read(self, records: RecordArrays) -> List[Record]:
        """Each record's first summary value, read from its file, in the
        order given. A record whose data checksum is wrong is skipped, with
        one warning per record; so is one unreadable meanwhile.

        Args:
            records: records of this index, as `in_range` or `records` gives.

        Example:

        ```python
        for r in index.read(index.in_range(tag, 0, 100)):
            table = norm_tables.decoded_values(tensor_util.make_ndarray(r.value.tensor), shape)
        ```
        """
        paths = self.files()
        out: List[Optional[Record]] = [None] * len(records)
        for file_id in np.unique(records.file_ids):
            mine = np.flatnonzero(records.file_ids == file_id)
            mine = mine[np.argsort(records.offsets[mine], kind="stable")]
            path = paths[file_id]
            try:
                with tf.io.gfile.GFile(path, "rb") as stream:
                    for i in mine:
                        event = self._event_at(stream, path, int(records.offsets[i]), int(records.lengths[i]))
                        if event is not None and event.summary.value:
                            out[i] = Record(int(event.step), float(event.wall_time), event.summary.value[0])
            except (OSError, tf.errors.OpError) as exc:
                warn_once(("unreadable", path), "tb_weightnorm: cannot read %s: %s", path, exc)
        return [r for r in out if r is not None]

    def _event_at(self, stream, path: str, offset: int, length: int) -> Optional[event_pb2.Event]:
        try:
            stream.seek(offset + HEADER_BYTES)
            data = stream.read(length + FOOTER_BYTES)
        except (OSError, tf.errors.OpError):
            data = b""  # the file was shortened: as corrupt as a wrong checksum
        if len(data) < length + FOOTER_BYTES or masked_crc32c(data[:length]) != struct.unpack_from("<I", data, length)[0]:
            with self._lock:
                warn_once(
                    ("data crc", path, offset),
                    "tb_weightnorm: skipping the record at offset %d of %s: its data checksum does "
                    "not match (the file is corrupt there); the other records are read",
                    offset, path,
                )
            return None
        try:
            return event_pb2.Event.FromString(data[:length])
        except Exception:
            return None  # framed and checksummed but not an event: warned at indexing

    def first_metadata(self, tag: str) -> Optional[summary_pb2.SummaryMetadata]:
        """The metadata of the first record of `tag` (first file by name,
        first in it): the only one that carries a norm table's names. None
        for an unknown tag or an unreadable first record.

        Example: `metadata.norm_table_names(index.first_metadata(tag).plugin_data.content)`.
        """
        with self._lock:
            series = self._series.get(tag)
            if series is None:
                return None
            if series.metadata is not None:
                return series.metadata
            view = series.view()
        ranks = np.argsort(np.argsort(self.files()))
        first = np.lexsort((view.offsets, ranks[view.file_ids]))[:1]
        records = self.read(view.take(first))
        if not records:
            return None
        with self._lock:
            series.metadata = records[0].value.metadata
        return series.metadata


def _empty() -> RecordArrays:
    return RecordArrays(*(np.empty(0, d) for d in _DTYPES))


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if "://" in folder else tf.io.gfile.join(folder, name)


# -- the hand decoding of an event's first bytes -------------------------


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


def _peek(prefix: bytes, complete: bool) -> Optional[Tuple[float, int, str]]:
    """(wall_time, step, first tag) of the event whose first bytes are
    `prefix` ("" as the tag of an event with no summary value); None when
    the prefix does not tell and the whole record must be parsed.

    Args:
        complete: whether `prefix` is the whole record.
    """
    # Every protobuf serializer writes fields in number order: Event's
    # wall_time (1) and step (2) come before summary (5), and a field past 5
    # means the event is not a summary (they are one oneof).
    wall_time, step, pos, n = 0.0, 0, 0, len(prefix)
    try:
        while pos < n:
            key, pos = _varint(prefix, pos)
            field, wire = key >> 3, key & 7
            if field == 1 and wire == 1:
                (wall_time,) = _DOUBLE.unpack_from(prefix, pos)
                pos += 8
            elif field == 2 and wire == 0:
                step, pos = _varint(prefix, pos)
                if step >= 1 << 63:
                    step -= 1 << 64
            elif field == 5 and wire == 2:
                size, pos = _varint(prefix, pos)
                tag = _first_tag(prefix, pos, pos + size)
                return None if tag is None else (wall_time, step, tag)
            elif field > 5:
                return wall_time, step, ""
            else:
                pos = _skip(prefix, pos, wire)
        return (wall_time, step, "") if complete and pos == n else None
    except (IndexError, ValueError, struct.error):
        return None


def _first_tag(buf: bytes, pos: int, end: int) -> Optional[str]:
    """The tag of a Summary's first Value (Summary field 1, Value field 1)."""
    if pos == end:
        return ""  # a summary with no value
    key, pos = _varint(buf, pos)
    if key != (1 << 3 | 2):
        return None
    _, pos = _varint(buf, pos)
    key, pos = _varint(buf, pos)
    if key != (1 << 3 | 2):
        return None  # no tag first: unusual, let the parser decide
    size, pos = _varint(buf, pos)
    if pos + size > len(buf):
        return None
    try:
        return buf[pos : pos + size].decode("utf-8")
    except UnicodeDecodeError:
        return None
