"""A real `tensorboard` process, and waiting for its routes."""

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
