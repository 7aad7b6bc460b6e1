"""Fixtures only: what the tests share as code is in `support/`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture(autouse=True)
def _same_random_state():
    """Every test starts from the same seeds (Python, numpy, TensorFlow), so
    none depends on which tests ran before it."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, one per test module."""
    from support.browser import CHROMIUM, CHROMIUM_FLAGS

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (./run-tests.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def demo_logdir(tmp_path_factory):
    """The demo's healthy CNN, trained on 512 images for 2 epochs of 8 steps
    with WeightHealthCallback, logged every 2 steps: run `healthy/train`."""
    from tb_weightnorm import demo

    logdir = tmp_path_factory.mktemp("demo_logs")
    demo.train(str(logdir), runs=["healthy"], epochs=2, samples=512, every_n_steps=2, progress=False)
    return logdir


@pytest.fixture(scope="session")
def api_logdir(tmp_path_factory):
    """Runs for the plugin's data API and the tab (see plugin_logs.py): a
    Conv2D model fit with WeightHealthCallback (histograms, kernel grids) at
    two learning rates, a Dense model in a custom loop logged with
    tb_weightnorm.log, a fit whose weights turn NaN mid-run, and a fit of a
    model with an LSTM layer named like an HTML tag."""
    from support import plugin_logs

    logdir = tmp_path_factory.mktemp("api_logs")
    plugin_logs.train_cnn(str(logdir))
    plugin_logs.train_cnn(str(logdir), plugin_logs.CNN_HIGH_RUN, plugin_logs.CNN_HIGH_LEARNING_RATE)
    plugin_logs.train_loop(str(logdir))
    plugin_logs.train_with_nan(str(logdir), plugin_logs.NAN_RUN, plugin_logs.NAN_AT_BATCH)
    plugin_logs.train_hostile(str(logdir))
    return logdir


@pytest.fixture(scope="module")
def api_client(api_logdir):
    """A werkzeug client of the plugin over `api_logdir`."""
    from support.plugin_calls import plugin_client

    client, _, _ = plugin_client(api_logdir)
    return client
