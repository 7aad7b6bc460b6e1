"""Under tf.distribute the gradient logged is the all-reduced one the optimizer
applied, and only one writer writes."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from support.applied import assert_update_is_lr_times_gradient, norm_tables
from support.events import read_events
from support.servers import free_port

SCRIPT = Path(__file__).parent.parent / "support" / "scripts" / "train_distributed.py"
LR = 0.05


def _run(how, kind, logdir, env=None):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), how, kind, str(logdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def _finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def _check_run(run_dir):
    names, tables, _ = assert_update_is_lr_times_gradient(run_dir, LR, min_rows=4)
    assert "summed over 2 replicas" in names.gradient_note
    # 64 samples / 16 per global batch x 2 epochs.
    assert [s for s, _ in tables] == list(range(1, 9))
    assert len(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))) == 1


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    output = _finish(_run("fit", "mirrored", tmp_path))
    assert "replicas 2 steps 8" in output
    _check_run(tmp_path / "train")


def _check_custom_loop_run(run_dir):
    """log() is called after optimizer.apply, so from its second call on the
    update it logs is that step's; the gradient must be the replicas' sum."""
    names, tables = norm_tables(run_dir)
    assert names.gradient_note == "summed over 2 replicas, as applied"
    assert [s for s, _ in tables] == list(range(1, 9))
    g, u, w = (names.stats.index(s) for s in ("gradient/l2", "update/l2", "weight/l2"))
    for _, table in tables[1:]:
        rows = table[:-1]
        rounding = 8 * np.finfo(np.float32).eps * rows[:, w]
        assert (np.abs(rows[:, u] - LR * rows[:, g]) <= 1e-4 * LR * rows[:, g] + rounding).all()


def test_custom_loop_under_mirrored_strategy(tmp_path):
    assert "replicas 2 steps 8" in _finish(_run("loop", "mirrored", tmp_path))
    _check_custom_loop_run(tmp_path)


def test_custom_loop_under_multi_worker_mirrored_strategy_chief_writes(tmp_path):
    """Two local worker processes. Keras 3's model.fit cannot run under
    MultiWorkerMirroredStrategy at all (keras-team/keras#20585), so multi-worker
    users train with a custom loop; log() sums the gradients over the workers
    and only the chief writes."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    processes = [
        _run("loop", "multiworker", tmp_path / f"worker{i}",
             env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    outputs = [_finish(p) for p in processes]
    assert all("replicas 2 steps 8" in o for o in outputs)
    _check_custom_loop_run(tmp_path / "worker0")
    # Worker 1 made its writer (an events file holds only the file version),
    # but tb_weightnorm wrote nothing there.
    assert read_events(str(tmp_path / "worker1")) == []
