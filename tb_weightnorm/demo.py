"""Trains a small CNN on shapes it draws, logs its weight health, and serves
TensorBoard on the logs.

Run: python -m tb_weightnorm.demo [--logdir logs/demo] [--port 6006] [--no-serve]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def build_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="pool2"),
            keras.layers.Dense(32, activation="relu", name="dense"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="shapes_cnn",
    )


def train(logdir: str, *, epochs: int = 3, samples: int = 2048, every_n_steps: int = 4) -> str:
    """Trains the demo model; returns the run directory it logged to."""
    import keras

    from tb_weightnorm import WeightHealthCallback
    from tb_weightnorm.demo_data import shapes

    keras.utils.set_random_seed(0)
    x, y = shapes(samples, seed=0)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    run_dir = os.path.join(logdir, "healthy_cnn")
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        validation_split=0.1,
        verbose=2,
        callbacks=[
            WeightHealthCallback(run_dir, every_n_steps=every_n_steps),
            keras.callbacks.TensorBoard(run_dir),
        ],
    )
    return run_dir


def serve(logdir: str, host: str, port: int) -> None:
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", logdir, "--host", host, "--port", str(port)])
    url = board.launch()
    print(f"\nTensorBoard is serving {logdir} at {url}#weight_health", flush=True)
    print("Open that URL in a browser; press Ctrl+C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tb_weightnorm.demo", description=__doc__)
    parser.add_argument("--logdir", default=os.path.join("logs", "demo"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--no-serve", action="store_true", help="train and log, then exit")
    args = parser.parse_args(argv)
    run_dir = train(args.logdir, epochs=args.epochs)
    print(f"Logged to {run_dir}")
    if not args.no_serve:
        serve(args.logdir, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
