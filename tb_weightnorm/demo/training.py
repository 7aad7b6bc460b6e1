"""Trains four small models on shapes the demo draws itself (one healthy CNN
and three that go wrong in different ways), logs their weight health, prints
what the diagnosis found in each, and serves TensorBoard on the logs.

Run: python -m tb_weightnorm.demo [--logdir logs/demo] [--epochs 5] [--samples 8000] [--port 6006] [--no-serve]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from tb_weightnorm.diagnosis import Finding

# Held-out images, drawn apart from the training images.
_HELD_OUT_SEED = 1
_BATCH = 64


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What one demo run did: where it logged, how well its model does on
    held-out images, and the findings of the diagnosis at its end."""

    name: str
    log_dir: str
    accuracy: float
    findings: Tuple["Finding", ...]


def train(
    logdir: str,
    *,
    runs: Optional[Sequence[str]] = None,
    epochs: int = 5,
    samples: int = 8000,
    every_n_steps: int = 2,
    progress: bool = True,
) -> List[RunResult]:
    """Trains the demo's runs (all of `scenarios.RUNS`, or those named), each
    into `logdir/<name>`, with WeightHealthCallback and Keras' TensorBoard
    callback (loss and accuracy, held-out ones under `validation`).

    Args:
        logdir: the log directory of the demo.
        runs: the names of the runs to train; all when None.
        epochs: epochs of each run (a run whose loss turns NaN stops there).
        samples: training images; an eighth as many (at least 256) are drawn
            apart to measure the accuracy on.
        every_n_steps: how often the norm table is logged.
        progress: show a progress bar per run.

    Example:

    ```python
    results = train("logs/demo", runs=["healthy"], epochs=2)
    print(results[0].accuracy)
    ```
    """
    import keras

    from tb_weightnorm import WeightHealthCallback
    from tb_weightnorm.demo import scenarios
    from tb_weightnorm.demo.images import shapes

    chosen = [r for r in scenarios.RUNS if runs is None or r.name in runs]
    unknown = set(runs or ()) - {r.name for r in scenarios.RUNS}
    if unknown:
        raise ValueError(f"no demo run named {', '.join(sorted(unknown))}; the runs are "
                         f"{', '.join(r.name for r in scenarios.RUNS)}")
    x, y = shapes(samples, seed=0)
    held_out = shapes(max(256, samples // 8), seed=_HELD_OUT_SEED)
    results = []
    for run in chosen:
        keras.utils.set_random_seed(0)
        model = run.build()
        model.compile(
            optimizer=run.optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        run_dir = os.path.join(logdir, run.name)
        # Kernel grids every epoch, whatever they cost: watching the first
        # layer's kernels turn into edges is half the point of the demo.
        health = WeightHealthCallback(
            run_dir, every_n_steps=every_n_steps, histogram_every_n_steps=10 * every_n_steps,
            kernel_grid_every_n_epochs=1, report=None,
        )
        callbacks = [health, keras.callbacks.TensorBoard(run_dir), keras.callbacks.TerminateOnNaN()]
        if progress:
            callbacks.append(_progress_bar(run.name))
        fitted = model.fit(
            x, y, batch_size=_BATCH, epochs=epochs, validation_data=held_out, verbose=0, callbacks=callbacks
        )
        accuracy = float(fitted.history["val_accuracy"][-1])
        results.append(RunResult(run.name, run_dir, accuracy, tuple(health.findings)))
    return results


def _progress_bar(name: str):
    """A Keras callback showing one tqdm bar for the whole fit: its steps, loss
    and accuracy."""
    import keras
    import tqdm

    class ProgressBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            total = self.params["epochs"] * self.params["steps"]
            self.bar = tqdm.tqdm(total=total, desc=f"{name:<10}", unit="step", dynamic_ncols=True)

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.loss = logs.get("loss", math.nan)
            self.bar.set_postfix(
                loss=f"{self.loss:.3g}", accuracy=f"{logs.get('accuracy', math.nan):.1%}", refresh=False
            )
            self.bar.update(1)

        def on_train_end(self, logs=None):
            if self.bar.n < self.bar.total and math.isnan(self.loss):
                self.bar.set_postfix_str(f"{self.bar.postfix}: stopped, the loss is NaN")
            self.bar.close()

    return ProgressBar()


def summary(results: Sequence[RunResult]) -> str:
    """Each run's held-out accuracy and its findings at warning level or
    above, one line per rule."""
    from tb_weightnorm import diagnosis
    from tb_weightnorm.demo import scenarios

    what = {r.name: r.what for r in scenarios.RUNS}
    lines = ["Held-out accuracy, and what the diagnosis found (the Weight Health tab shows the same):"]
    for result in results:
        lines.append(f"  {result.name:<10} {result.accuracy:6.1%}  {what.get(result.name, '')}")
        by_rule = {}
        for finding in result.findings:
            if diagnosis.severity_rank(finding.severity) >= diagnosis.severity_rank("warning"):
                by_rule.setdefault(finding.rule, []).append(finding)
        if not by_rule:
            lines.append(f"{'':19}no finding at warning level or above")
        for rule, found in by_rule.items():
            worst = max(found, key=lambda f: diagnosis.severity_rank(f.severity))
            layers = list(dict.fromkeys(f.layer for f in found))
            shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
            first = min(f.first_step for f in found)
            lines.append(f"{'':19}{worst.severity.upper():<8} {rule} in {shown}, from step {first}")
    return "\n".join(lines)


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tb_weightnorm.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default=os.path.join("logs", "demo"), help="where to log (default: logs/demo)")
    parser.add_argument("--epochs", type=_positive, default=5, help="epochs of each run (default: 5)")
    parser.add_argument("--samples", type=_positive, default=8000, help="training images (default: 8000)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--no-serve", action="store_true", help="train and log, then exit")
    args = parser.parse_args(argv)
    # TensorFlow's C++ start-up messages would bury the demo's own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tb_weightnorm.demo.images import CLASSES

    print(f"Training 4 models on {args.samples} images of {', '.join(CLASSES)} that the demo draws itself...",
          flush=True)
    results = train(args.logdir, epochs=args.epochs, samples=args.samples)
    print()
    print(summary(results))
    print(f"\nLogged {len(results)} runs to {args.logdir}: {', '.join(r.name for r in results)}. Open them with")
    print(f"    tensorboard --logdir {args.logdir}     (then the Weight Health tab)")
    print(f"    tb-weightnorm report {args.logdir}     (the same findings in the terminal)", flush=True)
    if not args.no_serve:
        serve(args.logdir, args.host, args.port)
    return 0

