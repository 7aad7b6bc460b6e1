"""The weight snapshots view in headless Chromium, served by a real
`tensorboard`: pick two snapshots, read a layer's distance, check it against
numpy on the snapshots loaded from disk."""

import keras
import numpy as np
import pytest

from support.browser import host_hash, open_tab
from support.servers import tensorboard_process, wait_for_json
import tb_weightnorm

RUN = "snapmlp/train"


@pytest.fixture(scope="module")
def snapshot_logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("browser_snapshots")
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(5, activation="relu", name="hidden"), keras.layers.Dense(1, name="out")],
        name="snapmlp",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 4)).astype("float32")
    model.fit(
        x, x[:, :1] * 2, batch_size=16, epochs=3, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(logdir / "snapmlp", every_n_steps=1, snapshot_every_n_epochs=1)],
    )
    return logdir


def test_pick_two_snapshots_and_read_a_layers_distance(browser, snapshot_logdir):  # noqa: F811
    loaded = tb_weightnorm.snapshots.load(str(snapshot_logdir / "snapmlp"))
    assert loaded.epochs == (0, 1, 2, 3)
    a, b = loaded[1].weights("hidden"), loaded[3].weights("hidden")
    expected = np.sqrt(sum(np.sum((b[v].astype(np.float64) - a[v].astype(np.float64)) ** 2) for v in a))
    kernel = "snapmlp/hidden/kernel"
    expected_kernel = np.linalg.norm(b[kernel].astype(np.float64) - a[kernel].astype(np.float64))

    with tensorboard_process(snapshot_logdir) as base:
        wait_for_json(base + "/data/plugin/weight_health/runs", lambda body: len(body["runs"]) == 1)
        page, frame, errors = open_tab(browser, base)
        section = frame.locator("[data-testid=snapshots]")
        section.wait_for(state="visible", timeout=60_000)
        total = frame.locator("[data-testid=snapshot-total]")
        # First and last by default.
        frame.locator("[data-testid=snapshot-total]:has-text('to epoch 3')").wait_for(timeout=30_000)
        assert "epoch 0 \u00b7 before training" in total.inner_text()

        frame.locator("[data-testid=snapshot-from]").select_option("1")
        frame.locator("[data-testid=snapshot-total]:has-text('From epoch 1 \u00b7 step 3 to epoch 3')").wait_for(
            timeout=30_000
        )
        row = frame.locator("[data-testid=snapshot-row][data-layer=hidden]")
        cell = row.locator("[data-testid=snapshot-distance]")
        assert float(cell.get_attribute("title")) == pytest.approx(expected, rel=1e-12)
        assert float(cell.inner_text()) == pytest.approx(expected, rel=1e-3)
        variable = frame.locator(f"[data-testid=snapshot-variable-row][data-variable='{kernel}']")
        assert float(variable.locator("[data-testid=snapshot-distance]").get_attribute("title")) == pytest.approx(
            expected_kernel, rel=1e-12
        )
        assert frame.locator("[data-testid=snapshot-row]").all_inner_texts()[0].startswith("hidden")
        assert host_hash(page)["sfrom"] == "1" and host_hash(page)["sto"] == "3"

        row.click()
        frame.locator("[data-testid=layer-detail]").wait_for(state="visible", timeout=30_000)
        assert frame.locator("[data-testid=layer-title]").inner_text() == "Layer hidden"
        assert not errors, errors
        page.close()
