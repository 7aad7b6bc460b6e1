"""TensorBoard reads a run while it trains: a real `tensorboard` process over
the log dir of a real training process that logs every step (norm tables and
histograms), paced by the test. Whatever moment a request lands on, while
the files grow under TensorBoard's loader, every route answers 200 with
whole JSON; new steps keep appearing; the tab shows them after a reload."""

import json
import time
import urllib.parse

from support.browser import open_tab
from support.servers import http_get, tensorboard_process, wait_for_json
from support.training_process import KERNEL, read_logged, release, start_training

RUN = "live/train"
STEPS = 24


def routes():
    query = urllib.parse.urlencode
    return [
        "runs",
        "table?" + query({"run": RUN}),
        "heatmap?" + query({"run": RUN, "stat": "gradient/l2"}),
        "series?" + query({"run": RUN, "stat": "update/ratio"}),
        "histograms?" + query({"run": RUN, "variable": KERNEL, "kind": "gradient"}),
        "findings?" + query({"run": RUN}),
    ]


def test_every_route_answers_whole_json_while_the_run_trains(tmp_path):
    logdir = tmp_path / "logs"
    process = start_training(logdir / "live", "--steps", str(STEPS), "--paced")
    last_steps = []  # the run's last step, as the runs route said it, request after request
    answers = 0
    try:
        with tensorboard_process(logdir) as base:
            plugin = base + "/data/plugin/weight_health/"
            logged = 0
            # Eight steps at a time, one step per round of requests; each
            # eight must show up before the next eight start.
            while logged < STEPS:
                target = logged + 8
                deadline = time.time() + 90
                while True:
                    if logged < target:
                        release(process, 1)
                        logged = read_logged(process, until=logged + 1)
                    for route in routes():
                        status, body = http_get(plugin + route)
                        listed = bool(last_steps) and last_steps[-1] is not None
                        if route != "runs" and not listed:
                            assert status in (200, 404), (route, status, body[:300])
                            continue
                        assert status == 200, (route, status, body[:300])
                        answer = json.loads(body)  # whole JSON, never a half-written table
                        answers += 1
                        if route == "runs":
                            steps = [r["last_step"] for r in answer["runs"] if r["run"] == RUN]
                            last_steps.append(steps[0] if steps else None)
                    if last_steps[-1] == target:
                        break
                    assert time.time() < deadline, f"step {target} never showed; last seen {last_steps[-1]}"
                    time.sleep(0.2)
            table = wait_for_json(plugin + routes()[1], lambda b: len(b["steps"]) == STEPS)
            assert table["steps"] == list(range(1, STEPS + 1))
    finally:
        process.kill()
        process.wait()
    seen = [s for s in last_steps if s is not None]
    assert seen == sorted(seen)  # steps never go back
    assert len(set(seen)) >= 3 and answers > 30


def test_the_tab_shows_new_steps_after_a_reload(browser, tmp_path):  # noqa: F811
    logdir = tmp_path / "logs"
    process = start_training(logdir / "live", "--steps", str(STEPS), "--paced")
    try:
        release(process, 5)
        read_logged(process, until=5)
        with tensorboard_process(logdir) as base:
            runs = base + "/data/plugin/weight_health/runs"
            wait_for_json(runs, lambda b: [r["last_step"] for r in b["runs"]] == [5])
            page, frame, errors = open_tab(browser, base)
            title = frame.locator("[data-testid=norms] h2")
            frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
            assert title.inner_text() == "Norms at step 5"
            for step in (10, 15):
                release(process, 5)
                read_logged(process, until=step)
                wait_for_json(runs, lambda b: [r["last_step"] for r in b["runs"]] == [step])
                page.locator("button.reload-button").click()
                frame.locator("[data-testid=norms] h2", has_text=f"Norms at step {step}").wait_for(timeout=30_000)
                assert frame.locator("[data-testid=table-step]").get_attribute("max") == str(step - 1)
            assert not errors, errors
            page.close()
    finally:
        process.kill()
        process.wait()
