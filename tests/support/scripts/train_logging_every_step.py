"""Trains a tiny model with WeightHealthCallback logging every step (norm
tables and histograms), and prints `logged S` once step S is written, for
tests that kill it (kill -9) or read its logs while it trains.

    python train_logging_every_step.py LOG_DIR --steps 1000 --pause 0.05
    python train_logging_every_step.py LOG_DIR --steps 40 --paced

With --paced it takes a step each time a line arrives on stdin, so a test
decides when the run moves on; otherwise it sleeps --pause seconds a step.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import tb_weightnorm

HISTOGRAM_BINS = 8


class Pace(keras.callbacks.Callback):
    """Reports each step after WeightHealthCallback (listed before it) wrote
    it, and sets the pace of the next one."""

    def __init__(self, paced: bool, pause: float):
        super().__init__()
        self.paced, self.pause = paced, pause

    def on_train_batch_begin(self, batch, logs=None):
        if self.paced and not sys.stdin.readline():
            raise SystemExit("stdin closed")
        elif not self.paced:
            time.sleep(self.pause)

    def on_train_batch_end(self, batch, logs=None):
        print(f"logged {int(self.model.optimizer.iterations.numpy())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--paced", action="store_true")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"), keras.layers.Dense(1, name="out")],
        name="live_mlp",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * args.steps, 4)).astype("float32")
    y = rng.normal(size=(4 * args.steps, 1)).astype("float32")
    health = tb_weightnorm.WeightHealthCallback(
        args.log_dir, every_n_steps=1, histogram_every_n_steps=1, histogram_bins=HISTOGRAM_BINS, report=None
    )
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[health, Pace(args.paced, args.pause)])
    print("done", flush=True)


if __name__ == "__main__":
    main()
