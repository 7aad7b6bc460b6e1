"""Under tf.distribute the gradient logged is the all-reduced one the optimizer
applied, and only one writer writes."""

import glob
import os
import subprocess
import sys
from pathlib import Path

from applied import assert_update_is_lr_times_gradient

SCRIPT = Path(__file__).parent / "scripts" / "train_distributed.py"
LR = 0.05


def _run(kind, logdir, env=None):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), kind, str(logdir)],
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
    output = _finish(_run("mirrored", tmp_path))
    assert "replicas 2" in output
    _check_run(tmp_path / "train")
