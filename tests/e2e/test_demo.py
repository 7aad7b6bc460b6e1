"""The README's first command: `python -m tb_weightnorm.demo` trains a healthy
CNN and three models that go wrong, prints what the diagnosis found, serves
TensorBoard and prints the URL. Run once, for real, as a user would."""

import dataclasses
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from support.servers import free_port, wait_for_json
from tb_weightnorm import diagnosis
from tb_weightnorm.demo import images
from tb_weightnorm.read import export

# The demo's default is 5 epochs; 3 are enough for the healthy CNN to be
# clearly accurate, and for every broken run to show its trouble.
EPOCHS = 3
RUNS = ["dead_relu/train", "exploding/train", "healthy/train", "vanishing/train"]
# What each broken run is meant to show, by the rules of the diagnosis.
SHOWS = {
    "exploding/train": {"exploding_gradients", "nonfinite"},
    "dead_relu/train": {"dead_units"},
    "vanishing/train": {"vanishing_gradients"},
}


@dataclasses.dataclass
class Demo:
    logdir: str
    output: str
    url: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("demo"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tb_weightnorm.demo", "--logdir", logdir, "--epochs", str(EPOCHS), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    try:
        lines, url = [], None
        deadline = time.time() + 900
        for line in process.stdout:
            lines.append(line)
            if "TensorBoard is serving" in line:
                url = line.rsplit(" at ", 1)[1].strip()
                break
            assert time.time() < deadline, "the demo took too long"
        output = "".join(lines)
        assert url is not None, "the demo ended without printing a URL:\n" + output[-3000:]
        assert url.startswith(f"http://127.0.0.1:{port}/") and url.endswith("#weight_health")
        yield Demo(logdir, output, url)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_serves_its_four_runs(demo):
    base = demo.url.split("#")[0].rstrip("/")
    body = wait_for_json(base + "/data/plugin/weight_health/runs", lambda b: len(b["runs"]) == len(RUNS))
    assert [r["run"] for r in body["runs"]] == RUNS
    runs = {r["run"]: r for r in body["runs"]}
    # The CNN runs show their first layer's kernels: at the start and every epoch.
    grids = {g["variable"] for g in runs["healthy/train"]["kernel_grids"]}
    assert grids == {"shapes_cnn/conv1/kernel", "shapes_cnn/conv2/kernel"}
    grid = wait_for_json(
        base + "/data/plugin/weight_health/kernel_grids?run=healthy/train&variable=shapes_cnn/conv1/kernel",
        lambda b: len(b["images"]) == EPOCHS + 1,
    )
    assert grid["filters_total"] == 16 and grid["mode"] == "diverging"


def test_diagnosis_finds_what_each_broken_run_shows(demo):
    found = {h.run: diagnosis.diagnose(h) for h in export.histories(demo.logdir)}
    assert sorted(found) == RUNS
    severe = [f for f in found["healthy/train"] if f.severity != "info"]
    assert not severe, [f.message for f in severe]
    for run, rules in SHOWS.items():
        assert rules <= {f.rule for f in found[run]}, (run, [(f.rule, f.layer) for f in found[run]])
    by_rule = lambda run, rule: [f for f in found[run] if f.rule == rule]
    # The gradients blow up before the weights go NaN.
    (spike,) = by_rule("exploding/train", "exploding_gradients")
    (nan,) = by_rule("exploding/train", "nonfinite")
    assert spike.severity == nan.severity == "critical"
    assert spike.first_step <= nan.first_step
    # The dead units are in the layer whose biases start negative, and the
    # gradient fades in the first of the sigmoid layers.
    assert {f.layer for f in by_rule("dead_relu/train", "dead_units")} == {"dense"}
    assert "sigmoid_1" in {f.layer for f in by_rule("vanishing/train", "vanishing_gradients")}


def _held_out_accuracy(logdir, run):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    events = event_accumulator.EventAccumulator(f"{logdir}/{run}/validation", size_guidance={"tensors": 0})
    events.Reload()
    return [float(tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_accuracy")]


def test_healthy_model_is_accurate_on_held_out_images(demo):
    healthy = _held_out_accuracy(demo.logdir, "healthy")
    assert len(healthy) == EPOCHS
    assert healthy[-1] > 0.9
    # Five classes: the runs that blew up or never learned stay near chance.
    for run in ("exploding", "vanishing"):
        assert _held_out_accuracy(demo.logdir, run)[-1] < 0.4, run
    # The demo prints the same figure.
    assert _summary(demo.output)["healthy"][0] == pytest.approx(100 * healthy[-1], abs=0.06)


def _summary(output):
    """{run name: (accuracy %, the lines under it)} of the demo's summary."""
    runs, name = {}, None
    for line in output[output.index("Held-out accuracy"):].splitlines()[1:]:
        if not line.strip():
            break
        head = re.match(r"  (\w+)\s+([\d.]+)%", line)
        if head:
            name = head.group(1)
            runs[name] = (float(head.group(2)), [])
        else:
            runs[name][1].append(line)
    return runs


def test_demo_prints_what_it_found_and_how_to_open_the_runs(demo):
    summary = _summary(demo.output)
    assert sorted(summary) == sorted(r.split("/")[0] for r in RUNS)
    assert summary["healthy"][1] == [" " * 19 + "no finding at warning level or above"]
    for run, rules in SHOWS.items():
        text = "\n".join(summary[run.split("/")[0]][1])
        assert all(rule in text for rule in rules), text
    assert f"tensorboard --logdir {demo.logdir}" in demo.output
    assert f"tb-weightnorm report {demo.logdir}" in demo.output


# -- the images it draws -------------------------------------------------------------


def test_shapes_are_reproducible_images_of_every_class():
    x, y = images.shapes(500, seed=3)
    again, labels = images.shapes(500, seed=3)
    assert x.shape == (500, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, labels)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y) == set(range(len(images.CLASSES)))
    other, _ = images.shapes(500, seed=4)
    assert not np.array_equal(x, other)


def test_shapes_without_noise_are_strokes_on_black():
    x, y = images.shapes(200, noise=0.0, seed=5)
    ink = (x > 0.5).mean(axis=(1, 2, 3))
    # Every image shows its shape, and none is filled in.
    assert ink.min() > 0.01 and ink.max() < 0.4
    # A line has less ink than a square of the same reach.
    line, square = images.CLASSES.index("line"), images.CLASSES.index("square")
    assert ink[y == line].mean() < ink[y == square].mean()
