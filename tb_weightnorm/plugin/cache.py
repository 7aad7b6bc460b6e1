"""A bounded, thread-safe cache of what the plugin decoded from a run.

Decoding a long run's tables costs far more than listing them, and the tab asks
for the same run again and again (table, chart, heatmap, findings). Each entry
is stored with a *signature* of the data it was computed from, taken from the
data provider's cheap listing (every time series' tag, last step and last wall
time); while the signature stays the same the entry is reused, and as soon as
TensorBoard loads new events it changes and the entry is computed again.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable, Mapping, Optional, Tuple, TypeVar

import numpy as np

T = TypeVar("T")

# A run of a large model logged for long decodes to hundreds of MB: the budget
# bounds the cache's memory, the entry count its bookkeeping.
MAX_ENTRIES = 48
MAX_BYTES = 512 * 1024 * 1024


def listing_signature(series: Mapping[str, Any]) -> Tuple:
    """What identifies the data behind time series `series` ({tag: series}
    from `list_tensors` or `list_blob_sequences`): any newly loaded event
    raises its series' max_step or max_wall_time."""
    return tuple(sorted((tag, s.max_step, s.max_wall_time) for tag, s in series.items()))


def array_bytes(*values: Any) -> int:
    """Bytes held by the numpy arrays among `values` (and their dataclass fields)."""
    total = 0
    for value in values:
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif hasattr(value, "__dataclass_fields__"):
            total += array_bytes(*(getattr(value, f) for f in value.__dataclass_fields__))
        elif isinstance(value, (list, tuple)):
            total += array_bytes(*value)
    return total


class SignedCache:
    """LRU of values, each valid for one signature of its inputs.

    `get` computes a missing or outdated value once even when several threads
    ask for it at the same time (TensorBoard serves requests on threads, and
    the tab asks for several views of one run at once); other keys are served
    meanwhile.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: "collections.OrderedDict[Hashable, Tuple[Hashable, Any, int]]" = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._computing: set = set()
        self._changed = threading.Condition()

    def get(
        self,
        key: Hashable,
        signature: Hashable,
        compute: Callable[[], T],
        size: Callable[[T], int] = array_bytes,
    ) -> T:
        """The value of `key` computed for `signature`: cached, or `compute()`d."""
        with self._changed:
            while key in self._computing:
                self._changed.wait()
            found = self._lookup(key, signature)
            if found is not None:
                return found[0]
            self._computing.add(key)
        computed = False
        try:
            value = compute()
            nbytes = size(value)
            computed = True
        finally:
            with self._changed:
                self._computing.discard(key)
                if computed:
                    self._store(key, signature, value, nbytes)
                self._changed.notify_all()
        return value

    def __len__(self) -> int:
        with self._changed:
            return len(self._entries)

    @property
    def max_bytes(self) -> int:
        """The memory budget of the values kept."""
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        with self._changed:
            return self._bytes

    def _lookup(self, key, signature) -> Optional[Tuple[Any]]:
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        self._entries.move_to_end(key)
        return (entry[1],)

    def _store(self, key, signature, value, nbytes: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[2]
        if nbytes > self._max_bytes:
            return  # larger than the whole budget: served, not kept
        self._entries[key] = (signature, value, nbytes)
        self._bytes += nbytes
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped
