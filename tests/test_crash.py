"""A training process killed with kill -9 while it logs every step loses
nothing it logged: a real `tensorboard` process and `tb_weightnorm.load` read
every step up to the kill, and a record the kill cut in half is skipped with
a warning naming its file."""

import os
import shutil
import signal
import urllib.parse
import warnings

import pytest
from tensorboard.backend.event_processing import event_file_loader

import tb_weightnorm
from conftest import http_get, tensorboard_process, wait_for_json
from tb_weightnorm import metadata
from training_process import KERNEL, VARIABLES, read_logged, release, start_training

def steps_in_file(path, prefix):
    """The steps of the events whose tag starts with `prefix`, read with
    TensorBoard's own loader (it stops at an incomplete record)."""
    return [
        event.step
        for event in event_file_loader.EventFileLoader(str(path)).Load()
        for value in event.summary.value
        if value.tag.startswith(prefix)
    ]


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """`killed/train`: a run killed with SIGKILL right after it logged step
    12 (it waits for the next step's go); `cut/train` (in its own log dir):
    the same file with its last record cut in half, as a kill during that
    write leaves it. Returns the log dirs and the steps each holds whole."""
    root = tmp_path_factory.mktemp("crashed")
    killed_dir, cut_dir = root / "logs", root / "cut_logs"
    process = start_training(killed_dir / "killed", "--steps", "100", "--paced")
    try:
        release(process, 12)
        printed = read_logged(process, until=12)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    (killed_file,) = (killed_dir / "killed" / "train").glob("*tfevents*")
    shutil.copytree(killed_dir / "killed", cut_dir / "cut")
    (cut_file,) = (cut_dir / "cut" / "train").glob("*tfevents*")
    with open(cut_file, "r+b") as f:
        f.truncate(os.path.getsize(cut_file) - 10)  # inside the last record: every record ends in 16 bytes of framing
    tables = {name: steps_in_file(path, metadata.NORM_TABLE_TAG_PREFIX) for name, path in
              (("killed", killed_file), ("cut", cut_file))}
    histograms = {name: steps_in_file(path, metadata.HISTOGRAM_TAG_PREFIX) for name, path in
                  (("killed", killed_file), ("cut", cut_file))}
    # Every step logged is on disk: none was lost in a writer's buffer.
    assert tables["killed"] == histograms["killed"] == list(range(1, printed + 1))
    # The cut took exactly the last event, a table or a histogram.
    assert len(tables["cut"]) + len(histograms["cut"]) == len(tables["killed"]) + len(histograms["killed"]) - 1
    return {"killed": killed_dir, "cut": cut_dir, "cut_file": cut_file, "tables": tables, "histograms": histograms}


def test_load_reads_every_step_before_the_kill_and_warns_about_the_cut_record(crashed):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        killed = tb_weightnorm.load(str(crashed["killed"]))
        cut = tb_weightnorm.load(str(crashed["cut"]))
    assert sorted(set(killed.step)) == crashed["tables"]["killed"]
    assert sorted(set(cut.step)) == crashed["tables"]["cut"]
    messages = [str(w.message) for w in caught]
    about_cut = [m for m in messages if str(crashed["cut_file"]) in m]
    assert len(about_cut) == 1, messages
    assert "incomplete" in about_cut[0] and "skipped" in about_cut[0]
    # Every variable's weight and gradient l2 are there at every step read.
    for frame in (killed, cut):
        l2 = frame[(frame.stat == "l2") & (frame.kind == "gradient") & (frame.variable != metadata.GLOBAL_ROW)]
        assert l2.groupby("step").size().eq(VARIABLES).all()


@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_tensorboard_serves_every_step_before_the_kill(crashed, load_fast):
    for name in ("killed", "cut"):
        run = f"{name}/train"
        tables, histograms = crashed["tables"][name], crashed["histograms"][name]
        with tensorboard_process(crashed[name], f"--load_fast={load_fast}") as base:
            plugin = base + "/data/plugin/weight_health/"
            wait_for_json(plugin + "runs", lambda b: [r["last_step"] for r in b["runs"]] == [tables[-1]])
            table = wait_for_json(plugin + "table?" + urllib.parse.urlencode({"run": run}), lambda b: b["steps"] == tables)
            assert len(table["rows"]) == VARIABLES + 1  # and (global)
            query = urllib.parse.urlencode({"run": run, "variable": KERNEL, "kind": "gradient", "max_steps": 1000})
            served = wait_for_json(
                plugin + "histograms?" + query, lambda b: b["runs"][0].get("logged_steps") == len(histograms)
            )
            assert [h["step"] for h in served["runs"][0]["histograms"]] == histograms
            for h in served["runs"][0]["histograms"]:
                assert sum(h["counts"]) + h["nan_count"] + h["neg_inf_count"] + h["pos_inf_count"] == 4 * 8
            status, _ = http_get(plugin + "findings?" + urllib.parse.urlencode({"run": run}))
            assert status == 200
