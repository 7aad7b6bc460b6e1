"""The Weight Health tab at scale: headless Chromium opens TensorBoard at the
tab for one run of 1,000 variables × 2,000 logged steps (bench/scale_logdir.py)
and times navigation start → heatmap drawn.

The heatmap view sets `performance.mark("weight_health:heatmap_drawn")` when
it paints; the tab runs in an iframe with its own clock, so times are taken
on the epoch (`timeOrigin + startTime`) and counted from the top page's
navigation start. The first page load is on a fresh server (nothing decoded
yet, empty browser cache; the server has finished loading the logdir, told by
its data server going idle, without calling the plugin) and is reported
apart; then the median of further loads (new pages, warm server and cache).

    python -m bench.tab_scale [--quick] [--workdir FOLDER] [--json]
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

try:
    from bench import _scale_common as common
    from bench import scale_logdir
except ImportError:  # run as a script from inside bench/
    import _scale_common as common
    import scale_logdir

TARGET_MS = 1000
LOADS = 5
QUICK_LOADS = 2
VIEWPORT = {"width": 1400, "height": 1000}
MARK = "weight_health:heatmap_drawn"

# In the tab's frame: its clock, the first heatmap mark, and its requests.
_TIMINGS_JS = """mark => {
  const drawn = performance.getEntriesByName(mark)[0];
  const resources = performance.getEntriesByType('resource').map(r => ({
    name: r.name, start: r.startTime, end: r.responseEnd}));
  return {origin: performance.timeOrigin, drawn: drawn ? drawn.startTime : null,
          detail: drawn ? drawn.detail : null, resources};
}"""


def wait_until_idle(board: common.TensorBoard, quiet: float = 1.0, timeout: float = 600) -> float:
    """Waits until TensorBoard's data server has used no CPU for `quiet`
    seconds (it has read the logdir); returns the seconds since launch."""
    deadline = time.perf_counter() + timeout
    last, since = None, time.perf_counter()
    while time.perf_counter() < deadline:
        servers = board.pids()[1:]
        used = sum(_cpu_ticks(p) for p in servers)
        now = time.perf_counter()
        if servers and used == last:
            if now - since >= quiet:
                return now - quiet - board.started
        else:
            last, since = used, now
        time.sleep(0.1)
    raise TimeoutError("tensorboard's data server never went idle")


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _tab_frame(page, timeout: float = 60):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for frame in page.frames:
            if "plugin_entry.html" in frame.url:
                return frame
        page.wait_for_timeout(20)
    raise TimeoutError("the Weight Health tab's iframe never appeared")


def open_tab(context, base_url: str) -> Dict[str, Any]:
    """Opens TensorBoard at the tab in a new page; the times (ms after the top
    page's navigation start) of the tab's frame, its requests and the first
    heatmap drawn, and what that heatmap showed."""
    page = context.new_page()
    errors: List[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(base_url + "/#weight_health", wait_until="commit")
        top_origin = page.evaluate("performance.timeOrigin")
        frame = _tab_frame(page)
        frame.wait_for_function(f"() => performance.getEntriesByName({json.dumps(MARK)}).length > 0", timeout=120_000)
        timings = frame.evaluate(_TIMINGS_JS, MARK)
    finally:
        page.close()
    if errors:
        raise RuntimeError(f"the tab failed: {errors}")
    shift = timings["origin"] - top_origin  # the frame's clock starts later

    def request(route: str) -> Optional[Dict[str, Any]]:
        found = [r for r in timings["resources"] if f"/{route}" in r["name"]]
        if not found:
            return None
        first = found[0]
        return {"url": first["name"], "start_ms": round(first["start"] + shift, 1), "end_ms": round(first["end"] + shift, 1)}

    heatmap = request("heatmap?")
    # What the drawn heatmap stood for: the same request again (the server has it at hand now).
    logged = json.loads(common.get(heatmap["url"])[1])["logged_steps"] if heatmap else None

    return {
        "drawn_ms": round(timings["drawn"] + shift, 1),
        "frame_start_ms": round(shift, 1),
        "index_js": request("index.js"),
        "runs": request("runs"),
        "heatmap": heatmap,
        "heatmap_rows": timings["detail"]["rows"],
        "heatmap_columns": timings["detail"]["columns"],
        "heatmap_logged_steps": logged,
    }


def run(quick: bool = False, workdir: Optional[str] = None) -> dict:
    """Builds (or reuses) the logdir, serves it, and times the tab's heatmap.

    Args:
        quick: tiny sizes and fewer loads (seconds), for a smoke test.
        workdir: where the generated logdir is cached (default: a temp folder).

    Returns:
        A dict: sizes, `cold` (the first load on a fresh server), `loads`
        (the further loads), `median` (the median of each figure over `loads`,
        ms: `drawn` after navigation start, `tab` after the tab's frame
        started, ...), `target_ms` (for `tab`).
    """
    from playwright.sync_api import sync_playwright

    sizes = common.QUICK if quick else common.FULL
    info = scale_logdir.build(sizes["variables"], sizes["steps"], workdir)
    with common.tensorboard(info["logdir"]) as board, sync_playwright() as playwright:
        loaded = wait_until_idle(board)
        browser = playwright.chromium.launch(executable_path=common.CHROMIUM, args=common.CHROMIUM_FLAGS, headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            cold = open_tab(context, board.base_url)
            loads = [open_tab(context, board.base_url) for _ in range(QUICK_LOADS if quick else LOADS)]
        finally:
            browser.close()
    for load in [cold, *loads]:
        if load["heatmap_logged_steps"] != sizes["steps"]:
            raise RuntimeError(f"the heatmap showed {load['heatmap_logged_steps']} of {sizes['steps']} logged steps")
    return {
        "variables": sizes["variables"],
        "steps": sizes["steps"],
        "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}",
        "server_loaded_s": round(loaded, 2),
        "cold": cold,
        "loads": loads,
        "median": summary(loads),
        "target_ms": TARGET_MS,
    }


def _figures(load: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """A load's times in ms after navigation start, and the tab's own share."""
    runs, heatmap = load["runs"] or {}, load["heatmap"] or {}
    return {
        "frame": load["frame_start_ms"],
        "runs": runs.get("start_ms"),
        "heatmap_start": heatmap.get("start_ms"),
        "heatmap_end": heatmap.get("end_ms"),
        "drawn": load["drawn_ms"],
        "tab": round(load["drawn_ms"] - load["frame_start_ms"], 1),
    }


def summary(loads: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """The median of each figure of `_figures` over `loads`."""
    figures = [_figures(load) for load in loads]
    return {
        name: round(common.median([f[name] for f in figures if f[name] is not None]), 1)
        for name in figures[0]
    }


def markdown(result: dict) -> str:
    """The figures as a small markdown table."""
    cold, loads = result["cold"], result["loads"]

    def row(name: str, f: Dict[str, Optional[float]]) -> str:
        return (
            f"| {name} | {f['drawn']} ms | {f['frame']} ms | {f['tab']} ms | {f['runs']} ms "
            f"| {f['heatmap_start']} → {f['heatmap_end']} ms |"
        )

    median = summary(loads)
    verdict = "ok" if median["tab"] <= result["target_ms"] else "missed"
    return "\n".join(
        [
            f"Tab, one run of {result['variables']:,} variables × {result['steps']:,} logged steps, headless Chromium "
            f"{result['viewport']}, heatmap of {cold['heatmap_rows']} rows × {cold['heatmap_columns']} columns "
            "(times after navigation start; 'tab' = from the tab's frame starting to the heatmap drawn):",
            "",
            "| page load | heatmap drawn | tab frame starts | tab | `runs` requested | `heatmap` request → response |",
            "|---|---|---|---|---|---|",
            row("first, fresh server, empty browser cache", _figures(cold)),
            row(f"median of {len(loads)} later loads", median),
            "",
            f"Heatmap drawn {median['tab']} ms after the tab's frame starts (median; target {result['target_ms']} ms: "
            f"{verdict}), {median['drawn']} ms after navigation start, of which TensorBoard's own page takes "
            f"{median['frame']} ms before the tab starts. First load on a fresh server: {_figures(cold)['tab']} ms "
            f"in the tab, {cold['drawn_ms']} ms after navigation start.",
        ]
    )


if __name__ == "__main__":
    common.main(__doc__, run, markdown)
