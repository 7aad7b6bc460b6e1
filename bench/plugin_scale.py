"""The plugin's routes at scale: a real `tensorboard` (default loader) over
one run of 1,000 variables × 2,000 logged steps (bench/scale_logdir.py).

Measures how long TensorBoard takes until the plugin's `runs` route reports
the whole run (load), the memory of TensorBoard and its data server, and the
response time of every route the tab calls when it opens and when a layer is
opened, with the tab's own parameters: the first (cold) call in a fresh
server, in the order the tab makes them, then the median of warm calls.

    python -m bench.plugin_scale [--quick] [--workdir FOLDER] [--json]
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

try:
    from bench import _scale_common as common
    from bench import scale_logdir
except ImportError:  # run as a script from inside bench/
    import _scale_common as common
    import scale_logdir

TARGET_MS = 300
WARM_CALLS = 7
QUICK_WARM_CALLS = 2


def _query(path: str, *pairs: Tuple[str, Any]) -> str:
    return path + "?" + urllib.parse.urlencode([(k, str(v)) for k, v in pairs])


def wait_until_loaded(base: str, info: Dict[str, Any], timeout: float = 600) -> Tuple[Dict[str, Any], int]:
    """Polls `runs` until it reports the run with its last norm table,
    histogram and kernel grid step; returns (the run's entry, polls made)."""
    url = base + common.PLUGIN_ROUTES + "runs"
    deadline = time.perf_counter() + timeout
    polls = 0
    while time.perf_counter() < deadline:
        polls += 1
        status, body, _, _ = common.get(url)
        if status == 200:
            entry = next((r for r in json.loads(body)["runs"] if r["run"] == info["run"]), None)
            if entry is not None and _complete(entry, info):
                return entry, polls
        time.sleep(0.1)
    raise TimeoutError(f"tensorboard did not load {info['logdir']} in {timeout} s")


def _complete(entry: Dict[str, Any], info: Dict[str, Any]) -> bool:
    grids = {g["variable"]: g["last_step"] for g in entry["kernel_grids"]}
    return (
        entry["last_step"] == info["last_step"]
        and (entry["histograms"] or {}).get("last_step") == info["histogram_last_step"]
        and grids == info["kernel_grids"]
    )


def tab_routes(run: str, entry: Dict[str, Any], steps: int) -> List[Tuple[str, str]]:
    """(name, route) of the calls the tab makes, in its order: opening the
    overview (runs; the latest table, findings and the heatmap by layer),
    another heatmap stat, then a heatmap click opening a conv layer at a step
    (the table there, the layer's charts, histograms and kernel grid)."""
    grids = entry["kernel_grids"]
    grid = grids[min(1, len(grids) - 1)]
    layer, kernel = grid["layer"], grid["variable"]
    step = 1 + scale_logdir.STEP_SPACING * (steps // 3)
    heatmap = lambda stat: _query(  # noqa: E731
        "heatmap", ("run", run), ("stat", stat), ("by", "layer"), ("max_steps", common.HEATMAP_COLUMNS)
    )
    routes = [
        ("runs", "runs"),
        ("table (latest)", _query("table", ("run", run))),
        ("findings", _query("findings", ("run", run))),
        ("heatmap gradient/l2 by layer", heatmap("gradient/l2")),
        ("heatmap update/ratio by layer", heatmap("update/ratio")),
        ("table (at a step)", _query("table", ("run", run), ("step", step))),
    ]
    for stat in common.LAYER_STATS:
        if stat in entry["stats"]:
            route = _query("compare", ("run", run), ("stat", stat), ("layer", layer), ("max_steps", common.CHART_POINTS))
            routes.append((f"compare {stat} (layer)", route))
    routes += [
        (
            "histograms",
            _query("histograms", ("run", run), ("variable", kernel), ("kind", "gradient"), ("max_steps", common.HISTOGRAMS_PER_RUN)),
        ),
        ("kernel_grids", _query("kernel_grids", ("run", run), ("variable", kernel))),
    ]
    return routes


def _kernel_image_route(body: bytes) -> Optional[str]:
    images = json.loads(body).get("images") or []
    return images[-1]["url"] if images else None


def measure_routes(base: str, routes: List[Tuple[str, str]], warm_calls: int) -> Dict[str, Dict[str, Any]]:
    """Each route's first call (in order), then `warm_calls` more each."""
    prefix = base + common.PLUGIN_ROUTES
    out: Dict[str, Dict[str, Any]] = {}
    queue = list(routes)
    while queue:
        name, route = queue.pop(0)
        status, body, seconds, wire = common.get(prefix + route)
        if status != 200:
            raise RuntimeError(f"{route} answered {status}: {body[:300]!r}")
        out[name] = {"route": route, "cold_ms": common.ms(seconds), "bytes": len(body), "wire_bytes": wire}
        if name == "kernel_grids":
            image = _kernel_image_route(body)
            if image:
                queue.insert(0, ("kernel_image", image))
    for name, entry in out.items():
        times = [common.get(prefix + entry["route"])[2] for _ in range(warm_calls)]
        entry["warm_ms"] = common.ms(common.median(times))
    return out


def run(quick: bool = False, workdir: Optional[str] = None) -> dict:
    """Builds (or reuses) the logdir, serves it, and times the load and the routes.

    Args:
        quick: tiny sizes (seconds), for a smoke test.
        workdir: where the generated logdir is cached (default: a temp folder).

    Returns:
        A dict: sizes, `load_s`, `rss_mb_after_load` / `rss_mb_after_routes`
        ({python, data_server, total}), and `routes`: {name: {route, cold_ms,
        warm_ms, bytes, wire_bytes}}.
    """
    sizes = common.QUICK if quick else common.FULL
    info = scale_logdir.build(sizes["variables"], sizes["steps"], workdir)
    with common.tensorboard(info["logdir"]) as board:
        base = board.wait_for_url()
        up = time.perf_counter() - board.started
        entry, polls = wait_until_loaded(base, info)
        load = time.perf_counter() - board.started
        rss_loaded = board.rss_mb()
        routes = tab_routes(info["run"], entry, sizes["steps"])
        timings = measure_routes(base, routes, QUICK_WARM_CALLS if quick else WARM_CALLS)
        rss_after = board.rss_mb()
    return {
        "variables": sizes["variables"],
        "steps": sizes["steps"],
        "logdir_mb": round(info["logdir_bytes"] / 2**20, 1),
        "generate_s": info["generate_seconds"],
        "server_up_s": round(up, 2),
        "load_s": round(load, 2),
        "load_polls": polls,
        "rss_mb_after_load": rss_loaded,
        "rss_mb_after_routes": rss_after,
        "target_ms": TARGET_MS,
        "routes": timings,
    }


def markdown(result: dict) -> str:
    """The figures as small markdown tables."""
    rss, rss_after = result["rss_mb_after_load"], result["rss_mb_after_routes"]
    lines = [
        f"Plugin routes, one run of {result['variables']:,} variables × {result['steps']:,} logged steps "
        f"({result['logdir_mb']} MB of event files), `tensorboard` default loader:",
        "",
        "| measure | value |",
        "|---|---|",
        f"| TensorBoard up (URL printed) | {result['server_up_s']} s |",
        f"| load: until `runs` reports every step | {result['load_s']} s |",
        f"| RSS after load (Python + data server) | {rss['total']} MB ({rss['python']} + {rss['data_server']}) |",
        f"| RSS after the routes below | {rss_after['total']} MB ({rss_after['python']} + {rss_after['data_server']}) |",
        "",
        f"| route (tab's parameters) | cold, first call | warm, median | response | target |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["routes"].items():
        worst = max(r["cold_ms"], r["warm_ms"])
        mark = "ok" if worst <= result["target_ms"] else "missed"
        lines.append(
            f"| {name} | {r['cold_ms']} ms | {r['warm_ms']} ms | {r['bytes'] / 1024:.0f} KiB "
            f"({r['wire_bytes'] / 1024:.0f} KiB gzip) | {mark} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    common.main(__doc__, run, markdown)
