"""How often to log so that logging costs at most a fixed share of training
time: the policy behind `WeightHealthCallback`'s default frequencies.

A logged step costs more than a plain one by a roughly fixed amount (the
statistics of every variable, then writing them); a plain step's time
depends on the model and the batch. With a 200-layer MLP whose steps take
8 ms, a table every 10 steps would make training half again as slow; with a
CNN whose steps take 100 ms it is free. So the interval starts at its floor
and grows, from measured step times, until the extra time per step is within
budget. It never shrinks: a logged series keeps getting sparser or stays as
it is, it never jumps back and forth.

The policy is pure functions; `StepTimes` is the callback's side of it: it
times the steps and makes the logging sparser when they say so.
"""

from __future__ import annotations

import collections
import logging
import math
import statistics
from typing import Callable, Optional, Protocol, Sequence, Tuple

logger = logging.getLogger("tb_weightnorm")

# The share of a plain step's time logging may add, per kind of logging
# (norm tables, histograms): together they stay near 1%.
BUDGET = 0.005
# Step times needed before deciding: logged steps are rare, so two will do
# (the median of two is their mean); plain ones are many.
MIN_LOGGED = 2
MIN_PLAIN = 3
# Intervals are rounded up to one of these times a power of ten, so logged
# steps fall on round numbers (10, 20, 50, 100, ...).
_NICE = (1, 2, 5)


def nice_interval(n: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least n.

    Example:

    >>> [nice_interval(n) for n in (1, 3, 10, 11, 240)]
    [1, 5, 10, 20, 500]
    """
    n = max(1.0, float(n))
    decade = 10 ** math.floor(math.log10(n))
    for factor in _NICE + (10,):
        if factor * decade >= n:
            return int(factor * decade)
    return int(10 * decade)  # not reached


def interval_for(
    current: int,
    logged_seconds: Sequence[float],
    plain_seconds: Sequence[float],
    budget: float = BUDGET,
) -> Optional[int]:
    """The interval that keeps logging within `budget`, if larger than `current`.

    Args:
        current: the interval in use (steps between logged steps).
        logged_seconds: recent times of steps (or executions) that logged.
        plain_seconds: recent times of steps that did not.
        budget: the share of a plain step's time logging may add on average.

    Returns:
        A larger interval (a round number), or None to keep `current` (too
        few samples, or already within budget).

    Example:

    >>> interval_for(10, [0.048] * 5, [0.008] * 20)  # 40 ms extra on 8 ms steps
    1000
    >>> interval_for(10, [0.103] * 5, [0.100] * 20) is None  # 3 ms on 100 ms steps
    True
    """
    if len(logged_seconds) < MIN_LOGGED or len(plain_seconds) < MIN_PLAIN:
        return None
    plain = statistics.median(plain_seconds)
    extra = statistics.median(logged_seconds) - plain
    if plain <= 0 or extra <= 0:
        return None
    wanted = nice_interval(extra / (budget * plain))
    return wanted if wanted > current else None


def grids_due(last_cost_seconds: Optional[float], seconds_since_last: float, budget: float = BUDGET) -> bool:
    """Whether kernel grids may be drawn again: when the time trained since the
    last ones is long enough that drawing them (as long as last time) adds at
    most `budget` to it.

    Grids are drawn on the host at epoch ends, so their cost is a fixed time
    per drawing, not a share of each step: 52 conv kernels of a MobileNetV2
    take about half a second, nothing beside a 10-minute epoch and a third of
    a 2-second one.

    Args:
        last_cost_seconds: how long the last drawing took; None if none was
            drawn yet (then they are due).
        seconds_since_last: training time since the last drawing ended.
        budget: the share of training time drawing may add.

    Example:

    >>> grids_due(0.5, 60.0)   # 0.5 s of drawing after a minute: 0.8%
    False
    >>> grids_due(0.5, 120.0)
    True
    """
    if last_cost_seconds is None:
        return True
    return last_cost_seconds <= budget * seconds_since_last


class Intervals(Protocol):
    """What `StepTimes` adjusts: the logging's intervals (`LoggedSteps`)."""

    @property
    def intervals(self) -> Tuple[int, int]:
        """(norm tables, histograms; 0 for none) in steps, as the train step logs them."""

    def make_sparser(self, *, norms: int, histograms: Optional[int]) -> None: ...


class StepTimes:
    """Times each training step by what it logged ("plain", "norms",
    "histograms") and logs less often where logging costs more than `BUDGET`.

    Args:
        automatic: (norm tables, histograms): which intervals follow the
            budget; the others stay as the user chose.
        clock: what steps are timed with (a test gives one of its own, so no
            decision depends on how busy the machine is).

    Example:

    ```python
    times = StepTimes((True, True), time.perf_counter)
    times.step_ended("norms", logged_steps)  # at each batch end
    ```
    """

    def __init__(self, automatic: Tuple[bool, bool], clock: Callable[[], float]):
        self._automatic = automatic
        self._clock = clock
        self._times = {kind: collections.deque(maxlen=9) for kind in ("plain", "norms", "histograms")}
        self._step_started: Optional[float] = None

    def restart(self) -> None:
        """At a fit's or an epoch's start: its first step also waits for its
        data, it is not a step time."""
        self._step_started = None

    def step_ended(self, kind: Optional[str], intervals: Intervals) -> None:
        """Times the step that just ended (with its in-graph statistics and
        writing them out), which logged `kind` (None: nothing was recorded)."""
        ended = self._clock()
        if self._step_started is not None and kind is not None:
            self._times[kind].append(ended - self._step_started)
            if kind != "plain":
                self._follow_budget(intervals)
        self._step_started = ended

    def _follow_budget(self, intervals: Intervals) -> None:
        """Logs less often where logging costs more than its budget."""
        times = self._times
        norms, histograms = intervals.intervals
        new_norms = new_histograms = None
        if self._automatic[0]:
            new_norms = interval_for(norms, times["norms"], times["plain"])
        if self._automatic[1] and histograms:
            # A histogram step also logs a table when both fall on it.
            new_histograms = interval_for(
                histograms, times["histograms"], times["norms"] if len(times["norms"]) else times["plain"]
            )
        if new_norms is None and new_histograms is None:
            return
        new_norms = new_norms or norms
        # Histograms are never more frequent than tables.
        new_histograms = max(new_histograms or histograms, new_norms) if histograms else None
        intervals.make_sparser(norms=new_norms, histograms=new_histograms)
        logger.info(
            "tb_weightnorm: logging norm tables every %d steps and histograms every %d, to keep "
            "their cost under %.1f%% of training time.",
            *intervals.intervals, 100 * BUDGET,
        )
