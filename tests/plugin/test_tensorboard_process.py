"""A real `tensorboard` process finds the plugin through its entry point and
serves every logged step, under both of TensorBoard's loaders."""

import json

import keras
import pytest
import tensorflow as tf

from support.servers import http_get, tensorboard_process, wait_for_json
import tb_weightnorm

STEPS = 10_001  # more than any loader keeps by default (100 or 10 per series)


@pytest.fixture(scope="module")
def long_logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("long_run")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="tiny")], name="long_model")
    writer = tf.summary.create_file_writer(str(logdir / "long"))

    @tf.function
    def log_many(n):
        with writer.as_default():
            for step in tf.range(n, dtype=tf.int64):
                tb_weightnorm.log(model, step=step)

    log_many(tf.constant(STEPS, tf.int64))
    writer.flush()
    return logdir


@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_every_step_is_served_without_samples_per_plugin(long_logdir, load_fast):
    with tensorboard_process(long_logdir, f"--load_fast={load_fast}") as base:
        plugin = base + "/data/plugin/weight_health"
        runs = wait_for_json(plugin + "/runs", lambda b: b["runs"] and b["runs"][0]["last_step"] == STEPS - 1)
        assert runs["runs"][0]["run"] == "long"
        table = wait_for_json(plugin + "/table?run=long", lambda b: len(b["steps"]) == STEPS)
        assert table["steps"] == list(range(STEPS))
        assert [r["variable"] for r in table["rows"]] == ["long_model/tiny/kernel", "long_model/tiny/bias"]
        status, listing = http_get(base + "/data/plugins_listing")
        entry = json.loads(listing)["weight_health"]
        assert entry["enabled"] is True
        assert entry["tab_name"] == "Weight Health"
        assert entry["loading_mechanism"]["module_path"].endswith("index.js")
        status, js = http_get(plugin + "/index.js")
        assert status == 200 and b"render" in js
