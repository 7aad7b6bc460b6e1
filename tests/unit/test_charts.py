"""Thinning a run's logged steps into columns (read/charts.py)."""

import subprocess
import sys

import numpy as np
import pytest

from tb_weightnorm.read import charts

NAN, INF = float("nan"), float("inf")


# -- thinning -----------------------------------------------------------------


def reference_reduce(values, starts, how):
    """The bucket reduction written plainly, one bucket at a time."""
    ends = list(starts[1:]) + [len(values)]
    out = []
    for a, b in zip(starts, ends):
        block = values[a:b]
        columns = []
        for column in block.T:
            measured = column[~np.isnan(column)]
            if measured.size == 0:
                columns.append(NAN)
            elif how == "max":
                columns.append(measured.max())
            elif how == "min":
                columns.append(measured.min())
            elif how == "mean":
                columns.append(measured.mean())
            else:
                columns.append(measured[-1])
        out.append(columns)
    return np.array(out)


@pytest.mark.parametrize("how", charts.REDUCES)
@pytest.mark.parametrize("n, k", [(1, 5), (7, 7), (10, 3), (1001, 500), (10_001, 500), (13, 1)])
def test_bucket_reduction_matches_a_plain_loop(how, n, k):
    rng = np.random.default_rng(n + k)
    values = rng.normal(size=(n, 3))
    values[rng.random(size=values.shape) < 0.2] = NAN  # not measured
    values[: min(n, 4), 2] = NAN  # a whole first bucket unmeasured when buckets are small
    values[rng.random(size=values.shape) < 0.01] = INF
    starts = charts.bucket_starts(n, k)
    assert len(starts) == min(n, k)
    sizes = np.diff(np.append(starts, n))
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    # The mean's sums run in another order than the plain loop's.
    np.testing.assert_allclose(
        charts.reduce_buckets(values, starts, how), reference_reduce(values, starts, how), rtol=1e-12
    )


def test_bucket_steps_are_first_and_last_of_each_bucket():
    steps = np.array([0, 10, 20, 30, 40, 50, 60])
    starts = charts.bucket_starts(len(steps), 3)
    first, last = charts.bucket_steps(steps, starts)
    assert first.tolist() == [0, 20, 40] and last.tolist() == [10, 30, 60]
    # No thinning needed: one step per bucket.
    first, last = charts.bucket_steps(steps, charts.bucket_starts(len(steps), 100))
    assert first.tolist() == last.tolist() == steps.tolist()


def test_an_infinite_value_survives_max_and_mean():
    values = np.array([[1.0], [INF], [2.0], [NAN]])
    starts = np.array([0])
    assert charts.reduce_buckets(values, starts, "max")[0, 0] == INF
    assert charts.reduce_buckets(values, starts, "mean")[0, 0] == INF
    assert charts.reduce_buckets(values, starts, "min")[0, 0] == 1.0
    assert charts.reduce_buckets(values, starts, "last")[0, 0] == 2.0  # NaN is "not measured"


@pytest.mark.parametrize("n, k", [(0, 3), (3, 5), (100, 1), (100, 2), (100, 7), (10_001, 100)])
def test_evenly_spaced_keeps_the_last(n, k):
    picked = charts.evenly_spaced(n, k)
    assert len(picked) == min(n, k)
    assert len(set(picked.tolist())) == len(picked)
    if n:
        assert picked[-1] == n - 1
    if n and k > 1:
        assert picked[0] == 0
    assert (np.diff(picked) > 0).all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_columns"):
        charts.bucket_starts(10, 0)
    with pytest.raises(ValueError, match="how"):
        charts.reduce_buckets(np.zeros((2, 1)), np.array([0]), "median")
    with pytest.raises(ValueError, match="k must"):
        charts.evenly_spaced(10, 0)


def test_charts_need_neither_tensorboard_nor_tensorflow():
    """Backend-neutral: the host's numpy is all a chart of any run needs."""
    code = (
        "import sys, numpy as np;"
        "sys.modules.update(dict.fromkeys(['tensorboard', 'tensorflow', 'keras', 'werkzeug', 'google.protobuf']));"
        "from tb_weightnorm.read import charts;"
        "from tb_weightnorm.read.history import NormHistory;"
        "h = NormHistory('r', np.arange(4), np.zeros(4), ('v',), ('l',), ('weight/l2',), np.ones((4, 1, 1)));"
        "assert charts.thin(h, h.column('weight/l2'), 2, 'max').steps.tolist() == [1, 3]"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
