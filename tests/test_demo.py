"""The README's main command: the demo trains, logs, serves TensorBoard and prints the URL."""

import json
import subprocess
import sys
import time

from conftest import free_port, http_get


def test_demo_trains_serves_and_prints_the_url(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tb_weightnorm.demo", "--logdir", str(tmp_path), "--epochs", "1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.time() + 300
        for line in process.stdout:
            if "TensorBoard is serving" in line:
                url = line.rsplit(" at ", 1)[1].strip()
                break
            assert time.time() < deadline, "the demo took too long"
        assert url is not None, "the demo ended without printing a URL"
        assert url.startswith(f"http://127.0.0.1:{port}/") and url.endswith("#weight_health")
        base = url.split("#")[0].rstrip("/")
        deadline = time.time() + 60
        while time.time() < deadline:
            status, body = http_get(base + "/data/plugin/weight_health/runs")
            if status == 200 and json.loads(body)["runs"]:
                break
            time.sleep(0.5)
        assert [r["run"] for r in json.loads(body)["runs"]] == ["healthy_cnn/train"]
    finally:
        process.terminate()
        process.wait(timeout=30)
