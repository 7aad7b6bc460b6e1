"""The default logging intervals follow a cost budget: pure policy, then a
real fit where logging is made expensive."""

import logging

import numpy as np
import pytest

from support.manual_clock import timed_callback
from support.small_models import dense_regressor
import tb_weightnorm
from tb_weightnorm.writer import cost_budget


def test_intervals_are_round_numbers_and_only_grow():
    assert [cost_budget.nice_interval(n) for n in (0.2, 1, 2, 3, 6, 10, 10.5, 99, 101, 4999)] == [
        1, 1, 2, 5, 10, 10, 20, 100, 200, 5000,
    ]
    plain = [0.008] * 5
    # 40 ms more per logged step on 8 ms steps: 0.5% needs 1,000 steps apart.
    assert cost_budget.interval_for(10, [0.048, 0.048], plain) == 1000
    assert cost_budget.interval_for(2000, [0.048, 0.048], plain) is None  # never back down
    # 3 ms on 100 ms steps is within budget at every 10 steps.
    assert cost_budget.interval_for(10, [0.103, 0.103], [0.1] * 5) is None
    # Too few samples, or logged steps no slower: no decision.
    assert cost_budget.interval_for(10, [0.048], plain) is None
    assert cost_budget.interval_for(10, [0.048, 0.048], plain[:2]) is None
    assert cost_budget.interval_for(10, [0.007, 0.007], plain) is None


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(640, 8)).astype("float32"), rng.normal(size=(640, 1)).astype("float32")


def _model():
    return dense_regressor(8, 4, seed=None)


class _SlowLogging(tb_weightnorm.WeightHealthCallback):
    """Writing each logged table takes 60 ms more, on the test's clock:
    logging far too expensive for steps of 2 ms."""

    def _write_recorded(self):
        kind = super()._write_recorded()
        if kind not in (None, "plain"):
            self._clock.advance(0.06)
        return kind


def _fit_timed(callback, epochs):
    x, y = _data()
    _, timed = timed_callback(callback, step_seconds=0.002)
    _model().fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[timed, callback])


def test_expensive_logging_gets_sparser_while_training(tmp_path, caplog):
    callback = _SlowLogging(str(tmp_path), report=None)
    with caplog.at_level(logging.INFO, logger="tb_weightnorm"):
        _fit_timed(callback, epochs=3)
    # 60 ms on 2 ms steps: 0.5% of them needs 6,000 steps between tables,
    # rounded up to 10,000.
    assert (callback.every_n_steps, callback.histogram_every_n_steps) == (10000, 10000)
    assert "logging norm tables every 10000 steps" in caplog.text
    steps = [s for s, _ in tb_weightnorm.load(str(tmp_path)).groupby("step")]
    # Every 10 steps until two logged steps were timed (the first step of an
    # epoch is not: it waits for data), then none until step 10,001.
    assert steps == [1, 11, 21]


def test_explicit_intervals_are_kept(tmp_path):
    callback = _SlowLogging(str(tmp_path), every_n_steps=5, histogram_every_n_steps=20, report=None)
    _fit_timed(callback, epochs=1)
    assert (callback.every_n_steps, callback.histogram_every_n_steps) == (5, 20)
    steps = sorted({s for s, _ in tb_weightnorm.load(str(tmp_path)).groupby("step")})
    assert steps == list(range(1, 81, 5))


def test_cheap_logging_keeps_the_starting_intervals(tmp_path):
    # Tables and histograms that cost nothing on the clock: nothing changes.
    callback = tb_weightnorm.WeightHealthCallback(str(tmp_path), report=None)
    _fit_timed(callback, epochs=2)
    assert (callback.every_n_steps, callback.histogram_every_n_steps) == (10, 100)
    steps = sorted({s for s, _ in tb_weightnorm.load(str(tmp_path)).groupby("step")})
    assert steps == list(range(1, 161, 10))


def test_grids_are_due_first_and_then_once_their_cost_fits_the_budget():
    assert cost_budget.grids_due(None, 0.0)
    assert not cost_budget.grids_due(0.5, 60.0)
    assert cost_budget.grids_due(0.5, 100.0)
    assert cost_budget.grids_due(0.0, 0.0)


class _Intervals:
    """What StepTimes adjusts, without a model: records what it is told."""

    def __init__(self, norms, histograms):
        self.intervals = (norms, histograms)

    def make_sparser(self, *, norms, histograms):
        self.intervals = (norms, histograms if histograms is not None else self.intervals[1])


def test_step_times_follow_the_budget_from_the_steps_they_time(caplog):
    # The callback's cost budget apart from any fit: steps of 2 ms, logged
    # ones 60 ms more; the step after a restart (an epoch's first) is not timed.
    now = [0.0]
    times = cost_budget.StepTimes((True, False), lambda: now[0])
    intervals = _Intervals(10, 100)
    times.restart()
    with caplog.at_level(logging.INFO, logger="tb_weightnorm"):
        for kind in ["norms"] + ["plain"] * 3 + ["norms"]:
            now[0] += 0.062 if kind == "norms" else 0.002
            times.step_ended(kind, intervals)
        assert intervals.intervals == (10, 100)  # one logged step timed: too few to decide
        now[0] += 0.062
        times.step_ended("norms", intervals)
    # Only the norm tables follow the budget here: the histograms' interval
    # was the user's; never below the tables' though.
    assert intervals.intervals == (10000, 10000)  # 60 ms on 2 ms steps: 6,000 rounded up
    assert "logging norm tables every 10000 steps and histograms every 10000" in caplog.text
