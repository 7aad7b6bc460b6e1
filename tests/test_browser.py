"""The Weight Health tab in headless Chromium, served by a real `tensorboard`."""

import os
import shutil

import pytest

from conftest import tensorboard_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (./run-tests.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def open_tab(browser, base_url):
    """The page and the Weight Health iframe inside TensorBoard."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Every request must stay on the TensorBoard server (its CSP blocks other
    # origins, and many users have no internet).
    page.on("request", lambda r: r.url.startswith((base_url, "data:", "blob:")) or errors.append("outside request: " + r.url))
    page.goto(base_url + "/#weight_health", wait_until="domcontentloaded")
    page.wait_for_selector("iframe", state="attached", timeout=60_000)
    frame = page.frame_locator("iframe")
    return page, frame, errors


def test_tab_shows_the_models_layers(browser, demo_logdir, tmp_path):
    with tensorboard_process(demo_logdir) as base:
        page, frame, errors = open_tab(browser, base)
        table = frame.locator("[data-testid=norm-table]")
        table.wait_for(timeout=60_000)
        frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
        text = table.inner_text()
        for layer in ["conv1", "conv2", "dense", "logits"]:
            assert layer in text
        assert "shapes_cnn/conv1/kernel" in text
        assert frame.locator("[data-testid=norm-row]").count() == 9  # 8 variables and (global)
        assert "(global)" in text
        # The run selector lists the run, and the chart drew on a canvas.
        assert "healthy_cnn/train" in frame.locator("[data-testid=run-select]").inner_text()
        frame.locator("[data-testid=chart] canvas").first.wait_for(timeout=30_000)
        shot = tmp_path / "weight_health.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert not errors, errors
        page.close()


def test_tab_shows_the_findings_of_a_run_gone_nan(browser, api_logdir):
    import plugin_logs

    with tensorboard_process(api_logdir) as base:
        page, frame, errors = open_tab(browser, base)
        frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
        frame.locator("[data-testid=run-select]").select_option(plugin_logs.NAN_RUN)
        finding = frame.locator("[data-testid=finding][data-severity=critical]").first
        finding.wait_for(timeout=60_000)
        text = finding.inner_text()
        assert "nonfinite" in text and f"steps {plugin_logs.NAN_AT_BATCH + 1}" in text
        # A click charts the variables the finding is about.
        finding.click()
        frame.locator("[data-testid=chart] canvas").first.wait_for(timeout=30_000)
        assert not errors, errors
        page.close()
