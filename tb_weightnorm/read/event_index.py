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
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

import numpy as np
from tensorboard.compat import tf
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_weightnorm.read import event_prefix
from tb_weightnorm.read.norm_tables import warn_once
from tb_weightnorm.read.record_arrays import RecordArrays, Row, Series, empty, shown
from tb_weightnorm.wire.event_files import FOOTER_BYTES, HEADER_BYTES, masked_crc32c, record_length

logger = logging.getLogger(__name__)

# Enough for an event's wall time, step and first tag (tags are short);
# anything longer falls back to parsing the whole record.
PREFIX_BYTES = 256
# Bytes read at once while scanning, so that small records (scalars, the
# file version) cost one read per block rather than one per record, and a
# large one only this much beyond its header.
_SCAN_BLOCK = 8192
# Records scanned between two commits: a long cold scan shows its progress
# to queries, and holds the lock only briefly each time.
_COMMIT_EVERY = 4096



def _open_binary(path: str) -> BinaryIO:
    return tf.io.gfile.GFile(path, "rb")


@dataclass(frozen=True)
class Record:
    """One record read back: its event's step and wall time, and the value
    of the record's tag (tensor and metadata)."""

    step: int
    wall_time: float
    value: summary_pb2.Summary.Value


class _File:
    """What a refresh knows of one event file; only refreshes touch it."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0  # the next record to scan starts here
        self.size = 0  # at the last refresh
        self.stopped = False  # a corrupt header: nothing after it can be framed


class RunIndex:
    """The index of the records whose tag starts with `tag_prefix` in the
    event files directly in `run_dir` (names containing "tfevents"; a
    subfolder is another run), read in file name order as TensorBoard does.

    A step logged more than once (a run resumed from an earlier checkpoint
    logs its steps again) is answered as TensorBoard's default loader (the
    Rust data server) answers it: a record at step s replaces every record of
    its tag read before it with a step >= s, so the steps of the abandoned
    attempt past the restart do not show either. `records` gives the series
    so; `logged` gives every record, as the Python loader keeps them.

    An event with several summary values is indexed under each value's tag
    (tb_weightnorm writes one value an event, as `tf.summary` does; other
    writers may merge values).

    Safe to use from several threads: one refresh runs at a time, and queries
    and reads wait only for the short commits of what a refresh found, not
    for its file reads.

    Args:
        run_dir: the run's folder: a local path or any URL gfile reads (gs://).
        tag_prefix: the tags to index; records of other tags are passed over.
        opener: opens a file for binary reading (default: gfile's GFile);
            the returned object needs `seek`, `read` and to be a context
            manager. A test counts the bytes read through it.

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

    def __init__(
        self,
        run_dir: str,
        tag_prefix: str = "weight_health/",
        *,
        opener: Optional[Callable[[str], BinaryIO]] = None,
    ):
        self.run_dir = run_dir
        self.tag_prefix = tag_prefix
        self._open = opener or _open_binary
        self._lock = threading.Lock()  # the files list and the series
        self._refreshing = threading.Lock()  # one refresh at a time
        self._files: List[_File] = []
        self._known: set = set()  # paths seen: event files and folders named like them
        self._series: Dict[str, Series] = {}

    # -- indexing --------------------------------------------------------

    def refresh(self) -> int:
        """Indexes the records appended since the last refresh (new files
        included) and returns how many were added.

        A file that has not changed costs one stat, the folder one listing.
        A record cut off at the end of a file (a writer mid-write, or killed)
        is neither indexed nor passed over: the next refresh reads it again
        from its start. A record whose length checksum is wrong stops its
        file there, with one warning; the records before it stay indexed.

        Example:

        ```python
        added = index.refresh()  # e.g. when a request finds the index older than 5 s
        ```
        """
        with self._refreshing:
            self._discover()
            with self._lock:
                files = list(self._files)
            added = 0
            for file_id, f in enumerate(files):
                if f.stopped:
                    continue
                try:
                    size = tf.io.gfile.stat(f.path).length
                except (OSError, tf.errors.OpError):
                    continue  # removed meanwhile, or a transient error: next refresh
                if size == f.size:
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
            return  # not there (yet): an empty index
        new = []
        for name in names:
            name = name.rstrip("/")  # gfile lists gs:// folders with a slash
            path = _join(self.run_dir, name)
            if "tfevents" not in name or path in self._known:
                continue
            self._known.add(path)
            if not tf.io.gfile.isdir(path):
                new.append(path)
        with self._lock:
            self._files.extend(_File(path) for path in sorted(new))

    def _scan(self, file_id: int, f: _File) -> int:
        found: List[Tuple[str, Row]] = []
        added = 0
        try:
            with self._open(f.path) as stream:
                for tags, wall_time, step, offset, length in self._framed(stream, f):
                    found.extend((tag, (step, wall_time, file_id, offset, length)) for tag in tags)
                    if len(found) >= _COMMIT_EVERY:
                        added += self._commit(found)
                        found = []
        except (OSError, tf.errors.OpError) as exc:
            # Shortened or gone meanwhile: what was scanned stays, the rest is
            # read again next time.
            logger.debug("tb_weightnorm: scanning %s from %d failed: %s", f.path, f.offset, exc)
            f.size = -1
        return added + self._commit(found)

    def _commit(self, found: List[Tuple[str, Row]]) -> int:
        by_tag: Dict[str, List[Row]] = {}
        for tag, row in found:
            by_tag.setdefault(tag, []).append(row)
        with self._lock:
            for tag, rows in by_tag.items():
                series = self._series.get(tag)
                if series is None:
                    series = self._series[tag] = Series(tag)
                series.extend(rows)
        return len(found)

    def _framed(self, stream: BinaryIO, f: _File):
        """(matching tags, wall time, step, offset, length) of each complete
        record from `f.offset` on, advancing `f.offset` past each."""
        block_start, block = f.offset, b""
        offset = f.offset
        while offset + HEADER_BYTES <= f.size:
            at = offset - block_start
            if at < 0 or at + HEADER_BYTES + PREFIX_BYTES > len(block) and block_start + len(block) < f.size:
                stream.seek(offset)
                block_start, block = offset, stream.read(min(_SCAN_BLOCK, f.size - offset))
                at = 0
            if len(block) - at < HEADER_BYTES:
                return  # the file was cut shorter than its stat said
            length = record_length(block[at : at + HEADER_BYTES])
            if length is None:
                warn_once(
                    ("length crc", f.path, offset),
                    "tb_weightnorm: the record at offset %d of %s has a corrupt length checksum; "
                    "the records after it in this file are not shown (those before it are). "
                    "Copy the good part out with `head -c %d`, or delete the file if the run "
                    "does not need it.",
                    offset, f.path, offset,
                )
                f.stopped = True
                return
            end = offset + HEADER_BYTES + length + FOOTER_BYTES
            if end > f.size:
                return  # incomplete: retried from `offset` next time
            start = at + HEADER_BYTES
            prefix = block[start : start + min(length, PREFIX_BYTES)]
            peeked = event_prefix.peek(prefix, complete=length <= PREFIX_BYTES)
            if peeked is None:
                stream.seek(offset + HEADER_BYTES)
                peeked = _parsed(stream.read(length), f.path, offset)
                block = b""  # the stream moved
            wall_time, step, tags = peeked
            matching = _matching(tags, self.tag_prefix)
            f.offset = end
            if matching:
                yield matching, wall_time, step, offset, length
            offset = end

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
        """The records indexed, of all tags, as `logged` counts them."""
        with self._lock:
            return sum(s.size for s in self._series.values())

    def logged(self, tag: str) -> RecordArrays:
        """Every record of `tag` in the order scanned (file by file as
        found, each file in order), a re-logged step as often as it was
        logged; empty for an unknown tag.

        Args:
            tag: an indexed tag.

        Example: `len(index.logged(tag)) - len(index.records(tag))` records were replaced.
        """
        with self._lock:
            series = self._series.get(tag)
            return series.view() if series is not None else empty(tag)

    def records(self, tag: str) -> RecordArrays:
        """The records of `tag` as TensorBoard shows them: by increasing step,
        one per step, a re-logged step's latest record and nothing the run
        logged past the step it was resumed from (see the class's docstring);
        empty for an unknown tag.

        Args:
            tag: an indexed tag.

        Example: `index.records(tag).steps[-1]` is the last step shown.
        """
        with self._lock:
            series = self._series.get(tag)
            if series is None:
                return empty(tag)
            key = (series.size, len(self._files))
            if series.shown is None or series.shown[0] != key:
                view = series.view()
                # Kept rather than recomputed: each chart's request asks for it.
                series.shown = (key, shown(view, self._read_order(view)))
            return series.shown[1]

    def _read_order(self, view: RecordArrays) -> np.ndarray:
        """The indices of `view` in TensorBoard's reading order: by file name,
        then offset (a file found later may sort earlier). Under the lock."""
        names = np.array([f.path for f in self._files], dtype=object)
        ranks = np.empty(len(names), np.int64)
        ranks[np.argsort(names, kind="stable")] = np.arange(len(names))
        # lexsort's last key is the primary one.
        return np.lexsort((view.offsets, ranks[view.file_ids]))

    def steps(self, tag: str) -> np.ndarray:
        """The steps `records(tag)` has, increasing (int64).

        Args:
            tag: an indexed tag.

        Example: `index.steps(tag)[[0, -1]]` is the run's first and last step.
        """
        return self.records(tag).steps

    def in_range(self, tag: str, first_step: Optional[int] = None, last_step: Optional[int] = None) -> RecordArrays:
        """The records of `tag` with `first_step <= step <= last_step`, as
        `records` has them, found by bisection.

        Args:
            tag: an indexed tag.
            first_step: the first step wanted; None from the first logged.
            last_step: the last step wanted (included); None to the last logged.

        Example: `index.in_range(tag, 5000, 9999)` for a chart's window.
        """
        records = self.records(tag)
        lo = 0 if first_step is None else int(np.searchsorted(records.steps, first_step, "left"))
        hi = len(records) if last_step is None else int(np.searchsorted(records.steps, last_step, "right"))
        return records.take(slice(lo, hi))

    def read(self, records: RecordArrays) -> List[Record]:
        """The value of `records.tag` in each record, read from its file, in
        the order given. A record whose data checksum is wrong (a corrupt
        file) or that cannot be read any more is left out, with one warning
        per record: the others are still worth showing, and each `Record`
        carries its step, so the caller can tell which are missing.

        Args:
            records: records of this index, as `records`, `in_range` or
                `logged` give them (or a `take` of those).

        Example:

        ```python
        names = metadata.norm_table_names(index.first_metadata(tag).plugin_data.content)
        for r in index.read(index.in_range(tag, 0, 100)):
            table = norm_tables.decoded_values(tensor_util.make_ndarray(r.value.tensor), names.shape)
        ```
        """
        paths = self.files()
        out: List[Optional[Record]] = [None] * len(records)
        for file_id in np.unique(records.file_ids):
            mine = np.flatnonzero(records.file_ids == file_id)
            mine = mine[np.argsort(records.offsets[mine], kind="stable")]  # forward seeks only
            path = paths[file_id]
            try:
                with self._open(path) as stream:
                    for i in mine:
                        out[i] = _record_at(stream, path, int(records.offsets[i]), int(records.lengths[i]), records.tag)
            except (OSError, tf.errors.OpError) as exc:
                warn_once(("unreadable", path), "tb_weightnorm: cannot read %s: %s", path, exc)
        return [r for r in out if r is not None]

    def first_metadata(self, tag: str) -> Optional[summary_pb2.SummaryMetadata]:
        """The metadata of the first record of `tag` in reading order (first
        file by name, first in it): the only one that carries a norm table's
        names. None for an unknown tag or an unreadable first record.

        Args:
            tag: an indexed tag.

        Example: `metadata.norm_table_names(index.first_metadata(tag).plugin_data.content)`.
        """
        with self._lock:
            series = self._series.get(tag)
            if series is None:
                return None
            view = series.view()
            first = view.take(self._read_order(view)[:1])
            where = (int(first.file_ids[0]), int(first.offsets[0]))
            if series.metadata is not None and series.metadata[0] == where:
                return series.metadata[1]
        records = self.read(first)
        if not records:
            return None
        with self._lock:
            series.metadata = (where, records[0].value.metadata)
        return records[0].value.metadata


def _record_at(stream: BinaryIO, path: str, offset: int, length: int, tag: str) -> Optional[Record]:
    try:
        stream.seek(offset + HEADER_BYTES)
        data = stream.read(length + FOOTER_BYTES)
    except (OSError, tf.errors.OpError):
        data = b""  # the file was shortened: as unreadable as a wrong checksum
    if len(data) < length + FOOTER_BYTES or masked_crc32c(data[:length]) != struct.unpack_from("<I", data, length)[0]:
        warn_once(
            ("data crc", path, offset),
            "tb_weightnorm: skipping the record at offset %d of %s: its data checksum does not "
            "match (the file is corrupt there); the run's other records are shown",
            offset, path,
        )
        return None
    try:
        event = event_pb2.Event.FromString(data[:length])
    except Exception:  # DecodeError, or others on some protobuf backends
        return None  # framed and checksummed but not an event: warned at indexing
    for value in event.summary.value:
        if value.tag == tag:
            return Record(int(event.step), float(event.wall_time), value)
    return None


def _parsed(data: bytes, path: str, offset: int) -> Tuple[float, int, Tuple[str, ...]]:
    try:
        event = event_pb2.Event.FromString(data)
    except Exception as exc:  # DecodeError, or others on some protobuf backends
        warn_once(
            ("undecodable", path, offset),
            "tb_weightnorm: skipping the record at offset %d of %s, which is not an event (%s)",
            offset, path, exc,
        )
        return 0.0, 0, ()
    return event.wall_time, event.step, tuple(v.tag for v in event.summary.value)


def _matching(tags: Tuple[str, ...], prefix: str) -> Tuple[str, ...]:
    if len(tags) == 1:  # the usual event: no set to build
        return tags if tags[0].startswith(prefix) else ()
    # A tag twice in one event is indexed once; `read` answers its first value.
    return tuple(dict.fromkeys(t for t in tags if t.startswith(prefix)))


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if "://" in folder else tf.io.gfile.join(folder, name)
