"""A real training process for tests that kill it or read its logs while it
trains: scripts/train_logging_every_step.py in a subprocess."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "scripts" / "train_logging_every_step.py"
KERNEL = "live_mlp/hidden/kernel"  # one of its variables
VARIABLES = 4  # hidden and out, kernel and bias each


def start_training(log_dir, *args):
    """The training script in a subprocess; pass "--paced" to have it take a
    step per line written to its stdin (see `release`)."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(log_dir), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def release(process, steps: int) -> None:
    """Lets a paced training take `steps` more steps."""
    process.stdin.write("\n" * steps)
    process.stdin.flush()


def read_logged(process, until: int) -> int:
    """Reads the script's `logged S` lines until step `until` is written; returns it."""
    for line in process.stdout:
        if line.startswith("logged ") and int(line.split()[1]) >= until:
            return int(line.split()[1])
    raise AssertionError(f"the training ended (exit {process.wait()}) before step {until}")
