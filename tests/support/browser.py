"""Driving the tab in headless Chromium: opening it inside TensorBoard and
waiting for what it draws."""

import io
import time
import urllib.parse

from bench._scale_common import CHROMIUM, CHROMIUM_FLAGS  # one Chromium setup for tests and benchmarks

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "assert_not_blank", "choose_run", "host_hash", "open_tab", "wait_for_heatmap"]


def open_tab(browser, base_url, link=""):
    """The page and the Weight Health iframe inside TensorBoard; `link` is
    appended to the URL hash (a shared link's `&p.weight_health.*` keys)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # An alert means a name ran as HTML.
    page.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
    # Every request must stay on the TensorBoard server (its CSP blocks other
    # origins, and many users have no internet).
    page.on("request", lambda r: r.url.startswith((base_url, "data:", "blob:")) or errors.append("outside request: " + r.url))
    page.goto(base_url + "/#weight_health" + link, wait_until="domcontentloaded")
    page.wait_for_selector("iframe", state="attached", timeout=60_000)
    frame = page.frame_locator("iframe")
    return page, frame, errors


def assert_not_blank(png: bytes) -> None:
    """A screenshot that shows something: many colours, dark and light pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, f"only {len(colours or [])} colours"
    lightness = image.convert("L")
    low, high = lightness.getextrema()
    assert high - low > 100, (low, high)


def wait_for_heatmap(frame):
    """Waits until the heatmap canvas holds several colours (it has drawn cells)."""
    canvas = frame.locator("[data-testid=heatmap] canvas").first
    canvas.wait_for(timeout=60_000)
    deadline = time.time() + 60
    while time.time() < deadline:
        colours = canvas.evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      const seen = new Set(); for (let i = 0; i < d.length; i += 4) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
                      return seen.size; }"""
        )
        if colours >= 3:
            return canvas
        time.sleep(0.3)
    raise AssertionError("the heatmap drew no cells")


def host_hash(page) -> dict:
    """The tab's keys in TensorBoard's URL hash."""
    fragment = urllib.parse.urlparse(page.url).fragment
    keys = {}
    for part in fragment.split("&")[1:]:
        key, _, value = part.partition("=")
        key = urllib.parse.unquote(key)
        if key.startswith("p.weight_health."):
            keys[key[len("p.weight_health."):]] = urllib.parse.unquote(value)
    return keys


def choose_run(frame, run):
    frame.locator("[data-testid=run-select]").select_option(run)
    frame.locator(f"[data-testid=norm-row]").first.wait_for(timeout=60_000)
