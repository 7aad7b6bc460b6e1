import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import glob

import numpy as np
import pytest


def read_events(run_dir):
    """(step, wall_time, tag, metadata, ndarray) of every summary value, in file order."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                out.append(
                    (event.step, event.wall_time, value.tag, value.metadata, tensor_util.make_ndarray(value.tensor))
                )
    return out


def numpy_stats(x):
    """Reference values of metadata.TENSOR_STATS, computed in float64 numpy."""
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    nan = float("nan")
    return np.array(
        [
            np.abs(finite).sum(),
            np.sqrt((finite**2).sum()),
            np.abs(finite).max() if finite.size else 0.0,
            finite.mean() if finite.size else nan,
            finite.std() if finite.size else nan,
            finite.min() if finite.size else nan,
            finite.max() if finite.size else nan,
            np.isnan(x).sum(),
            np.isinf(x).sum(),
        ]
    )


@pytest.fixture(scope="session")
def demo_logdir(tmp_path_factory):
    """A small CNN trained with WeightHealthCallback, logged every 2 steps."""
    from tb_weightnorm import demo

    logdir = tmp_path_factory.mktemp("demo_logs")
    demo.train(str(logdir), epochs=2, samples=512, every_n_steps=2)
    return logdir
