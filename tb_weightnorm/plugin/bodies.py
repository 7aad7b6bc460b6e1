"""Shapes numbers for the plugin's JSON responses: thinning long runs into
columns, rounding, and spelling NaN and infinities the way JSON can carry.

Pure numpy (no TensorFlow, no TensorBoard, no HTTP): every function works on
whole arrays at once, so a response for a long run costs a few array
operations rather than a Python loop per value.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from tb_weightnorm.read import json_numbers

# How a bucket of logged steps becomes one column.
REDUCES = ("max", "min", "mean", "last")

# One spelling of NaN and infinities for the plugin and the command-line report.
json_number = json_numbers.json_number
finding_object = json_numbers.finding_object


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """`values` (float64) rounded to `digits` significant digits.

    The scale is an exact power of ten whenever it can be (10**k for |k| <=
    22), and the result is produced by one division or multiplication of that
    exact scale, so it is the float nearest the rounded decimal and JSON
    writes it with no more than `digits` digits (0.1234, not
    0.12340000000000001). NaN, ±inf and 0 pass through.
    """
    x = np.array(values, dtype=np.float64)
    rounded = np.isfinite(x) & (x != 0)
    if not rounded.any():
        return x
    v = x[rounded]
    exponent = np.floor(np.log10(np.abs(v))).astype(np.int64)
    shift = digits - 1 - exponent  # decimal places kept; negative: tens dropped
    scale = 10.0 ** np.abs(shift).astype(np.float64)
    x[rounded] = np.where(shift >= 0, np.round(v * scale) / scale, np.round(v / scale) * scale)
    return x


def json_values(values: np.ndarray, digits: Optional[int] = None) -> List[Any]:
    """An array of any shape as (nested) JSON lists, NaN as null and ±inf as
    "Infinity"/"-Infinity"; rounded to `digits` significant digits if given."""
    x = np.asarray(values, dtype=np.float64)
    if digits is not None:
        x = round_significant(x, digits)
    out = x.astype(object)
    out[np.isnan(x)] = None
    out[x == np.inf] = json_numbers.POSITIVE_INFINITY
    out[x == -np.inf] = json_numbers.NEGATIVE_INFINITY
    return out.tolist()


def json_counts(values: np.ndarray) -> List[Any]:
    """Counts stored as floats, as JSON integers (null where not a number)."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.rint(np.where(finite, x, 0)).astype(np.int64).astype(object)
    out[~finite] = None
    return out.tolist()


def bucket_starts(n_steps: int, max_columns: int) -> np.ndarray:
    """Where each column's bucket of logged steps starts (indices into the steps).

    At most `max_columns` buckets of contiguous logged steps, their sizes
    differing by at most one; one bucket per step when the run is short
    enough.
    """
    if max_columns < 1:
        raise ValueError(f"max_columns must be at least 1; got {max_columns}")
    k = min(n_steps, max_columns)
    return (np.arange(k, dtype=np.int64) * n_steps) // max(k, 1)


def bucket_steps(steps: np.ndarray, starts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(first, last) logged step of each bucket."""
    steps = np.asarray(steps)
    if len(starts) == 0:
        return steps[:0], steps[:0]
    ends = np.append(starts[1:], len(steps))
    return steps[starts], steps[ends - 1]


def reduce_buckets(values: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    """Reduces each bucket of rows (axis 0) of `values` to one row.

    NaN means "not measured" and is skipped: a bucket with no measured value
    is NaN. Infinities are values like any other (an overflowing norm must
    not vanish from a thinned view): `max` keeps +inf, `mean` becomes
    infinite. `last` is the last measured value of the bucket.

    Args:
        values: float [steps, ...].
        starts: from `bucket_starts`.
        how: one of `REDUCES`.
    """
    if how not in REDUCES:
        raise ValueError(f"how must be one of {', '.join(REDUCES)}; got {how!r}")
    v = np.asarray(values, dtype=np.float64)
    if len(starts) == 0:
        return v[:0]
    measured = ~np.isnan(v)
    if how == "max":
        return np.fmax.reduceat(v, starts, axis=0)
    if how == "min":
        return np.fmin.reduceat(v, starts, axis=0)
    if how == "mean":
        sums = np.add.reduceat(np.where(measured, v, 0.0), starts, axis=0)
        counts = np.add.reduceat(measured.astype(np.int64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    index = np.arange(len(v)).reshape((-1,) + (1,) * (v.ndim - 1))
    last = np.maximum.reduceat(np.where(measured, index, -1), starts, axis=0)
    picked = np.take_along_axis(v, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, picked, np.nan)


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most `k` indices into `n` items, evenly spaced, always with the last
    (and with the first when k > 1)."""
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        return np.array([n - 1], dtype=np.int64)
    # n > k, so the spacing exceeds 1 and rounding never repeats an index.
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)
