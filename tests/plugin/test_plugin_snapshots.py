"""The plugin's weight snapshot routes, over snapshots saved by real training."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from support.plugin_calls import plugin_client, plugin_get, plugin_ok
from support.small_models import dense_regressor
import tb_weightnorm
from tb_weightnorm import snapshots

FIT_RUN = "fit/train"  # WeightHealthCallback(snapshot_every_n_epochs=1), 3 epochs
PLAIN_RUN = "plain/train"  # no snapshots
LOOP_RUN = "."  # a custom loop writing at the root of the logdir, snapshots saved by hand


def _model(name):
    return dense_regressor(
        5, 6, seed=11, activation="relu", outputs=2, batch_norm=True, name=name, optimizer=keras.optimizers.Adam(0.05)
    )


def _data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 5)).astype("float32")
    return x, (x[:, :2] * 3).astype("float32")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("snapshot_logs")
    x, y = _data()
    _model("fit_mlp").fit(
        x, y, batch_size=16, epochs=3, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(logdir / "fit", every_n_steps=2, snapshot_every_n_epochs=1)],
    )
    _model("plain_mlp").fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[tb_weightnorm.WeightHealthCallback(logdir / "plain")]
    )
    model = _model("loop_mlp")
    writer = tf.summary.create_file_writer(str(logdir))
    for step in range(3):
        model.train_on_batch(x, y)
        with writer.as_default():
            tb_weightnorm.log(model, step=step)
        snapshots.save(model, str(logdir), epoch=step, layers="trainable")
    writer.flush()
    bias = model.get_layer("out").bias
    bias.assign([np.nan, 1.0])
    snapshots.save(model, str(logdir), epoch=3, layers="trainable")
    # A file that is no snapshot, under a snapshot's name.
    with open(os.path.join(snapshots.folder_of(str(logdir / "fit" / "train")), "epoch-000009.wsnap"), "wb") as f:
        f.write(b"not a snapshot, " * 4)
    return logdir


@pytest.fixture(scope="module")
def client(logdir):
    client, _, _ = plugin_client(logdir)
    return client


def test_snapshot_folders_are_no_runs(client):
    runs = [r["run"] for r in plugin_ok(client, "runs")["runs"]]
    assert sorted(runs) == sorted([FIT_RUN, PLAIN_RUN, LOOP_RUN])


def test_the_snapshots_of_a_run_are_listed_and_unreadable_files_skipped(client, logdir):
    body = plugin_ok(client, "snapshots?run=" + FIT_RUN)
    assert [s["epoch"] for s in body["snapshots"]] == [0, 1, 2, 3]
    assert [s["step"] for s in body["snapshots"]] == [0, 4, 8, 12]  # 4 batches an epoch
    assert {s["variables"] for s in body["snapshots"]} == {8}  # BatchNormalization's moving stats too
    [skipped] = body["skipped"]
    assert skipped == {
        "file": "epoch-000009.wsnap",
        "reason": "epoch-000009.wsnap is not a readable weight snapshot: it does not start with the snapshot magic bytes",
    }
    assert plugin_ok(client, "snapshots?run=" + PLAIN_RUN)["snapshots"] == []
    assert [s["epoch"] for s in plugin_ok(client, "snapshots?run=.")["snapshots"]] == [0, 1, 2, 3]


def test_distances_match_numpy_on_the_loaded_snapshots(client, logdir):
    body = plugin_ok(client, f"snapshot_distance?run={FIT_RUN}&from=0&to=3")
    loaded = snapshots.load(str(logdir / "fit"), skip_unreadable=True)
    a, b = loaded[0].weights(), loaded[3].weights()
    assert (body["from"]["epoch"], body["to"]["epoch"], body["to"]["step"]) == (0, 3, 12)
    assert [layer["layer"] for layer in body["layers"]] == ["hidden", "bn", "out"]
    squares = {}
    for layer in body["layers"]:
        for v in layer["variables"]:
            name = v["variable"]
            diff = b[name].astype(np.float64) - a[name].astype(np.float64)
            assert v["distance"] == pytest.approx(np.linalg.norm(diff), rel=1e-12)
            assert v["norm_from"] == pytest.approx(np.linalg.norm(a[name].astype(np.float64)), rel=1e-12)
            assert v["shape"] == list(a[name].shape) and v["nonfinite"] == 0
            squares.setdefault(layer["layer"], []).append(np.sum(diff**2))
        assert layer["distance"] == pytest.approx(np.sqrt(sum(squares[layer["layer"]])), rel=1e-12)
    kernel = body["layers"][0]["variables"][0]
    assert kernel["variable"] == "fit_mlp/hidden/kernel"
    assert kernel["relative"] == pytest.approx(kernel["distance"] / kernel["norm_from"], rel=1e-12)
    # BatchNormalization's beta starts at zero: moving away from it is infinitely far, relatively.
    beta = next(v for v in body["layers"][1]["variables"] if v["variable"].endswith("beta"))
    assert beta["relative"] == "Infinity"
    assert body["unmatched"] == []
    assert body["total"]["distance"] == pytest.approx(np.sqrt(sum(sum(s) for s in squares.values())), rel=1e-12)


def test_a_nan_is_counted_apart_from_the_distance(client, logdir):
    body = plugin_ok(client, "snapshot_distance?run=.&from=2&to=3")
    out = next(layer for layer in body["layers"] if layer["layer"] == "out")
    bias = next(v for v in out["variables"] if v["variable"] == "loop_mlp/out/bias")
    before = snapshots.load(str(logdir))[2]["loop_mlp/out/bias"]
    assert bias["nonfinite"] == 1 and out["nonfinite"] == 1
    assert bias["distance"] == pytest.approx(abs(1.0 - float(before[1])), rel=1e-6)


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("snapshots", 400, "missing parameter 'run'"),
        ("snapshots?run=nope", 404, "run 'nope' has no Weight Health data"),
        (f"snapshot_distance?run={FIT_RUN}&to=1", 400, "missing parameter 'from'"),
        (f"snapshot_distance?run={FIT_RUN}&from=0", 400, "missing parameter 'to'"),
        (f"snapshot_distance?run={FIT_RUN}&from=first&to=1", 400, "parameter 'from' must be an integer from"),
        (f"snapshot_distance?run={FIT_RUN}&from=-1&to=1", 400, "parameter 'from' must be at least 0"),
        (f"snapshot_distance?run={FIT_RUN}&from=0&to=7", 404, "no weight snapshot of epoch 7; epochs with one: 0, 1, 2, 3"),
        (f"snapshot_distance?run={PLAIN_RUN}&from=0&to=1", 404, "epochs with one: none"),
        ("snapshot_distance?run=nope&from=0&to=1", 404, "run 'nope' has no Weight Health data"),
    ],
)
def test_bad_parameters_are_named(client, query, status, message):
    response, body = plugin_get(client, query)
    assert response.status_code == status
    assert message in body["error"]
