"""A tag's records in an event index, as numpy arrays (see `event_index`).

One array per field rather than one object per record: a long run's
100,000 records of a tag cost a few MB, and step windows are bisections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from tensorboard.compat.proto import summary_pb2

DTYPES = (np.int64, np.float64, np.int32, np.int64, np.int64)
Row = Tuple[int, float, int, int, int]  # step, wall time, file id, offset, length


@dataclass(frozen=True)
class RecordArrays:
    """Records of one tag, one element of each array per record.

    `file_ids` index `RunIndex.files()`; `offsets` are where each record's
    header starts and `lengths` its data's bytes (header and footer not
    counted). The arrays are read-only: they may be views of the index.
    """

    tag: str
    steps: np.ndarray  # int64
    wall_times: np.ndarray  # float64
    file_ids: np.ndarray  # int32
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.steps)

    def arrays(self) -> Tuple[np.ndarray, ...]:
        return (self.steps, self.wall_times, self.file_ids, self.offsets, self.lengths)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())

    def take(self, which) -> "RecordArrays":
        """The records `which` (a slice, indices or a mask) selects."""
        return RecordArrays(self.tag, *(a[which] for a in self.arrays()))


class Series:
    """The records of one tag in scan order, in arrays grown by doubling:
    appending is amortized O(1), and 100,000 records cost 36 B each."""

    def __init__(self, tag: str):
        self.tag = tag
        self.columns = [np.empty(64, d) for d in DTYPES]
        self.size = 0
        # (size, files) it was computed at, the records TensorBoard shows.
        self.shown: Optional[Tuple[Tuple[int, int], RecordArrays]] = None
        # (file id, offset) of the record it was read from, the metadata.
        self.metadata: Optional[Tuple[Tuple[int, int], summary_pb2.SummaryMetadata]] = None

    def extend(self, rows: List[Row]) -> None:
        end = self.size + len(rows)
        if end > len(self.columns[0]):
            capacity = max(end, 2 * len(self.columns[0]))
            # New arrays rather than resizing: views handed out keep the old ones.
            grown = [np.empty(capacity, d) for d in DTYPES]
            for new, old in zip(grown, self.columns):
                new[: self.size] = old[: self.size]
            self.columns = grown
        for column, values in zip(self.columns, zip(*rows)):
            column[self.size : end] = values
        self.size = end

    def view(self) -> RecordArrays:
        # Later appends write past `size` or into new arrays: a view stays
        # a consistent snapshot without a copy.
        views = []
        for column in self.columns:
            v = column[: self.size]
            v.flags.writeable = False
            views.append(v)
        return RecordArrays(self.tag, *views)


def shown(view: RecordArrays, order: np.ndarray) -> RecordArrays:
    """The records of `view` TensorBoard shows, by increasing step.

    In reading `order`, a record is replaced by any later one whose step is
    not greater (the Rust data server's preemption: a resumed job's steps
    past its checkpoint are recomputed), so a record stays when every later
    step is greater.

    Args:
        view: every record of a tag.
        order: the indices of `view` in reading order.

    Example: `shown(series.view(), order).steps` increase strictly.
    """
    steps = view.steps[order]
    later_min = np.empty_like(steps)
    if len(steps):
        later_min[:-1] = np.minimum.accumulate(steps[::-1])[::-1][1:]
        later_min[-1] = np.iinfo(np.int64).max
    kept = order[steps < later_min]
    if len(kept) == len(view) and np.all(kept[1:] > kept[:-1]):
        return view  # the usual run: no step twice, nothing to copy
    records = view.take(kept)
    for a in records.arrays():
        a.flags.writeable = False
    return records


def empty(tag: str) -> RecordArrays:
    return RecordArrays(tag, *(np.empty(0, d) for d in DTYPES))
