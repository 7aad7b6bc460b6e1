"""Weight snapshots: the file format, saving and loading, and the callback's
snapshots during a real `model.fit`."""

import json
import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest

from support.small_models import dense_regressor, regression_data
import tb_weightnorm
from tb_weightnorm import snapshots
from tb_weightnorm.snapshots import distance, file_format
from tb_weightnorm.snapshots.file_format import SnapshotError


def _variables():
    rng = np.random.default_rng(0)
    return [
        ("m/dense/kernel", "dense", True, rng.normal(size=(3, 5)).astype(np.float32)),
        ("m/dense/bias", "dense", True, np.arange(5, dtype=np.float64)),
        ("m/bn/moving_mean", "bn", False, np.float16([1.5, -2.0])),
        ("m/scalar", "m", True, np.float32(7.25).reshape(())),
        ("m/empty", "m", True, np.zeros((0, 4), np.float32)),
        ("m/big_endian", "m", True, np.arange(6, dtype=">i4").reshape(2, 3)),
        ("m/mask", "m", False, np.array([True, False, True])),
    ]


def _write(folder, epoch=3, step=42, variables=None):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_format.file_name(epoch))
    file_format.write(path, epoch=epoch, step=step, wall_time=1.5, model="m", variables=variables or _variables())
    return path


def test_a_snapshot_reads_back_bit_for_bit_with_its_index(tmp_path):
    folder = snapshots.folder_of(str(tmp_path))
    path = _write(folder)
    index = file_format.read_index(path)
    assert (index.epoch, index.step, index.wall_time, index.model) == (3, 42, 1.5, "m")
    for stored in index.variables:
        assert stored.offset % file_format.ALIGNMENT == 0
        assert stored.dtype.str[0] in ("<", "|")  # little-endian on disk, whatever the input
    loaded = snapshots.load(str(tmp_path))
    assert loaded.epochs == (3,)
    snap = loaded[3]
    assert (snap.epoch, snap.step) == (3, 42)
    assert snap.variables == tuple(v[0] for v in _variables())
    assert snap.layers["m/bn/moving_mean"] == "bn"
    weights = snap.weights()
    for name, layer, trainable, values in _variables():
        assert weights[name].dtype == values.dtype.newbyteorder("=")
        np.testing.assert_array_equal(weights[name], values)
        np.testing.assert_array_equal(snap[name], values)
        assert snap.info(name).trainable == trainable
    assert list(snap.weights("dense")) == ["m/dense/kernel", "m/dense/bias"]


def test_the_raw_bytes_are_the_little_endian_arrays_at_their_offsets(tmp_path):
    """The format is what the docs say: readable without tb_weightnorm."""
    path = _write(str(tmp_path))
    raw = open(path, "rb").read()
    magic, version, length = struct.unpack("<8sII", raw[:16])
    assert magic == b"TBWNSNAP" and version == 1
    index = json.loads(raw[16 : 16 + length])
    entry = next(e for e in index["variables"] if e["path"] == "m/dense/kernel")
    assert entry["dtype"] == "<f4" and entry["shape"] == [3, 5]
    values = np.frombuffer(raw, "<f4", count=15, offset=entry["offset"]).reshape(3, 5)
    np.testing.assert_array_equal(values, _variables()[0][3])


def test_a_save_killed_before_its_rename_lists_nothing_and_the_next_save_cleans_up(tmp_path):
    """The child process dies where a kill would hurt most: the whole file
    written, not yet renamed into place."""
    folder = str(tmp_path / "snaps")
    os.makedirs(folder)
    child = (
        "import os, signal, numpy as np\n"
        "from tb_weightnorm.snapshots import file_format\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"file_format.write({os.path.join(folder, 'epoch-000001.wsnap')!r}, epoch=1, step=5, wall_time=0.0,"
        " model='m', variables=[('m/k', 'k', True, np.ones((1000, 1000), np.float32))])\n"
    )
    result = subprocess.run([sys.executable, "-c", child], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == -9
    left = os.listdir(folder)
    assert len(left) == 1 and left[0].startswith(".epoch-000001.wsnap.") and left[0].endswith(".tmp")
    assert snapshots.read(folder).epochs == ()
    with pytest.raises(FileNotFoundError, match="no weight snapshots"):
        snapshots.load(str(tmp_path / "snaps"))
    _write(folder, epoch=1)
    assert os.listdir(folder) == ["epoch-000001.wsnap"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: raw[:-2], "outside the file"),
        (lambda raw: b"NOTASNAP" + raw[8:], "magic"),
        (lambda raw: raw[:8] + struct.pack("<I", 99) + raw[12:], "version 99"),
        (lambda raw: raw[:16] + b"[" + raw[17:], "index is corrupt"),
        (lambda raw: raw.replace(b'"<f4"', b'"|O8"', 1), "not a bool, integer or float dtype"),
        (lambda raw: raw[:10], "shorter than the header"),
    ],
)
def test_a_damaged_file_is_a_clear_error_or_skipped(tmp_path, damage, message):
    folder = snapshots.folder_of(str(tmp_path))
    path = _write(folder)
    _write(folder, epoch=4)
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(damage(raw))
    with pytest.raises(SnapshotError, match=message):
        snapshots.load(str(tmp_path))
    loaded = snapshots.load(str(tmp_path), skip_unreadable=True)
    assert loaded.epochs == (4,)
    assert [p for p, _ in loaded.unreadable] == [path]


def test_missing_snapshots_epochs_and_variables_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="snapshot_every_n_epochs"):
        snapshots.load(str(tmp_path))
    _write(snapshots.folder_of(str(tmp_path / "train")), epoch=2)
    loaded = snapshots.load(str(tmp_path))  # the callback's log_dir: snapshots are in its train/
    with pytest.raises(KeyError, match="epochs with one: 2"):
        loaded[5]
    with pytest.raises(KeyError, match="has no variable 'nope'"):
        loaded[2]["nope"]
    with pytest.raises(KeyError, match="has no layer 'nope'; it has dense, bn, m"):
        loaded[2].weights("nope")


def _model():
    return dense_regressor(
        6, 8, seed=5, activation="relu", batch_norm=True, dropout=0.1, name="snap_mlp",
        optimizer=keras.optimizers.SGD(0.05),
    )


def _data(n=64):
    return regression_data(n, 6, seed=1)


@pytest.mark.parametrize(
    "layers, expected",
    [
        ("all", ["hidden/kernel", "hidden/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
                 "out/kernel", "out/bias"]),
        ("trainable", ["hidden/kernel", "hidden/bias", "bn/gamma", "bn/beta", "out/kernel", "out/bias"]),
        (["hidden", "*/moving_*"], ["hidden/kernel", "hidden/bias", "bn/moving_mean", "bn/moving_variance"]),
    ],
)
def test_save_picks_the_layers_asked_for(tmp_path, layers, expected):
    model = _model()
    path = snapshots.save(model, str(tmp_path), epoch=0, layers=layers)
    assert path == os.path.join(snapshots.folder_of(str(tmp_path)), "epoch-000000.wsnap")
    snap = snapshots.load(str(tmp_path))[0]
    assert snap.variables == tuple("snap_mlp/" + e for e in expected)
    for variable in model.variables:
        if variable.path in snap.variables:
            np.testing.assert_array_equal(snap[variable.path], variable.numpy())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"layers": ["nothing*"]}, ValueError, "matches no float variable.*its layers: hidden, bn, drop, out"),
        ({"layers": 5}, ValueError, "layers must be 'all', 'trainable', or a list"),
        ({"layers": []}, ValueError, "layers must be"),
        ({"epoch": -1}, ValueError, "epoch must be"),
    ],
)
def test_save_refuses_bad_choices(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        snapshots.save(_model(), str(tmp_path), **{"epoch": 0, **kwargs})


class _WeightsAtEpochEnds(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.at = {0: {v.path: v.numpy() for v in self.model.weights}}

    def on_epoch_end(self, epoch, logs=None):
        self.at[epoch + 1] = {v.path: v.numpy() for v in self.model.weights}


def test_the_callback_snapshots_every_n_epochs_beside_the_events(tmp_path):
    model = _model()
    x, y = _data()
    spy = _WeightsAtEpochEnds()
    callback = tb_weightnorm.WeightHealthCallback(
        tmp_path, every_n_steps=1, snapshot_every_n_epochs=2, snapshot_layers="trainable", report=None
    )
    model.fit(x, y, batch_size=16, epochs=5, verbose=0, shuffle=False, callbacks=[callback, spy])
    run_dir = tmp_path / "train"
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run_dir))
    loaded = snapshots.load(str(tmp_path))
    assert loaded.folder == snapshots.folder_of(str(run_dir))
    assert loaded.epochs == (0, 2, 4)
    for epoch in loaded.epochs:
        snap = loaded[epoch]
        assert snap.step == 4 * epoch  # 4 batches an epoch
        assert snap.variables == tuple(v.path for v in model.trainable_variables)
        for name, values in snap.weights().items():
            np.testing.assert_array_equal(values, spy.at[epoch][name])
    # A second fit continues: its start is the snapshot of the epoch it starts at.
    model.fit(x, y, batch_size=16, epochs=6, initial_epoch=5, verbose=0, shuffle=False, callbacks=[callback, spy])
    loaded = snapshots.load(str(tmp_path))
    assert loaded.epochs == (0, 2, 4, 5, 6)
    np.testing.assert_array_equal(loaded[6]["snap_mlp/out/kernel"], spy.at[6]["snap_mlp/out/kernel"])


def test_the_callback_refuses_bad_snapshot_options(tmp_path):
    with pytest.raises(ValueError, match="snapshot_every_n_epochs must be 0"):
        tb_weightnorm.WeightHealthCallback(tmp_path, snapshot_every_n_epochs=-1)
    with pytest.raises(ValueError, match="layers must be 'all', 'trainable', or a list"):
        tb_weightnorm.WeightHealthCallback(tmp_path, snapshot_layers=[3])


def test_distances_match_numpy_and_count_nonfinite_apart():
    rng = np.random.default_rng(2)
    a = {"m/d/kernel": rng.normal(size=(4, 3)).astype(np.float32), "m/d/bias": np.zeros(3, np.float32),
         "m/o/kernel": rng.normal(size=(3, 1)), "m/gone": np.ones(2), "m/reshaped": np.ones(4)}
    b = {"m/d/kernel": rng.normal(size=(4, 3)).astype(np.float32), "m/d/bias": np.full(3, 0.5, np.float32),
         "m/o/kernel": a["m/o/kernel"].copy(), "m/new": np.ones(1), "m/reshaped": np.ones((2, 2))}
    b["m/o/kernel"][0, 0] = np.nan
    layers = {"m/d/kernel": "d", "m/d/bias": "d", "m/o/kernel": "o", "m/gone": "m", "m/new": "m", "m/reshaped": "m"}
    comparison = distance.compare(a, b, layers, names=("epoch 1", "epoch 3"))
    (d, (kernel, bias)), (o, (o_kernel,)) = comparison.layers
    expected = np.linalg.norm(b["m/d/kernel"].astype(np.float64) - a["m/d/kernel"].astype(np.float64))
    assert kernel.distance == pytest.approx(expected, rel=1e-12)
    assert kernel.relative == pytest.approx(expected / np.linalg.norm(a["m/d/kernel"].astype(np.float64)), rel=1e-12)
    assert bias.distance == pytest.approx(np.sqrt(3 * 0.25)) and bias.relative == np.inf
    assert d.distance == pytest.approx(np.hypot(kernel.distance, bias.distance), rel=1e-12)
    assert (o_kernel.distance, o_kernel.nonfinite, o_kernel.size) == (0.0, 1, 2)
    assert comparison.unmatched == (
        ("m/gone", "only in epoch 1"),
        ("m/reshaped", "shape [4] in epoch 1, [2, 2] in epoch 3"),
        ("m/new", "only in epoch 3"),
    )
    assert distance.total(comparison).distance == pytest.approx(np.hypot(d.distance, o.distance))
    assert np.isnan(distance.variable_distance("z", "z", np.zeros(2), np.zeros(2)).relative)
