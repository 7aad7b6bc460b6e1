"""A `runs` request decodes and diagnoses the runs in the background, so the
tab's first requests find them ready."""

import gzip
import json
import threading
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import data_provider

from support.plugin_calls import plugin_client, plugin_ok
from tb_weightnorm import schema

RUNS = ("a", "b")
STEPS = 4


class CountingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python data provider, counting the norm-table reads by
    thread; reads can be held back until `release` is set."""

    reads = []
    release = threading.Event()

    def read_tensors(self, *args, **kwargs):
        CountingProvider.release.wait(timeout=30)
        CountingProvider.reads.append(threading.current_thread().name)
        return super().read_tensors(*args, **kwargs)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import tensorflow as tf

    from tb_weightnorm.writer import summary

    logdir = tmp_path_factory.mktemp("warmup")
    names = schema.NormTableNames(("m/d/kernel", "m/d/bias"), ("d", "d"), ("weight/l2", "gradient/l2"))
    for run in RUNS:
        with tf.summary.create_file_writer(str(logdir / run)).as_default():
            for step in range(STEPS):
                summary.write_norm_table(names, np.full((2, 2), step + 1.0, np.float32), step)
    return logdir


def wait_for_reads(count, timeout=30):
    deadline = time.time() + timeout
    while len(CountingProvider.reads) < count and time.time() < deadline:
        time.sleep(0.05)
    return list(CountingProvider.reads)


def test_runs_decodes_every_run_in_the_background_once(logdir):
    CountingProvider.reads = []
    CountingProvider.release.clear()
    client, _, _ = plugin_client(logdir, CountingProvider)
    # The answer does not wait for the decoding it starts.
    assert [r["run"] for r in plugin_ok(client, "runs")["runs"]] == list(RUNS)
    assert CountingProvider.reads == []
    CountingProvider.release.set()
    assert wait_for_reads(len(RUNS)) == ["weight_health warm-up"] * len(RUNS)
    # Served from what the warm-up decoded and diagnosed, without reading again.
    for run in RUNS:
        assert plugin_ok(client, f"table?run={run}")["steps"] == list(range(STEPS))
        plugin_ok(client, f"findings?run={run}")
    plugin_ok(client, "runs")  # nothing new to decode
    time.sleep(0.5)
    assert len(CountingProvider.reads) == len(RUNS)


def test_a_kept_heatmap_answers_the_same_gzipped_or_not(logdir):
    CountingProvider.release.set()
    client, _, _ = plugin_client(logdir, CountingProvider)
    first = client.get("/data/plugin/weight_health/heatmap?run=a&stat=weight/l2&by=layer")
    again = client.get("/data/plugin/weight_health/heatmap?run=a&stat=weight/l2&by=layer",
                       headers={"Accept-Encoding": "gzip"})
    assert again.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(again.get_data())) == json.loads(first.get_data())
    assert json.loads(first.get_data())["rows"][0]["values"] == [1.414, 2.828, 4.243, 5.657]
