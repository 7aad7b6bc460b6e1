"""Takes the README's screenshots of the Weight Health tab.

Trains the runs of the browser tests (two learning rates of one CNN, a run
whose kernel goes NaN) for real, serves them with a real `tensorboard`, and
photographs the tab in headless Chromium:

    python tests/support/scripts/screenshots.py [--out docs/screenshots]
"""

import argparse
import os
import sys
import tempfile

_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [_TESTS, os.path.dirname(_TESTS)]  # support/, and bench/ beside tests/

from support import plugin_logs
from support.browser import CHROMIUM, CHROMIUM_FLAGS, open_tab, wait_for_heatmap
from support.servers import tensorboard_process, wait_for_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "screenshots"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as logdir:
        plugin_logs.train_cnn(logdir)
        plugin_logs.train_cnn(logdir, plugin_logs.CNN_HIGH_RUN, plugin_logs.CNN_HIGH_LEARNING_RATE)
        plugin_logs.train_with_nan(logdir, plugin_logs.NAN_RUN, plugin_logs.NAN_AT_BATCH)
        with tensorboard_process(logdir) as base, sync_playwright() as playwright:
            wait_for_json(base + "/data/plugin/weight_health/runs", lambda body: len(body["runs"]) >= 3)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)

            page, frame, _ = open_tab(browser, base)
            frame.locator("[data-testid=run-select]").select_option(plugin_logs.NAN_RUN)
            wait_for_heatmap(frame)
            frame.locator("[data-testid=finding]").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=os.path.join(args.out, "overview.png"))

            # The layer detail is long: a taller window shows all of it (the tab scrolls inside its iframe).
            page.set_viewport_size({"width": 1400, "height": 1900})
            frame.locator("[data-testid=run-select]").select_option(plugin_logs.CNN_RUN)
            wait_for_heatmap(frame)
            frame.locator("[data-testid=norm-row][data-layer=rgb_conv]").first.click()
            frame.locator("[data-testid=histograms] svg path").first.wait_for(timeout=60_000)
            frame.locator("[data-testid=kernel-image]").evaluate("img => img.decode()")
            page.wait_for_timeout(500)
            page.screenshot(path=os.path.join(args.out, "layer_detail.png"), full_page=True)

            page.locator('button[aria-label="Menu for changing light or dark theme"]').click()
            page.locator('button[title="Force dark TensorBoard theme."]').click()
            frame.locator("body.wh-dark").wait_for(state="attached", timeout=10_000)
            page.set_viewport_size({"width": 1400, "height": 1000})
            frame.locator("[data-testid=back]").click()
            wait_for_heatmap(frame)
            page.wait_for_timeout(500)
            page.screenshot(path=os.path.join(args.out, "dark.png"))
            browser.close()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
