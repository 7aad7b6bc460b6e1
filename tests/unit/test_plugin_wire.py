"""Rounding and JSON encoding (bodies.py) and the plugin's cache (cache.py)."""

import json
import threading
import time

import numpy as np
import pytest

from tb_weightnorm.plugin import bodies, cache

NAN, INF = float("nan"), float("inf")


# -- rounding and encoding ----------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (0.123456, "0.1235"),
        (123456.0, "123500.0"),
        (1.0, "1.0"),
        (-0.000123456, "-0.0001235"),
        (9.99951, "10.0"),
        (2.5e-12, "2.5e-12"),
        (np.float32(0.1), "0.1"),  # a float32 value, not its float64 expansion
        (0.0, "0.0"),
    ],
)
def test_four_significant_digits_are_written_with_few_characters(value, text):
    (rounded,) = bodies.json_values(np.array([value]), digits=4)
    assert json.dumps(rounded) == text


def test_rounding_agrees_with_decimal_formatting_over_many_magnitudes():
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000) * 10.0 ** rng.integers(-20, 20, size=2000)
    rounded = bodies.round_significant(values, 4)
    expected = np.array([float(f"{v:.3e}") for v in values])
    np.testing.assert_allclose(rounded, expected, rtol=1e-12)
    # Where the scale is an exact power of ten (10**k, |k| <= 22), the result is
    # exactly the float of the decimal, so JSON writes the short decimal.
    exact = np.floor(np.log10(np.abs(values))) >= -19
    assert exact.sum() > 1500
    np.testing.assert_array_equal(rounded[exact], expected[exact])


def test_nan_is_null_and_infinities_are_strings():
    values = np.array([[1.5, NAN], [INF, -INF]], np.float32)
    encoded = bodies.json_values(values, digits=4)
    assert encoded == [[1.5, None], ["Infinity", "-Infinity"]]
    assert json.dumps(encoded, allow_nan=False)
    assert bodies.json_values(values) == encoded  # no rounding needed here
    assert [bodies.json_number(v) for v in (NAN, INF, -INF, 2.0)] == [None, "Infinity", "-Infinity", 2.0]


def test_counts_are_integers():
    assert bodies.json_counts(np.array([3.0, 0.0, 16777216.0, NAN], np.float32)) == [3, 0, 16777216, None]
    assert all(type(c) is int for c in bodies.json_counts(np.array([1.0, 2.0])))


# -- cache --------------------------------------------------------------------


class Series:
    def __init__(self, max_step, max_wall_time):
        self.max_step, self.max_wall_time = max_step, max_wall_time


def test_signature_changes_when_a_series_grows():
    before = cache.listing_signature({"a": Series(10, 1.0), "b": Series(3, 2.0)})
    assert before == cache.listing_signature({"b": Series(3, 2.0), "a": Series(10, 1.0)})
    assert before != cache.listing_signature({"a": Series(11, 1.5), "b": Series(3, 2.0)})
    assert before != cache.listing_signature({"a": Series(10, 1.0), "b": Series(3, 2.5)})  # a step logged again
    assert before != cache.listing_signature({"a": Series(10, 1.0)})


def test_reuses_while_the_signature_holds_and_recomputes_after():
    c = cache.SignedCache()
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return value

        return run

    assert c.get("run", 1, compute("first")) == "first"
    assert c.get("run", 1, compute("again")) == "first"
    assert c.get("run", 2, compute("second")) == "second"
    assert calls == ["first", "second"]
    assert c.get("other", 1, compute(None)) is None  # a run with nothing readable is cached too
    assert c.get("other", 1, compute("x")) is None


def test_bounded_by_entries_and_by_bytes_least_recently_used_first():
    c = cache.SignedCache(max_entries=3, max_bytes=1000)
    for key in "abc":
        c.get(key, 0, lambda: np.zeros(10, np.uint8))
    c.get("a", 0, lambda: pytest.fail("a was evicted"))  # a is now the most recent
    c.get("d", 0, lambda: np.zeros(10, np.uint8))  # evicts b
    assert len(c) == 3
    recomputed = []
    c.get("b", 0, lambda: recomputed.append("b") or np.zeros(10, np.uint8))
    assert recomputed == ["b"]
    c.get("big", 0, lambda: np.zeros(900, np.uint8))
    assert c.nbytes == 920 and len(c) == 3
    c.get("bigger", 0, lambda: np.zeros(950, np.uint8))  # evicts down to the budget
    assert c.nbytes == 950 and len(c) == 1
    huge = c.get("huge", 0, lambda: np.zeros(5000, np.uint8))  # over the whole budget: served, not kept
    assert huge.size == 5000 and c.nbytes <= 1000


def test_concurrent_requests_compute_once_and_failures_are_not_kept():
    c = cache.SignedCache()
    calls = []
    started = threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return "value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(c.get("k", 0, slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 6 and calls == [1]

    def broken():
        raise RuntimeError("decode failed")

    with pytest.raises(RuntimeError):
        c.get("bad", 0, broken)
    assert c.get("bad", 0, lambda: "fine now") == "fine now"
