"""The on-disk format of a weight snapshot: one file per snapshot, raw
little-endian arrays behind a small JSON index.

Layout of a file (all integers little-endian):

    offset 0   8 bytes   magic b"TBWNSNAP"
    offset 8   uint32    format version (FORMAT_VERSION)
    offset 12  uint32    byte length H of the index
    offset 16  H bytes   the index, UTF-8 JSON (below)
    then       arrays, each starting at a multiple of ALIGNMENT bytes from the
               start of the file, C order, in the dtype the index names

The index: `{"epoch", "step", "wall_time", "model", "variables": [{"path",
"layer", "trainable", "dtype", "shape", "offset", "nbytes"}, ...]}`. `dtype`
is a numpy dtype string with explicit byte order (`"<f4"`); only bool,
integer and float dtypes are allowed, so reading a file never builds a Python
object from it (no pickle: loading can never run code).

A file is written to a temporary name in the same folder and renamed into
place once complete (`os.replace` is atomic), so a run killed while saving
never leaves a half-written snapshot under a name the reader lists.

numpy only: the plugin reads these files without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
from typing import BinaryIO, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

MAGIC = b"TBWNSNAP"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
# Arrays start at multiples of this, so a reader may map them in place.
ALIGNMENT = 64
# Dtype kinds a file may hold: bool, signed and unsigned integers, floats.
_KINDS = "biuf"
# An index larger than this is not one we wrote (64 MB: about a million variables).
_MAX_INDEX_BYTES = 64 * 1024 * 1024


class SnapshotError(ValueError):
    """A snapshot file that cannot be read: not one, corrupt, or from a newer version."""


@dataclasses.dataclass(frozen=True)
class StoredVariable:
    """Where one variable's weights are in a snapshot file.

    Attributes:
        path: the Keras variable path, e.g. `sequential/dense/kernel`.
        layer: the layer users know it by, e.g. `dense`.
        trainable: whether the optimizer updates it.
        dtype: the numpy dtype of the stored values (little-endian).
        shape: the variable's shape.
        offset: where its values start, in bytes from the start of the file.
        nbytes: how many bytes they take.
    """

    path: str
    layer: str
    trainable: bool
    dtype: np.dtype
    shape: Tuple[int, ...]
    offset: int
    nbytes: int


@dataclasses.dataclass(frozen=True)
class SnapshotIndex:
    """The index at the start of a snapshot file."""

    epoch: int
    step: int
    wall_time: float
    model: str
    variables: Tuple[StoredVariable, ...]


def file_name(epoch: int) -> str:
    """The file name of the snapshot taken after `epoch` epochs."""
    return f"epoch-{epoch:06d}.wsnap"


def epoch_of(name: str) -> Optional[int]:
    """The epoch of a snapshot file name; None for any other file (temporary
    files of a save in progress among them)."""
    if not (name.startswith("epoch-") and name.endswith(".wsnap")):
        return None
    digits = name[len("epoch-") : -len(".wsnap")]
    return int(digits) if digits.isdigit() else None


def _aligned(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _little_endian(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if array.dtype.kind not in _KINDS:
        raise TypeError(f"a snapshot holds bool, integer and float arrays; got dtype {array.dtype}")
    return array.astype(array.dtype.newbyteorder("<"), copy=False)


def write(
    path: str,
    *,
    epoch: int,
    step: int,
    wall_time: float,
    model: str,
    variables: Sequence[Tuple[str, str, bool, np.ndarray]],
) -> None:
    """Writes one snapshot file atomically.

    Args:
        path: the file to write (its folder must exist).
        epoch, step, wall_time, model: what the index records.
        variables: (path, layer, trainable, values) of each variable, in model order.
    """
    arrays = [_little_endian(np.asarray(values)) for _, _, _, values in variables]
    entries, offset = [], 0
    for (name, layer, trainable, _), array in zip(variables, arrays):
        entries.append(
            {
                "path": name,
                "layer": layer,
                "trainable": bool(trainable),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "offset": offset,  # from the start of the data; `_header` makes it absolute
                "nbytes": int(array.nbytes),
            }
        )
        offset = _aligned(offset + array.nbytes)
    index = {"epoch": int(epoch), "step": int(step), "wall_time": float(wall_time), "model": model,
             "variables": entries}
    header, start = _header(index)
    folder, name = os.path.split(path)
    for stale in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        os.remove(stale)  # left by a run killed while saving this same snapshot
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)))
            f.write(header)
            for entry, array in zip(entries, arrays):
                f.seek(entry["offset"])
                f.write(array.data)
            # Only the padding between arrays is written as such, not after the last.
            f.truncate(max([start] + [e["offset"] + e["nbytes"] for e in entries]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _sync_folder(folder)


def _header(index: Dict) -> Tuple[bytes, int]:
    """(encoded index, where the data starts) for an index whose offsets are
    still relative to the data. The offsets depend on where the data starts,
    which depends on the index's length: grow the start until it holds."""
    relative = [entry["offset"] for entry in index["variables"]]
    start = _aligned(_PREFIX.size)
    while True:
        for entry, offset in zip(index["variables"], relative):
            entry["offset"] = start + offset
        header = json.dumps(index).encode("utf-8")
        needed = _aligned(_PREFIX.size + len(header))
        if needed <= start:
            return header, start
        start = needed


def _sync_folder(folder: str) -> None:
    """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fail(path: str, why: str) -> SnapshotError:
    return SnapshotError(f"{path} is not a readable weight snapshot: {why}")


def read_index(path: str) -> SnapshotIndex:
    """The index of a snapshot file, checked against the file's size.

    Raises:
        SnapshotError: the file is not a snapshot, is truncated or corrupt, or
            comes from a newer version of tb_weightnorm.
    """
    with open(path, "rb") as f:
        return _read_index(f, path, os.fstat(f.fileno()).st_size)


def _read_index(f: BinaryIO, path: str, size: int) -> SnapshotIndex:
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise _fail(path, "it is shorter than the header")
    magic, version, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise _fail(path, "it does not start with the snapshot magic bytes")
    if version > FORMAT_VERSION:
        raise _fail(path, f"it has format version {version}; this tb_weightnorm reads up to "
                          f"{FORMAT_VERSION}: upgrade tb_weightnorm")
    if length > min(size - _PREFIX.size, _MAX_INDEX_BYTES):
        raise _fail(path, "its index is longer than the file")
    try:
        raw = json.loads(f.read(length).decode("utf-8"))
        variables = tuple(_stored(entry) for entry in raw["variables"])
        index = SnapshotIndex(
            epoch=int(raw["epoch"]), step=int(raw["step"]), wall_time=float(raw["wall_time"]),
            model=str(raw.get("model", "")), variables=variables,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(path, f"its index is corrupt ({exc})") from None
    for v in variables:
        if v.offset < _PREFIX.size + length or v.offset + v.nbytes > size:
            raise _fail(path, f"the values of {v.path!r} lie outside the file (truncated?)")
    return index


def _stored(entry: Mapping) -> StoredVariable:
    dtype = np.dtype(str(entry["dtype"]))
    if dtype.kind not in _KINDS or dtype.hasobject:
        raise ValueError(f"dtype {entry['dtype']!r} is not a bool, integer or float dtype")
    shape = tuple(int(d) for d in entry["shape"])
    nbytes = int(entry["nbytes"])
    if any(d < 0 for d in shape) or nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise ValueError(f"{entry['path']!r} has shape {shape} of {dtype} but {nbytes} bytes")
    return StoredVariable(
        path=str(entry["path"]), layer=str(entry["layer"]), trainable=bool(entry["trainable"]),
        dtype=dtype, shape=shape, offset=int(entry["offset"]), nbytes=nbytes,
    )


def read_values(path: str, variables: Sequence[StoredVariable]) -> Dict[str, np.ndarray]:
    """The values of `variables` (entries of this file's index), by path, as
    native-endian arrays the caller owns."""
    out: Dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        for v in variables:
            f.seek(v.offset)
            data = f.read(v.nbytes)
            if len(data) != v.nbytes:
                raise _fail(path, f"the values of {v.path!r} are cut short (the file changed?)")
            array = np.frombuffer(data, dtype=v.dtype).reshape(v.shape)
            out[v.path] = array.astype(v.dtype.newbyteorder("="), copy=True)
    return out


def list_files(folder: str) -> List[Tuple[int, str]]:
    """(epoch, path) of the snapshot files in `folder`, by epoch; [] if it does not exist."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [(epoch_of(n), os.path.join(folder, n)) for n in names]
    return sorted((e, p) for e, p in found if e is not None)
