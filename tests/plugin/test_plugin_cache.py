"""The plugin keeps decoded runs between requests, and sees new steps as soon
as TensorBoard loads them."""

import keras
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import data_provider

from support import plugin_logs
from support.plugin_calls import plugin_client, plugin_get, plugin_ok
import tb_weightnorm
from tb_weightnorm import schema

ok = plugin_ok

RUN, PARTIAL = "growing", "weights_only"


class CountingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python data provider, counting the reads that decode data."""

    reads = 0

    def read_tensors(self, *args, **kwargs):
        CountingProvider.reads += 1
        return super().read_tensors(*args, **kwargs)


@pytest.fixture(scope="module")
def growing(tmp_path_factory):
    """A run logged for 10 steps, a function adding more, and a client over it."""
    logdir = tmp_path_factory.mktemp("growing")
    keras.utils.set_random_seed(4)
    writer = tf.summary.create_file_writer(str(logdir / RUN))
    train = plugin_logs.loop_trainer(writer, plugin_logs.loop_model(), keras.optimizers.SGD(0.01))
    train(0, 10)
    # A run that logged weights only: no gradient or update stats.
    model = plugin_logs.loop_model()
    with tf.summary.create_file_writer(str(logdir / PARTIAL)).as_default():
        for step in range(3):
            tb_weightnorm.log(model, step=step, stats=["weight/*"])
    client, multiplexer, _ = plugin_client(logdir, CountingProvider)
    yield client, multiplexer, train
    writer.close()


def test_a_run_is_decoded_once_until_new_steps_arrive(growing):
    client, multiplexer, train = growing
    heatmap = ok(client, f"heatmap?run={RUN}&stat=gradient/l2")
    assert heatmap["steps"] == list(range(10))
    reads = CountingProvider.reads
    assert ok(client, f"table?run={RUN}")["step"] == 9
    assert len(ok(client, f"series?run={RUN}&stat=weight/l2")["steps"]) == 10
    ok(client, f"findings?run={RUN}")
    ok(client, f"compare?run={RUN}&stat=weight/l2&layer=head")
    ok(client, f"heatmap?run={RUN}&stat=update/ratio&by=layer")
    assert CountingProvider.reads == reads  # every route served from the cache

    histograms = ok(client, f"histograms?run={RUN}&variable=loop_mlp/head/kernel&kind=weight")
    assert [h["step"] for h in histograms["runs"][0]["histograms"]] == [0]

    train(10, 15)
    assert ok(client, f"heatmap?run={RUN}&stat=gradient/l2")["steps"] == list(range(10))  # not reloaded yet
    multiplexer.Reload()
    assert ok(client, f"heatmap?run={RUN}&stat=gradient/l2")["steps"] == list(range(25))
    assert ok(client, f"table?run={RUN}")["step"] == 24
    assert ok(client, f"compare?run={RUN}&stat=weight/l2&layer=head")["runs"][0]["steps"][-1] == 24
    runs = {r["run"]: r for r in ok(client, "runs")["runs"]}
    assert runs[RUN]["last_step"] == 24 and runs[RUN]["histograms"]["last_step"] == 20
    histograms = ok(client, f"histograms?run={RUN}&variable=loop_mlp/head/kernel&kind=weight")
    assert [h["step"] for h in histograms["runs"][0]["histograms"]] == [0, 10, 20]


def test_compare_lists_a_run_without_the_stat_instead_of_failing(growing):
    client, _, _ = growing
    body = ok(client, f"compare?run={RUN}&run={PARTIAL}&stat=gradient/l2&variable=loop_mlp/head/kernel")
    full, partial = body["runs"]
    assert full["stat_logged"] is True and len(full["series"]) == 1
    assert partial["stat_logged"] is False and partial["series"] == []
    assert partial["steps"] == [0, 1, 2] and partial["missing"] == []
    runs = {r["run"]: r for r in ok(client, "runs")["runs"]}
    assert runs[PARTIAL]["stats"] == [f"weight/{s}" for s in schema.TENSOR_STATS] + ["weight/dist_init"]
    assert runs[PARTIAL]["global_row"] is False and runs[PARTIAL]["histograms"] is None
    response, body = plugin_get(client, f"compare?run={PARTIAL}&stat=gradient/l2&variable=loop_mlp/head/kernel")
    assert response.status_code == 404 and "'gradient/l2'" in body["error"]


def test_a_heatmap_by_layer_of_a_run_without_global_row_has_layers_only(growing):
    client, _, _ = growing
    body = ok(client, f"heatmap?run={PARTIAL}&stat=weight/mean&by=layer")
    assert [(r["layer"], r["global"]) for r in body["rows"]] == [("hidden", False), ("head", False)]
    # Biases start at zero (never trained here): each layer's main weight is its kernel.
    table = ok(client, f"table?run={PARTIAL}")
    stat = table["stats"].index("weight/mean")
    kernels = [r["values"][stat] for r in table["rows"] if r["variable"].endswith("/kernel")]
    assert [r["values"][-1] for r in body["rows"]] == pytest.approx(kernels, rel=5e-4)
