"""The plugin's routes through a werkzeug client, over logs from real training."""

import numpy as np
import pytest
from tensorboard.plugins import base_plugin

from support.plugin_calls import plugin_client, plugin_get
import tb_weightnorm
from tb_weightnorm import plugin, schema

RUN = "healthy/train"


@pytest.fixture(scope="module")
def client(demo_logdir):
    client, _, _ = plugin_client(demo_logdir)
    return client


get = plugin_get


def test_runs(client):
    response, body = get(client, "runs")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    (run,) = body["runs"]
    assert run["run"] == RUN
    assert run["variables"] == 8
    assert run["stats"] == list(schema.all_stat_names())
    # 512 samples / 64 per batch = 8 steps an epoch; 2 epochs.
    assert run["last_step"] == 15


def test_table_latest_and_chosen_step_match_load(client, demo_logdir):
    _, latest = get(client, "table?run=" + RUN)
    assert latest["steps"] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert latest["step"] == 15
    layers = [row["layer"] for row in latest["rows"]]
    assert layers == ["conv1", "conv1", "conv2", "conv2", "dense", "dense", "logits", "logits", "(model)"]
    assert latest["rows"][-1]["variable"] == "(global)"
    _, at5 = get(client, f"table?run={RUN}&step=5")
    assert at5["step"] == 5
    frame = tb_weightnorm.load(str(demo_logdir))
    for row in at5["rows"]:
        for stat, value in zip(at5["stats"], row["values"]):
            kind, name = schema.split_stat_name(stat)
            expected = frame[
                (frame.step == 5) & (frame.variable == row["variable"]) & (frame.kind == kind) & (frame.stat == name)
            ].value
            if value is None:  # not measured: load() leaves it out
                assert len(expected) == 0
                continue
            assert len(expected) == 1
            assert value == pytest.approx(float(expected.iloc[0]), rel=1e-6)


def test_series_of_chosen_variables(client):
    _, body = get(client, f"series?run={RUN}&stat=gradient/l2&variable=shapes_cnn/conv1/kernel&variable=shapes_cnn/logits/bias")
    assert body["steps"] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert [s["variable"] for s in body["series"]] == ["shapes_cnn/conv1/kernel", "shapes_cnn/logits/bias"]
    assert [s["layer"] for s in body["series"]] == ["conv1", "logits"]
    for series in body["series"]:
        assert len(series["values"]) == 8
        assert all(isinstance(v, float) and v > 0 for v in series["values"])
    _, everything = get(client, f"series?run={RUN}&stat=update/ratio")
    assert len(everything["series"]) == 9  # the variables and the (global) row


def test_index_js_is_served_as_an_es_module(client):
    response, body = get(client, "index.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"render" in body


def test_frontend_metadata_and_loader_default():
    p = plugin.WeightHealthPlugin(base_plugin.TBContext(data_provider=None))
    meta = p.frontend_metadata()
    assert meta.es_module_path == "/index.js" and meta.tab_name == "Weight Health"
    assert meta.es_module_path in p.get_plugin_apps()

    class Flags:
        samples_per_plugin = {}

    flags = Flags()
    plugin.WeightHealthLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"weight_health": 0}
    flags.samples_per_plugin = {"weight_health": 50}
    plugin.WeightHealthLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"weight_health": 50}  # the user's choice stands


def test_load_returns_the_long_frame(demo_logdir):
    frame = tb_weightnorm.load(str(demo_logdir))
    assert list(frame.columns) == ["run", "step", "wall_time", "layer", "variable", "kind", "stat", "value"]
    assert set(frame.run) == {RUN}
    assert set(frame.kind) == {"weight", "gradient", "update"}
    assert set(frame.stat) == set(schema.TENSOR_STATS) | {"dist_init", "dead_fraction"} | set(schema.UPDATE_STATS)
    # 8 steps x 8 variables x 22 stats, all measured but the dead fraction of
    # the 4 biases (no units), and the global row's weight and gradient l2.
    assert len(frame) == 8 * (8 * 22 - 4 + 2)
    assert np.isfinite(frame.value).all()
    assert set(frame[frame.variable == "(global)"].stat) == {"l2"}


def test_load_without_pandas_says_how_to_install_it(demo_logdir):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import tb_weightnorm\n"
        f"tb_weightnorm.load({str(demo_logdir)!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'tb_weightnorm[pandas]'" in result.stderr


def test_load_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No log directory"):
        tb_weightnorm.load(str(tmp_path / "nope"))
