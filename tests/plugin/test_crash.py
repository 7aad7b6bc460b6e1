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

from support.servers import http_get, tensorboard_process, wait_for_json
from support.training_process import KERNEL, VARIABLES, read_logged, release, start_training
import tb_weightnorm
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata

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
    """A log dir with `killed/train`, a run killed with SIGKILL right after it
    logged step 12 (it waits for the next step's go), and `cut/train`, the
    same file with its last record cut in half, as a kill during that write
    leaves it. Returns the log dir and the steps each run holds whole."""
    logdir = tmp_path_factory.mktemp("crashed") / "logs"
    process = start_training(logdir / "killed", "--steps", "100", "--paced")
    try:
        release(process, 12)
        printed = read_logged(process, until=12)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    (killed_file,) = (logdir / "killed" / "train").glob("*tfevents*")
    shutil.copytree(logdir / "killed", logdir / "cut")
    (cut_file,) = (logdir / "cut" / "train").glob("*tfevents*")
    with open(cut_file, "r+b") as f:
        f.truncate(os.path.getsize(cut_file) - 10)  # inside the last record: every record ends in 16 bytes of framing
    files = {"killed/train": killed_file, "cut/train": cut_file}
    tables = {run: steps_in_file(path, metadata.NORM_TABLE_TAG_PREFIX) for run, path in files.items()}
    histograms = {run: steps_in_file(path, metadata.HISTOGRAM_TAG_PREFIX) for run, path in files.items()}
    # Every step logged is on disk: none was lost in a writer's buffer.
    assert tables["killed/train"] == histograms["killed/train"] == list(range(1, printed + 1))
    # The cut took exactly the last event, a table or a histogram.
    events = {run: len(tables[run]) + len(histograms[run]) for run in files}
    assert events["cut/train"] == events["killed/train"] - 1
    return {"logdir": logdir, "cut_file": cut_file, "tables": tables, "histograms": histograms}


def test_load_reads_every_step_before_the_kill_and_warns_about_the_cut_record(crashed):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = tb_weightnorm.load(str(crashed["logdir"]))
    for run, steps in crashed["tables"].items():
        read = frame[frame.run == run]
        assert sorted(set(read.step)) == steps
        # Every variable's gradient l2 is there at every step read.
        l2 = read[(read.stat == "l2") & (read.kind == "gradient") & (read.variable != schema.GLOBAL_ROW)]
        assert l2.groupby("step").size().eq(VARIABLES).all()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and str(crashed["cut_file"]) in messages[0], messages
    assert "incomplete record" in messages[0] and "skipped" in messages[0]


@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_tensorboard_serves_every_step_before_the_kill(crashed, load_fast):
    with tensorboard_process(crashed["logdir"], f"--load_fast={load_fast}") as base:
        plugin = base + "/data/plugin/weight_health/"
        last_steps = {run: steps[-1] for run, steps in crashed["tables"].items()}
        wait_for_json(plugin + "runs", lambda b: {r["run"]: r["last_step"] for r in b["runs"]} == last_steps)
        for run, tables in crashed["tables"].items():
            histograms = crashed["histograms"][run]
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
