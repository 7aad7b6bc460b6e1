import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import glob

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _same_random_state():
    """Every test starts from the same seeds (Python, numpy, TensorFlow), so
    none depends on which tests ran before it."""
    import keras

    keras.utils.set_random_seed(0)


def read_events(run_dir):
    """(step, wall_time, tag, metadata, ndarray) of every summary value, in file
    order, with the metadata of its time series (the first event's: later ones
    carry none) and the plugin's tables decoded and completed as the reader does."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    from tb_weightnorm import histogram_reader, metadata, reader

    names_of = {}
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                array = tensor_util.make_ndarray(value.tensor)
                content = value.metadata.plugin_data.content
                first = names_of.setdefault(value.tag, value.metadata)
                content = first.plugin_data.content
                if value.tag.startswith(metadata.NORM_TABLE_TAG_PREFIX):
                    names = metadata.norm_table_names(content)
                    array = reader.with_derived_columns(
                        names, reader.decoded_values(array, (len(names.variables), len(names.stored_stats)))
                    )
                elif value.tag.startswith(metadata.HISTOGRAM_TAG_PREFIX):
                    names = histogram_reader.histogram_names(content)
                    array = reader.decoded_values(array, names.shape)
                out.append((event.step, event.wall_time, value.tag, first, array))
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
    """The demo's healthy CNN, trained on 512 images for 2 epochs of 8 steps
    with WeightHealthCallback, logged every 2 steps: run `healthy/train`."""
    from tb_weightnorm import demo

    logdir = tmp_path_factory.mktemp("demo_logs")
    demo.train(str(logdir), runs=["healthy"], epochs=2, samples=512, every_n_steps=2, progress=False)
    return logdir


import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    """(status, body bytes) of a GET, without raising on 4xx/5xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def tensorboard_process(logdir, *flags):
    """A real `tensorboard` serving `logdir` on 127.0.0.1; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", str(port), "--reload_interval", "1", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                status, _ = http_get(base + "/data/plugins_listing", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.poll() is not None else ""
                raise RuntimeError(f"tensorboard did not start: {output[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_json(url, predicate, timeout=90):
    """Polls a JSON route until `predicate(body)` holds (loaders load in the background)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        status, body = http_get(url)
        if status == 200:
            last = json.loads(body)
            if predicate(last):
                return last
        time.sleep(0.5)
    raise AssertionError(f"{url} never satisfied the condition; last answer: {str(last)[:500]}")


@pytest.fixture(scope="session")
def api_logdir(tmp_path_factory):
    """Runs for the plugin's data API and the tab (see plugin_logs.py): a
    Conv2D model fit with WeightHealthCallback (histograms, kernel grids) at
    two learning rates, a Dense model in a custom loop logged with
    tb_weightnorm.log, a fit whose weights turn NaN mid-run, and a fit of a
    model with an LSTM layer named like an HTML tag."""
    import plugin_logs

    logdir = tmp_path_factory.mktemp("api_logs")
    plugin_logs.train_cnn(str(logdir))
    plugin_logs.train_cnn(str(logdir), plugin_logs.CNN_HIGH_RUN, plugin_logs.CNN_HIGH_LEARNING_RATE)
    plugin_logs.train_loop(str(logdir))
    plugin_logs.train_with_nan(str(logdir), plugin_logs.NAN_RUN, plugin_logs.NAN_AT_BATCH)
    plugin_logs.train_hostile(str(logdir))
    return logdir


def plugin_client(logdir, provider_class=None):
    """A werkzeug client of the plugin over TensorBoard's Python data provider
    (or a subclass of it) on `logdir`, keeping every step; returns
    (client, multiplexer, provider)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test
    from werkzeug import wrappers

    from tb_weightnorm import metadata, plugin

    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = (provider_class or data_provider.MultiplexerDataProvider)(multiplexer, str(logdir))
    ctx = base_plugin.TBContext(logdir=str(logdir), data_provider=provider)
    app = application.TensorBoardWSGI([plugin.WeightHealthPlugin(ctx)])
    return werkzeug_test.Client(app, wrappers.Response), multiplexer, provider


def plugin_get(client, route):
    """(response, JSON body or bytes) of a GET of a plugin route."""
    response = client.get("/data/plugin/weight_health/" + route)
    body = response.get_data()
    return response, (json.loads(body) if response.mimetype == "application/json" else body)


def plugin_ok(client, route):
    """The JSON body of a plugin route that must answer 200."""
    response, body = plugin_get(client, route)
    assert response.status_code == 200, body
    return body


@pytest.fixture(scope="module")
def api_client(api_logdir):
    """A werkzeug client of the plugin over `api_logdir`."""
    client, _, _ = plugin_client(api_logdir)
    return client
