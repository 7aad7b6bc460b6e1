"""What the scale benchmarks share: a real `tensorboard` process, timed HTTP
GETs, the process tree's memory, and the tab's request parameters."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

PLUGIN_ROUTES = "/data/plugin/weight_health/"

# Sizes of the full benchmark and of the smoke run.
FULL = {"variables": 1000, "steps": 2000}
QUICK = {"variables": 40, "steps": 50}

# What the tab asks for (tb_weightnorm_frontend/src/app.ts, CHART_POINTS): compare points
# and histograms per run, and the layer detail's charts.
CHART_POINTS = 1000
HISTOGRAMS_PER_RUN = 60
LAYER_STATS = ("gradient/l2", "weight/l2", "update/ratio", "gradient/dead_fraction", "weight/dist_init")
# The heatmap's max_steps is the canvas width in CSS pixels; in a 1400 px
# wide window the heatmap panel is this wide (tab_scale reports what the tab asks).
HEATMAP_COLUMNS = 640

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

_URL_LINE = re.compile(r"TensorBoard \S+ at (http://\S+?)/? ")


class TensorBoard:
    """A running `tensorboard` process (default loader) and its output."""

    def __init__(self, process: subprocess.Popen, started: float):
        self.process = process
        self.started = started  # perf_counter() just before it was launched
        self.base_url: Optional[str] = None
        self.lines: List[str] = []
        self._found = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        # Read everything, so a chatty server never blocks on a full pipe.
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            match = _URL_LINE.search(line)
            if match and not self._found.is_set():
                self.base_url = match.group(1)
                self._found.set()
        self._found.set()

    def wait_for_url(self, timeout: float = 120) -> str:
        if not self._found.wait(timeout) or self.base_url is None:
            raise RuntimeError("tensorboard did not start:\n" + "".join(self.lines[-40:]))
        return self.base_url

    def pids(self) -> List[int]:
        """The tensorboard process and its descendants (the data server)."""
        return _descendants(self.process.pid)

    def rss_mb(self) -> Dict[str, float]:
        """Resident memory in MB: the Python server, its data server, both."""
        main = _rss_kb(self.process.pid)
        children = sum(_rss_kb(p) for p in self.pids()[1:])
        return {
            "python": round(main / 1024, 1),
            "data_server": round(children / 1024, 1),
            "total": round((main + children) / 1024, 1),
        }

    def stop(self) -> None:
        family = self.pids()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        # The data server exits when its stdin closes; make sure of it.
        for pid in family[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


@contextlib.contextmanager
def tensorboard(logdir: str, *flags: str) -> Iterator[TensorBoard]:
    """A real `tensorboard --logdir logdir --port 0` with the default (Rust)
    loader; stopped, with its data server, on exit."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    board = TensorBoard(process, started)
    try:
        board.wait_for_url()
        yield board
    finally:
        board.stop()


def _children(pid: int) -> List[int]:
    out: List[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def _descendants(pid: int) -> List[int]:
    found, queue = [pid], [pid]
    while queue:
        for child in _children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    return 0


def get(url: str, timeout: float = 120) -> Tuple[int, bytes, float, int]:
    """(status, body, seconds, bytes on the wire) of a GET that accepts gzip,
    as a browser does; the time runs until the whole body is read."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = response.status
            gzipped = response.headers.get("Content-Encoding") == "gzip"
    except urllib.error.HTTPError as exc:
        body, status, gzipped = exc.read(), exc.code, exc.headers.get("Content-Encoding") == "gzip"
    seconds = time.perf_counter() - started
    wire_bytes = len(body)
    if gzipped:
        body = gzip.decompress(body)
    return status, body, seconds, wire_bytes


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def main(doc: str, run: Callable[..., dict], markdown: Callable[[dict], str]) -> None:
    """The command line of a benchmark module: runs it, prints its markdown."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--workdir", help="where the generated logdir is cached (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="also print the raw result as JSON")
    args = parser.parse_args()
    result = run(quick=args.quick, workdir=args.workdir)
    print(markdown(result))
    if args.json:
        print(json.dumps(result, indent=1))
